"""secmig's CA: enrollment tokens, signing, renewal, revocation, files."""

import datetime
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from cryptography.hazmat.primitives import hashes
from cryptography import x509
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import ca as ca_mod
from secmig.pki import clearance
from secmig.pki import host
from secmig.pki import keys
from secmig.pki import tokens
from secmig.pki import verify
from tests import pkiutil


class CATestCase(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.pki = pkiutil.TestPKI(self.tmp)
        self.ca = self.pki.ca

    def assertCode(self, code, func, *args, **kwargs):
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args, **kwargs)
        self.assertEqual(code, ctx.exception.code, str(ctx.exception))
        return str(ctx.exception)

    def csr(self, name='node1', **kwargs):
        return host.make_key_and_csr(os.path.join(self.tmp, name), name,
                                     overwrite=True, **kwargs)


class EnrollmentTest(CATestCase):

    def test_token_binds_names_and_clearance(self):
        token = self.ca.create_token('node1', names=['node1.cloud'],
                                     addresses=['192.0.2.1'], level=4)
        cert = keys.load_certificate(self.ca.sign(
            self.csr(addresses=['192.0.2.1']), token))
        self.assertEqual(4, clearance.decode(cert))
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        self.assertEqual(['node1', 'node1.cloud'],
                         sorted(san.get_values_for_type(x509.DNSName)))
        self.assertEqual('192.0.2.1', str(
            san.get_values_for_type(x509.IPAddress)[0]))

    def test_ca_stores_only_token_hashes(self):
        token = self.ca.create_token('node1')
        with open(os.path.join(self.pki.ca_dir, 'tokens.json')) as f:
            self.assertNotIn(token, f.read())

    def test_token_is_single_use(self):
        token = self.ca.create_token('node1')
        self.ca.sign(self.csr(), token)
        self.assertCode('token_used', self.ca.sign, self.csr(), token)

    def test_unknown_token(self):
        self.assertCode('token_unknown', self.ca.sign, self.csr(), 'guess')

    def test_expired_token(self):
        past = ca_mod.utcnow() - datetime.timedelta(hours=2)
        token = self.ca.create_token('node1', ttl=60, now=past)
        self.assertCode('token_expired', self.ca.sign, self.csr(), token)

    def test_tokens_are_forgotten_a_day_after_they_expire(self):
        start = ca_mod.utcnow() - datetime.timedelta(days=3)
        old = self.ca.create_token('node1', ttl=60, now=start)
        self.ca.sign(self.csr(), old, now=start)
        later = start + datetime.timedelta(seconds=60 + tokens.FORGET_AFTER)
        self.ca.create_token('node2', now=later)
        with open(os.path.join(self.pki.ca_dir, 'tokens.json')) as f:
            self.assertEqual(1, len(json.load(f)))
        message = self.assertCode('token_unknown', self.ca.sign, self.csr(),
                                  old)
        self.assertIn('forgotten 24 hours after it expires', message)

    def test_a_used_token_is_remembered_until_it_is_forgotten(self):
        start = ca_mod.utcnow() - datetime.timedelta(days=3)
        used = self.ca.create_token('node1', ttl=60, now=start)
        self.ca.sign(self.csr(), used, now=start)
        just_before = start + datetime.timedelta(
            seconds=60 + tokens.FORGET_AFTER - 1)
        self.ca.create_token('node2', now=just_before)
        self.assertCode('token_used', self.ca.sign, self.csr(), used,
                        now=just_before)

    def test_csr_asking_for_unapproved_name_leaves_token_unused(self):
        token = self.ca.create_token('node1')
        message = self.assertCode(
            'csr_names_not_approved', self.ca.sign,
            self.csr(names=['ca.cloud']), token)
        self.assertIn('ca.cloud', message)
        self.ca.sign(self.csr(), token)  # the token still works

    def test_host_cannot_raise_its_clearance_through_the_csr(self):
        key = keys.generate_key()
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([
                   clearance.attribute(9),
                   x509.NameAttribute(NameOID.COMMON_NAME, 'node1')]))
               .sign(key, hashes.SHA256()))
        token = self.ca.create_token('node1', level=1)
        cert = keys.load_certificate(self.ca.sign(
            csr.public_bytes(keys.serialization.Encoding.PEM), token))
        self.assertEqual(1, clearance.decode(cert))

    def test_tampered_csr(self):
        pem = self.csr()
        csr = keys.load_csr(pem)
        # Flip one bit of the signature.
        der = bytearray(csr.public_bytes(keys.serialization.Encoding.DER))
        der[-3] ^= 0x01
        tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(
            keys.serialization.Encoding.PEM)
        token = self.ca.create_token('node1')
        self.assertCode('csr_signature_invalid', self.ca.sign, tampered,
                        token)

    def test_ca_key_missing(self):
        copy = os.path.join(self.tmp, 'public-ca')
        shutil.copytree(self.pki.ca_dir, copy)
        os.unlink(os.path.join(copy, ca_mod.CA_KEY))
        public_ca = ca_mod.CertificateAuthority(copy)
        token = public_ca.create_token('node1')
        message = self.assertCode('ca_key_missing', public_ca.sign,
                                  self.csr(), token)
        self.assertIn(ca_mod.CA_KEY, message)

    def test_bad_clearance_level(self):
        self.assertCode('bad_clearance', self.ca.create_token, 'node1',
                        level=clearance.MAX_LEVEL + 1)


