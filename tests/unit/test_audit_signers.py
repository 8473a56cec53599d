"""Who may sign a host's journal, and when: host binding and key rotation.

Attacks by a party holding a key the CA trusts: another host's, or an
earlier key of the same host. Each test forges the lines with that key
(or has the real writer of the other host write them), then asserts the
refusal and its reason from the verifier and from the genuine writer.
Journals that are meant to have been written in the past are written
with the writer's clock set back (``journal.utcnow``), and certificates
are issued with the CA's ``now``.
"""

import datetime
import os
import shutil
import tempfile
import unittest
from unittest import mock

from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import signing
from secmig.audit import trail
from secmig.audit import verify
from secmig import exception
from secmig.pki import ca as ca_mod
from secmig.pki import keys
from tests import auditutil
from tests import pkiutil

NOW = datetime.datetime.now(datetime.timezone.utc)


def days(n):
    return NOW + datetime.timedelta(days=n)


class SignerTestCase(unittest.TestCase):
    """A CA of its own per test, created sixty days ago."""

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix='secmig-audit-signers-')
        self.addCleanup(shutil.rmtree, self.base, True)
        self.pki = pkiutil.TestPKI(os.path.join(self.base, 'pki'))
        self.pki.ca = ca_mod.CertificateAuthority.create(
            self.pki.ca_dir, 'secmig test CA', now=days(-60),
            overwrite=True)
        self.path = os.path.join(self.base, 'audit', 'journal.jsonl')
        self.ca = os.path.join(self.pki.ca_dir, 'ca-cert.pem')
        self.attacker = auditutil.Attacker(self.path)

    def enroll(self, name, at=0, valid=30):
        """Enroll ``name`` ``at`` days from now, for ``valid`` days."""
        self.pki.ca.publish_crl(now=days(at))
        identity = self.pki.enroll(name, now=days(at), days=valid)
        self.pki.ca.publish_crl()  # the current list, to verify with
        return identity

    def writer(self, identity, path=None, at=None, records=1,
               cert_dir=None):
        """A writer signing with ``identity``'s key; it records first.

        ``at``: the writer's clock (days from now) while it records.
        ``cert_dir``: where it loads its key from (``identity``'s).
        """
        signer = signing.HostSigner.from_cert_dir(cert_dir
                                                  or identity.cert_dir)
        j = journal.Journal(path or self.path, signer, fsync='record')
        self.addCleanup(j.close)
        audit = trail.AuditTrail(j)
        for _ in range(records):
            self.record(audit, at)
        return audit

    def record(self, audit, at=None):
        clock = days(at) if at is not None else NOW
        with mock.patch.object(journal, 'clock', return_value=clock):
            return audit.record('authorised', 'm', 'i', 'success')

    def assertRefused(self, code, record, verdict):
        self.assertFalse(verdict, verdict)
        self.assertEqual((code, record),
                         (verdict.code, verdict.details.get('record')),
                         verdict.reason)
        return verdict

    def assertAppendRefused(self, audit, code, record, at=None):
        with self.assertRaises(journal.JournalTampered) as ctx:
            self.record(audit, at)
        self.assertRefused(code, record, ctx.exception.decision)
        return ctx.exception

    def verdict(self, **kwargs):
        kwargs.setdefault('trust', self.pki.trust())
        return verify.verify_journal(self.path, **kwargs)


