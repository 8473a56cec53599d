"""The bad-input matrix of host certificate verification.

Every case builds a real certificate (with secmig's CA or, for shapes the
CA refuses to produce, with the CA's key directly) and asserts the
specific reason code the verifier gives.
"""

import datetime
import os
import tempfile
import unittest

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import ca as ca_mod
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import verify
from tests import pkiutil

NOW = pkiutil.NOW
build_leaf = pkiutil.build_leaf


class VerifyMatrixTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        cls.good = cls.pki.enroll('node1', clearance=2)
        cls.victim = cls.pki.enroll('node2')
        cls.pki.revoke('node2')
        cls.ca_key = keys.load_private_key(open(os.path.join(
            cls.pki.ca_dir, ca_mod.CA_KEY), 'rb').read())
        cls.ca_cert = cls.pki.ca.cert
        # Another CA, and a forger's CA that copies the real CA's name.
        cls.other = pkiutil.TestPKI(os.path.join(cls.tmp.name, 'other'),
                                    ca_name='another CA')
        cls.forger = pkiutil.TestPKI(os.path.join(cls.tmp.name, 'forger'),
                                     ca_name='secmig test CA')
        cls.trust = cls.pki.trust()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, cert, code, host='node1', trust=None, **kwargs):
        decision = verify.verify_certificate(cert, trust or self.trust,
                                             host=host, **kwargs)
        self.assertFalse(decision.allowed, decision)
        self.assertEqual(code, decision.code, decision.reason)
        return decision

    def leaf(self, **kwargs):
        return build_leaf(self.ca_cert, self.ca_key, **kwargs)[0]

    def test_valid_certificate_carries_identity_and_clearance(self):
        decision = verify.verify_certificate(self.good.cert, self.trust,
                                             host='node1')
        self.assertTrue(decision.allowed, decision)
        self.assertEqual(2, decision.details['clearance'])
        self.assertEqual(keys.fingerprint(self.good.cert),
                         decision.details['fingerprint'])
        self.assertIn('127.0.0.1', decision.details['names'])

    def test_ip_address_matches_san(self):
        self.assertTrue(verify.verify_certificate(
            self.good.cert, self.trust, host='127.0.0.1'))

    def test_expired(self):
        cert = self.leaf(not_before=NOW - datetime.timedelta(10),
                         not_after=NOW - datetime.timedelta(1))
        self.assertIn('expired on', self.check(cert, 'expired').reason)

    def test_not_yet_valid(self):
        cert = self.leaf(not_before=NOW + datetime.timedelta(1))
        self.check(cert, 'not_yet_valid')

    def test_expires_within_margin(self):
        cert = self.leaf(not_after=NOW + datetime.timedelta(minutes=30))
        self.check(cert, 'expires_soon', margin=3600)
        self.assertTrue(verify.verify_certificate(cert, self.trust,
                                                  host='node1', margin=60))

    def test_foreign_ca(self):
        cert = self.other.enroll('node1').cert
        reason = self.check(cert, 'foreign_ca').reason
        self.assertIn('another CA', reason)

    def test_forged_ca_with_same_name(self):
        cert = self.forger.enroll('node1').cert
        self.assertEqual(cert.issuer, self.ca_cert.subject)
        self.check(cert, 'forged_ca')

    def test_revoked(self):
        reason = self.check(self.victim.cert, 'revoked', host='node2').reason
        self.assertIn('keyCompromise', reason)

    def test_wrong_host(self):
        self.check(self.good.cert, 'wrong_host', host='node9')

    def test_absolute_dns_name_is_the_same_host(self):
        decision = verify.verify_certificate(self.good.cert, self.trust,
                                             host='node1.')
        self.assertTrue(decision.allowed, decision)

    def test_an_address_written_as_a_dns_name_is_no_address(self):
        # The certificate holds the address 127.0.0.1, no such DNS name.
        reason = self.check(self.good.cert, 'wrong_host',
                            host='127.0.0.1.').reason
        self.assertIn('not for 127.0.0.1.', reason)
        self.assertFalse(verify.name_in('127.0.0.1.', ['127.0.0.1']))
        self.assertTrue(verify.name_in('::1', ['0:0::1']))

    def test_malformed_names_are_refused_not_raised(self):
        for host in ('node1..', '.node1', 'node1 ', 'a' * 64 + '.node1'):
            self.check(self.good.cert, 'wrong_host', host=host)

    def test_server_only_certificate_cannot_be_client(self):
        cert = self.leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertTrue(verify.verify_certificate(
            cert, self.trust, host='node1', purpose='server',
            require_crl=False))
        self.check(cert, 'wrong_extended_key_usage', purpose='client')

    def test_key_usage_without_digital_signature(self):
        self.check(self.leaf(ku_sign=False), 'wrong_key_usage')

    def test_self_signed_leaf(self):
        key = keys.generate_key()
        name = pkiutil.subject('node1')
        holder = (x509.CertificateBuilder().subject_name(name)
                  .issuer_name(name).public_key(key.public_key())
                  .serial_number(1).not_valid_before(NOW)
                  .not_valid_after(NOW + datetime.timedelta(1))
                  .sign(key, hashes.SHA256()))
        cert, _ = build_leaf(holder, key, key=key)
        self.check(cert, 'self_signed_leaf')

    def test_ca_certificate_as_host_certificate(self):
        self.check(self.leaf(ca=True), 'leaf_is_ca')

    def test_no_subject_alternative_name(self):
        self.check(self.leaf(san=False), 'no_san')

    def test_weak_rsa_key(self):
        weak = rsa.generate_private_key(65537, 1024)
        self.check(self.leaf(key=weak), 'weak_key')

    def test_malformed_clearance(self):
        for values in (['secmig-clearance=x'], ['secmig-clearance=101'],
                       ['secmig-clearance=1', 'secmig-clearance=2']):
            ous = [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v)
                   for v in values]
            self.check(self.leaf(subject_extra=ous), 'bad_clearance')

    def test_crl_missing(self):
        trust = verify.TrustStore([self.ca_cert])
        self.check(self.good.cert, 'crl_missing', trust=trust)
        self.assertTrue(verify.verify_certificate(
            self.good.cert, trust, host='node1', require_crl=False))

    def test_crl_signed_by_forger(self):
        forged_crl = keys.load_crl(self.forger.crl_pem)
        trust = verify.TrustStore([self.ca_cert], [forged_crl])
        self.check(self.good.cert, 'crl_invalid', trust=trust)

    def test_stale_crl(self):
        later = NOW + datetime.timedelta(days=ca_mod.DEFAULT_CRL_DAYS + 1)
        cert = self.leaf(not_after=NOW + datetime.timedelta(days=60))
        self.check(cert, 'crl_stale', now=later)

    def test_expired_ca_fails_path_validation(self):
        tmp = os.path.join(self.tmp.name, 'short')
        short = ca_mod.CertificateAuthority.create(
            tmp, 'short-lived CA', days=1,
            now=NOW - datetime.timedelta(days=3))
        key = keys.load_private_key(open(os.path.join(
            tmp, ca_mod.CA_KEY), 'rb').read())
        cert, _ = build_leaf(short.cert, key)
        self.check(cert, 'path_invalid', trust=verify.TrustStore(
            [short.cert]), require_crl=False)

    def test_key_pair(self):
        self.assertTrue(verify.verify_key_pair(self.good.cert, self.good.key))
        decision = verify.verify_key_pair(self.good.cert, self.victim.key)
        self.assertEqual('key_mismatch', decision.code)

    def test_trust_bundle_must_hold_ca_certificates(self):
        with self.assertRaises(exception.PKIError) as ctx:
            verify.TrustStore([self.good.cert])
        self.assertEqual('bad_ca_bundle', ctx.exception.code)


