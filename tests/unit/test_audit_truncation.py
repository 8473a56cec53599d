"""Records cut from the journal, and head and cursor files written by others.

The head file says what was committed, the delivery cursor what was
delivered. A writer compares both with the journal before it appends and
refuses (``journal_tampered``) when the journal is shorter than they
say, rather than overwriting the head; the verifier keeps reporting it.
Only a last line cut short after the last committed checkpoint is a
crash.
"""

import glob
import os

from secmig.audit import delivery
from secmig.audit import journal
from secmig.audit import lines
from secmig import exception
from tests.unit import test_audit_forgery as forgery


class _Sender:
    """Accepts every notification (delivery is not what is tested)."""

    def __init__(self):
        self.sent = []

    def send(self, record_id, event_type, payload):
        self.sent.append(record_id)


class TruncationTestCase(forgery.ForgeryTestCase):
    """Records 1 to 7: key, then three batches of one event each."""

    def setUp(self):
        super().setUp()
        self.record(self.writer)
        self.record(self.writer)
        self.raw = self.attacker.lines()
        self.assertEqual(7, len(self.raw))

    def assertStillRefused(self, code, record):
        """New writers refuse, and the verdict outlives their attempts."""
        for _ in range(2):
            self.assertAppendRefused(self.make_trail(), code, record)
        verdict = self.verdict()
        self.assertEqual((code, record),
                         (verdict.code, verdict.details['record']),
                         verdict.reason)
        return verdict


class TestCut(TruncationTestCase):

    def test_cut_at_a_checkpoint_boundary(self):
        # Given the last batch removed, the head left as it was
        self.attacker.write(self.raw[:5])
        # then the running writer and a new one refuse, the head is not
        # overwritten, and verify says truncated, after every attempt
        error = self.assertAppendRefused(self.writer, 'truncated', 7)
        self.assertIn('record 7, the last checkpoint this process '
                      'verified, is no longer where it was', str(error))
        error = self.assertAppendRefused(self.make_trail(), 'truncated', 6)
        self.assertIn('ends at record 5 but its signed head is record 7',
                      str(error))
        self.assertEqual(self.raw[6], self.attacker.read(
            journal.HEAD_SUFFIX))
        verdict = self.assertStillRefused('truncated', 6)
        self.assertIn('signed head is record 7', verdict.reason)
        self.assertVerifyRefuses('truncated', 6)

    def test_cut_with_the_head_rolled_back_to_match(self):
        # The attacker also copies record 5 into the head: only the
        # running writer, which remembers what it signed, can tell.
        self.attacker.write(self.raw[:5])
        self.attacker.put(journal.HEAD_SUFFIX, self.raw[4])
        self.assertAppendRefused(self.writer, 'truncated', 7)

    def test_cut_with_the_head_rolled_back_but_records_delivered(self):
        outbox = delivery.Outbox(self.path, _Sender())
        self.assertEqual((3, 0), outbox.deliver())
        self.attacker.write(self.raw[:5])
        self.attacker.put(journal.HEAD_SUFFIX, self.raw[4])
        error = self.assertAppendRefused(self.make_trail(), 'truncated', 6)
        self.assertIn('record 6 was already delivered', str(error))
        self.assertVerifyRefuses('truncated', 6)

    def test_cut_inside_an_earlier_checkpoint_is_not_a_crash(self):
        # Cut in the middle of checkpoint 5, which the head shows was
        # committed before checkpoint 7.
        self.attacker.write(self.raw[:4] + [self.raw[4][:60]])
        self.assertAppendRefused(self.writer, 'truncated', 7)
        self.assertStillRefused('truncated', 5)
        self.assertEqual([], glob.glob(self.path + journal.UNSIGNED_SUFFIX
                                       + '*'))
        self.assertEqual(self.raw[:4] + [self.raw[4][:60]],
                         self.attacker.lines())

    def test_cut_inside_the_last_checkpoint_is_not_a_crash_either(self):
        self.attacker.write(self.raw[:6] + [self.raw[6][:60]])
        self.assertStillRefused('truncated', 7)

    def test_cut_and_head_removed(self):
        self.attacker.write(self.raw[:5])
        self.attacker.remove(journal.HEAD_SUFFIX)
        error = self.assertAppendRefused(self.make_trail(), 'head_missing',
                                         None)
        self.assertIn('is missing but the journal holds records',
                      str(error))
        self.assertVerifyRefuses('head_missing', 5)

    def test_journal_removed_under_a_running_writer(self):
        os.unlink(self.path)
        for audit, reason in (
                (self.writer, 'the journal was removed while this process '
                              'was writing it (its last record was 7)'),
                (self.make_trail(), 'the journal ends at record 0 but its '
                                    'signed head is record 7')):
            with self.assertRaises(journal.JournalTampered) as ctx:
                self.record(audit)
            self.assertEqual(('truncated', 1),
                             (ctx.exception.decision.code,
                              ctx.exception.decision.details['record']))
            self.assertIn(reason, str(ctx.exception))
        self.assertEqual(self.raw[6], self.attacker.read(
            journal.HEAD_SUFFIX))


