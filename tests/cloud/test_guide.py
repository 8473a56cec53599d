"""The cloud's enrolled compute hosts are set up as doc/nova.rst says.

``tools/cloud/cloud.py up`` sets up each compute host (a mount namespace
whose private files live under ``STATE/hosts/<host>/``) by following the
operator's guide. These tests read what it wrote on the enrolled hosts,
``cmp1`` and ``cmp2``, and compare it with the guide:

* each configuration file the guide gives as a literal block holds every
  setting of that block with the same value, once the example host's
  names and address (``cmp1.example.org``, ``192.0.2.11``, ``cmp1``) are
  replaced by the host's (its name as enrolled, and its address);
* every path of the guide's PKI table has the owner, group and mode the
  table gives, and secmig.conf has those the guide gives it;
* the host's nova-compute runs as the guide's service user, with the
  group the guide adds that user to, inside the host.

A difference names the file, the setting and both values. The tests read
the running cloud and change nothing; without one they fail, saying how
to start it.
"""

import configparser
import grp
import os
import pwd
import re
import stat
import unittest

from secmig import readiness
from tests.cloud import base
from tests.unit.test_docs import config_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
#: The guide's example host: DNS name, migration address, host name
#: (replaced in this order: the DNS name contains the host name).
EXAMPLE = ('cmp1.example.org', '192.0.2.11', 'cmp1')
INI_FILES = ('/etc/nova/nova.conf', '/etc/secmig/secmig.conf')
LIBVIRT_FILES = ('/etc/libvirt/libvirtd.conf', '/etc/libvirt/qemu.conf')
#: Settings whose value belongs to each deployment: the guide's value is
#: an example, so only their presence is checked. Keystone's URL, the
#: service user's password and the region's name differ from cloud to
#: cloud; the user, project, domains and plugin are the guide's choice.
DEPLOYMENT_SPECIFIC = {
    ('/etc/secmig/secmig.conf', 'nova', 'auth_url'),
    ('/etc/secmig/secmig.conf', 'nova', 'password'),
    ('/etc/secmig/secmig.conf', 'nova', 'region_name'),
}
PROGRAM = 'secmig-nova-compute'
TABLE_ROW = re.compile(r'^(/\S+)\s+(\S+)\s+(\S+)\s+([0-7]{4})$')


def read_guide():
    with open(os.path.join(ROOT, 'doc', 'nova.rst')) as f:
        return f.read()


def pid_in(path):
    """The pid a pid file of the set-up names."""
    with open(path) as f:
        return int(f.read().split()[0])


def for_host(text, name, address):
    """The guide's example ``text`` with the host's names and address."""
    dns, example_address, example_name = EXAMPLE
    text = text.replace(dns, name).replace(example_address, address)
    return re.sub(r'\b%s\b' % re.escape(example_name), name, text)


def parse_ini(text):
    """``{(section, key): value}``; ``[DEFAULT]`` is a section like any."""
    parser = configparser.ConfigParser(
        strict=False, interpolation=None,
        default_section='\0 no default section')
    parser.read_string(text)
    return {(section, key): value.strip()
            for section in parser.sections()
            for key, value in parser.items(section)}


def parse_libvirt(text):
    return {(None, key): value
            for key, value in readiness.parse_libvirt_conf(text).items()}


def pki_table(guide):
    """``{path: (owner, group, mode)}`` from the guide's PKI table."""
    rows = {}
    for line in guide.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            path, owner, group, mode = match.groups()
            rows[path] = (owner, group, int(mode, 8))
    return rows


def children(pid):
    found = []
    for task in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/children' % (pid, task)) as f:
                found += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return found


def descendants(pid):
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            todo += children(current)
        except FileNotFoundError:
            pass
    return found


