"""The operator's documents: they render, and their examples work.

The README renders without errors (it is the operator's first page);
the compute host guide, doc/nova.rst, gives each configuration file as a
literal block after a line naming the file, which the readiness checks
accept, and a PKI table that is what ``secmig pki install`` writes.
"""

import io
import os
import re
import stat
import tempfile
import unittest

from docutils import core
from oslo_upgradecheck.upgradecheck import Code

from secmig import conf as secmig_conf
from secmig.pki import host
from secmig.policy import loader
from secmig import readiness
from tests import pkiutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class ReadmeTest(unittest.TestCase):

    def test_readme_is_valid_restructuredtext(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            source = f.read()
        errors = io.StringIO()
        core.publish_doctree(source, settings_overrides={
            'warning_stream': errors, 'report_level': 2, 'halt_level': 5})
        self.assertEqual('', errors.getvalue())

    def test_readme_gives_the_ci_test_command(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            readme = f.read()
        with open(os.path.join(ROOT, '.ci', 'run')) as f:
            ci = f.read()
        self.assertIn('    tools/run-tests.sh\n', readme)
        self.assertIn('exec tools/run-tests.sh\n', ci)


class ReadmePolicyTest(unittest.TestCase):

    def test_the_readme_policy_example_is_valid(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            text = f.read()
        start = text.index('      version: 1\n')
        block = []
        for line in text[start:].splitlines():
            if line and not line.startswith('      '):
                break
            block.append(line[6:])
        policy = loader.loads('\n'.join(block), 'README.rst')
        self.assertEqual(500, policy.transport.max_bandwidth_mib)
        self.assertEqual(900, policy.cooldown.seconds)


def config_blocks(text):
    """The configuration files of a guide, as literal blocks.

    A file is given by a line ````/path/to/file``::`` (the path in
    double back-quotes), a blank line, then its lines indented by four
    spaces. Returns ``[(path, block)]`` in the order given.
    """
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r'^``(/[^`\s]+)``::$', line)
        if not match:
            continue
        block = []
        for body in lines[i + 1:]:
            if body and not body.startswith('    '):
                break
            block.append(body[4:])
        blocks.append((match.group(1),
                       '\n'.join(block).strip('\n') + '\n'))
    return blocks


class NovaGuideTest(unittest.TestCase):
    """doc/nova.rst, the compute host guide: its files and its table."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ROOT, 'doc', 'nova.rst')) as f:
            cls.text = f.read()
        cls.blocks = dict(config_blocks(cls.text))

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def assertSuccess(self, result):
        self.assertEqual(Code.SUCCESS, result.code, result.details)

    def test_is_valid_restructuredtext(self):
        errors = io.StringIO()
        core.publish_doctree(self.text, settings_overrides={
            'warning_stream': errors, 'report_level': 2, 'halt_level': 5})
        self.assertEqual('', errors.getvalue())

    def test_gives_every_file_once_in_the_exact_form(self):
        paths = [path for path, _ in config_blocks(self.text)]
        self.assertEqual(['/etc/libvirt/libvirtd.conf',
                          '/etc/libvirt/qemu.conf', '/etc/nova/nova.conf',
                          '/etc/secmig/secmig.conf'], paths)
        for path in paths:
            self.assertIn('\n``%s``::\n\n    ' % path, self.text)
        self.assertEqual(
            'listen_tls = 1\nlisten_tcp = 0\nlisten_addr = "192.0.2.11"\n'
            'crl_file = "/etc/pki/CA/cacrl.pem"\n',
            self.blocks['/etc/libvirt/libvirtd.conf'])

    def test_libvirt_files_pass_the_readiness_checks(self):
        qemu = readiness.parse_libvirt_conf(
            self.blocks['/etc/libvirt/qemu.conf'])
        self.assertEqual({'migrate_tls_x509_cert_dir': '/etc/pki/qemu',
                          'migrate_tls_x509_verify': 1,
                          'migrate_tls_force': 1,
                          'migration_address': '192.0.2.11'}, qemu)
        self.assertSuccess(readiness.check_qemu(
            self.write('qemu.conf', self.blocks['/etc/libvirt/qemu.conf']),
            '/etc/pki/qemu'))
        libvirtd = self.write('libvirtd.conf',
                              self.blocks['/etc/libvirt/libvirtd.conf'])
        # The guide's libvirtd.conf counts where libvirtd runs with
        # --listen (section 4); socket activation ignores it.
        os.makedirs(os.path.join(self.tmp, 'root', 'etc', 'default'))
        self.write('root/etc/default/libvirtd', 'LIBVIRTD_ARGS="--listen"\n')
        self.assertSuccess(readiness.check_libvirtd_listener(
            libvirtd, root=os.path.join(self.tmp, 'root')))
        self.assertEqual(
            '/etc/pki/CA/cacrl.pem',
            readiness.libvirtd_tls_files(
                '/etc/pki', readiness.parse_libvirt_conf(
                    self.blocks['/etc/libvirt/libvirtd.conf']))['crl'])

    def test_nova_and_secmig_files_pass_the_readiness_checks(self):
        secmig = self.write('secmig.conf',
                            self.blocks['/etc/secmig/secmig.conf'])
        conf = secmig_conf.new_conf(default_config_files=[secmig])
        self.assertEqual('/etc/pki/qemu', conf.pki.cert_dir)
        self.assertTrue(conf.pki.require_crl)
        self.assertEqual('/var/lib/secmig/audit/journal.jsonl',
                         conf.audit.journal_path)
        self.assertEqual('/etc/secmig/migration-policy.yaml',
                         conf.policy.policy_file)
        nova_text = self.blocks['/etc/nova/nova.conf']
        self.assertIn('config_file = /etc/secmig/secmig.conf\n', nova_text)
        nova = self.write('nova.conf', nova_text.replace(
            '/etc/secmig/secmig.conf', secmig))
        self.assertSuccess(readiness.check_nova_libvirt(nova))
        sections = readiness.read_ini(nova)
        self.assertEqual('cmp1.example.org', readiness.ini_value(
            sections, 'libvirt', 'live_migration_inbound_addr'))
        self.assertEqual('cmp1', readiness.nova_host(sections, 'x'))

    def test_pki_table_is_what_secmig_pki_install_writes(self):
        rows = {}
        for line in self.text.splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0].startswith('/etc/pki/'):
                rows[fields[0]] = (fields[1], fields[2], int(fields[3], 8))
        pki = pkiutil.TestPKI(os.path.join(self.tmp, 'ca-side'))
        identity = pki.enroll('cmp1')
        qemu = os.path.join(self.tmp, 'qemu')
        os.rename(identity.cert_dir, qemu)
        os.chmod(qemu, 0o755)
        libvirt = os.path.join(self.tmp, 'pki')
        done = host.install(qemu, identity.cert_pem, pki.ca_cert_pem,
                            pki.crl_pem, libvirt_pki_dir=libvirt,
                            key_gid=os.getgid())
        written = {f.path: f.mode for f in done.files}
        self.assertEqual(16, len(rows))
        for path, (owner, group, mode) in rows.items():
            local = path.replace('/etc/pki/qemu', qemu).replace(
                '/etc/pki', libvirt).rstrip('/')
            self.assertEqual(mode, stat.S_IMODE(os.stat(local).st_mode),
                             path)
            self.assertEqual(host.DEFAULT_OWNER, owner, path)
            if not path.endswith('/'):
                self.assertEqual(mode, written[local], path)
                self.assertEqual(
                    host.DEFAULT_KEY_GROUP if mode == 0o640 else 'root',
                    group, path)
