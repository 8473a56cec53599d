"""The devstack plugin: bashate-clean, and the files it renders.

devstack/plugin.sh runs in bash with tests/unit/devstack_stubs.sh in
place of devstack's functions (real INI editing, logged stubs for
services and processes). Enrollment runs the real ``secmig pki``
commands against a real CA in a temporary directory. The rendered
files are then judged by the readiness checks of ``secmig-status``.
"""

import getpass
import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

from oslo_config import cfg
from oslo_upgradecheck.upgradecheck import Code

from secmig import conf as secmig_conf
from secmig import readiness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STUBS = os.path.join(ROOT, 'tests', 'unit', 'devstack_stubs.sh')
SCRIPTS = [os.path.join(ROOT, 'devstack', name)
           for name in ('plugin.sh', 'settings', os.path.join('lib',
                                                              'secmig'))]
BIN = os.path.dirname(sys.executable)

# What devstack has written before the plugin's post-config phase.
DEVSTACK_NOVA = """[DEFAULT]
host = cmp1
compute_driver = libvirt.LibvirtDriver

[libvirt]
virt_type = qemu
live_migration_uri = qemu+ssh://stack@%s/system

[filter_scheduler]
enabled_filters = ComputeFilter, ImagePropertiesFilter
"""
QEMU = """# Master configuration file for the QEMU driver.
#migrate_tls_x509_cert_dir = "/etc/pki/qemu"
#migrate_tls_force = 0
migrate_tls_force = 0
user = "libvirt-qemu"
"""
LIBVIRTD = """#listen_tls = 0
#listen_tcp = 1
"""


def read_ini(path):
    sections = {}
    cfg.ConfigParser(path, sections).parse()
    return sections


class TestBashate(unittest.TestCase):

    def test_scripts_pass_bashate(self):
        done = subprocess.run(
            [os.path.join(BIN, 'bashate'), '-i', 'E006'] + SCRIPTS + [STUBS],
            capture_output=True, text=True)
        self.assertEqual(0, done.returncode, done.stdout + done.stderr)
        for path in SCRIPTS + [STUBS]:
            done = subprocess.run(['bash', '-n', path], capture_output=True,
                                  text=True)
            self.assertEqual(0, done.returncode, done.stderr)

    def test_readme_gives_the_enable_plugin_line(self):
        with open(os.path.join(ROOT, 'devstack', 'README.rst')) as f:
            self.assertIn('enable_plugin secmig https://', f.read())


