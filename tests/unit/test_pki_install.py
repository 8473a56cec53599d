"""``secmig pki install``: both layouts, their owners and modes.

Real CA and host keys (tests/pkiutil.py); the layouts go to a temporary
directory given with ``--cert-dir`` and ``--libvirt-pki-dir``.
"""

import grp
import os
import pwd
import stat
import tempfile
import unittest

from secmig import exception
from secmig.pki import host
from secmig.pki import keys
from secmig.pki import verify
from tests.cliutil import secmig
from tests import pkiutil

LIBVIRT_FILES = {
    'CA/cacert.pem': 0o644, 'CA/cacrl.pem': 0o644,
    'libvirt/servercert.pem': 0o644, 'libvirt/clientcert.pem': 0o644,
    'libvirt/private/serverkey.pem': 0o600,
    'libvirt/private/clientkey.pem': 0o600}
QEMU_FILES = {
    'ca-cert.pem': 0o644, 'ca-crl.pem': 0o644, 'server-cert.pem': 0o644,
    'client-cert.pem': 0o644, 'server-key.pem': 0o640,
    'client-key.pem': 0o640}


def other_group():
    """A group this process may give files to, other than its own."""
    if os.getuid() == 0:
        for entry in grp.getgrall():
            if entry.gr_gid != 0:
                return entry
    return grp.getgrgid(os.getgid())


class InstallTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.pki = pkiutil.TestPKI(os.path.join(self.tmp, 'ca-side'))
        self.identity = self.pki.enroll('cmp1', days=30)
        self.cert_dir = self.identity.cert_dir
        self.libvirt = os.path.join(self.tmp, 'etc-pki')
        self.user = pwd.getpwuid(os.getuid())
        self.group = other_group()
        self.files = {'ca': os.path.join(self.pki.ca_dir, 'ca-cert.pem'),
                      'crl': os.path.join(self.pki.ca_dir, 'ca-crl.pem'),
                      'cert': os.path.join(self.tmp, 'cmp1.pem')}
        with open(self.files['cert'], 'wb') as f:
            f.write(self.identity.cert_pem)

    def install(self, *extra):
        return secmig('pki', 'install', '--cert', self.files['cert'],
                      '--ca', self.files['ca'], '--crl', self.files['crl'],
                      '--cert-dir', self.cert_dir, '--owner',
                      self.user.pw_name, *extra)

    def assertLayout(self, root, expected, key_gid):
        for name, mode in expected.items():
            st = os.stat(os.path.join(root, name))
            self.assertEqual(mode, stat.S_IMODE(st.st_mode), name)
            self.assertEqual(self.user.pw_uid, st.st_uid, name)
            gid = key_gid if mode == 0o640 else self.user.pw_gid
            self.assertEqual(gid, st.st_gid, name)

    def test_writes_qemu_and_libvirtd_layouts_with_owners_and_modes(self):
        status, out, err = self.install('--libvirt-pki-dir', self.libvirt,
                                        '--group', self.group.gr_name)
        self.assertEqual(0, status, err)
        self.assertIn('and %s' % self.libvirt, out)
        self.assertIn('libvirt/private/serverkey.pem 0600 %s:'
                      % self.user.pw_name, out)
        self.assertLayout(self.cert_dir, QEMU_FILES, self.group.gr_gid)
        self.assertLayout(self.libvirt, LIBVIRT_FILES, None)
        self.assertEqual(0o750, stat.S_IMODE(os.stat(os.path.join(
            self.libvirt, 'libvirt', 'private')).st_mode))
        # libvirtd's copy is the host's certificate and key, valid
        # against the CA it installs.
        cert = keys.load_certificate(self.read(self.libvirt,
                                               'libvirt/servercert.pem'))
        key = keys.load_private_key(self.read(
            self.libvirt, 'libvirt/private/clientkey.pem'))
        self.assertTrue(verify.verify_key_pair(cert, key))
        trust = verify.TrustStore.from_files(
            os.path.join(self.libvirt, 'CA/cacert.pem'),
            os.path.join(self.libvirt, 'CA/cacrl.pem'))
        verdict = verify.verify_certificate(cert, trust, host='cmp1')
        self.assertTrue(verdict, verdict.reason)

    def read(self, root, name):
        with open(os.path.join(root, name), 'rb') as f:
            return f.read()

    def test_no_libvirt_writes_only_qemu_layout(self):
        status, out, err = self.install('--no-libvirt', '--libvirt-pki-dir',
                                        self.libvirt, '--group',
                                        self.group.gr_name)
        self.assertEqual(0, status, err)
        self.assertFalse(os.path.exists(self.libvirt))
        self.assertLayout(self.cert_dir, QEMU_FILES, self.group.gr_gid)

    def test_unknown_user_or_group_fails_before_writing(self):
        for option, code in (('--owner', 'user'), ('--group', 'group')):
            argv = ['--libvirt-pki-dir', self.libvirt, '--group',
                    self.group.gr_name]
            argv += [option, 'secmig-no-such-' + code]
            status, _, err = self.install(*argv)
            self.assertEqual(1, status)
            self.assertIn("%s 'secmig-no-such-%s' does not exist"
                          % (code, code), err)
            self.assertFalse(os.path.exists(self.libvirt))

    def test_default_group_is_kvm(self):
        status, _, err = self.install('--libvirt-pki-dir', self.libvirt)
        try:
            grp.getgrnam('kvm')
        except KeyError:
            self.assertEqual(1, status)
            self.assertIn("group 'kvm' does not exist", err)
        else:
            self.assertEqual(0, status, err)

    def test_symlink_in_libvirt_layout_is_replaced_not_followed(self):
        # An earlier set-up linked libvirtd's client key to QEMU's.
        private = os.path.join(self.libvirt, 'libvirt', 'private')
        os.makedirs(private)
        target = os.path.join(self.tmp, 'elsewhere.pem')
        with open(target, 'wb') as f:
            f.write(b'keep me')
        os.symlink(target, os.path.join(private, 'clientkey.pem'))
        status, _, err = self.install('--libvirt-pki-dir', self.libvirt,
                                      '--group', self.group.gr_name)
        self.assertEqual(0, status, err)
        self.assertFalse(os.path.islink(os.path.join(private,
                                                     'clientkey.pem')))
        self.assertEqual(b'keep me', self.read(self.tmp, 'elsewhere.pem'))

    def test_mismatched_client_key_writes_nothing(self):
        other = self.pki.enroll('cmp2')
        with open(os.path.join(other.cert_dir, 'client-key.pem'),
                  'rb') as f:
            foreign = f.read()
        with open(os.path.join(self.cert_dir, 'client-key.pem'), 'wb') as f:
            f.write(foreign)
        with self.assertRaises(exception.PKIError) as caught:
            host.install(self.cert_dir, self.identity.cert_pem,
                         self.pki.ca_cert_pem, self.pki.crl_pem,
                         libvirt_pki_dir=self.libvirt)
        self.assertEqual('key_mismatch', caught.exception.code)
        self.assertIn('client-key.pem', str(caught.exception))
        self.assertFalse(os.path.exists(self.libvirt))