class LifecycleTest(CATestCase):

    def test_revoke_unknown_serial(self):
        self.assertCode('unknown_serial', self.ca.revoke, 12345)

    def test_crl_is_republished_with_new_next_update(self):
        before = keys.load_crl(self.pki.crl_pem).next_update_utc
        self.ca.publish_crl(days=30)
        after = keys.load_crl(self.pki.crl_pem).next_update_utc
        self.assertGreater(after - before, datetime.timedelta(days=20))


class FilesTest(CATestCase):

    def test_modes(self):
        ident = self.pki.enroll('node1')
        mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
        self.assertEqual(0o600, mode(os.path.join(self.pki.ca_dir,
                                                  ca_mod.CA_KEY)))
        for name in (host.SERVER_KEY, host.CLIENT_KEY):
            self.assertEqual(0o600, mode(os.path.join(ident.cert_dir, name)))
        for name in (host.SERVER_CERT, host.CLIENT_CERT, host.CA_CERT,
                     host.CA_CRL):
            self.assertEqual(0o644, mode(os.path.join(ident.cert_dir, name)))

    def test_an_index_written_with_indents_is_read(self):
        first = self.pki.enroll('node1').cert.serial_number
        path = os.path.join(self.pki.ca_dir, 'issued.json')
        with open(path) as f:
            index = json.load(f)
        with open(path, 'w') as f:
            json.dump(index, f, indent=1, sort_keys=True)
        second = self.pki.enroll('node2').cert.serial_number
        self.ca.revoke(first)
        with open(path) as f:
            index = json.load(f)
        self.assertEqual({'%x' % first, '%x' % second}, set(index))
        self.assertIsNotNone(index['%x' % first]['revoked_at'])

    def test_existing_key_is_kept(self):
        self.pki.enroll('node1')
        path = os.path.join(self.tmp, 'node1', host.SERVER_KEY)
        before = open(path, 'rb').read()
        self.assertCode('file_exists', host.make_key_and_csr,
                        os.path.dirname(path), 'node1')
        self.assertEqual(before, open(path, 'rb').read())

    def test_existing_ca_is_kept(self):
        self.assertCode('file_exists', ca_mod.CertificateAuthority.create,
                        self.pki.ca_dir, 'again')

    def test_install_refuses_certificate_for_another_key(self):
        a = self.pki.enroll('node1')
        b = self.pki.enroll('node2')
        self.assertCode('key_mismatch', host.install, a.cert_dir,
                        b.cert_pem, self.pki.ca_cert_pem, self.pki.crl_pem)

    def test_install_refuses_certificate_of_untrusted_ca(self):
        a = self.pki.enroll('node1')
        other = pkiutil.TestPKI(os.path.join(self.tmp, 'o'), 'other CA')
        self.assertCode('foreign_ca', host.install, a.cert_dir,
                        a.cert_pem, other.ca_cert_pem, other.crl_pem)


@unittest.skipUnless(shutil.which('openssl'), 'openssl is not installed')
class BringYourOwnCATest(unittest.TestCase):
    """A CA made with the openssl command, as an operator's own CA."""

    def test_openssl_ca_is_accepted_with_clearance_zero(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        d = tmp.name

        def run(*args):
            subprocess.run(('openssl',) + args, cwd=d, check=True,
                           capture_output=True)
        run('req', '-x509', '-newkey', 'ec', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
            '-out', 'ca.pem', '-days', '30', '-subj', '/O=Ops/CN=Ops CA',
            '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        csr = host.make_key_and_csr(os.path.join(d, 'h'), 'cmp7')
        with open(os.path.join(d, 'h.csr'), 'wb') as f:
            f.write(csr)
        with open(os.path.join(d, 'ext.cnf'), 'w') as f:
            f.write('basicConstraints=critical,CA:FALSE\n'
                    'keyUsage=critical,digitalSignature,keyEncipherment\n'
                    'extendedKeyUsage=serverAuth,clientAuth\n'
                    'subjectAltName=DNS:cmp7\n'
                    'authorityKeyIdentifier=keyid\n')
        run('x509', '-req', '-in', 'h.csr', '-CA', 'ca.pem', '-CAkey',
            'ca.key', '-CAcreateserial', '-days', '10', '-out', 'h.pem',
            '-extfile', 'ext.cnf')
        cert = keys.load_certificate(open(os.path.join(d, 'h.pem'),
                                          'rb').read())
        trust = verify.TrustStore.from_files(os.path.join(d, 'ca.pem'))
        decision = verify.verify_certificate(cert, trust, host='cmp7',
                                             require_crl=False)
        self.assertTrue(decision.allowed, decision)
        self.assertEqual(0, decision.details['clearance'])


class TokenFormatTest(unittest.TestCase):

    def test_token_never_looks_like_an_option(self):
        with tempfile.TemporaryDirectory() as d:
            ca = ca_mod.CertificateAuthority.create(d, 'CA')
            for _ in range(50):
                self.assertRegex(ca.create_token('h'), '^[0-9a-f]{64}$')


class KeyTypesTest(unittest.TestCase):

    def test_every_key_type_enrolls_and_verifies(self):
        with tempfile.TemporaryDirectory() as d:
            for key_type in keys.KEY_TYPES:
                if key_type == 'rsa-4096':
                    continue  # slow to generate; rsa-3072 covers RSA
                ca_type = (key_type if key_type in keys.CA_KEY_TYPES
                           else keys.DEFAULT_KEY_TYPE)
                pki = pkiutil.TestPKI(os.path.join(d, key_type),
                                      key_type=ca_type)
                ident = pki.enroll('node1', key_type=key_type)
                decision = verify.verify_certificate(
                    ident.cert, pki.trust(), host='node1')
                self.assertTrue(decision.allowed, (key_type, decision))