class TestHostBinding(SignerTestCase):

    def setUp(self):
        super().setUp()
        self.cmp2 = self.enroll('cmp2')
        self.cmp1 = self.enroll('cmp1')
        self.audit = self.writer(self.cmp1, records=2)
        self.conf = os.path.join(self.base, 'cmp1.conf')
        with open(self.conf, 'w') as f:
            f.write('[pki]\ncert_dir = %s\n' % self.cmp1.cert_dir)

    def test_journal_rewritten_whole_with_another_hosts_key(self):
        # Given cmp1's journal and head replaced by one cmp2's key signed
        other = os.path.join(self.base, 'cmp2', 'journal.jsonl')
        self.writer(self.cmp2, path=other, records=2)
        for suffix in ('', journal.HEAD_SUFFIX):
            os.replace(other + suffix, self.path + suffix)
        # then the verifier bound to cmp1 names both hosts
        verdict = self.assertRefused('wrong_host', 1,
                                     self.verdict(host='cmp1'))
        self.assertIn('key record 1 holds the certificate of cmp2, but the '
                      'journal belongs to cmp1', verdict.reason)
        self.assertEqual(('cmp1', 'cmp2'), (verdict.details['host'],
                                            verdict.details['signer_host']))
        # in every mode of the command line, the host being this host's
        cert = os.path.join(self.cmp1.cert_dir, 'server-cert.pem')
        for argv in (('--config-file', self.conf, 'audit', 'verify',
                      self.path),
                     ('audit', 'verify', self.path, '--ca', self.ca,
                      '--host', 'cmp1'),
                     ('audit', 'verify', self.path, '--cert', cert)):
            status, out, _err = auditutil.run_cli(*argv)
            self.assertEqual(1, status, out)
            self.assertIn('NOT INTACT (wrong_host) at record 1: key record '
                          '1 holds the certificate of cmp2, but the journal '
                          'belongs to cmp1', out)
        # and cmp1's writer will not sign it
        self.assertAppendRefused(self.audit, 'wrong_host', 1)
        self.assertAppendRefused(self.writer(self.cmp1, records=0),
                                 'wrong_host', 1)

    def test_unbound_verification_says_so(self):
        # Without --host and without a certificate of its own, the
        # verifier can only take the journal's word for its host.
        status, out, err = auditutil.run_cli('audit', 'verify', self.path,
                                             '--ca', self.ca)
        self.assertEqual(0, status, out)
        self.assertIn('the journal is intact: 5 records', out)
        self.assertIn('(host cmp1)', out)
        self.assertIn('no host to bind the journal to (give --host)', err)
        self.assertFalse(self.verdict().details['bound'])
        self.assertTrue(self.verdict(host='cmp1').details['bound'])

    def test_another_hosts_key_record_appended(self):
        cmp2 = signing.HostSigner(self.cmp2.cert, self.cmp2.key)
        forged = self.attacker.forge_signed(cmp2, key_time=NOW.isoformat())
        self.attacker.append(*forged)
        self.attacker.put(journal.HEAD_SUFFIX, forged[-1])
        verdict = self.assertRefused('wrong_host', 6,
                                     self.verdict(host='cmp1'))
        self.assertIn('holds the certificate of cmp2', verdict.reason)
        # Unbound, the journal's first certificate still names its host.
        self.assertRefused('wrong_host', 6, self.verdict())
        self.assertAppendRefused(self.audit, 'wrong_host', 6)

    def test_another_hosts_key_without_a_key_record(self):
        cmp2 = signing.HostSigner(self.cmp2.cert, self.cmp2.key)
        self.attacker.append(*self.attacker.forge_signed(cmp2))
        self.assertRefused('unknown_signer', 6, self.verdict(host='cmp1'))
        self.assertAppendRefused(self.audit, 'unknown_signer', 6)


