"""secmig-status upgrade check: good and bad configurations, check by check.

Certificates come from a real CA (tests/pkiutil.py), the policy from
tests/etc, journals from the real writer; nova.conf, qemu.conf and
libvirtd.conf are written to a temporary directory.
"""

import contextlib
import datetime
import getpass
import io
import json
import os
import shutil
import tempfile
import unittest
from unittest import mock
import uuid

from oslo_upgradecheck.upgradecheck import Code

from secmig.audit import journal
from secmig.audit import signing
from secmig.audit import trail
from secmig.cmd import status
from secmig.pki import host as host_files
from secmig.policy import loader
from secmig import readiness
from tests import pkiutil

ETC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'etc')
POLICY = os.path.join(ETC, 'migration-policy.yaml')
DAY = datetime.timedelta(days=1)

GOOD_NOVA = """[DEFAULT]
host = cmp1
compute_driver = libvirt.LibvirtDriver
[libvirt]
live_migration_with_native_tls = true
live_migration_scheme = tls
live_migration_tunnelled = false
[secmig]
config_file = %(secmig_conf)s
"""

GOOD_QEMU = """# libvirt's qemu.conf
user = "libvirt-qemu"
cgroup_device_acl = [
    "/dev/null", "/dev/full",
]
migrate_tls_x509_cert_dir = "%(cert_dir)s"
migrate_tls_force = 1   # no plaintext
#migrate_tls_x509_verify = 0
"""


class Base(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-status-')
        cls.pki = pkiutil.TestPKI(cls.base)
        cls.host = cls.pki.enroll('cmp1', clearance=1, days=365)
        cls.short = cls.pki.enroll('cmp2', days=10)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.base)
        self.secmig_conf = self.write('secmig.conf', '[DEFAULT]\n')

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def copy_cert_dir(self, identity):
        cert_dir = os.path.join(self.dir, 'pki-' + identity.name)
        shutil.copytree(identity.cert_dir, cert_dir)
        return cert_dir

    def assertResult(self, code, text, result):
        self.assertEqual(code, result.code, result.details)
        self.assertIn(text, result.details)
        if code != Code.SUCCESS:
            self.assertIn('Remedy: ', result.details)


