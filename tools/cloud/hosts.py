"""Compute hosts of the one-machine cloud: one mount and UTS namespace each.

A host is a containerised compute node with host networking: its own
hostname, its own /etc/libvirt, /etc/pki, /etc/nova, /etc/secmig,
/etc/hosts, /run and /var/lib/{libvirt,nova,secmig} (``host-ns.sh``),
its own virtlogd and libvirtd listening for TLS on its own loopback
address, and its own ``secmig-nova-compute`` running as ``nova``.
Inside, every path is the one doc/nova.rst gives an operator.
"""

import glob
import grp
import os
import pwd
import shutil
import subprocess
import uuid

import confs
import procs

HERE = os.path.dirname(os.path.abspath(__file__))


class ComputeHost:
    """One compute host; ``holder`` is the pid that holds its namespace."""

    def __init__(self, name, address, state, venv, enrollment):
        self.name = name
        self.address = address
        #: enrolled, unenrolled or revoked
        self.enrollment = enrollment
        self.state = state
        self.venv = venv
        self.dir = os.path.join(state, 'hosts', name)
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name + '.secmig'))

    # Paths and commands ---------------------------------------------

    def path(self, inside):
        """The file that ``inside`` (an absolute path in the host) is."""
        return os.path.join(self.dir, inside.lstrip('/'))

    @property
    def holder_pidfile(self):
        return os.path.join(self.state, 'host-%s.pid' % self.name)

    def holder(self):
        with open(self.holder_pidfile) as f:
            return int(f.read().split()[0])

    def enter(self, cmd, user=None):
        """``cmd`` as run inside this host (as ``user`` if given)."""
        prefix = ['nsenter', '--target', str(self.holder()), '--mount',
                  '--uts', '--']
        if user:
            prefix += ['runuser', '-u', user, '--']
        return prefix + list(cmd)

    def run(self, cmd, user=None, timeout=300, input=None):
        """Run ``cmd`` inside the host; returns its stdout (text)."""
        result = subprocess.run(self.enter(cmd, user), capture_output=True,
                                text=True, timeout=timeout, input=input)
        if result.returncode:
            raise procs.CloudError('%s: %s failed (exit %d): %s%s'
                                   % (self.name, ' '.join(cmd),
                                      result.returncode, result.stdout,
                                      result.stderr))
        return result.stdout

    def bin(self, name):
        return os.path.join(self.venv, 'bin', name)

    # Life cycle ------------------------------------------------------

    def create(self, all_hosts):
        """Lay out the host's directories and start its namespace."""
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        shutil.copytree('/etc/libvirt', self.path('/etc/libvirt'))
        shutil.copytree('/etc/sudoers.d', self.path('/etc/sudoers.d'))
        for d in ('/etc/pki/qemu', '/etc/nova', '/etc/secmig', '/run',
                  '/var/lib/libvirt', '/var/lib/nova/instances',
                  '/var/lib/nova/lock', '/var/lib/secmig/audit',
                  '/var/log/libvirt', '/var/cache/libvirt'):
            os.makedirs(self.path(d), exist_ok=True)
        with open(self.path('/hosts'), 'w') as f:
            f.write(confs.etc_hosts(all_hosts))
        service = procs.spawn(
            'host-%s' % self.name,
            ['unshare', '--mount', '--uts', '--propagation', 'private', '--',
             os.path.join(HERE, 'host-ns.sh'), self.name, self.dir],
            self.state)
        service.wait_for(lambda: self.run(['hostname']).strip() == self.name,
                         'its namespace', 30)

    def write(self, inside, text, mode=0o644, owner=None):
        path = self.path(inside)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, mode)
        if owner:
            shutil.chown(path, *owner)

    def configure(self, policy_text, user):
        """Write libvirtd.conf, qemu.conf, nova.conf and secmig.conf."""
        self.write('/etc/libvirt/libvirtd.conf', confs.libvirtd(self))
        self.write('/etc/libvirt/qemu.conf', confs.qemu(self))
        self.write('/etc/nova/nova.conf',
                   confs.nova_compute(self, self.venv, user),
                   0o640, ('root', 'nova'))
        self.write('/etc/secmig/secmig.conf', confs.secmig_compute(),
                   0o640, ('root', 'nova'))
        self.write('/etc/secmig/migration-policy.yaml', policy_text)
        if user:
            self._rootwrap(user)
        for d in ('/var/lib/nova', '/var/lib/nova/instances',
                  '/var/lib/nova/lock'):
            shutil.chown(self.path(d), 'nova', 'nova')
        for d in ('/var/lib/secmig', '/var/lib/secmig/audit'):
            shutil.chown(self.path(d), 'nova', 'nova')
            os.chmod(self.path(d), 0o750)

    def _rootwrap(self, user):
        """sudo and nova-rootwrap for nova-compute's privileged helpers."""
        shutil.copytree(os.path.join(self.venv, 'etc', 'nova', 'rootwrap.d'),
                        self.path('/etc/nova/rootwrap.d'), dirs_exist_ok=True)
        self.write('/etc/nova/rootwrap.conf', confs.rootwrap(self.venv))
        self.write('/etc/sudoers.d/nova-rootwrap',
                   '%s ALL=(root) NOPASSWD: %s/bin/nova-rootwrap '
                   '/etc/nova/rootwrap.conf *\n' % (user, self.venv), 0o440)

    def start_libvirt(self, listen=True):
        """virtlogd and libvirtd; with ``listen``, libvirtd's TLS port."""
        log = os.path.join(self.state, 'log', 'libvirtd-%s.log' % self.name)
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS='3:file:%s' % log)
        libvirtd = ['libvirtd', '-d'] + (['--listen'] if listen else [])
        for daemon in (['virtlogd', '-d'], libvirtd):
            subprocess.run(self.enter(daemon), check=True, env=env,
                           timeout=60)
        service = procs.Service('libvirtd-%s' % self.name,
                                self.libvirtd_pid(), log)
        if listen:
            service.wait_for(lambda: procs.port_open(self.address, 16514),
                             'libvirtd TLS listener on %s:16514'
                             % self.address, 60)
        else:
            service.wait_for(lambda: os.path.exists(
                self.path('/run/libvirt/libvirt-sock')), 'its socket', 60)

    def libvirtd_pid(self):
        with open(self.path('/run/libvirtd.pid')) as f:
            return int(f.read())

    def start_compute(self, user='nova'):
        """Start secmig-nova-compute (as ``user``); return its Service."""
        return procs.spawn(
            'nova-compute-%s' % self.name,
            self.enter([self.bin('secmig-nova-compute'), '--config-file',
                        '/etc/nova/nova.conf'], user=user),
            self.state)

    def stop_compute(self):
        procs.stop_pidfile(os.path.join(
            self.state, 'nova-compute-%s.pid' % self.name))

    def stop(self):
        """Stop the compute service, guests, libvirt and the namespace."""
        self.stop_compute()
        daemons = ('libvirtd', 'virtlogd', 'qemu-system-x86')
        qemu_pids = glob.glob(self.path('/run/libvirt/qemu/*.pid'))
        for pidfile in [self.path('/run/libvirtd.pid'),
                        self.path('/run/virtlogd.pid')] + qemu_pids:
            procs.stop_pidfile(pidfile, names=daemons, group=False)
        procs.stop_pidfile(self.holder_pidfile)


