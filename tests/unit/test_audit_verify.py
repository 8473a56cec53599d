"""The verifier names each kind of tampering and the record it shows at.

Every journal here is written by the real writer with record-level
commits (each event its own batch), so record numbers are predictable:
1 key, then event / checkpoint pairs (events 2, 4, 6 ..., checkpoints
3, 5, 7 ...). Tampering is done on the bytes, as an attacker would.
"""

import os

from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import verify
from tests import pkiutil
from tests.unit import test_audit_journal as base


class TestVerify(base.AuditTestCase):

    def setUp(self):
        super().setUp()
        audit = self.make_trail(fsync='record')
        for _ in range(5):
            self.record(audit)
        with open(self.path, 'rb') as f:
            self.raw = f.readlines()  # 11 lines: key + 5 x (event, ckpt)

    def write(self, raw_lines):
        with open(self.path, 'wb') as f:
            f.write(b''.join(raw_lines))

    def assertRefused(self, code, record, **kwargs):
        verdict = self.verdict(**kwargs)
        self.assertFalse(verdict, verdict)
        self.assertEqual(code, verdict.code, verdict.reason)
        self.assertEqual(record, verdict.details['record'], verdict.reason)
        return verdict

    def rechain(self, raw_lines, start):
        """Recompute hashes from line ``start`` on, as without the key."""
        out = list(raw_lines[:start - 1])
        prev = lines.Frame(out[-1]).h if out else lines.GENESIS
        for seq, raw in enumerate(raw_lines[start - 1:], start):
            frame = lines.Frame(raw)
            line, prev = lines.encode(seq, prev, frame.kind, frame.body())
            out.append(line)
        return out

    def test_intact_journal_verifies(self):
        verdict = self.verdict()
        self.assertTrue(verdict, verdict)
        self.assertEqual('intact', verdict.code)
        self.assertEqual(11, verdict.details['records'])
        self.assertEqual(5, verdict.details['events'])
        self.assertTrue(verdict.details['anchored'])

    def test_edited_record(self):
        self.raw[5] = self.raw[5].replace(b'"success"', b'"failure"', 1)
        self.write(self.raw)
        verdict = self.assertRefused('edited', 6)
        self.assertIn('does not match its hash', verdict.reason)

    def test_edited_record_with_its_own_hash_recomputed(self):
        frame = lines.Frame(self.raw[5])
        body = frame.body()
        body['outcome'] = 'failure'
        self.raw[5], _h = lines.encode(6, frame.prev, 'event', body)
        self.write(self.raw)
        self.assertRefused('broken_chain', 7)

    def test_deleted_record(self):
        del self.raw[3]
        self.write(self.raw)
        verdict = self.assertRefused('deleted', 4)
        self.assertIn('records 4 to 4 are missing', verdict.reason)

    def test_reordered_records(self):
        self.raw[3], self.raw[5] = self.raw[5], self.raw[3]
        self.write(self.raw)
        self.assertRefused('reordered', 4)

    def test_inserted_copy_of_a_record(self):
        self.raw.insert(6, self.raw[3])
        self.write(self.raw)
        verdict = self.assertRefused('inserted', 4)
        self.assertEqual(7, verdict.details['line'])

    def test_inserted_forged_record_in_place(self):
        # A forged event 6 chained to record 5, put before the real one.
        forged, _h = lines.encode(6, lines.Frame(self.raw[4]).h, 'event',
                                  {'id': 'forged'})
        self.raw.insert(5, forged)
        self.write(self.raw)
        self.assertRefused('inserted', 6)

    def test_truncated_tail(self):
        self.write(self.raw[:7])
        verdict = self.assertRefused('truncated', 8)
        self.assertIn('signed head is record 11', verdict.reason)

    def test_truncated_mid_line(self):
        self.write(self.raw[:10] + [self.raw[10][:40]])
        self.assertRefused('truncated', 11)

    def test_tail_rechained_without_the_key(self):
        # The attacker edits event 6, recomputes every hash after it and
        # writes a matching head, but cannot sign: every checkpoint's
        # signature is checked, and the first re-chained batch is named.
        frame = lines.Frame(self.raw[5])
        body = frame.body()
        body['outcome'] = 'failure'
        self.raw[5], _h = lines.encode(6, frame.prev, 'event', body)
        forged = self.rechain(self.raw, 6)
        self.write(forged)
        with open(self.path + journal.HEAD_SUFFIX, 'wb') as f:
            f.write(forged[-1])
        verdict = self.assertRefused('bad_signature', 6)
        self.assertEqual(7, verdict.details['checkpoint'])

    def test_checkpoints_dropped_leave_an_unsigned_tail(self):
        # Re-chained without its last checkpoint: nothing signs event 10.
        forged = self.rechain(self.raw[:10], 1)
        self.write(forged)
        os.unlink(self.path + journal.HEAD_SUFFIX)
        self.assertRefused('unsigned_tail', 10)

    def test_head_missing(self):
        os.unlink(self.path + journal.HEAD_SUFFIX)
        self.assertRefused('head_missing', 11)

    def test_head_from_another_journal(self):
        # The head is a valid signed checkpoint of this host, but for a
        # different chain: the journal was swapped.
        saved = self.raw
        os.rename(self.path, self.path + '.first')
        os.unlink(self.path + journal.HEAD_SUFFIX)
        audit = self.make_trail(fsync='record')
        for _ in range(5):
            self.record(audit)
        os.rename(self.path + '.first', self.path)
        self.assertNotEqual(saved, open(self.path + journal.HEAD_SUFFIX,
                                        'rb').readlines())
        self.assertRefused('head_mismatch', 11)

    def test_delivered_records_cannot_be_truncated_away(self):
        with open(self.path + journal.CURSOR_SUFFIX, 'w') as f:
            f.write('{"seq": 10, "offset": 0, "id": "x"}')
        os.unlink(self.path + journal.HEAD_SUFFIX)
        self.write(self.raw[:5])
        verdict = self.assertRefused('truncated', 6)
        self.assertIn('already delivered', verdict.reason)

    def test_signer_from_a_foreign_ca_is_untrusted(self):
        foreign = pkiutil.TestPKI(os.path.join(self.dir, 'foreign'),
                                  ca_name='another CA')
        verdict = verify.verify_journal(self.path, trust=foreign.trust())
        self.assertFalse(verdict)
        self.assertEqual('untrusted_signer', verdict.code)
        self.assertEqual(1, verdict.details['record'])
        self.assertEqual('foreign_ca', verdict.details['cause'])

    def test_pinned_certificate(self):
        self.assertTrue(verify.verify_journal(
            self.path, pinned={self.signer.fingerprint}))
        verdict = verify.verify_journal(self.path, pinned={'0' * 64})
        self.assertEqual('untrusted_signer', verdict.code)

    def test_malformed_line(self):
        self.raw[2] = b'not a journal line\n'
        self.write(self.raw)
        self.assertRefused('malformed', 3)