class TestCertificates(Base):

    def check(self, cert_dir, host='cmp1', margin=3600, **kwargs):
        return readiness.check_certificates(cert_dir, host, margin,
                                            **kwargs)

    def test_enrolled_host_succeeds(self):
        result = self.check(self.host.cert_dir)
        self.assertResult(Code.SUCCESS, 'certificate of cmp1 valid until',
                          result)
        self.assertIn('clearance 1', result.details)

    def test_host_address_is_accepted_as_name(self):
        self.assertResult(Code.SUCCESS, 'valid until',
                          self.check(self.host.cert_dir, host='127.0.0.1'))

    def test_missing_key_fails_and_says_enroll(self):
        cert_dir = self.copy_cert_dir(self.host)
        os.unlink(os.path.join(cert_dir, host_files.CLIENT_KEY))
        os.unlink(os.path.join(cert_dir, host_files.CA_CRL))
        result = self.check(cert_dir)
        self.assertResult(Code.FAILURE, 'lacks client-key.pem, ca-crl.pem',
                          result)
        self.assertIn('secmig pki host-key', result.details)

    def test_missing_crl_is_accepted_when_not_required(self):
        cert_dir = self.copy_cert_dir(self.host)
        os.unlink(os.path.join(cert_dir, host_files.CA_CRL))
        self.assertResult(Code.SUCCESS, 'valid until',
                          self.check(cert_dir, require_crl=False))

    def test_wrong_host_name_fails(self):
        self.assertResult(Code.FAILURE, '(wrong_host)',
                          self.check(self.host.cert_dir, host='cmp9'))

    def test_expiry_within_warning_days_warns(self):
        result = self.check(self.short.cert_dir, host='cmp2')
        self.assertResult(Code.WARNING, 'the certificate of cmp2 expires on',
                          result)
        self.assertIn('secmig pki renew', result.details)

    def test_expiry_within_margin_fails(self):
        now = self.short.cert.not_valid_after_utc - datetime.timedelta(
            seconds=1800)
        result = self.check(self.short.cert_dir, host='cmp2', now=now)
        self.assertResult(Code.FAILURE, '(expires_soon)', result)

    def test_expired_fails(self):
        now = self.short.cert.not_valid_after_utc + DAY
        self.assertResult(Code.FAILURE, '(expired)',
                          self.check(self.short.cert_dir, host='cmp2',
                                     now=now, require_crl=False))

    def test_stale_crl_fails_and_crl_near_expiry_warns(self):
        crl = self.pki.trust().crls[0]
        self.assertResult(
            Code.FAILURE, '(crl_stale)',
            self.check(self.host.cert_dir, now=crl.next_update_utc + DAY))
        self.assertResult(
            Code.WARNING, 'the CRL expires on',
            self.check(self.host.cert_dir, now=crl.next_update_utc
                       - datetime.timedelta(hours=2)))

    def test_revoked_certificate_fails(self):
        pki = pkiutil.TestPKI(os.path.join(self.dir, 'other'))
        victim = pki.enroll('cmp3', days=365)
        pki.revoke('cmp3')
        with open(os.path.join(victim.cert_dir, host_files.CA_CRL),
                  'wb') as f:
            f.write(pki.crl_pem)
        result = self.check(victim.cert_dir, host='cmp3')
        self.assertResult(Code.FAILURE, '(revoked)', result)
        self.assertIn('new key', result.details)

    def test_world_readable_key_fails(self):
        cert_dir = self.copy_cert_dir(self.host)
        os.chmod(os.path.join(cert_dir, host_files.SERVER_KEY), 0o644)
        self.assertResult(Code.FAILURE, 'readable by every user',
                          self.check(cert_dir))

    def test_key_of_another_host_fails(self):
        cert_dir = self.copy_cert_dir(self.host)
        shutil.copy(os.path.join(self.short.cert_dir, host_files.CLIENT_KEY),
                    os.path.join(cert_dir, host_files.CLIENT_KEY))
        self.assertResult(Code.FAILURE, '(key_mismatch)',
                          self.check(cert_dir))

    def test_certificate_of_a_foreign_or_forged_ca_fails(self):
        cert_dir = self.copy_cert_dir(self.host)
        for ca_name, code in (('another CA', '(foreign_ca)'),
                              ('secmig test CA', '(forged_ca)')):
            other = pkiutil.TestPKI(os.path.join(self.dir, code),
                                    ca_name=ca_name)
            for name in (host_files.CA_CERT, host_files.CA_CRL):
                shutil.copy(os.path.join(other.ca_dir, name),
                            os.path.join(cert_dir, name))
            self.assertResult(Code.FAILURE, code, self.check(cert_dir))

    def test_scheduler_needs_only_ca_and_crl(self):
        cert_dir = os.path.join(self.dir, 'sched')
        os.mkdir(cert_dir)
        self.assertResult(Code.FAILURE, 'lacks ca-cert.pem, ca-crl.pem',
                          readiness.check_ca(cert_dir))
        for name in (host_files.CA_CERT, host_files.CA_CRL):
            shutil.copy(os.path.join(self.pki.ca_dir, name), cert_dir)
        self.assertResult(Code.SUCCESS, 'and its CRL installed',
                          readiness.check_ca(cert_dir))
        crl = self.pki.trust().crls[0]
        self.assertResult(
            Code.FAILURE, 'the CRL expired',
            readiness.check_ca(cert_dir, now=crl.next_update_utc + DAY))