class Node:
    """One devstack node's files under ``base/name``."""

    def __init__(self, base, name, services, ca_dir=None, ca_host=None,
                 host_cert_dir=None):
        self.dir = os.path.join(base, name)
        os.makedirs(os.path.join(self.dir, 'etc'))
        self.log = os.path.join(self.dir, 'stub.log')
        self.nova_conf = self.write('nova.conf', DEVSTACK_NOVA)
        self.qemu_conf = self.write('qemu.conf', QEMU)
        self.libvirtd_conf = self.write('libvirtd.conf', LIBVIRTD)
        self.conf_dir = os.path.join(self.dir, 'etc', 'secmig')
        self.cert_dir = os.path.join(self.dir, 'pki', 'qemu')
        self.ca_dir = ca_dir or os.path.join(self.conf_dir, 'ca')
        self.host_cert_dir = host_cert_dir or os.path.join(self.conf_dir,
                                                           'host-certs')
        self.env = dict(
            os.environ, PYTHON=sys.executable, STUB_LOG=self.log,
            DEST=self.dir, SECMIG_DIR=ROOT, ENABLED_SERVICES=services,
            HOST_IP='127.0.0.1', REGION_NAME='RegionOne',
            SERVICE_HOST=ca_host or '127.0.0.1',
            STACK_USER=getpass.getuser(), LIBVIRT_GROUP='libvirt',
            NOVA_CONF=self.nova_conf,
            NOVA_CPU_CONF=os.path.join(self.dir, 'nova-cpu.conf'),
            WATCHER_CONF=os.path.join(self.dir, 'watcher.conf'),
            SECMIG_CONF_DIR=self.conf_dir, SECMIG_CERT_DIR=self.cert_dir,
            SECMIG_CA_DIR=self.ca_dir, SECMIG_HOST_CERT_DIR=self.host_cert_dir,
            SECMIG_AUDIT_DIR=os.path.join(self.dir, 'audit'),
            SECMIG_HOST_NAME='cmp1', SECMIG_BIN_DIR=BIN,
            SECMIG_KEY_GROUP=grp.getgrgid(os.getgid()).gr_name,
            SECMIG_QEMU_CONF=self.qemu_conf,
            SECMIG_LIBVIRTD_CONF=self.libvirtd_conf,
            SECMIG_LIBVIRTD_DEFAULTS=os.path.join(self.dir, 'default'),
            SECMIG_LIBVIRT_PKI_DIR=os.path.join(self.dir, 'pki'))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def plugin(self, *phase):
        """Run devstack/plugin.sh as stack.sh does: source it with args."""
        script = ('set -o errexit\nsource "%s"\nsource "%s/devstack/settings"'
                  '\nsource "%s/devstack/plugin.sh" %s\n'
                  % (STUBS, ROOT, ROOT, ' '.join(phase)))
        done = subprocess.run(['bash', '-c', script], env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise AssertionError('plugin.sh %s failed:\n%s%s'
                                 % (' '.join(phase), done.stdout,
                                    done.stderr))
        return done.stdout

    def calls(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def secmig_conf(self):
        return secmig_conf.new_conf(default_config_files=[
            os.path.join(self.conf_dir, 'secmig.conf')])


class TestAllInOne(unittest.TestCase):
    """A single node: controller, scheduler, compute and Watcher."""

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-devstack-')
        cls.node = Node(cls.base, 'aio',
                        'key,n-api,n-cond,n-sch,n-cpu,watcher-api,'
                        'watcher-decision-engine')
        cls.first = cls.node.plugin('stack', 'post-config')
        cls.second = cls.node.plugin('stack', 'post-config')
        cls.node.plugin('stack', 'extra')
        cls.nova = read_ini(cls.node.nova_conf)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def test_filter_configured_exactly_once(self):
        scheduler = self.nova['filter_scheduler']
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          readiness.SCHEDULER_FILTER],
                         scheduler['available_filters'])
        self.assertEqual(['ComputeFilter,ImagePropertiesFilter,'
                          'SecureMigrationFilter'],
                         scheduler['enabled_filters'])
        result = readiness.check_nova_scheduler(self.node.nova_conf)
        self.assertEqual(Code.SUCCESS, result.code, result.details)

    def test_compute_uses_native_tls_over_a_tls_control_connection(self):
        libvirt = self.nova['libvirt']
        self.assertEqual(['True'], libvirt['live_migration_with_native_tls'])
        self.assertEqual(['tls'], libvirt['live_migration_scheme'])
        self.assertEqual(['False'], libvirt['live_migration_tunnelled'])
        self.assertNotIn('live_migration_uri', libvirt)
        self.assertEqual(['qemu'], libvirt['virt_type'])
        self.assertEqual([os.path.join(self.node.conf_dir, 'secmig.conf')],
                         self.nova['secmig']['config_file'])
        result = readiness.check_nova_libvirt(self.node.nova_conf)
        self.assertEqual(Code.SUCCESS, result.code, result.details)

    def test_host_enrolled_once_with_the_plugins_ca(self):
        result = readiness.check_certificates(self.node.cert_dir, 'cmp1',
                                              3600)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
        self.assertIn('secmig: cmp1 is already enrolled', self.second)
        self.assertNotIn('already enrolled', self.first)
        self.assertEqual(1, sum(c.startswith('add_user_to_group')
                                for c in self.node.calls()))
        with open(os.path.join(self.node.cert_dir, 'server-cert.pem')) as f:
            installed = f.read()
        with open(os.path.join(self.node.host_cert_dir, 'cmp1.pem')) as f:
            self.assertEqual(installed, f.read())
        client = os.path.join(self.node.dir, 'pki', 'libvirt',
                              'clientcert.pem')
        self.assertEqual(os.path.join(self.node.cert_dir, 'client-cert.pem'),
                         os.readlink(client))

    def test_compute_reads_aggregates_as_the_nova_service_user(self):
        # Without [nova], the sample policy's "destinations" rules would
        # refuse every migration.
        nova_api = read_ini(os.path.join(self.node.conf_dir,
                                         'secmig.conf'))['nova']
        self.assertEqual(['password'], nova_api['auth_type'])
        self.assertEqual(['nova'], nova_api['username'])
        self.assertEqual(['RegionOne'], nova_api['region_name'])
        self.assertEqual(0o640, stat.S_IMODE(os.stat(os.path.join(
            self.node.conf_dir, 'secmig.conf')).st_mode))

    def test_secmig_conf_policy_and_audit(self):
        conf = self.node.secmig_conf()
        self.assertEqual(self.node.cert_dir, conf.pki.cert_dir)
        self.assertEqual(self.node.host_cert_dir, conf.watcher.host_cert_dir)
        result = readiness.check_policy(conf.policy.policy_file)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
        result = readiness.check_audit(conf.audit.journal_path)
        self.assertEqual(Code.SUCCESS, result.code, result.details)

    def test_qemu_and_libvirtd_force_tls_with_secmig_certificates(self):
        result = readiness.check_qemu(self.node.qemu_conf,
                                      self.node.cert_dir,
                                      self.node.libvirtd_conf)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
        with open(self.node.qemu_conf) as f:
            lines = f.read().splitlines()
        self.assertEqual(['migrate_tls_force = 1'],
                         [ln for ln in lines
                          if ln.startswith('migrate_tls_force')])
        self.assertIn('#migrate_tls_force = 0', lines)
        with open(self.node.libvirtd_conf) as f:
            values = readiness.parse_libvirt_conf(f.read())
        self.assertEqual(os.path.join(self.node.cert_dir, 'server-key.pem'),
                         values['key_file'])
        self.assertEqual(1, values['listen_tls'])
        self.assertEqual(2, self.node.calls().count(
            'restart_service libvirtd'))

    def test_watcher_conf_points_the_strategy_at_secmig_conf(self):
        watcher = read_ini(self.node.env['WATCHER_CONF'])
        self.assertEqual([os.path.join(self.node.conf_dir, 'secmig.conf')],
                         watcher['watcher_strategies.secmig_hotspot']
                         ['config_file'])

    def test_extra_runs_n_cpu_as_secmig_nova_compute(self):
        calls = self.node.calls()
        self.assertIn('stop_process n-cpu', calls)
        self.assertEqual(
            'run_process n-cpu %s/secmig-nova-compute --config-file %s '
            'libvirt' % (BIN, self.node.env['NOVA_CPU_CONF']), calls[-1])