class TestKeyRotation(SignerTestCase):

    def test_renewed_key_takes_over_in_every_process(self):
        old = self.enroll('cmp1')
        running = self.writer(old, records=2)
        new = self.enroll('cmp1')  # cert_dir now holds the new key
        self.writer(new)  # a restarted process introduces it
        self.record(running)  # the running one loads it again
        self.assertEqual(new.cert, running.journal.signer.cert)
        kinds = [lines.Frame(r).kind for r in self.attacker.lines()]
        self.assertEqual(2, kinds.count('key'))
        # The old key, revoked once replaced, is retired, not compromised.
        self.pki.ca.revoke(old.cert.serial_number, 'superseded')
        verdict = self.verdict(host='cmp1')
        self.assertTrue(verdict, verdict)

    def test_process_that_cannot_load_the_new_key_refuses(self):
        # A process whose certificate directory still holds the old key
        old = self.enroll('cmp1')
        stale_dir = os.path.join(self.base, 'stale')
        shutil.copytree(old.cert_dir, stale_dir)
        running = self.writer(old, cert_dir=stale_dir)
        self.writer(self.enroll('cmp1'))
        with self.assertRaises(exception.SecmigError) as ctx:
            self.record(running)
        self.assertEqual('stale_host_key', ctx.exception.code)
        self.assertIn('which replaced the certificate this process signs '
                      'with', str(ctx.exception))
        self.assertTrue(self.verdict(host='cmp1'))

    def test_process_without_a_ca_cannot_check_a_new_key(self):
        old = self.enroll('cmp1')
        signer = signing.HostSigner(old.cert, old.key)  # no cert_dir
        running = trail.AuditTrail(journal.Journal(self.path, signer))
        self.addCleanup(running.journal.close)
        self.record(running)
        self.writer(self.enroll('cmp1'))
        error = self.assertAppendRefused(running, 'untrusted_signer', 4)
        self.assertIn('there is no CA to check it against', str(error))

    def test_writer_will_not_take_over_from_a_revoked_key(self):
        old = self.enroll('cmp1')
        self.writer(old)
        self.pki.revoke('cmp1')
        error = self.assertAppendRefused(
            self.writer(self.enroll('cmp1'), records=0),
            'untrusted_signer', 1)
        self.assertEqual('revoked', error.decision.details['cause'])
        self.assertIn('could have been written since by anyone holding its '
                      'key', str(error))

    def test_previous_key_revoked_before_its_successor_was_issued(self):
        # The revocation, published late, is dated before the new key was
        # issued: the old key's last records may be an impostor's.
        old = self.enroll('cmp1', at=-2)
        self.writer(old)
        self.writer(self.enroll('cmp1'))
        self.pki.ca.revoke(old.cert.serial_number, 'key-compromise',
                           now=days(-1))
        verdict = self.assertRefused('untrusted_signer', 1,
                                     self.verdict(host='cmp1'))
        self.assertEqual('revoked', verdict.details['cause'])
        self.assertIn('was not valid on', verdict.reason)
        self.assertIn('when key record 4 replaced it', verdict.reason)

    def test_expired_key_reintroduced_with_a_backdated_record(self):
        # Given a journal signed by key 1 thirty days ago, then by key 2
        old = self.enroll('cmp1', at=-40, valid=30)
        self.writer(old, at=-30)
        new = self.enroll('cmp1', at=-20, valid=60)
        audit = self.writer(new, at=-15)
        self.assertTrue(self.verdict(host='cmp1'))
        # When someone holding the expired key 1 appends under it, its
        # key record dated back to when it was valid
        forged = self.attacker.forge_signed(
            signing.HostSigner(old.cert, old.key),
            key_time=days(-12).isoformat())
        self.attacker.append(*forged)
        self.attacker.put(journal.HEAD_SUFFIX, forged[-1])
        # then the earlier key cannot take over again, whatever the date
        verdict = self.assertRefused('superseded_signer', 7,
                                     self.verdict(host='cmp1'))
        self.assertIn('introduces again the certificate %s (key record 1)'
                      % keys.fingerprint(old.cert), verdict.reason)
        self.assertAppendRefused(audit, 'superseded_signer', 7)

    def test_earlier_certificate_never_in_the_journal(self):
        earlier = self.enroll('cmp1', at=-50, valid=100)
        audit = self.writer(self.enroll('cmp1'))
        self.attacker.append(*self.attacker.forge_signed(
            signing.HostSigner(earlier.cert, earlier.key),
            key_time=NOW.isoformat()))
        verdict = self.assertRefused('superseded_signer', 4,
                                     self.verdict(host='cmp1'))
        self.assertIn('before the one it replaces', verdict.reason)
        self.assertAppendRefused(audit, 'superseded_signer', 4)

    def test_cut_back_to_a_replaced_key(self):
        # Key 1 is valid for two more days; the journal moved on to key 2.
        old = self.enroll('cmp1', at=-1, valid=3)
        self.writer(old, records=2)
        cut = len(self.attacker.lines())
        self.writer(self.enroll('cmp1'))
        genuine = self.attacker.lines()
        # Someone holding key 1 cuts the journal back to key 1's time and
        # appends under it, head to match.
        forged = self.attacker.forge_signed(
            signing.HostSigner(old.cert, old.key), after=genuine[cut - 1])
        self.attacker.write(genuine[:cut] + forged)
        self.attacker.put(journal.HEAD_SUFFIX, forged[-1])
        # Once key 1 has expired, its newest records are unattributable
        verdict = self.assertRefused('untrusted_signer', 1, self.verdict(
            host='cmp1', now=days(5)))
        self.assertEqual('expired', verdict.details['cause'])
        self.assertIn("signs the journal's newest records is not valid on",
                      verdict.reason)
        # and as soon as it is revoked (as secmig pki renew --revoke-old
        # does), which is what closes the window before it expires.
        self.pki.ca.revoke(old.cert.serial_number, 'superseded')
        verdict = self.assertRefused('untrusted_signer', 1,
                                     self.verdict(host='cmp1'))
        self.assertEqual('revoked', verdict.details['cause'])
        # The genuine journal passes either check.
        self.attacker.write(genuine)
        self.attacker.put(journal.HEAD_SUFFIX, genuine[-1])
        self.assertTrue(self.verdict(host='cmp1', now=days(5)))

    def test_lapsed_certificate_stops_the_writer(self):
        # The host kept writing after its certificate expired, then was
        # enrolled again: nothing tells when those records were signed.
        old = self.enroll('cmp1', at=-40, valid=30)
        self.writer(old, at=-35)
        self.writer(old, at=-5)  # after its expiry, ten days ago
        error = self.assertAppendRefused(
            self.writer(self.enroll('cmp1'), records=0),
            'untrusted_signer', 1)
        self.assertIn("signs the journal's newest records is not valid",
                      str(error))
        self.assertEqual('expired', self.verdict(
            host='cmp1').details['cause'])
        # As of a time before the expiry, the journal is intact.
        status, out, _err = auditutil.run_cli(
            'audit', 'verify', self.path, '--ca', self.ca, '--host', 'cmp1',
            '--at', days(-11).isoformat())
        self.assertEqual(0, status, out)

    def test_pinned_certificates_of_each_key(self):
        old = self.enroll('cmp1')
        self.writer(old)
        new = self.enroll('cmp1')
        self.writer(new)
        pins = []
        for identity in (old, new):
            pins.append(os.path.join(self.base, '%x.pem'
                                     % identity.cert.serial_number))
            with open(pins[-1], 'wb') as f:
                f.write(identity.cert_pem)
        status, out, _err = auditutil.run_cli(
            'audit', 'verify', self.path, '--cert', pins[0], '--cert',
            pins[1])
        self.assertEqual(0, status, out)
        status, out, _err = auditutil.run_cli(
            'audit', 'verify', self.path, '--cert', pins[1])
        self.assertEqual(1, status, out)
        self.assertIn('NOT INTACT (untrusted_signer) at record 1', out)