class TestNovaConfig(Base):

    def nova(self, text, **values):
        values.setdefault('secmig_conf', self.secmig_conf)
        return self.write('nova.conf', text % values)

    def test_native_tls_with_tls_scheme_succeeds(self):
        result = readiness.check_nova_libvirt(self.nova(GOOD_NOVA))
        self.assertResult(Code.SUCCESS, 'native tls', result)
        self.assertIn('config_file = %s' % self.secmig_conf, result.details)

    def test_native_tls_off_fails(self):
        text = GOOD_NOVA.replace('native_tls = true', 'native_tls = false')
        result = readiness.check_nova_libvirt(self.nova(text))
        self.assertResult(Code.FAILURE, '(plaintext_migration)', result)
        self.assertIn('live_migration_with_native_tls = true',
                      result.details)

    def test_tcp_scheme_fails_with_ossn_0089(self):
        text = GOOD_NOVA.replace('scheme = tls', 'scheme = tcp')
        result = readiness.check_nova_libvirt(self.nova(text))
        self.assertResult(Code.FAILURE, '(plaintext_control)', result)
        self.assertIn('OSSN-0089', result.details)

    def test_ssh_uri_overrides_tls_scheme_and_fails(self):
        text = GOOD_NOVA.replace(
            '[libvirt]\n',
            '[libvirt]\nlive_migration_uri = qemu+ssh://stack@%%s/system\n')
        self.assertResult(Code.FAILURE, '(plaintext_control)',
                          readiness.check_nova_libvirt(self.nova(text)))

    def test_native_tls_and_tunnelled_conflict(self):
        text = GOOD_NOVA.replace('tunnelled = false', 'tunnelled = true')
        self.assertResult(Code.FAILURE, '(tls_settings_conflict)',
                          readiness.check_nova_libvirt(self.nova(text)))

    def test_tunnelled_over_tls_uri_warns(self):
        text = GOOD_NOVA.replace(
            'live_migration_with_native_tls = true\n'
            'live_migration_scheme = tls\n'
            'live_migration_tunnelled = false\n',
            'live_migration_tunnelled = True\n'
            'live_migration_uri = qemu+tls://%%s/system\n')
        self.assertResult(Code.WARNING, 'tunnelled',
                          readiness.check_nova_libvirt(self.nova(text)))

    def test_tunnelled_over_tcp_fails(self):
        text = GOOD_NOVA.replace(
            'live_migration_with_native_tls = true\n'
            'live_migration_scheme = tls\n', '').replace(
            'tunnelled = false', 'tunnelled = true')
        self.assertResult(Code.FAILURE, '(plaintext_control)',
                          readiness.check_nova_libvirt(self.nova(text)))

    def test_unset_config_file_warns_and_missing_one_fails(self):
        text = GOOD_NOVA.replace('[secmig]\nconfig_file = %(secmig_conf)s\n',
                                 '')
        self.assertResult(Code.WARNING, 'does not set [secmig] config_file',
                          readiness.check_nova_libvirt(self.nova(text)))
        self.assertResult(
            Code.FAILURE, 'refuses every migration',
            readiness.check_nova_libvirt(self.nova(
                GOOD_NOVA, secmig_conf='/nonexistent/secmig.conf')))

    def test_bad_boolean_and_missing_file_fail(self):
        text = GOOD_NOVA.replace('native_tls = true', 'native_tls = maybe')
        self.assertResult(Code.FAILURE, 'maybe',
                          readiness.check_nova_libvirt(self.nova(text)))
        self.assertResult(Code.FAILURE, 'cannot read',
                          readiness.check_nova_libvirt(
                              os.path.join(self.dir, 'none.conf')))

    def test_scheduler_filter(self):
        good = ('[filter_scheduler]\n'
                'available_filters = nova.scheduler.filters.all_filters\n'
                'available_filters = %s\n'
                'enabled_filters = ComputeFilter, SecureMigrationFilter\n'
                '[secmig]\nconfig_file = %s\n'
                % (readiness.SCHEDULER_FILTER, self.secmig_conf))
        self.assertResult(Code.SUCCESS, 'SecureMigrationFilter enabled',
                          readiness.check_nova_scheduler(
                              self.write('nova.conf', good)))
        self.assertResult(
            Code.FAILURE, 'available_filters lacks',
            readiness.check_nova_scheduler(self.write(
                'nova.conf', good.replace('available_filters = secmig',
                                          '#'))))
        self.assertResult(
            Code.FAILURE, 'not in [filter_scheduler] enabled_filters',
            readiness.check_nova_scheduler(self.write(
                'nova.conf', good.replace(', SecureMigrationFilter', ''))))