def runs_program(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().decode(errors='replace').split('\0')
    except FileNotFoundError:
        return False
    return any(os.path.basename(arg) == PROGRAM for arg in argv)


def status(pid):
    """``(uids, gids, groups)`` of a process, as numbers."""
    fields = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            key, _, value = line.partition(':')
            fields[key] = [int(v) for v in value.split()] if key in (
                'Uid', 'Gid', 'Groups') else value
    return fields['Uid'], fields['Gid'], fields['Groups']


class GuideMixin:
    """One compute host (``HOST``) against the guide."""

    HOST = None

    @classmethod
    def setUpClass(cls):
        cls.guide = read_guide()
        cls.blocks = dict(config_blocks(cls.guide))

    def setUp(self):
        cloud = base.driver.describe()
        hosts = {h['name']: h for h in cloud['hosts']}
        self.assertIn(self.HOST, hosts, 'cloud.json of %s has no host %s'
                      % (base.driver.STATE, self.HOST))
        self.host = hosts[self.HOST]

    def path(self, inside):
        """The file that ``inside`` (absolute, in the host) is."""
        return os.path.join(self.host['dir'], inside.lstrip('/'))

    def guide_says(self, pattern, what):
        match = re.search(pattern, self.guide)
        self.assertIsNotNone(match, 'doc/nova.rst no longer gives %s'
                             % what)
        return match.groups()

    def compare(self, path, parse):
        """Every setting of the guide's block for ``path`` is the host's."""
        self.assertIn(path, self.blocks, 'doc/nova.rst has no block for '
                      '%s' % path)
        wanted = parse(for_host(self.blocks[path], self.HOST,
                                self.host['address']))
        self.assertTrue(wanted, 'the guide\'s %s block is empty' % path)
        with open(self.path(path)) as f:
            present = parse(f.read())
        wrong = []
        for (section, key), value in sorted(wanted.items(), key=str):
            name = key if section is None else '[%s] %s' % (section, key)
            if (section, key) not in present:
                wrong.append('%s: %s: the guide gives %r, the host has '
                             'none' % (path, name, value))
            elif (path, section, key) in DEPLOYMENT_SPECIFIC:
                continue
            elif present[(section, key)] != value:
                wrong.append('%s: %s: the guide gives %r, the host has %r'
                             % (path, name, value, present[(section, key)]))
        self.assertEqual([], wrong, '%s differs from doc/nova.rst on %s'
                         % (self.HOST, path))

    def test_libvirtd_conf(self):
        self.compare('/etc/libvirt/libvirtd.conf', parse_libvirt)

    def test_qemu_conf(self):
        self.compare('/etc/libvirt/qemu.conf', parse_libvirt)

    def test_nova_conf(self):
        self.compare('/etc/nova/nova.conf', parse_ini)

    def test_secmig_conf(self):
        self.compare('/etc/secmig/secmig.conf', parse_ini)

    def test_the_guide_gives_these_files_only(self):
        self.assertEqual(sorted(LIBVIRT_FILES + INI_FILES),
                         sorted(self.blocks))

    def assertOwned(self, inside, owner, group, mode, wrong):
        try:
            st = os.stat(self.path(inside))
        except FileNotFoundError:
            wrong.append('%s: missing' % inside)
            return
        have = (pwd.getpwuid(st.st_uid).pw_name,
                grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode))
        if have != (owner, group, mode):
            wrong.append('%s: the guide gives %s:%s %04o, the host has '
                         '%s:%s %04o' % ((inside, owner, group, mode)
                                         + have))
        if inside.endswith('/') and not stat.S_ISDIR(st.st_mode):
            wrong.append('%s: not a directory' % inside)

    def test_pki_table(self):
        rows = pki_table(self.guide)
        for path in ('/etc/pki/qemu/server-key.pem',
                     '/etc/pki/libvirt/private/serverkey.pem',
                     '/var/lib/secmig/audit/'):
            self.assertIn(path, rows, 'the guide\'s table lost a row')
        wrong = []
        for path, (owner, group, mode) in sorted(rows.items()):
            self.assertOwned(path, owner, group, mode, wrong)
        self.assertEqual([], wrong, '%s differs from the PKI table of '
                         'doc/nova.rst' % self.HOST)

    def test_secmig_conf_is_readable_by_nova_only(self):
        # It holds the [nova] password.
        owner, group, mode = self.guide_says(
            r'make\s+``secmig.conf``\s+``(\w+):(\w+)``\s+(0[0-7]{3})',
            'secmig.conf\'s owner and mode')
        wrong = []
        self.assertOwned('/etc/secmig/secmig.conf', owner, group,
                         int(mode, 8), wrong)
        self.assertEqual([], wrong)

    def compute_processes(self):
        """The host's nova-compute processes, under their wrappers.

        The pid file holds the process the set-up started, which may be
        a wrapper (nsenter, runuser) whose command line names the
        program too: the service is each process under it that runs
        ``secmig-nova-compute`` and has no such process below it.
        """
        pidfile = os.path.join(base.driver.STATE,
                               'nova-compute-%s.pid' % self.HOST)
        pid = pid_in(pidfile)
        self.assertTrue(os.path.exists('/proc/%d' % pid),
                        'nova-compute of %s is not running (pid %d, from '
                        '%s)' % (self.HOST, pid, pidfile))
        tree = [p for p in descendants(pid) if runs_program(p)]
        service = [p for p in tree
                   if not any(runs_program(c) for c in children(p))]
        self.assertTrue(service, 'no %s process under pid %d (%s)'
                        % (PROGRAM, pid, pidfile))
        return service

    def test_nova_compute_runs_as_the_service_user(self):
        user, = self.guide_says(r'--service-user (\w+)',
                                'the service user')
        group, member = self.guide_says(r'usermod -a -G (\w+) (\w+)',
                                        'the service user\'s groups')
        self.assertEqual(user, member)
        account = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid
        holder = pid_in(os.path.join(base.driver.STATE,
                                     'host-%s.pid' % self.HOST))
        namespace = os.readlink('/proc/%d/ns/mnt' % holder)
        for pid in self.compute_processes():
            uids, gids, groups = status(pid)
            self.assertEqual([account.pw_uid] * 4, uids,
                             'nova-compute of %s (pid %d) runs as uids %s,'
                             ' the guide says %s' % (self.HOST, pid, uids,
                                                     user))
            self.assertEqual([account.pw_gid] * 4, gids, pid)
            self.assertIn(gid, groups, 'nova-compute of %s (pid %d) is '
                          'not in the group %s' % (self.HOST, pid, group))
            self.assertEqual(namespace,
                             os.readlink('/proc/%d/ns/mnt' % pid),
                             'nova-compute (pid %d) is not inside %s'
                             % (pid, self.HOST))


class Cmp1GuideTest(GuideMixin, unittest.TestCase):
    HOST = 'cmp1'


class Cmp2GuideTest(GuideMixin, unittest.TestCase):
    HOST = 'cmp2'


class SubstitutionTest(unittest.TestCase):
    """The example host's names become the host's, and nothing else."""

    def test_names_and_address(self):
        self.assertEqual(
            'host = cmp2\naddr = cmp2\nlisten = "127.0.0.12"\n'
            'cert = /etc/pki/cmp10.pem\n',
            for_host('host = cmp1\naddr = cmp1.example.org\n'
                     'listen = "192.0.2.11"\ncert = /etc/pki/cmp10.pem\n',
                     'cmp2', '127.0.0.12'))

    def test_a_missing_cloud_says_how_to_start_one(self):
        saved = base.driver.STATE
        base.driver.STATE = os.path.join(ROOT, 'no-such-cloud')
        try:
            with self.assertRaisesRegex(AssertionError,
                                        'tools/cloud/cloud.py up'):
                base.driver.describe()
        finally:
            base.driver.STATE = saved
