"""Readiness of libvirtd's TLS and of the user nova-compute runs as.

libvirtd's files are written by the real ``secmig pki install`` code
(:func:`secmig.pki.host.install`) into a temporary PKI root; systemd's
unit directory and libvirtd.conf are temporary files too. File access
for the service user is decided from modes and owners, so these tests
pass as root and as any other user.
"""

import datetime
import os
import shutil
import tempfile
import unittest

from oslo_upgradecheck.upgradecheck import Code

from secmig.pki import access
from secmig.pki import host as host_files
from secmig import readiness
from tests import pkiutil

DAY = datetime.timedelta(days=1)


class Base(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-libvirtd-')
        os.chmod(cls.base, 0o755)
        cls.pki = pkiutil.TestPKI(cls.base)
        cls.host = cls.pki.enroll('cmp1', days=365)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.base)
        os.chmod(self.dir, 0o755)
        self.cert_dir = os.path.join(self.dir, 'qemu')
        shutil.copytree(self.host.cert_dir, self.cert_dir)
        self.libvirt = os.path.join(self.dir, 'pki')

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def assertResult(self, code, text, result):
        self.assertEqual(code, result.code, result.details)
        self.assertIn(text, result.details)
        if code != Code.SUCCESS:
            self.assertIn('Remedy: ', result.details)


class TestLibvirtdCertificates(Base):

    def install(self, pki=None, identity=None):
        identity = identity or self.host
        pki = pki or self.pki
        host_files.install(self.cert_dir, identity.cert_pem, pki.ca_cert_pem,
                           pki.crl_pem, libvirt_pki_dir=self.libvirt)

    def check(self, host='cmp1', **kwargs):
        return readiness.check_libvirtd_certificates(
            self.libvirt, self.cert_dir, host, 3600, **kwargs)

    def test_qemu_layout_only_fails_and_names_libvirtds_files(self):
        result = self.check()
        self.assertResult(Code.FAILURE, "libvirtd's TLS lacks %s"
                          % os.path.join(self.libvirt, 'CA/cacert.pem'),
                          result)
        self.assertIn('libvirt/private/serverkey.pem', result.details)
        self.assertIn('--libvirt-pki-dir %s' % self.libvirt, result.details)

    def test_installed_layout_succeeds(self):
        self.install()
        self.assertResult(Code.SUCCESS, 'same CA as QEMU', self.check())

    def test_relative_pki_root(self):
        self.install()
        self.assertResult(Code.SUCCESS, 'same CA as QEMU',
                          readiness.check_libvirtd_certificates(
                              os.path.relpath(self.libvirt), self.cert_dir,
                              'cmp1', 3600))

    def test_wrong_name_and_expiry_fail(self):
        self.install()
        self.assertResult(Code.FAILURE, '(wrong_host)',
                          self.check(host='cmp9'))
        now = self.host.cert.not_valid_after_utc + DAY
        self.assertResult(Code.FAILURE, '(expired)',
                          self.check(now=now, require_crl=False))

    def test_missing_crl_fails_only_when_required(self):
        self.install()
        os.unlink(os.path.join(self.libvirt, 'CA/cacrl.pem'))
        self.assertResult(Code.FAILURE, 'CA/cacrl.pem', self.check())
        self.assertResult(Code.SUCCESS, 'valid until',
                          self.check(require_crl=False))

    def test_key_not_matching_certificate_fails(self):
        self.install()
        shutil.copy(os.path.join(self.cert_dir, 'server-key.pem'),
                    os.path.join(self.dir, 'mine.pem'))
        other = self.pki.enroll('cmp2')
        key = os.path.join(self.libvirt, 'libvirt/private/clientkey.pem')
        shutil.copy(os.path.join(other.cert_dir, 'client-key.pem'), key)
        os.chmod(key, 0o600)
        self.assertResult(Code.FAILURE, '(key_mismatch)', self.check())

    def test_world_readable_key_fails(self):
        self.install()
        os.chmod(os.path.join(self.libvirt, 'libvirt/private/serverkey.pem'),
                 0o644)
        self.assertResult(Code.FAILURE, 'readable by every user',
                          self.check())

    def test_another_ca_than_qemus_fails(self):
        self.install()
        other = pkiutil.TestPKI(os.path.join(self.dir, 'other'),
                                ca_name='another CA')
        shutil.copy(os.path.join(other.ca_dir, 'ca-cert.pem'),
                    os.path.join(self.cert_dir, 'ca-cert.pem'))
        self.assertResult(Code.FAILURE, 'hold different CA certificates',
                          self.check())

    def test_older_crl_than_qemus_warns(self):
        self.install()
        old = self.pki.crl_pem
        self.pki.ca.publish_crl(days=7, now=datetime.datetime.now(
            datetime.timezone.utc) + datetime.timedelta(minutes=5))
        with open(os.path.join(self.cert_dir, 'ca-crl.pem'), 'wb') as f:
            f.write(self.pki.crl_pem)
        with open(os.path.join(self.libvirt, 'CA/cacrl.pem'), 'wb') as f:
            f.write(old)
        self.assertResult(Code.WARNING, 'libvirtd may accept a host revoked',
                          self.check())

    def test_libvirtd_conf_paths_are_followed(self):
        # As devstack configures it: the server side reads QEMU's files.
        conf = self.write('libvirtd.conf', ''.join(
            '%s = "%s"\n' % (key, os.path.join(self.cert_dir, name))
            for key, name in (('key_file', 'server-key.pem'),
                              ('cert_file', 'server-cert.pem'),
                              ('ca_file', 'ca-cert.pem'),
                              ('crl_file', 'ca-crl.pem'))))
        result = self.check(libvirtd_conf=conf)
        self.assertResult(Code.FAILURE, 'CA/cacert.pem', result)
        self.assertNotIn('servercert.pem', result.details)
        self.install()
        os.unlink(os.path.join(self.libvirt, 'libvirt/servercert.pem'))
        self.assertResult(Code.SUCCESS, os.path.join(self.cert_dir,
                                                     'server-cert.pem'),
                          self.check(libvirtd_conf=conf))