class TestQemu(Base):

    def qemu(self, text, cert_dir='/etc/pki/qemu'):
        return self.write('qemu.conf', text % {'cert_dir': cert_dir})

    def test_parser_reads_numbers_and_strings_and_skips_the_rest(self):
        values = readiness.parse_libvirt_conf(
            GOOD_QEMU % {'cert_dir': '/x'} + 'listen_addr = "0.0.0.0"\n')
        self.assertEqual({'user': 'libvirt-qemu', 'listen_addr': '0.0.0.0',
                          'migrate_tls_x509_cert_dir': '/x',
                          'migrate_tls_force': 1}, values)

    def test_forced_tls_with_secmig_directory_succeeds(self):
        cert_dir = self.host.cert_dir
        self.assertResult(Code.SUCCESS, 'TLS forced',
                          readiness.check_qemu(self.qemu(GOOD_QEMU, cert_dir),
                                               cert_dir))

    def test_default_directory_is_etc_pki_qemu(self):
        text = ''.join(line + '\n' for line in GOOD_QEMU.splitlines()
                       if not line.startswith('migrate_tls_x509_cert_dir'))
        path = self.qemu(text)
        self.assertResult(Code.SUCCESS, 'from /etc/pki/qemu',
                          readiness.check_qemu(path, '/etc/pki/qemu/'))
        self.assertResult(Code.FAILURE, 'secmig\'s [pki] cert_dir is /srv',
                          readiness.check_qemu(path, '/srv'))

    def test_tls_not_forced_fails(self):
        text = GOOD_QEMU.replace('migrate_tls_force = 1',
                                 '#migrate_tls_force = 1')
        result = readiness.check_qemu(self.qemu(text), '/etc/pki/qemu')
        self.assertResult(Code.FAILURE, 'migrate_tls_force is not 1', result)
        self.assertIn('set migrate_tls_force = 1', result.details)

    def test_peer_verification_off_fails(self):
        text = GOOD_QEMU.replace('#migrate_tls_x509_verify',
                                 'migrate_tls_x509_verify')
        self.assertResult(Code.FAILURE, 'does not verify the peer',
                          readiness.check_qemu(self.qemu(text),
                                               '/etc/pki/qemu'))

    def test_libvirtd_listen_settings(self):
        qemu = self.qemu(GOOD_QEMU)
        self.assertResult(Code.SUCCESS, 'TLS forced', readiness.check_qemu(
            qemu, '/etc/pki/qemu', self.write('libvirtd.conf', '# all '
                                              'defaults\n')))
        self.assertResult(Code.FAILURE, 'listen_tls = 0', readiness.check_qemu(
            qemu, '/etc/pki/qemu', self.write('libvirtd.conf',
                                              'listen_tls = 0\n')))
        result = readiness.check_qemu(
            qemu, '/etc/pki/qemu', self.write('libvirtd.conf',
                                              'listen_tcp = 1\n'))
        self.assertResult(Code.FAILURE, 'plain TCP', result)
        self.assertIn('set listen_tcp = 0', result.details)

    def test_missing_qemu_conf_fails(self):
        self.assertResult(Code.FAILURE, 'cannot read', readiness.check_qemu(
            os.path.join(self.dir, 'qemu.conf'), '/etc/pki/qemu'))


class TestPolicyAndAudit(Base):

    def test_valid_policy_reports_its_digest(self):
        digest = loader.load(POLICY).digest
        self.assertTrue(digest)
        self.assertResult(Code.SUCCESS, 'valid, digest %s' % digest,
                          readiness.check_policy(POLICY))

    def test_invalid_and_missing_policy_fail(self):
        path = self.write('policy.yaml', 'version: 1\nrules:\n  x: [\n')
        self.assertResult(Code.FAILURE, '(policy_syntax)',
                          readiness.check_policy(path))
        path = self.write('policy.yaml', 'version: 7\n')
        self.assertResult(Code.FAILURE, '(policy_invalid)',
                          readiness.check_policy(path))
        result = readiness.check_policy(os.path.join(self.dir, 'none.yaml'))
        self.assertResult(Code.FAILURE, '(policy_missing)', result)
        self.assertIn('migration-policy.yaml.sample', result.details)

    def journal(self):
        path = os.path.join(self.dir, 'audit', 'journal.jsonl')
        signer = signing.HostSigner.from_cert_dir(self.host.cert_dir)
        j = journal.Journal(path, signer, fsync='record')
        audit = trail.AuditTrail(j)
        for _ in range(3):
            audit.record('requested', str(uuid.uuid4()), str(uuid.uuid4()),
                         'success')
        j.close()
        return path

    def test_no_journal_yet_succeeds(self):
        self.assertResult(Code.SUCCESS, 'no journal yet',
                          readiness.check_audit(os.path.join(
                              self.dir, 'audit', 'journal.jsonl')))

    def test_intact_journal_succeeds_and_edited_one_fails(self):
        path = self.journal()
        self.assertResult(Code.SUCCESS, 'the journal is intact: 7 records',
                          readiness.check_audit(path, self.pki.trust()))
        with open(path, 'rb') as f:
            raw = f.readlines()
        raw[1] = raw[1].replace(b'"success"', b'"failure"', 1)
        with open(path, 'wb') as f:
            f.writelines(raw)
        result = readiness.check_audit(path, self.pki.trust())
        self.assertResult(Code.FAILURE, '(edited, record 2)', result)
        self.assertIn('secmig audit verify', result.details)
        self.assertIn('secmig audit recover', result.details)

    def test_another_hosts_journal_fails(self):
        path = self.journal()
        self.assertResult(Code.SUCCESS, 'intact', readiness.check_audit(
            path, self.pki.trust(), host='cmp1'))
        result = readiness.check_audit(path, self.pki.trust(),
                                       host='cmp9')
        self.assertResult(Code.FAILURE, '(wrong_host', result)


