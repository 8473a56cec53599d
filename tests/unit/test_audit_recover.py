"""``secmig audit recover``: the operator's way out of a refused journal.

The journal that is not intact is set aside whole, with its head and
cursor (nothing deleted, still verifiable where it is), and a new
journal begins with a signed ``recovered`` record that names it. The
writers that refused pick up the new journal without a restart.
"""

import hashlib
import os

from secmig.audit import journal
from secmig.audit import lines
from tests import auditutil
from tests.unit import test_audit_forgery as forgery
from tests.unit import test_audit_truncation as truncation


class TestRecover(forgery.ForgeryTestCase):

    def recover(self):
        return auditutil.run_cli('--config-file', self.conf, 'audit',
                                 'recover', '--journal', self.path)

    def test_forged_journal_is_set_aside_and_writing_resumes(self):
        # Given a journal the writer refuses, whose first record was
        # delivered
        delivered = delivery_of(self.path)
        self.attacker.append(*self.attacker.forge_batch())
        self.assertAppendRefused(self.writer, 'unknown_signer', 4)
        old = b''.join(self.attacker.lines())
        # When the operator sets it aside
        status, out, err = self.recover()
        self.assertEqual(0, status, err)
        aside = out.split(' set aside as ', 1)[1].split(' (', 1)[0]
        self.assertIn('(unknown_signer at record 4: checkpoint 5 is '
                      'signed by', out)
        # then the old journal, head and cursor are kept together, and
        # still tell what happened to them
        with open(aside, 'rb') as f:
            self.assertEqual(old, f.read())
        for suffix in (journal.HEAD_SUFFIX, journal.CURSOR_SUFFIX):
            self.assertTrue(os.path.exists(aside + suffix), suffix)
        self.assertFalse(os.path.exists(self.path + journal.CURSOR_SUFFIX))
        status, out, _err = auditutil.run_cli(
            '--config-file', self.conf, 'audit', 'verify', aside)
        self.assertIn('NOT INTACT (unknown_signer) at record 4', out)
        # and a new journal begins with a signed record naming it
        frames = [lines.Frame(raw) for raw in self.attacker.lines()]
        self.assertEqual(['key', 'recovered', 'checkpoint'],
                         [f.kind for f in frames])
        body = frames[1].body()
        self.assertEqual(os.path.basename(aside), body['saved_as'])
        self.assertEqual(hashlib.sha256(old).hexdigest(),
                         body['dropped_sha256'])
        self.assertEqual(len(old), body['dropped_bytes'])
        self.assertEqual(delivered, body['delivered_through'])
        self.assertTrue(body['reason'].startswith('unknown_signer at record '
                                                  '4: '))
        self.assertEqual(frames[-1].raw,
                         self.attacker.read(journal.HEAD_SUFFIX))
        # The writer that refused writes to the new journal, unrestarted.
        self.assertEqual(4, self.record(self.writer).seq)
        self.assertTrue(self.verdict())
        status, out, _err = auditutil.run_cli('audit', 'show', self.path)
        self.assertIn('journal started over: the previous journal (%d '
                      'bytes) was set aside as %s: unknown_signer'
                      % (len(old), os.path.basename(aside)), out)

    def test_intact_journal_is_not_set_aside(self):
        before = self.files()
        status, _out, err = self.recover()
        self.assertEqual(1, status)
        self.assertIn('is intact: 3 records', err)
        self.assertIn('nothing to set aside', err)
        self.assertEqual(before, self.files())

    def test_removed_journal_with_its_head_left(self):
        os.unlink(self.path)
        status, out, err = self.recover()
        self.assertEqual(0, status, err)
        self.assertIn('the journal was missing; its head or cursor '
                      'remained', out)
        self.assertEqual(4, self.record(self.make_trail()).seq)


class TestRecoverTruncated(truncation.TruncationTestCase):

    def test_cut_journal_is_set_aside(self):
        self.attacker.write(self.raw[:5])
        status, out, err = auditutil.run_cli(
            '--config-file', self.conf, 'audit', 'recover', '--journal',
            self.path)
        self.assertEqual(0, status, err)
        self.assertIn('(truncated at record 6: ', out)
        self.record(self.writer)
        self.assertTrue(self.verdict())


def delivery_of(path):
    """Deliver the journal at ``path``; return the last record sent."""
    from secmig.audit import delivery

    sent = []

    class Sender:
        def send(self, record_id, event_type, payload):
            sent.append(payload['seq'])

    delivery.Outbox(path, Sender()).deliver_or_raise()
    return sent[-1]