def service_user(venv):
    """``nova`` if that user can run the virtualenv's Python, else None.

    A virtualenv made from an interpreter under a private directory (a
    pyenv build in /root, say) cannot run as ``nova``; the compute
    services then run as root, and the set-up says so.
    """
    check = subprocess.run(['runuser', '-u', 'nova', '--',
                            os.path.join(venv, 'bin', 'python'), '-c', ''],
                           capture_output=True)
    return 'nova' if check.returncode == 0 else None


def ensure_accounts():
    """The users and groups a packaged compute host has.

    ``libvirt-qemu`` (group ``kvm``) runs QEMU; ``nova`` runs
    nova-compute, in groups ``libvirt`` (libvirtd's socket) and ``kvm``
    (QEMU's TLS key, which secmig signs its handshake with).
    """
    for group in ('kvm', 'libvirt', 'libvirt-qemu', 'nova'):
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(['groupadd', '--system', group], check=True)
    for user, group, extra in (('libvirt-qemu', 'kvm', 'libvirt-qemu'),
                               ('nova', 'nova', 'libvirt,kvm')):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(['useradd', '--system', '--no-create-home',
                            '--home-dir', '/var/lib/nova', '--shell',
                            '/usr/sbin/nologin', '-g', group, user],
                           check=True)
        subprocess.run(['usermod', '-a', '-G', extra, user], check=True)