CHRONY = """Reference ID    : C0A80001 (ntp.example.org)
Stratum         : 3
Ref time (UTC)  : Thu Jan 04 10:12:03 2024
System time     : %s seconds %s of NTP time
Last offset     : +0.000012345 seconds
RMS offset      : 0.000034567 seconds
Leap status     : %s
"""


class TestClock(unittest.TestCase):

    def test_chronyc_output_is_parsed(self):
        reading = readiness.parse_chronyc_tracking(
            CHRONY % ('0.000123456', 'slow', 'Normal'))
        self.assertEqual(('chronyc tracking', True, -0.000123456),
                         (reading.source, reading.synchronised,
                          reading.offset))
        reading = readiness.parse_chronyc_tracking(
            CHRONY % ('3.5', 'fast', 'Not synchronised'))
        self.assertFalse(reading.synchronised)
        self.assertEqual(3.5, reading.offset)
        self.assertIsNone(readiness.parse_chronyc_tracking('506 Cannot '
                                                           'talk to daemon'))

    def test_timedatectl_output_is_parsed(self):
        self.assertTrue(readiness.parse_timedatectl_show(
            'Timezone=UTC\nNTP=yes\nNTPSynchronized=yes\n').synchronised)
        self.assertFalse(readiness.parse_timedatectl_show(
            'NTPSynchronized=no\n').synchronised)
        self.assertIsNone(readiness.parse_timedatectl_show(''))

    def test_verdicts_against_the_skew_bound(self):
        reading = readiness.ClockReading
        self.assertResult(Code.SUCCESS, '0.001000 s off (bound 30 s)',
                          readiness.check_clock(30, reading('c', True,
                                                            0.001)))
        self.assertResult(Code.FAILURE, '-16.000 s off',
                          readiness.check_clock(30, reading('c', True, -16)))
        self.assertResult(Code.WARNING, 'not synchronised',
                          readiness.check_clock(30, reading('c', False, 0)))
        self.assertResult(Code.SUCCESS, 'synchronised',
                          readiness.check_clock(30, reading('t', True)))
        self.assertResult(Code.WARNING, 'cannot tell',
                          readiness.check_clock(30, None))

    def assertResult(self, code, text, result):
        self.assertEqual(code, result.code, result.details)
        self.assertIn(text, result.details)

    def test_first_answering_source_is_used(self):
        # Stand-ins for chronyc: /bin/sh printing chronyc's output, and a
        # program that is not installed.
        sources = (
            (('secmig-no-such-program', 'tracking'),
             readiness.parse_chronyc_tracking),
            (('sh', '-c', 'exit 1'), readiness.parse_chronyc_tracking),
            (('sh', '-c', 'printf "%s"' % (CHRONY % ('0.5', 'fast',
                                                     'Normal'))),
             readiness.parse_chronyc_tracking))
        reading = readiness.read_clock(sources)
        self.assertEqual(0.5, reading.offset)
        self.assertIsNone(readiness.read_clock(sources[:2]))


