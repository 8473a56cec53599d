"""Forged lines from a party that can write the journal but holds no key.

Each test performs the attack on the files, then asserts that the
genuine writer refuses to sign over it (``journal_tampered``, with the
verifier's code and record, leaving the files as they were) and that
``secmig audit verify`` reports it in every mode: default (the CA in
``[pki] cert_dir``), ``--ca`` and ``--cert``.
"""

import os

from secmig.audit import journal
from secmig.audit import lines
from secmig import exception
from tests import auditutil
from tests.unit import test_audit_journal as base


class ForgeryTestCase(base.AuditTestCase):
    """A journal of one batch (records 1 to 3) by a writer that lives on."""

    def setUp(self):
        super().setUp()
        self.writer = self.make_trail()
        self.record(self.writer)
        self.attacker = auditutil.Attacker(self.path)
        self.conf = os.path.join(self.dir, 'secmig.conf')
        with open(self.conf, 'w') as f:
            f.write('[pki]\ncert_dir = %s\n' % self.host.cert_dir)

    def files(self):
        head = self.path + journal.HEAD_SUFFIX
        return (self.attacker.lines(), self.attacker.read(journal.HEAD_SUFFIX)
                if os.path.exists(head) else None)

    def assertAppendRefused(self, audit, code, record):
        """``audit`` refuses to record, naming ``code`` and ``record``."""
        before = self.files()
        with self.assertRaises(journal.JournalTampered) as ctx:
            self.record(audit)
        error = ctx.exception
        self.assertIsInstance(error, exception.SecmigError)
        self.assertEqual('journal_tampered', error.code)
        self.assertEqual(code, error.decision.code, error)
        self.assertEqual(record, error.decision.details['record'], error)
        self.assertIn('not intact (%s at record %s)' % (code, record),
                      str(error))
        self.assertEqual(before, self.files(), 'the writer changed files')
        return error

    def assertVerifyRefuses(self, code, record, host='cmp1'):
        """Every mode of ``secmig audit verify`` reports ``code``."""
        cert = os.path.join(self.host.cert_dir, 'server-cert.pem')
        ca = os.path.join(self.host.cert_dir, 'ca-cert.pem')
        for argv in (('--config-file', self.conf, 'audit', 'verify',
                      self.path),
                     ('audit', 'verify', self.path, '--ca', ca, '--host',
                      host),
                     ('audit', 'verify', self.path, '--cert', cert)):
            status, out, err = auditutil.run_cli(*argv)
            self.assertEqual(1, status, (argv, out, err))
            self.assertIn('NOT INTACT (%s) at record %s' % (code, record),
                          out, argv)
        return out