class TestHeadFile(TruncationTestCase):

    def test_head_of_garbage(self):
        self.attacker.put(journal.HEAD_SUFFIX, b'{"seq":99}\n')
        error = self.assertAppendRefused(self.writer, 'bad_head', None)
        self.assertIn('not a journal record', str(error))
        self.assertVerifyRefuses('bad_head', None)

    def test_head_forged_beyond_the_end(self):
        # A well-formed checkpoint numbered past the end, not signed.
        forged = self.attacker.forge_batch(signer=self.signer.fingerprint)
        self.attacker.put(journal.HEAD_SUFFIX, forged[-1])
        self.assertAppendRefused(self.writer, 'truncated', 8)
        self.assertVerifyRefuses('bad_head', 9)

    def test_head_of_another_journal_of_this_host(self):
        other = os.path.join(self.dir, 'other', 'journal.jsonl')
        audit = self.make_trail_at(other)
        for _ in range(3):
            self.record(audit)
        with open(other + journal.HEAD_SUFFIX, 'rb') as f:
            self.attacker.put(journal.HEAD_SUFFIX, f.read())
        self.assertStillRefused('head_mismatch', 7)
        self.assertVerifyRefuses('head_mismatch', 7)

    def test_head_that_lags_is_harmless(self):
        # After a power loss the head may name an earlier checkpoint.
        self.attacker.put(journal.HEAD_SUFFIX, self.raw[2])
        self.assertTrue(self.verdict())
        for audit in (self.make_trail(), self.writer):
            self.record(audit)
        self.assertEqual(self.attacker.lines()[-1],
                         self.attacker.read(journal.HEAD_SUFFIX))
        self.assertTrue(self.verdict())

    def make_trail_at(self, path):
        from secmig.audit import trail

        j = journal.Journal(path, self.signer)
        self.addCleanup(j.close)
        return trail.AuditTrail(j)


class TestCursorFile(TruncationTestCase):

    def outbox(self):
        return delivery.Outbox(self.path, _Sender())

    def test_cursor_beyond_the_end(self):
        self.attacker.put(journal.CURSOR_SUFFIX,
                          b'{"seq": 70, "offset": 0, "id": "x"}')
        error = self.assertAppendRefused(self.writer, 'truncated', 8)
        self.assertIn('record 70 was already delivered', str(error))
        self.assertVerifyRefuses('truncated', 8)
        with self.assertRaises(exception.SecmigError) as ctx:
            self.outbox().deliver_or_raise()
        self.assertEqual('bad_cursor', ctx.exception.code)
        self.assertIn('names record 70, beyond the signed head (record 7)',
                      str(ctx.exception))

    def test_cursor_naming_another_record(self):
        # Meant to make the deliverer skip records 2 and 4: it names
        # record 4 with an id that is not record 4's.
        end = sum(len(r) for r in self.raw[:4])
        self.attacker.put(journal.CURSOR_SUFFIX, (
            '{"seq": 4, "offset": %d, "id": "made-up"}' % end).encode())
        self.assertVerifyRefuses('bad_cursor', 4)
        outbox = self.outbox()
        with self.assertRaises(exception.SecmigError) as ctx:
            outbox.deliver_or_raise()
        self.assertEqual('bad_cursor', ctx.exception.code)
        self.assertEqual([], outbox.sender.sent)
        # The writer does not depend on the cursor's id: it writes on.
        self.record(self.writer)

    def test_cursor_of_garbage(self):
        for garbage in (b'[', b'{"seq": "4"}', b'[1, 2]', b'{"seq": -1, '
                        b'"offset": 0, "id": "x"}', b'\xff' * 10,
                        b'[' * 100000):
            self.attacker.put(journal.CURSOR_SUFFIX, garbage)
            self.assertVerifyRefuses('bad_cursor', None)
            with self.assertRaises(exception.SecmigError) as ctx:
                self.outbox().deliver_or_raise()
            self.assertEqual('bad_cursor', ctx.exception.code)
        self.record(self.writer)

    def test_cursor_with_a_stale_offset_is_looked_up(self):
        outbox = self.outbox()
        self.assertEqual((3, 0), outbox.deliver())
        cursor = lines.canonical({'seq': 4, 'offset': 1, 'id': lines.Frame(
            self.raw[3]).body()['id']})
        self.attacker.put(journal.CURSOR_SUFFIX, cursor)
        self.assertEqual((1, 0), outbox.deliver())
        self.assertEqual(lines.Frame(self.raw[5]).body()['id'],
                         outbox.sender.sent[-1])