#: The guide's libvirtd.conf (doc/nova.rst, section 4).
GUIDE_CONF = ('listen_tls = 1\nlisten_tcp = 0\nlisten_addr = "192.0.2.11"\n'
              'crl_file = "/etc/pki/CA/cacrl.pem"\n')
#: What Debian 12's libvirt-daemon-system enables: libvirtd.service and,
#: through it, its local sockets; not libvirtd-tls.socket.
DEBIAN_UNITS = ('libvirtd.service', 'libvirtd.socket', 'libvirtd-ro.socket',
                'libvirtd-admin.socket')
#: /etc/default/libvirtd as Debian 12 ships it (abridged): nothing set.
DEBIAN_DEFAULTS = """# Customizations for the libvirtd.service systemd unit
#LIBVIRTD_ARGS="--timeout 120"

# If systemd socket activation is disabled, then the following
# can be used to listen on TCP/TLS sockets
#LIBVIRTD_ARGS="--listen"
"""
PID = 4242


class TestListener(Base):
    """The host's files under a temporary root, one layout per test.

    ``systemd=True`` makes systemd run the host (/run/systemd/system);
    ``units`` are enabled (linked in a ``*.wants``), ``masked`` linked to
    /dev/null; ``defaults`` is /etc/default/libvirtd; ``argv`` the
    running libvirtd's command line (/run/libvirtd.pid and /proc), with
    ``sockets`` its LISTEN_FDNAMES.
    """

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, 'root')

    def put(self, inside, text):
        path = os.path.join(self.root, inside.lstrip('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)

    def check(self, conf_text=GUIDE_CONF, units=(), systemd=False,
              masked=(), defaults=None, argv=None, sockets=None):
        etc = os.path.join(self.root, 'etc/systemd/system')
        for unit in units:
            wants = os.path.join(etc, 'multi-user.target.wants'
                                 if unit.endswith('.service')
                                 else 'sockets.target.wants')
            os.makedirs(wants, exist_ok=True)
            os.symlink('/lib/systemd/system/' + unit,
                       os.path.join(wants, unit))
        os.makedirs(etc, exist_ok=True)
        for unit in masked:
            os.symlink('/dev/null', os.path.join(etc, unit))
        if systemd:
            os.makedirs(os.path.join(self.root, 'run/systemd/system'))
        if defaults is not None:
            self.put('/etc/default/libvirtd', defaults)
        if argv is not None:
            self.put('/run/libvirtd.pid', '%d\n' % PID)
            self.put('/proc/%d/cmdline' % PID, '\0'.join(argv) + '\0')
            env = ['PATH=/usr/bin', 'LANG=C.UTF-8']
            if sockets is not None:
                env += ['LISTEN_PID=%d' % PID,
                        'LISTEN_FDS=%d' % len(sockets),
                        'LISTEN_FDNAMES=' + ':'.join(sockets)]
            self.put('/proc/%d/environ' % PID, '\0'.join(env) + '\0')
        conf = (self.write('libvirtd.conf', conf_text)
                if conf_text is not None else None)
        return readiness.check_libvirtd_listener(conf, root=self.root)

    def assertRemedy(self, text, result):
        self.assertIn(text, result.details.split('Remedy: ', 1)[1])

    # Without systemd socket activation: libvirtd's own --listen.

    def test_listen_tls_on_and_tcp_off_needs_listen(self):
        # listen_tls = 1 alone proves nothing: libvirtd honours it only
        # with --listen.
        result = self.check(GUIDE_CONF)
        self.assertResult(Code.WARNING, 'cannot tell whether libvirtd '
                          'listens for TLS', result)
        self.assertRemedy('systemctl enable --now libvirtd-tls.socket',
                          result)
        self.assertRemedy('LIBVIRTD_ARGS="--listen"', result)
        result = self.check(GUIDE_CONF, defaults='LIBVIRTD_ARGS="--listen"\n')
        self.assertResult(Code.SUCCESS, 'gives LIBVIRTD_ARGS --listen',
                          result)
        self.assertIn('listen_tls = 1, listen_tcp = 0', result.details)

    def test_cloud_layout_libvirtd_runs_with_listen_without_systemd(self):
        # tools/cloud/hosts.py: "libvirtd -d --listen" in a namespace with
        # its own /run; the machine's unit files start nothing there.
        result = self.check(argv=['libvirtd', '-d', '--listen'],
                            units=DEBIAN_UNITS)
        self.assertResult(Code.SUCCESS, 'libvirtd (pid %d) runs with '
                          '--listen' % PID, result)

    def test_running_without_listen_without_systemd_cannot_tell(self):
        result = self.check(argv=['/usr/sbin/libvirtd', '-d'])
        self.assertResult(Code.WARNING, 'libvirtd (pid %d) runs without '
                          '--listen' % PID, result)
        self.assertRemedy('--listen', result)

    def test_listen_without_libvirtd_conf_warns(self):
        result = self.check(None, argv=['libvirtd', '-dl'])
        self.assertResult(Code.WARNING, 'listen_tls and listen_tcp are not '
                          'checked', result)
        self.assertRemedy('--libvirtd-config', result)

    def test_listen_tls_off_fails(self):
        result = self.check('listen_tls = 0\n', argv=['libvirtd', '-l'])
        self.assertResult(Code.FAILURE, 'listen_tls = 0', result)
        self.assertRemedy('set listen_tls = 1', result)

    def test_listen_tcp_on_fails(self):
        result = self.check('listen_tcp = 1\n', argv=['libvirtd', '-l'])
        self.assertResult(Code.FAILURE, 'listen_tcp = 1', result)
        self.assertRemedy('set listen_tcp = 0', result)

    def test_args_without_listen_fail(self):
        result = self.check(defaults='LIBVIRTD_ARGS="--timeout 120"\n')
        self.assertResult(Code.FAILURE, 'does not give --listen', result)
        self.assertRemedy('LIBVIRTD_ARGS="--listen" in %s/etc/default/'
                          'libvirtd' % self.root, result)

    def test_stale_pid_file_is_not_libvirtd(self):
        result = self.check(argv=['/usr/bin/python3', '--listen'])
        self.assertResult(Code.WARNING, 'no libvirtd runs', result)

    # Debian 12: systemd socket-activates libvirtd.

    def test_socket_activated_without_tls_socket_fails(self):
        result = self.check(units=DEBIAN_UNITS, systemd=True,
                            defaults=DEBIAN_DEFAULTS)
        self.assertResult(Code.FAILURE, 'libvirtd-tls.socket is not '
                          'enabled (systemd socket activation: '
                          'libvirtd-admin.socket, libvirtd-ro.socket, '
                          'libvirtd.service, libvirtd.socket enabled): '
                          'nothing listens on port 16514', result)
        self.assertRemedy('systemctl enable --now libvirtd-tls.socket, then '
                          'systemctl restart libvirtd', result)
        self.assertNotIn('--listen', result.details)

    def test_socket_activated_with_tls_socket_succeeds(self):
        self.assertResult(Code.SUCCESS, 'libvirtd-tls.socket is enabled',
                          self.check(units=DEBIAN_UNITS
                                     + ('libvirtd-tls.socket',),
                                     systemd=True, defaults=DEBIAN_DEFAULTS))

    def test_service_alone_is_socket_activated(self):
        # libvirtd.service wants libvirtd.socket: disabling the socket
        # units does not turn activation off, masking does.
        result = self.check(units=['libvirtd.service'], systemd=True)
        self.assertResult(Code.FAILURE, 'libvirtd-tls.socket is not enabled',
                          result)
        self.assertRemedy('systemctl enable --now libvirtd-tls.socket',
                          result)

    def test_listen_in_args_under_socket_activation_fails(self):
        result = self.check(units=DEBIAN_UNITS + ('libvirtd-tls.socket',),
                            systemd=True,
                            defaults='LIBVIRTD_ARGS="--listen"\n')
        self.assertResult(Code.FAILURE, 'which libvirtd refuses under '
                          'systemd socket activation', result)
        self.assertRemedy('remove --listen from LIBVIRTD_ARGS in %s/etc/'
                          'default/libvirtd, systemctl enable --now '
                          'libvirtd-tls.socket' % self.root, result)

    def test_modular_daemons_need_virtproxyd_tls_socket(self):
        units = ('virtproxyd.socket', 'virtproxyd-ro.socket')
        result = self.check(units=units, systemd=True)
        self.assertResult(Code.FAILURE, 'virtproxyd-tls.socket is not '
                          'enabled', result)
        self.assertRemedy('systemctl enable --now virtproxyd-tls.socket, '
                          'then systemctl restart virtproxyd', result)
        shutil.rmtree(self.root)
        self.assertResult(Code.SUCCESS, 'virtproxyd-tls.socket is enabled',
                          self.check(units=units + ('virtproxyd-tls.socket',),
                                     systemd=True))

    def test_tcp_socket_unit_fails(self):
        result = self.check(units=['virtproxyd-tls.socket',
                                   'virtproxyd-tcp.socket'], systemd=True)
        self.assertResult(Code.FAILURE, 'virtproxyd-tcp.socket enabled',
                          result)
        self.assertRemedy('systemctl disable --now virtproxyd-tcp.socket',
                          result)

    def test_running_socket_activated_without_tls_socket_fails(self):
        # Enabled since, but libvirtd took its sockets when it started.
        result = self.check(units=DEBIAN_UNITS + ('libvirtd-tls.socket',),
                            systemd=True, argv=['/usr/sbin/libvirtd',
                                                '--timeout', '120'],
                            sockets=['libvirtd.socket', 'libvirtd-ro.socket',
                                     'libvirtd-admin.socket'])
        self.assertResult(Code.FAILURE, 'libvirtd (pid %d) was started by '
                          'systemd with libvirtd-admin.socket, '
                          'libvirtd-ro.socket, libvirtd.socket, not '
                          'libvirtd-tls.socket' % PID, result)
        self.assertIn('although libvirtd-tls.socket is enabled',
                      result.details)
        self.assertRemedy('systemctl restart libvirtd', result)

    def test_running_socket_activated_with_tls_socket_succeeds(self):
        self.assertResult(Code.SUCCESS, 'libvirtd (pid %d) holds '
                          'libvirtd-tls.socket from systemd' % PID,
                          self.check(units=DEBIAN_UNITS
                                     + ('libvirtd-tls.socket',),
                                     systemd=True,
                                     argv=['/usr/sbin/libvirtd', '--timeout',
                                           '120'],
                                     sockets=['libvirtd.socket',
                                              'libvirtd-tls.socket']))

    # systemd without socket activation: the socket units masked.

    def test_masked_sockets_and_listen_in_args_succeed(self):
        masked = ('libvirtd.socket', 'libvirtd-ro.socket',
                  'libvirtd-admin.socket', 'libvirtd-tls.socket',
                  'libvirtd-tcp.socket')
        result = self.check(units=DEBIAN_UNITS, masked=masked, systemd=True,
                            defaults='LIBVIRTD_ARGS="--listen"\n')
        self.assertResult(Code.SUCCESS, 'gives LIBVIRTD_ARGS --listen',
                          result)

    def test_masked_sockets_without_listen_fail(self):
        result = self.check(units=['libvirtd.service'], systemd=True,
                            masked=['libvirtd.socket'],
                            defaults=DEBIAN_DEFAULTS)
        self.assertResult(Code.FAILURE, 'libvirtd.service is enabled, its '
                          'socket units masked', result)
        self.assertRemedy('LIBVIRTD_ARGS="--listen"', result)

    def test_listening_now_but_not_once_restarted_warns(self):
        # Started by hand with --listen; systemd would socket-activate it.
        result = self.check(units=DEBIAN_UNITS, systemd=True,
                            argv=['libvirtd', '-d', '--listen'])
        self.assertResult(Code.WARNING, 'runs with --listen now, but not '
                          'once restarted', result)
        self.assertRemedy('systemctl enable --now libvirtd-tls.socket',
                          result)

    def test_nothing_to_tell_warns(self):
        self.assertResult(Code.WARNING, 'cannot tell whether libvirtd',
                          self.check(None))

    def test_unreadable_libvirtd_conf_fails(self):
        result = readiness.check_libvirtd_listener(
            os.path.join(self.dir, 'none.conf'), self.dir, root=self.dir)
        self.assertResult(Code.FAILURE, 'cannot read', result)


class TestLibvirtdArguments(unittest.TestCase):

    def test_listen_options(self):
        for args in (['--listen'], ['-l'], ['-d', '-l'], ['-dl'], ['-vld'],
                     ['--timeout', '120', '--listen'], ['-t120', '-l']):
            self.assertTrue(readiness.has_listen(args), args)
        for args in ([], ['-d'], ['--timeout', '120'], ['-f', '-l'],
                     ['-dp', '-l'], ['--config', '--listen'], ['-fl'],
                     ['--', '--listen'], ['--listening']):
            self.assertFalse(readiness.has_listen(args), args)

    def test_defaults_file(self):
        base = tempfile.mkdtemp(prefix='secmig-defaults-')
        self.addCleanup(shutil.rmtree, base)
        path = os.path.join(base, 'libvirtd')
        self.assertIsNone(readiness.libvirtd_args(path))
        for text, args in (
                (DEBIAN_DEFAULTS, None),
                ('LIBVIRTD_ARGS="--listen"\n', ('--listen',)),
                ("export LIBVIRTD_ARGS='-d --listen'  # TLS\n",
                 ('-d', '--listen')),
                ('LIBVIRTD_ARGS="--listen"\nLIBVIRTD_ARGS=""\n', ()),
                ('LIBVIRTD_ARGS="unbalanced\n', None)):
            with open(path, 'w') as f:
                f.write(text)
            self.assertEqual(args, readiness.libvirtd_args(path), text)


class TestServiceAccess(Base):
    """A service user that is not the files' owner, as nova is not root."""

    def setUp(self):
        super().setUp()
        st = os.stat(self.cert_dir)
        self.owner_gid = st.st_gid
        self.nova = access.User('nova', os.getuid() + 4242,
                                frozenset({os.getuid() + 4242}))
        self.in_group = access.User('nova', os.getuid() + 4242,
                                    frozenset({os.getuid() + 4242,
                                               self.owner_gid}))
        self.journal_dir = os.path.join(self.dir, 'audit')
        os.mkdir(self.journal_dir)
        self.journal = os.path.join(self.journal_dir, 'journal.jsonl')
        os.chmod(self.cert_dir, 0o755)
        for name in ('server-key.pem', 'client-key.pem'):
            os.chmod(os.path.join(self.cert_dir, name), 0o640)

    def check(self, user, journal=None):
        return readiness.check_service_access(user, self.cert_dir,
                                              journal or self.journal)

    def test_user_outside_the_keys_group_fails_with_usermod(self):
        os.chmod(self.journal_dir, 0o777)
        result = self.check(self.nova)
        key = os.path.join(self.cert_dir, 'server-key.pem')
        self.assertResult(Code.FAILURE, 'nova cannot read %s (mode 0640, '
                          'owner ' % key, result)
        # root's group is never the remedy: the key then goes to kvm.
        self.assertRegex(result.details, r'usermod -a -G (?!root)\S+ '
                         r'nova"?, then restart nova-compute')

    def test_key_0600_fails_with_install_group(self):
        os.chmod(self.journal_dir, 0o777)
        os.chmod(os.path.join(self.cert_dir, 'server-key.pem'), 0o600)
        result = self.check(self.in_group)
        self.assertResult(Code.FAILURE, '(mode 0600', result)
        self.assertIn('secmig pki install --group kvm', result.details)

    def test_journal_directory_not_writable_fails(self):
        os.chmod(self.journal_dir, 0o755)
        result = self.check(self.in_group)
        self.assertResult(Code.FAILURE, 'nova cannot create files in %s '
                          '(mode 0755' % self.journal_dir, result)
        self.assertIn('install -d -o nova -g nova -m 0750 %s'
                      % self.journal_dir, result.details)

    def test_journal_not_created_yet_needs_the_parent(self):
        os.chmod(self.journal_dir, 0o755)
        result = self.check(self.in_group, os.path.join(
            self.journal_dir, 'sub', 'journal.jsonl'))
        self.assertResult(Code.FAILURE, 'cannot create files in %s'
                          % self.journal_dir, result)

    def test_existing_journal_must_be_writable(self):
        os.chmod(self.journal_dir, 0o777)
        with open(self.journal, 'w'):
            pass
        os.chmod(self.journal, 0o644)
        result = self.check(self.in_group)
        self.assertResult(Code.FAILURE, 'nova cannot read and write %s'
                          % self.journal, result)

    def test_group_member_with_writable_journal_succeeds(self):
        os.chmod(self.journal_dir, 0o777)
        self.assertResult(Code.SUCCESS, 'nova can read the host key',
                          self.check(self.in_group))

    def test_unsearchable_directory_is_named(self):
        os.chmod(self.journal_dir, 0o777)
        os.chmod(self.cert_dir, 0o750)
        result = self.check(self.nova)
        self.assertResult(Code.FAILURE, 'nova cannot enter %s'
                          % self.cert_dir, result)
        self.assertIn('chmod 0755 %s' % self.cert_dir, result.details)

    def test_missing_user(self):
        self.assertResult(Code.FAILURE, 'user secmig-nobody does not exist',
                          readiness.check_service_access(
                              'secmig-nobody', self.cert_dir, self.journal))
        self.assertResult(Code.SUCCESS, 'not checked',
                          readiness.check_service_access(
                              'secmig-nobody', self.cert_dir, self.journal,
                              explicit=False))

    def test_root_may_do_anything(self):
        root = access.User('root', 0, frozenset({0}))
        os.chmod(os.path.join(self.cert_dir, 'server-key.pem'), 0o600)
        self.assertResult(Code.SUCCESS, 'root can read',
                          self.check(root))