class TestForgedCheckpoints(ForgeryTestCase):

    def test_unknown_signer_with_a_garbage_signature(self):
        # Given a forged event and a checkpoint naming an unknown signer
        self.attacker.append(*self.attacker.forge_batch())
        # then the writer that signed record 3 refuses to go on
        error = self.assertAppendRefused(self.writer, 'unknown_signer', 4)
        self.assertEqual(5, error.decision.details['checkpoint'])
        self.assertIn("checkpoint 5 is signed by '%s', which is not the "
                      "journal's key" % ('ab' * 32), str(error))
        # and so does a writer that has not written yet (another process)
        self.assertAppendRefused(self.make_trail(), 'unknown_signer', 4)
        # and refusing is not a one-off: the next record is refused too
        self.assertAppendRefused(self.writer, 'unknown_signer', 4)
        out = self.assertVerifyRefuses('unknown_signer', 4)
        self.assertIn('records 4 to 4 are not authenticated', out)

    def test_forged_head_to_match(self):
        # The attacker also makes the head name the forged checkpoint, so
        # that the head and the journal agree.
        forged = self.attacker.forge_batch(events=2)
        self.attacker.append(*forged)
        self.attacker.put(journal.HEAD_SUFFIX, forged[-1])
        self.assertAppendRefused(self.make_trail(), 'unknown_signer', 4)
        self.assertAppendRefused(self.writer, 'unknown_signer', 4)
        self.assertVerifyRefuses('unknown_signer', 4)

    def test_garbage_signature_in_the_journals_name(self):
        self.attacker.append(*self.attacker.forge_batch(
            signer=self.signer.fingerprint))
        error = self.assertAppendRefused(self.writer, 'bad_signature', 4)
        self.assertIn('altered and re-chained without the key', str(error))
        self.assertVerifyRefuses('bad_signature', 4)

    def test_genuine_signature_copied_from_another_checkpoint(self):
        genuine = lines.Frame(self.attacker.lines()[2]).body()['sig']
        self.attacker.append(*self.attacker.forge_batch(
            signer=self.signer.fingerprint, sig=genuine))
        self.assertAppendRefused(self.writer, 'bad_signature', 4)
        self.assertVerifyRefuses('bad_signature', 4)

    def test_forged_checkpoint_after_another_processes_batches(self):
        # The writer verifies from its own last checkpoint: genuine
        # batches of another process first, then the forgery.
        other = self.make_trail()
        self.record(other)
        self.record(other)
        self.attacker.append(*self.attacker.forge_batch())
        self.assertAppendRefused(self.writer, 'unknown_signer', 8)
        self.assertVerifyRefuses('unknown_signer', 8)

    def test_checkpoint_before_any_key_in_a_new_journal(self):
        os.unlink(self.path)
        os.unlink(self.path + journal.HEAD_SUFFIX)
        line, _h = lines.encode(1, lines.GENESIS, 'checkpoint', {
            'first': 1, 'last': 0, 'signer': 'ab' * 32, 'sig': 'AA=='})
        self.attacker.write([line])
        self.attacker.put(journal.HEAD_SUFFIX, line)
        error = self.assertAppendRefused(self.make_trail(), 'unknown_signer',
                                         1)
        self.assertIn("which is not the journal's key", str(error))


class TestForgedRecords(ForgeryTestCase):

    def test_records_without_a_checkpoint_are_set_aside_not_signed(self):
        # Forged records alone look like a crashed writer's tail: they
        # are never signed over, nor lost: moved aside and recorded.
        forged = self.attacker.forge_batch(events=2)[:-1]
        self.attacker.append(*forged)
        recorded = self.record(self.writer)
        kinds = [lines.Frame(raw).kind for raw in self.attacker.lines()]
        self.assertEqual(['key', 'event', 'checkpoint', 'recovered',
                          'event', 'checkpoint'], kinds)
        body = lines.Frame(self.attacker.lines()[3]).body()
        with open(os.path.join(os.path.dirname(self.path),
                               body['saved_as']), 'rb') as f:
            self.assertEqual(b''.join(forged), f.read())
        self.assertEqual(3, body['after_record'])
        self.assertEqual(5, recorded.seq)
        self.assertNotIn(b'forged', b''.join(self.attacker.lines()))
        self.assertTrue(self.verdict())

    def test_duplicated_genuine_checkpoint(self):
        self.attacker.append(self.attacker.lines()[-1])
        error = self.assertAppendRefused(self.writer, 'inserted', 3)
        self.assertIn('record number 3 appears a second time', str(error))
        self.assertVerifyRefuses('inserted', 3)

    def test_reordered_checkpoints(self):
        other = self.make_trail()
        self.record(other)
        self.record(other)
        raw = self.attacker.lines()  # ... 4 event, 5 ckpt, 6 event, 7 ckpt
        raw[4], raw[6] = raw[6], raw[4]
        self.attacker.write(raw)
        self.assertAppendRefused(self.writer, 'reordered', 5)
        self.assertVerifyRefuses('reordered', 5)

    def test_malformed_line_before_the_end(self):
        self.attacker.append(b'not a journal line\n',
                             *self.attacker.forge_batch())
        self.assertAppendRefused(self.writer, 'malformed', 4)
        self.assertVerifyRefuses('malformed', 4)

    def test_own_checkpoint_rewritten_under_a_running_writer(self):
        # The attacker rewrites the last checkpoint in place, same size.
        raw = self.attacker.lines()
        raw[-1] = raw[-1].replace(b'"time":"2', b'"time":"1', 1)
        self.attacker.write(raw)
        error = self.assertAppendRefused(self.writer, 'edited', 3)
        self.assertIn('no longer where it was', str(error))
