"""``secmig pki`` end to end, as an operator types it."""

import os
import stat
import subprocess
import sys
import tempfile
import unittest

from secmig.pki import keys
from tests.cliutil import secmig
from tests import pkiutil


class CommandsTestCase(unittest.TestCase):
    """A temporary CA directory and the operator's commands."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.ca = os.path.join(tmp.name, 'ca')
        self.host = os.path.join(tmp.name, 'cmp1')
        self.tmp = tmp.name

    def ok(self, *argv):
        status, out, err = secmig(*argv)
        self.assertEqual(0, status, err)
        return out

    def enroll(self, name='cmp1', clearance='2'):
        cert_dir = os.path.join(self.tmp, name)
        token = os.path.join(self.tmp, name + '.token')
        self.ok('pki', 'token-create', '--ca-dir', self.ca, '--host', name,
                '--address', '127.0.0.1', '--clearance', clearance, '--out',
                token)
        csr = os.path.join(self.tmp, name + '.csr')
        self.ok('pki', 'host-key', '--host', name, '--address', '127.0.0.1',
                '--cert-dir', cert_dir, '--out', csr)
        cert = os.path.join(self.tmp, name + '.pem')
        self.ok('pki', 'sign', '--ca-dir', self.ca, '--csr', csr,
                '--token-file', token, '--out', cert)
        self.install(cert, cert_dir)
        return cert_dir, token, csr

    def install(self, cert, cert_dir):
        self.ok('pki', 'install', '--cert', cert, '--ca',
                os.path.join(self.ca, 'ca-cert.pem'), '--crl',
                os.path.join(self.ca, 'ca-crl.pem'), '--cert-dir', cert_dir,
                '--libvirt-pki-dir', cert_dir + '-pki',
                '--owner', str(os.getuid()), '--group', str(os.getgid()))

    def verify(self, cert_dir, *extra):
        return secmig('pki', 'verify',
                      os.path.join(cert_dir, 'server-cert.pem'),
                      '--ca', os.path.join(self.ca, 'ca-cert.pem'),
                      '--crl', os.path.join(self.ca, 'ca-crl.pem'), *extra)


class EnrollmentCommandsTest(CommandsTestCase):

    def test_enroll_verify_revoke(self):
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        cert_dir, token, csr = self.enroll()
        status, out, _ = self.verify(cert_dir, '--host', 'cmp1', '--key',
                                     os.path.join(cert_dir,
                                                  'server-key.pem'))
        self.assertEqual(0, status)
        self.assertIn('valid: certificate of CN=cmp1', out)

        status, _, err = secmig('pki', 'sign', '--ca-dir', self.ca, '--csr',
                                csr, '--token-file', token)
        self.assertEqual(1, status)
        self.assertIn('already used', err)

        status, _, err = self.verify(cert_dir, '--host', 'cmp2')
        self.assertEqual(1, status)
        self.assertIn('invalid (wrong_host)', err)

        self.ok('pki', 'revoke', '--ca-dir', self.ca, '--cert',
                os.path.join(cert_dir, 'server-cert.pem'),
                '--reason', 'key-compromise')
        status, _, err = self.verify(cert_dir, '--host', 'cmp1')
        self.assertEqual(1, status)
        self.assertIn('invalid (revoked)', err)

    def test_verify_any_claimed_host_name_is_a_verdict(self):
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        cert_dir, _, _ = self.enroll()
        status, out, err = self.verify(cert_dir, '--host', 'cmp1.')
        self.assertEqual(0, status, err)
        for host in ('cmp_1', 'cmp1..', '*.cmp1', 'cmp\u00f1', '-cmp1',
                     'cmp1 ', '127.0.0.1.'):
            with self.subTest(host=host):
                status, out, err = self.verify(cert_dir, '--host=' + host)
                self.assertEqual(1, status)
                self.assertEqual('', out)
                self.assertTrue(err.startswith('invalid (wrong_host)'), err)
                self.assertEqual(1, err.count('\n'), err)

    def test_verify_json(self):
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        cert_dir, _, _ = self.enroll(clearance='5')
        out = self.ok('pki', 'verify', os.path.join(cert_dir,
                                                    'client-cert.pem'),
                      '--ca', os.path.join(self.ca, 'ca-cert.pem'),
                      '--crl', os.path.join(self.ca, 'ca-crl.pem'),
                      '--json')
        self.assertIn('"clearance": 5', out)

    def test_user_errors_are_one_line(self):
        cases = [
            (('pki', 'verify', '/nonexistent.pem'),
             'cannot read certificate /nonexistent.pem'),
            (('pki', 'token-create', '--ca-dir', self.ca, '--host', 'x'),
             'cannot read CA certificate'),
            (('--config-file', '/nonexistent.conf', 'pki', 'verify', 'x'),
             'configuration:'),
        ]
        for argv, expected in cases:
            status, out, err = secmig(*argv)
            self.assertEqual(1, status, argv)
            self.assertIn(expected, err)
            self.assertEqual(1, err.count('\n'), err)
            self.assertNotIn('Traceback', err)

    def test_usage_errors_exit_2(self):
        for argv in (('pki', 'sign'), ('pki', 'crl', '--ca-dir', 'x',
                                       '--days', '-3'), ('nosuch',)):
            status, _, err = secmig(*argv)
            self.assertEqual(2, status, argv)
            self.assertIn('usage:', err)

    def test_console_script_exit_status(self):
        proc = subprocess.run(
            [sys.executable, '-m', 'secmig.cmd.main', 'pki', 'verify',
             os.path.join(self.tmp, 'missing.pem')],
            capture_output=True, text=True)
        self.assertEqual(1, proc.returncode)
        self.assertEqual('secmig: error: cannot read certificate %s: No '
                         'such file or directory\n'
                         % os.path.join(self.tmp, 'missing.pem'),
                         proc.stderr)


class TokenInputTest(CommandsTestCase):
    """The token reaches ``sign`` in a file or on standard input."""

    def setUp(self):
        super().setUp()
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        self.token_file = os.path.join(self.tmp, 'cmp1.token')
        self.ok('pki', 'token-create', '--ca-dir', self.ca, '--host',
                'cmp1', '--out', self.token_file)
        self.csr = os.path.join(self.tmp, 'cmp1.csr')
        self.ok('pki', 'host-key', '--host', 'cmp1', '--cert-dir',
                os.path.join(self.tmp, 'cmp1'), '--out', self.csr)

    def token(self):
        with open(self.token_file) as f:
            return f.read()

    def test_token_create_writes_a_private_file_once(self):
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.token_file)
                                             .st_mode))
        self.assertRegex(self.token(), '^[0-9a-f]{64}\n$')
        status, _, err = secmig('pki', 'token-create', '--ca-dir', self.ca,
                                '--host', 'cmp1', '--out', self.token_file)
        self.assertEqual(1, status)
        self.assertIn('already exists', err)

    def test_token_from_standard_input(self):
        proc = subprocess.run(
            [sys.executable, '-m', 'secmig.cmd.main', 'pki', 'sign',
             '--ca-dir', self.ca, '--csr', self.csr, '--token-file', '-'],
            input=self.token(), capture_output=True, text=True)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('-----BEGIN CERTIFICATE-----', proc.stdout)
        self.assertEqual('', proc.stderr)

    def test_token_on_the_command_line_still_works_with_a_warning(self):
        status, out, err = secmig('pki', 'sign', '--ca-dir', self.ca,
                                  '--csr', self.csr, '--token',
                                  self.token().strip())
        self.assertEqual(0, status, err)
        self.assertIn('-----BEGIN CERTIFICATE-----', out)
        self.assertIn('secmig: warning: --token shows the token', err)

    def test_a_token_file_that_holds_no_token(self):
        bad = os.path.join(self.tmp, 'bad.token')
        for content in (b'', b'\n', b'a b\n', b'one\ntwo\n', b'\xff' * 8,
                        b'x' * 300):
            with open(bad, 'wb') as f:
                f.write(content)
            status, _, err = secmig('pki', 'sign', '--ca-dir', self.ca,
                                    '--csr', self.csr, '--token-file', bad)
            self.assertEqual(1, status, content)
            self.assertIn('%s does not hold an enrollment token' % bad, err)
            self.assertEqual(1, err.count('\n'), err)
        # The token was not used.
        self.ok('pki', 'sign', '--ca-dir', self.ca, '--csr', self.csr,
                '--token-file', self.token_file)

    def test_two_inputs_on_standard_input_are_refused(self):
        status, _, err = secmig('pki', 'sign', '--ca-dir', self.ca, '--csr',
                                '-', '--token-file', '-')
        self.assertEqual(1, status)
        self.assertIn('--csr and --token-file cannot all be read from '
                      'standard input', err)

    def test_token_and_token_file_are_exclusive(self):
        status, _, err = secmig('pki', 'sign', '--ca-dir', self.ca, '--csr',
                                self.csr, '--token', 'x', '--token-file',
                                self.token_file)
        self.assertEqual(2, status)
        self.assertIn('not allowed with argument', err)


class RenewalCommandsTest(CommandsTestCase):

    def setUp(self):
        super().setUp()
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        self.cert_dir, _, _ = self.enroll()
        self.current = os.path.join(self.cert_dir, 'server-cert.pem')

    def test_renew_request_renew_install(self):
        request = os.path.join(self.tmp, 'cmp1.renew')
        self.ok('pki', 'renew-request', '--cert-dir', self.cert_dir, '--out',
                request)
        new = os.path.join(self.tmp, 'cmp1-2.pem')
        self.ok('pki', 'renew', '--ca-dir', self.ca, '--request', request,
                '--out', new)
        status, _, err = self.verify(self.cert_dir, '--host', 'cmp1')
        self.assertEqual(1, status)
        self.assertIn('invalid (revoked)', err)
        self.assertIn('superseded', err)
        self.install(new, self.cert_dir)
        status, out, err = self.verify(
            self.cert_dir, '--host', 'cmp1', '--key',
            os.path.join(self.cert_dir, 'server-key.pem'))
        self.assertEqual(0, status, err)

    def test_renew_with_a_bare_csr_is_refused_with_the_reason(self):
        # The attacker holds cmp1's certificate and a key of its own.
        csr = os.path.join(self.tmp, 'attacker.csr')
        self.ok('pki', 'host-key', '--host', 'cmp1', '--address',
                '127.0.0.1', '--cert-dir', os.path.join(self.tmp, 'a'),
                '--out', csr)
        status, out, err = secmig('pki', 'renew', '--ca-dir', self.ca,
                                  '--cert', self.current, '--csr', csr,
                                  '--revoke-old')
        self.assertEqual(1, status)
        self.assertEqual('', out)
        self.assertIn('a certificate request alone does not prove that the '
                      'requester holds the key', err)
        status, _, _ = self.verify(self.cert_dir, '--host', 'cmp1')
        self.assertEqual(0, status)

    def test_keep_old(self):
        request = os.path.join(self.tmp, 'cmp1.renew')
        self.ok('pki', 'renew-request', '--cert-dir', self.cert_dir, '--out',
                request)
        self.ok('pki', 'renew', '--ca-dir', self.ca, '--request', request,
                '--keep-old', '--cert', self.current)
        status, _, err = self.verify(self.cert_dir, '--host', 'cmp1')
        self.assertEqual(0, status, err)


class TrustedBundleCommandTest(CommandsTestCase):

    def test_a_bundle_with_an_intermediate_ca_is_refused(self):
        pki = pkiutil.TestPKI(os.path.join(self.tmp, 'p'))
        ident = pki.enroll('cmp1')
        sub, _ = pkiutil.intermediate_ca(pki.ca.cert, pki.ca_key())
        bundle = os.path.join(self.tmp, 'bundle.pem')
        with open(bundle, 'wb') as f:
            f.write(pki.ca_cert_pem + keys.cert_pem(sub))
        status, _, err = secmig(
            'pki', 'verify', os.path.join(ident.cert_dir, 'server-cert.pem'),
            '--ca', bundle, '--no-crl')
        self.assertEqual(1, status)
        self.assertIn('CN=intermediate CA', err)
        self.assertIn('not a root (self-signed) CA', err)
        self.assertEqual(1, err.count('\n'), err)