class RootsOnlyBundleTest(unittest.TestCase):
    """An intermediate CA in the trusted bundle is refused at load.

    The attack: the root revokes (or never meant to trust for this) an
    intermediate, which an operator or attacker adds to the bundle; its
    leaves would be trusted on the intermediate's word alone.
    """

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        cls.root = cls.pki.ca.cert
        cls.sub, _ = pkiutil.intermediate_ca(cls.root, cls.pki.ca_key())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assertRefused(self, func, *args):
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args)
        self.assertEqual('bad_ca_bundle', ctx.exception.code)
        self.assertIn('CN=intermediate CA', str(ctx.exception))
        self.assertIn('not a root (self-signed) CA', str(ctx.exception))
        return str(ctx.exception)

    def test_an_intermediate_beside_its_root_is_refused(self):
        self.assertRefused(verify.TrustStore, [self.root, self.sub])

    def test_an_intermediate_alone_is_refused(self):
        message = self.assertRefused(verify.TrustStore, [self.sub])
        self.assertIn('issued by CN=secmig test CA', message)

    def test_a_bundle_file_with_an_intermediate_is_refused(self):
        path = os.path.join(self.tmp.name, 'bundle.pem')
        with open(path, 'wb') as f:
            f.write(keys.cert_pem(self.root) + keys.cert_pem(self.sub))
        self.assertRefused(verify.TrustStore.from_files, path)

    def test_installing_with_an_intermediate_in_the_bundle_is_refused(self):
        ident = self.pki.enroll('node1')
        self.assertRefused(host_mod.install, ident.cert_dir, ident.cert_pem,
                           keys.cert_pem(self.root)
                           + keys.cert_pem(self.sub), self.pki.crl_pem)

    def test_a_root_named_like_itself_but_signed_by_another_key(self):
        # Subject equals issuer, but the signature is not its own.
        forged, _ = pkiutil.intermediate_ca(self.root, self.pki.ca_key(),
                                            name='secmig test CA')
        self.assertEqual(forged.subject, forged.issuer)
        with self.assertRaises(exception.PKIError) as ctx:
            verify.TrustStore([forged])
        self.assertIn('not a root', str(ctx.exception))


class ParseTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.pki = pkiutil.TestPKI(tmp.name)
        self.pem = self.pki.enroll('node1').cert_pem

    def assertCode(self, code, func, *args):
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args)
        self.assertEqual(code, ctx.exception.code, str(ctx.exception))
        return str(ctx.exception)

    def test_truncated_pem(self):
        half = self.pem[:len(self.pem) // 2]
        message = self.assertCode('truncated_pem', keys.load_certificate,
                                  half, 'half.pem')
        self.assertIn('half.pem', message)

    def test_garbage(self):
        self.assertCode('malformed_pem', keys.load_certificate,
                        b'\x00\xffnot a certificate', 'junk.pem')

    def test_corrupt_body(self):
        lines = self.pem.split(b'\n')
        lines[3] = b'A' * len(lines[3])
        self.assertCode('malformed_pem', keys.load_certificate,
                        b'\n'.join(lines))

    def test_two_certificates_where_one_is_expected(self):
        self.assertCode('malformed_pem', keys.load_certificate,
                        self.pem + self.pem)

    def test_unreadable_file(self):
        from secmig.pki import fileio
        message = self.assertCode('unreadable_file', fileio.read_bytes,
                                  '/nonexistent/cert.pem', 'certificate')
        self.assertIn('/nonexistent/cert.pem', message)

    def test_garbage_key(self):
        self.assertCode('malformed_key', keys.load_private_key,
                        b'-----BEGIN PRIVATE KEY-----\nAAAA\n'
                        b'-----END PRIVATE KEY-----\n')


if __name__ == '__main__':
    unittest.main()
