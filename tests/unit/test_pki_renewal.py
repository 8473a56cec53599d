"""Renewal: a certificate's successor goes to the holder of its key only.

The attacks: someone holding a host's public certificate (every peer
sees it in the handshake) but not its key asks the CA to renew it for
a key of their own: with a bare CSR, with a request signed by another
key, with a genuine request whose CSR is swapped, and by replaying a
genuine request. Each is refused with ``renewal_unproven`` (or, for the
replay, the certificate's state), and the CA issues nothing.
"""

import os
import stat
import tempfile
import unittest

from secmig import exception
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import renewal
from secmig.pki import verify
from tests import pkiutil


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


class RenewalTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.pki = pkiutil.TestPKI(self.tmp)
        self.ca = self.pki.ca
        self.node = self.pki.enroll('node1', clearance=3,
                                    addresses=('192.0.2.1',))

    def assertRefused(self, code, reason, func, *args, **kwargs):
        issued = _read(os.path.join(self.pki.ca_dir, 'issued.json'))
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args, **kwargs)
        self.assertEqual(code, ctx.exception.code, str(ctx.exception))
        self.assertIn(reason, str(ctx.exception))
        # Nothing was issued, nothing revoked.
        self.assertEqual(issued, _read(os.path.join(self.pki.ca_dir,
                                                    'issued.json')))

    def attacker_csr(self, name='node1', addresses=('192.0.2.1',)):
        """A CSR for the attacker's own key, asking for the host's names."""
        return host_mod.make_key_and_csr(os.path.join(self.tmp, 'attacker'),
                                         name, addresses=addresses,
                                         overwrite=True)

    def request(self):
        return host_mod.make_renewal_request(self.node.cert_dir)

    def install(self, cert_pem):
        return host_mod.install(self.node.cert_dir, cert_pem,
                                self.pki.ca_cert_pem, self.pki.crl_pem)

    # The attacks --------------------------------------------------------

    def test_a_public_certificate_and_a_csr_are_refused(self):
        self.assertRefused('renewal_unproven',
                           'a certificate request alone does not prove',
                           self.ca.renew, self.attacker_csr(),
                           current_pem=self.node.cert_pem)

    def test_a_bare_csr_naming_no_certificate_is_refused(self):
        self.assertRefused('renewal_unproven', 'renew-request',
                           self.ca.renew, self.attacker_csr())

    def test_a_request_signed_by_another_key_is_refused(self):
        # The attacker's request in the right form, signed with its key.
        attacker_key = keys.generate_key()
        csr = keys.load_csr(self.attacker_csr())
        signature = renewal.signing.sign(
            attacker_key, renewal.signed_bytes(self.node.cert, csr))
        forged = (self.node.cert_pem
                  + csr.public_bytes(keys.serialization.Encoding.PEM)
                  + keys.pem_block(renewal.SIGNATURE_BLOCK, signature))
        self.assertRefused('renewal_unproven',
                           'not signed by the key of certificate %x'
                           % self.node.cert.serial_number,
                           self.ca.renew, forged)

    def test_a_genuine_signature_does_not_move_to_another_csr(self):
        genuine = renewal.parse(self.request())
        swapped = (self.node.cert_pem + self.attacker_csr()
                   + keys.pem_block(renewal.SIGNATURE_BLOCK,
                                    genuine.signature))
        self.assertRefused('renewal_unproven', 'not signed by the key',
                           self.ca.renew, swapped)

    def test_a_replayed_request_is_refused(self):
        request = self.request()
        self.ca.renew(request)
        self.assertRefused('already_renewed', 'a certificate is renewed '
                           'once', self.ca.renew, request)

    def test_a_replayed_request_is_refused_when_the_old_one_is_kept(self):
        request = self.request()
        new = keys.load_certificate(self.ca.renew(request, revoke_old=False))
        self.assertRefused('already_renewed', 'issued/%x.pem'
                           % new.serial_number, self.ca.renew, request)

    def test_the_request_cannot_ask_for_more_names(self):
        key = keys.generate_key()
        csr = keys.load_csr(host_mod._csr(key, 'node1', ['ca.cloud'],
                                          ['192.0.2.1']).public_bytes(
            keys.serialization.Encoding.PEM))
        request = renewal.make(self.node.cert, self.node.key, csr)
        self.assertRefused('csr_names_not_approved', 'ca.cloud',
                           self.ca.renew, request)

    def test_the_certificate_given_must_be_the_requests(self):
        other = self.pki.enroll('node2')
        self.assertRefused('renewal_mismatch', 'is for certificate %x'
                           % self.node.cert.serial_number,
                           self.ca.renew, self.request(),
                           current_pem=other.cert_pem)

    def test_revoked_and_foreign_certificates_are_not_renewed(self):
        request = self.request()
        self.pki.revoke('node1')
        self.assertRefused('revoked', 'enroll the host again',
                           self.ca.renew, request)
        other = pkiutil.TestPKI(os.path.join(self.tmp, 'o'), 'other CA')
        foreign = other.enroll('node1')
        self.assertRefused('foreign_ca', 'was not issued by this CA',
                           self.ca.renew,
                           host_mod.make_renewal_request(foreign.cert_dir))

    # The genuine renewal ------------------------------------------------

    def test_renewal_rotates_the_key_and_supersedes_the_old(self):
        old_key = _read(os.path.join(self.node.cert_dir,
                                     host_mod.SERVER_KEY))
        new_pem = self.ca.renew(self.request())
        new = keys.load_certificate(new_pem)
        self.assertEqual(verify.certificate_names(self.node.cert),
                         verify.certificate_names(new))
        trust = self.pki.trust()
        decision = verify.verify_certificate(new, trust, host='node1')
        self.assertTrue(decision.allowed, decision)
        self.assertEqual(3, decision.details['clearance'])
        old = verify.verify_certificate(self.node.cert, trust, host='node1')
        self.assertEqual('revoked', old.code)
        self.assertIn('superseded', old.reason)

        self.install(new_pem)
        for name in (host_mod.SERVER_KEY, host_mod.CLIENT_KEY):
            path = os.path.join(self.node.cert_dir, name)
            key = keys.load_private_key(_read(path))
            self.assertTrue(verify.verify_key_pair(new, key))
            self.assertNotEqual(old_key, _read(path))
            self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        self.assertFalse(os.path.exists(os.path.join(
            self.node.cert_dir, host_mod.NEXT_KEY)))

    def test_an_install_cut_short_is_finished_by_the_next(self):
        new_pem = self.ca.renew(self.request())
        next_path = os.path.join(self.node.cert_dir, host_mod.NEXT_KEY)
        # Cut after the server key was replaced, before the client key.
        with open(os.path.join(self.node.cert_dir, host_mod.SERVER_KEY),
                  'wb') as f:
            f.write(_read(next_path))
        self.install(new_pem)
        new = keys.load_certificate(new_pem)
        for name in (host_mod.SERVER_KEY, host_mod.CLIENT_KEY):
            self.assertTrue(verify.verify_key_pair(new, keys.load_private_key(
                _read(os.path.join(self.node.cert_dir, name)))))
        self.assertFalse(os.path.exists(next_path))

    def test_keep_old_leaves_the_old_certificate_valid(self):
        self.ca.renew(self.request(), revoke_old=False)
        decision = verify.verify_certificate(self.node.cert,
                                             self.pki.trust(), host='node1')
        self.assertTrue(decision.allowed, decision)

    def test_the_host_runs_on_its_current_key_until_installed(self):
        request = self.request()
        next_path = os.path.join(self.node.cert_dir, host_mod.NEXT_KEY)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(next_path).st_mode))
        # Re-installing the current certificate (a new CRL) keeps the
        # pending next key; a second request reuses it.
        self.install(self.node.cert_pem)
        self.assertTrue(os.path.exists(next_path))
        self.assertEqual(renewal.parse(request).csr.public_key(),
                         renewal.parse(self.request()).csr.public_key())
        # A certificate for neither key is refused.
        other = self.pki.enroll('node2')
        with self.assertRaises(exception.PKIError) as ctx:
            self.install(other.cert_pem)
        self.assertEqual('key_mismatch', ctx.exception.code)

    def test_a_corrupt_next_key_does_not_stop_the_current_install(self):
        next_path = os.path.join(self.node.cert_dir, host_mod.NEXT_KEY)
        with open(next_path, 'wb') as f:
            f.write(b'garbage')
        self.install(self.node.cert_pem)
        self.assertTrue(os.path.exists(next_path))

    def test_the_request_needs_the_current_key(self):
        os.unlink(os.path.join(self.node.cert_dir, host_mod.SERVER_KEY))
        with self.assertRaises(exception.PKIError) as ctx:
            self.request()
        self.assertEqual('unreadable_file', ctx.exception.code)

    def test_the_request_holds_the_certificate_csr_and_signature(self):
        labels = [label for label, _ in keys.pem_blocks(self.request())]
        self.assertEqual(['CERTIFICATE', 'CERTIFICATE REQUEST',
                          'SECMIG RENEWAL SIGNATURE'], labels)
        self.assertTrue(renewal.signed_bytes(
            self.node.cert, keys.load_csr(self.request())).startswith(
                b'secmig-pki-renewal/1\x00'))


class RenewalFormatTest(unittest.TestCase):

    def assertMalformed(self, data, reason):
        with self.assertRaises(exception.PKIError) as ctx:
            renewal.parse(data)
        self.assertEqual('malformed_pem', ctx.exception.code)
        self.assertIn(reason, str(ctx.exception))

    def test_blocks_are_known_and_single(self):
        csr = keys.pem_block('CERTIFICATE REQUEST', b'0')
        self.assertMalformed(keys.pem_block('PRIVATE KEY', b'x') + csr,
                             '"PRIVATE KEY" block')
        self.assertMalformed(csr + csr, 'two "CERTIFICATE REQUEST" blocks')
        self.assertMalformed(keys.pem_block('CERTIFICATE', b'0'),
                             'no certificate request')
        self.assertMalformed(
            csr + keys.pem_block(renewal.SIGNATURE_BLOCK, b'\0' * 4096),
            'a signature of 4096 bytes')


if __name__ == '__main__':
    unittest.main()
