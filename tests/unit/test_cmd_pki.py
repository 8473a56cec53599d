"""``secmig pki`` end to end, as an operator types it."""

import os
import subprocess
import sys
import tempfile
import unittest

from tests.cliutil import secmig


class EnrollmentCommandsTest(unittest.TestCase):

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
        token = self.ok('pki', 'token-create', '--ca-dir', self.ca,
                        '--host', name, '--address', '127.0.0.1',
                        '--clearance', clearance).strip()
        csr = os.path.join(self.tmp, name + '.csr')
        self.ok('pki', 'host-key', '--host', name, '--address', '127.0.0.1',
                '--cert-dir', cert_dir, '--out', csr)
        cert = os.path.join(self.tmp, name + '.pem')
        self.ok('pki', 'sign', '--ca-dir', self.ca, '--csr', csr,
                '--token', token, '--out', cert)
        self.ok('pki', 'install', '--cert', cert, '--ca',
                os.path.join(self.ca, 'ca-cert.pem'), '--crl',
                os.path.join(self.ca, 'ca-crl.pem'), '--cert-dir', cert_dir,
                '--libvirt-pki-dir', os.path.join(self.tmp, name + '-pki'),
                '--owner', str(os.getuid()), '--group', str(os.getgid()))
        return cert_dir, token, csr

    def verify(self, cert_dir, *extra):
        return secmig('pki', 'verify',
                      os.path.join(cert_dir, 'server-cert.pem'),
                      '--ca', os.path.join(self.ca, 'ca-cert.pem'),
                      '--crl', os.path.join(self.ca, 'ca-crl.pem'), *extra)

    def test_enroll_verify_revoke(self):
        self.ok('pki', 'ca-create', '--ca-dir', self.ca, '--name', 'Cloud')
        cert_dir, token, csr = self.enroll()
        status, out, _ = self.verify(cert_dir, '--host', 'cmp1', '--key',
                                     os.path.join(cert_dir,
                                                  'server-key.pem'))
        self.assertEqual(0, status)
        self.assertIn('valid: certificate of CN=cmp1', out)

        status, _, err = secmig('pki', 'sign', '--ca-dir', self.ca, '--csr',
                                csr, '--token', token)
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