class TestCommand(Base):
    """The console script, through main() as the entry point calls it.

    The host systemd runs is a temporary root (its /run/systemd/system,
    no /etc/default/libvirtd, no libvirtd running); ``--systemd-dir``
    enables libvirtd's socket units as Debian 12 does, and its TLS socket.
    """

    #: Debian 12's libvirtd units, enabled by libvirt-daemon-system.
    DEBIAN_UNITS = ('libvirtd.socket', 'libvirtd-ro.socket',
                    'libvirtd-admin.socket')

    def setUp(self):
        super().setUp()
        root = os.path.join(self.dir, 'root')
        os.makedirs(os.path.join(root, 'run', 'systemd', 'system'))
        patcher = mock.patch.object(readiness, 'HOST_ROOT', root)
        patcher.start()
        self.addCleanup(patcher.stop)

    def enable(self, *units):
        wants = os.path.join(self.dir, 'sockets.target.wants')
        os.makedirs(wants, exist_ok=True)
        for unit in units:
            os.symlink('/lib/systemd/system/' + unit,
                       os.path.join(wants, unit))

    def compute_files(self, nova=GOOD_NOVA, libvirt=True):
        cert_dir = self.copy_cert_dir(self.host)
        self.libvirt = os.path.join(self.dir, 'etc-pki')
        if libvirt:
            host_files.install(cert_dir, self.host.cert_pem,
                               self.pki.ca_cert_pem, self.pki.crl_pem,
                               libvirt_pki_dir=self.libvirt)
        with open(self.secmig_conf, 'w') as f:
            f.write('[pki]\ncert_dir = %s\n[policy]\npolicy_file = %s\n'
                    '[audit]\njournal_path = %s\n'
                    % (cert_dir, POLICY,
                       os.path.join(self.dir, 'audit', 'journal.jsonl')))
        return (self.write('nova.conf', nova % {
            'secmig_conf': self.secmig_conf}),
            self.write('qemu.conf', GOOD_QEMU % {'cert_dir': cert_dir}))

    def compute_args(self, nova, qemu, *extra, tls_socket=True):
        self.enable(*self.DEBIAN_UNITS
                    + (('libvirtd-tls.socket',) if tls_socket else ()))
        return ('--nova-config', nova, '--qemu-config', qemu,
                '--libvirtd-config', self.write('libvirtd.conf',
                                                'listen_tls = 1\n'),
                '--libvirt-pki-dir', self.libvirt,
                '--systemd-dir', self.dir,
                '--service-user', getpass.getuser()) + extra

    def run_main(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = status.main(['--config-file', self.secmig_conf] + list(args)
                             + ['upgrade', 'check', '--json'])
        report = json.loads(out.getvalue())
        results = {c['check']: c for c in report['checks']}
        self.assertEqual(max(c['result'] for c in report['checks']), rc)
        return rc, results

    def test_good_compute_host(self):
        nova, qemu = self.compute_files()
        rc, results = self.run_main(*self.compute_args(nova, qemu))
        self.assertEqual(['secmig configuration', 'Host certificates',
                          'libvirtd certificates', 'Nova configuration',
                          'libvirt and QEMU TLS', 'libvirtd TLS listener',
                          'Migration policy', 'Audit journal',
                          'Service user access', 'Clock synchronisation'],
                         list(results))
        for name in list(results)[:-1]:
            self.assertEqual(Code.SUCCESS, results[name]['result'],
                             results[name]['details'])
        # the host name came from nova.conf's [DEFAULT] host
        self.assertIn('certificate of cmp1',
                      results['Host certificates']['details'])
        self.assertIn(loader.load(POLICY).digest,
                      results['Migration policy']['details'])

    def test_qemu_layout_alone_is_not_ready(self):
        nova, qemu = self.compute_files(libvirt=False)
        rc, results = self.run_main(*self.compute_args(nova, qemu))
        self.assertEqual(Code.FAILURE, rc)
        result = results['libvirtd certificates']
        self.assertEqual(Code.FAILURE, result['result'])
        self.assertIn("libvirtd's TLS lacks %s/CA/cacert.pem" % self.libvirt,
                      result['details'])
        self.assertEqual(Code.SUCCESS,
                         results['Host certificates']['result'])

    def test_libvirtd_listening_on_plain_tcp_fails(self):
        nova, qemu = self.compute_files()
        args = self.compute_args(nova, qemu)
        conf = self.write('libvirtd.conf', 'listen_tls = 1\nlisten_tcp = 1\n')
        rc, results = self.run_main(*args)
        self.assertEqual(Code.FAILURE, rc)
        self.assertIn('%s: listen_tcp = 1' % conf,
                      results['libvirtd TLS listener']['details'])

    def test_socket_activated_libvirtd_without_tls_socket_fails(self):
        # Debian 12's default: nothing listens on port 16514, whatever
        # libvirtd.conf says.
        nova, qemu = self.compute_files()
        rc, results = self.run_main(*self.compute_args(nova, qemu,
                                                       tls_socket=False))
        self.assertEqual(Code.FAILURE, rc)
        result = results['libvirtd TLS listener']
        self.assertEqual(Code.FAILURE, result['result'])
        self.assertIn('libvirtd-tls.socket is not enabled', result['details'])
        self.assertIn('Remedy: systemctl enable --now libvirtd-tls.socket',
                      result['details'])

    def test_unparsable_secmig_conf_is_named_without_traceback(self):
        with open(self.secmig_conf, 'w') as f:
            f.write('[pki\ncert_dir = /etc/pki/qemu\n')
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = status.main(['--config-file', self.secmig_conf, 'upgrade',
                              'check'])
        self.assertEqual(Code.FAILURE, rc)
        self.assertIn('secmig-status: error: Failed to parse %s'
                      % self.secmig_conf, err.getvalue())
        self.assertIn('Invalid section', err.getvalue())
        self.assertNotIn('Traceback', err.getvalue())

    def test_missing_secmig_conf_is_named(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = status.main(['--config-file', os.path.join(
                self.dir, 'none.conf'), 'upgrade', 'check'])
        self.assertEqual(Code.FAILURE, rc)
        self.assertIn('none.conf', err.getvalue())
        self.assertIn('Remedy:', err.getvalue())

    def test_bad_value_in_secmig_conf_fails_every_check_it_touches(self):
        nova, qemu = self.compute_files()
        with open(self.secmig_conf, 'a') as f:
            f.write('expiry_margin = soon\n'.join(['[pki]\n', '']))
        rc, results = self.run_main(*self.compute_args(nova, qemu))
        self.assertEqual(Code.FAILURE, rc)
        config = results['secmig configuration']
        self.assertEqual(Code.FAILURE, config['result'])
        self.assertIn("[pki] expiry_margin is not a valid value: invalid "
                      "literal for int() with base 10: 'soon'",
                      config['details'])
        self.assertIn('correct the value in %s' % self.secmig_conf,
                      config['details'])
        certs = results['Host certificates']
        self.assertEqual(Code.FAILURE, certs['result'])
        self.assertIn('secmig configuration: not a valid value',
                      certs['details'])
        self.assertEqual(Code.SUCCESS, results['Migration policy']['result'])

    def test_unreadable_host_key_is_named(self):
        nova, qemu = self.compute_files()
        with open(self.secmig_conf) as f:
            cert_dir = f.read().split('cert_dir = ')[1].split('\n')[0]
        key = os.path.join(cert_dir, host_files.SERVER_KEY)
        os.unlink(key)
        os.mkdir(key, 0o700)   # unreadable as a file, even by root
        rc, results = self.run_main(*self.compute_args(nova, qemu))
        self.assertEqual(Code.FAILURE, rc)
        details = results['Host certificates']['details']
        self.assertIn('cannot read host key %s' % key, details)
        self.assertIn('Remedy: run this check as root', details)

    def test_bad_compute_host_fails(self):
        nova, qemu = self.compute_files(
            GOOD_NOVA.replace('scheme = tls', 'scheme = tcp'))
        rc, results = self.run_main('--nova-config', nova,
                                    '--qemu-config', qemu, '--host', 'cmp7')
        self.assertEqual(Code.FAILURE, rc)
        self.assertEqual(Code.FAILURE,
                         results['Nova configuration']['result'])
        self.assertIn('OSSN-0089', results['Nova configuration']['details'])
        self.assertIn('(wrong_host)',
                      results['Host certificates']['details'])
        self.assertEqual(Code.SUCCESS,
                         results['libvirt and QEMU TLS']['result'])

    def test_scheduler_host(self):
        cert_dir = os.path.join(self.dir, 'sched')
        os.mkdir(cert_dir)
        for name in (host_files.CA_CERT, host_files.CA_CRL):
            shutil.copy(os.path.join(self.pki.ca_dir, name), cert_dir)
        with open(self.secmig_conf, 'w') as f:
            f.write('[pki]\ncert_dir = %s\n[policy]\npolicy_file = %s\n'
                    % (cert_dir, POLICY))
        nova = self.write('nova.conf', (
            '[filter_scheduler]\navailable_filters = %s\n'
            'enabled_filters = SecureMigrationFilter\n[secmig]\n'
            'config_file = %s\n' % (readiness.SCHEDULER_FILTER,
                                    self.secmig_conf)))
        rc, results = self.run_main('--role', 'scheduler',
                                    '--nova-config', nova)
        for name in list(results)[:-1]:
            self.assertEqual(Code.SUCCESS, results[name]['result'],
                             results[name]['details'])
        self.assertIn('not a compute host',
                      results['libvirt and QEMU TLS']['details'])
