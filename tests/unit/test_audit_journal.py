"""The journal: durable, chained, signed, linear under concurrency."""

import multiprocessing
import os
import shutil
import tempfile
import threading
import unittest
import uuid

from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import signing
from secmig.audit import trail
from secmig.audit import verify
from secmig import exception
from tests import pkiutil


class AuditTestCase(unittest.TestCase):
    """A CA and one enrolled host for the class; a journal per test."""

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-audit-')
        cls.pki = pkiutil.TestPKI(cls.base)
        cls.host = cls.pki.enroll('cmp1')
        cls.signer = signing.HostSigner.from_cert_dir(cls.host.cert_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.base)
        self.path = os.path.join(self.dir, 'audit', 'journal.jsonl')

    def make_trail(self, **kwargs):
        j = journal.Journal(self.path, self.signer, **kwargs)
        self.addCleanup(j.close)
        return trail.AuditTrail(j)

    def record(self, audit, step='requested', migration=None):
        return audit.record(step, migration or str(uuid.uuid4()),
                            str(uuid.uuid4()), 'success')

    def verdict(self, **kwargs):
        return verify.verify_journal(self.path, trust=self.pki.trust(),
                                     **kwargs)

    def frames(self):
        with open(self.path, 'rb') as f:
            return [lines.Frame(raw) for raw in f]


def _append_in_child(path, cert_dir, count):
    signer = signing.HostSigner.from_cert_dir(cert_dir)
    audit = trail.AuditTrail(journal.Journal(path, signer))
    for _ in range(count):
        audit.record('copied', str(uuid.uuid4()), str(uuid.uuid4()),
                     'success')


class TestJournal(AuditTestCase):

    def test_first_batch_holds_key_record_event_and_checkpoint(self):
        # Given a new journal, when one step is recorded
        recorded = self.record(self.make_trail())
        # then the journal holds the signer's key, the event and a
        # checkpoint, chained from the genesis hash
        frames = self.frames()
        self.assertEqual(['key', 'event', 'checkpoint'],
                         [f.kind for f in frames])
        self.assertEqual(2, recorded.seq)
        self.assertEqual(lines.GENESIS, frames[0].prev)
        self.assertEqual(frames[0].h, frames[1].prev)
        self.assertEqual(frames[1].h, frames[2].prev)
        self.assertEqual(recorded.id, frames[1].body()['id'])
        self.assertTrue(all(f.hash_ok for f in frames))
        # and the signed head is the last checkpoint
        with open(self.path + journal.HEAD_SUFFIX, 'rb') as f:
            self.assertEqual(frames[2].raw, f.read())
        self.assertTrue(self.verdict())

    def test_record_policy_signs_every_record(self):
        audit = self.make_trail(fsync='record')
        for _ in range(3):
            self.record(audit)
        kinds = [f.kind for f in self.frames()]
        self.assertEqual(['key'] + ['event', 'checkpoint'] * 3, kinds)

    def test_threads_keep_one_linear_chain_and_share_batches(self):
        audit = self.make_trail()

        def work():
            for _ in range(25):
                self.record(audit, 'copied')
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        frames = self.frames()
        events = [f for f in frames if f.kind == 'event']
        checkpoints = [f for f in frames if f.kind == 'checkpoint']
        self.assertEqual(200, len(events))
        self.assertEqual(list(range(1, len(frames) + 1)),
                         [f.seq for f in frames])
        # Group commit: concurrent records shared checkpoints.
        self.assertLess(len(checkpoints), 200)
        verdict = self.verdict()
        self.assertTrue(verdict, verdict)
        self.assertEqual(200, verdict.details['events'])

    def test_processes_keep_one_linear_chain(self):
        audit = self.make_trail()
        self.record(audit)  # this process appends before and after
        ctx = multiprocessing.get_context('fork')
        children = [ctx.Process(target=_append_in_child,
                                args=(self.path, self.host.cert_dir, 20))
                    for _ in range(3)]
        for child in children:
            child.start()
        for _ in range(20):
            self.record(audit)
        for child in children:
            child.join()
            self.assertEqual(0, child.exitcode)
        self.record(audit)
        verdict = self.verdict()
        self.assertTrue(verdict, verdict)
        self.assertEqual(82, verdict.details['events'])
        # One key record only: every writer saw the same signer.
        self.assertEqual(1, [f.kind for f in self.frames()].count('key'))

    def test_unsigned_tail_of_a_crashed_writer_is_set_aside(self):
        # Given a writer that died mid-batch: an event written, its
        # checkpoint not, and a torn line after it
        audit = self.make_trail()
        self.record(audit)
        seq, prev = self.frames()[-1].seq, self.frames()[-1].h
        orphan, _h = lines.encode(seq + 1, prev, 'event',
                                  {'id': 'never-acknowledged'})
        with open(self.path, 'ab') as f:
            f.write(orphan + b'{"seq":')
        self.assertEqual('truncated', self.verdict().code)
        # When another writer appends
        other = self.make_trail()
        recorded = self.record(other)
        # then the orphan is moved aside and a recovered record says so
        frames = self.frames()
        kinds = [f.kind for f in frames]
        self.assertEqual(['key', 'event', 'checkpoint', 'recovered',
                          'event', 'checkpoint'], kinds)
        body = frames[3].body()
        self.assertEqual(3, body['after_record'])
        saved = os.path.join(self.dir, 'audit', body['saved_as'])
        with open(saved, 'rb') as f:
            self.assertEqual(orphan + b'{"seq":', f.read())
        self.assertEqual(5, recorded.seq)
        self.assertTrue(self.verdict())

    def test_refuses_to_sign_over_a_forged_checkpoint(self):
        # Given a journal whose last checkpoint was forged (re-chained
        # without the key)
        audit = self.make_trail()
        self.record(audit)
        frames = self.frames()
        body = frames[-1].body()
        body['sig'] = body['sig'][::-1]
        forged, _h = lines.encode(frames[-1].seq, frames[-1].prev,
                                  'checkpoint', body)
        with open(self.path, 'wb') as f:
            f.write(b''.join(fr.raw for fr in frames[:-1]) + forged)
        # When another process appends, then it refuses
        other = self.make_trail()
        with self.assertRaises(exception.SecmigError) as ctx:
            self.record(other)
        self.assertEqual('journal_tampered', ctx.exception.code)
        self.assertIn('record 3', str(ctx.exception))

    def test_new_host_key_gets_a_key_record(self):
        for _ in range(2):  # enrolling again replaces the host key
            identity = self.pki.enroll('cmp2')
            j = journal.Journal(self.path, signing.HostSigner.from_cert_dir(
                identity.cert_dir))
            self.addCleanup(j.close)
            self.record(trail.AuditTrail(j))
        self.assertEqual(['key', 'event', 'checkpoint', 'key', 'event',
                          'checkpoint'], [f.kind for f in self.frames()])
        verdict = self.verdict()
        self.assertTrue(verdict, verdict)

    def test_unwritable_journal_fails_every_waiting_caller(self):
        os.makedirs(self.path)  # a directory where the journal should be
        audit = self.make_trail()
        errors = []

        def work():
            try:
                self.record(audit)
            except exception.SecmigError as e:
                errors.append(e.code)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(['journal_write_failed'] * 4, errors)

    def test_unknown_fsync_policy_is_refused(self):
        with self.assertRaises(exception.SecmigError) as ctx:
            journal.Journal(self.path, self.signer, fsync='never')
        self.assertEqual('bad_config', ctx.exception.code)