class TestMultiNode(unittest.TestCase):
    """A controller holding the CA and a compute enrolled over ssh."""

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-devstack-')
        cls.controller = Node(cls.base, 'controller',
                              'key,n-api,n-cond,n-sch')
        cls.controller.plugin('stack', 'post-config')
        cls.controller.plugin('stack', 'extra')
        cls.compute = Node(cls.base, 'compute', 'n-cpu',
                           ca_dir=cls.controller.ca_dir,
                           ca_host='controller.example.org',
                           host_cert_dir=cls.controller.host_cert_dir)
        cls.compute.plugin('stack', 'post-config')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def test_controller_has_filter_and_trust_but_no_compute_settings(self):
        nova = read_ini(self.controller.nova_conf)
        self.assertIn(readiness.SCHEDULER_FILTER,
                      nova['filter_scheduler']['available_filters'])
        self.assertNotIn('live_migration_scheme', nova['libvirt'])
        self.assertEqual(['ca-cert.pem', 'ca-crl.pem'],
                         sorted(os.listdir(self.controller.cert_dir)))
        result = readiness.check_ca(self.controller.cert_dir)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
        self.assertFalse(any(c.startswith('run_process')
                             for c in self.controller.calls()))
        self.assertNotIn('nova', read_ini(os.path.join(
            self.controller.conf_dir, 'secmig.conf')))

    def test_compute_enrolled_through_the_ca_host(self):
        ssh = [c for c in self.compute.calls() if c.startswith('ssh ')]
        self.assertTrue(any('controller.example.org' in c and 'token-create'
                            in c for c in ssh), ssh)
        self.assertFalse(os.path.exists(os.path.join(self.compute.conf_dir,
                                                     'ca')))
        result = readiness.check_certificates(self.compute.cert_dir, 'cmp1',
                                              3600)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
        self.assertTrue(os.path.exists(os.path.join(
            self.controller.host_cert_dir, 'cmp1.pem')))
        nova = read_ini(self.compute.nova_conf)
        self.assertNotIn('available_filters', nova['filter_scheduler'])
        result = readiness.check_nova_libvirt(self.compute.nova_conf)
        self.assertEqual(Code.SUCCESS, result.code, result.details)
