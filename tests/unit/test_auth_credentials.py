"""A host's own credentials and the signatures made with them."""

import os
import shutil
import unittest

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import x25519

from secmig.auth import credentials
from secmig.auth import signing
from secmig import exception
from secmig.pki import host as host_files
from secmig.pki import keys
from secmig.pki import verify
from tests.unit import authutil


class CredentialsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World()
        cls.src_dir = os.path.join(cls.world.base, 'src')

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def assertPKIError(self, code, func, *args):
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args)
        self.assertEqual(code, ctx.exception.code)

    def test_load(self):
        creds = credentials.load(self.src_dir, 'src')
        self.assertEqual('src', creds.host)
        self.assertEqual(keys.fingerprint(creds.cert), creds.fingerprint)
        self.assertTrue(keys.key_matches_certificate(creds.key, creds.cert))

    def test_host_is_matched_case_insensitively(self):
        self.assertTrue(verify.names_host(
            self.world.creds['src'].cert, 'SRC.'))
        self.assertTrue(verify.names_host(
            self.world.creds['src'].cert, '127.0.0.1'))
        self.assertFalse(verify.names_host(
            self.world.creds['src'].cert, 'dst'))

    def test_certificate_of_another_host(self):
        self.assertPKIError('wrong_host', credentials.load, self.src_dir,
                            'dst')

    def test_key_of_another_host(self):
        mixed = os.path.join(self.world.base, 'mixed')
        shutil.copytree(self.src_dir, mixed)
        shutil.copy(os.path.join(self.world.base, 'dst',
                                 host_files.SERVER_KEY), mixed)
        self.assertPKIError('key_mismatch', credentials.load, mixed, 'src')

    def test_missing_files(self):
        self.assertPKIError('unreadable_file', credentials.load,
                            os.path.join(self.world.base, 'none'), 'src')

    def test_trust_with_and_without_crl(self):
        trust = credentials.load_trust(self.src_dir)
        self.assertEqual(1, len(trust.crls))
        bare = os.path.join(self.world.base, 'bare')
        os.makedirs(bare)
        shutil.copy(os.path.join(self.src_dir, host_files.CA_CERT), bare)
        self.assertEqual([], credentials.load_trust(bare).crls)

    def test_ed25519_key_is_accepted_for_signing(self):
        ident = self.world.pki.enroll('ed', key_type='ed25519')
        creds = credentials.from_objects('ed', ident.cert, ident.key)
        self.assertIs(ident.key, creds.key)


class SigningTest(unittest.TestCase):

    def test_each_key_type_signs_and_verifies(self):
        for key in (ec.generate_private_key(ec.SECP256R1()),
                    ec.generate_private_key(ec.SECP384R1()),
                    ec.generate_private_key(ec.SECP521R1()),
                    keys.generate_key('rsa-3072'),
                    ed25519.Ed25519PrivateKey.generate()):
            with self.subTest(key=type(key).__name__):
                sig = signing.sign(key, b'transcript')
                self.assertTrue(signing.verify(key.public_key(), sig,
                                               b'transcript'))
                self.assertFalse(signing.verify(key.public_key(), sig,
                                                b'transcripT'))
                self.assertFalse(signing.verify(
                    key.public_key(), sig[:-1] + bytes([sig[-1] ^ 1]),
                    b'transcript'))

    def test_unsupported_keys(self):
        weak = ec.generate_private_key(ec.SECP256K1())
        self.assertFalse(signing.supported(weak))
        self.assertRaises(ValueError, signing.sign, weak, b'x')
        other = ec.generate_private_key(ec.SECP256R1())
        self.assertFalse(signing.verify(
            weak.public_key(), signing.sign(other, b'x'), b'x'))
        self.assertFalse(signing.verify(
            x25519.X25519PrivateKey.generate().public_key(), b'sig', b'x'))

    def test_signature_of_another_key_fails(self):
        one = ec.generate_private_key(ec.SECP256R1())
        two = ec.generate_private_key(ec.SECP256R1())
        self.assertFalse(signing.verify(two.public_key(),
                                        signing.sign(one, b'x'), b'x'))


if __name__ == '__main__':
    unittest.main()
