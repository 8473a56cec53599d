"""Misconfigured compute hosts: they refuse, say why, and keep their guests.

Given a guest on cmp1 and one on cmp2, when cmp2 is configured for
plaintext migration, has a secmig.conf that does not parse, or a host key
its nova-compute cannot read, then nova-compute still runs and its guest
keeps running, every live migration to or from cmp2 is refused before
anything moves with the reason in Nova's answer, and the readiness check
names the problem; a host as the guide sets it up is ready.
"""

import json
import os
import re
import subprocess

from tests.cloud import base

SECMIG_CONF = '/etc/secmig/secmig.conf'
HOST_KEY = '/etc/pki/qemu/server-key.pem'


class MisconfiguredHostTest(base.CloudTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.on_cmp1 = cls.boot('to-cmp2', 'cmp1')
        cls.on_cmp2 = cls.boot('on-cmp2', 'cmp2')

    def assertRefused(self, server, dest, code, reason_part):
        """A forced move of ``server`` to ``dest``, refused with its reason."""
        source = self.host_of(server['id'])
        before = len(self.migrations(server['id']))
        ticks = self.ticks(server['id'])
        with self.assertRaises(base.api.ApiError) as cm:
            self.live_migrate(server['id'], host=dest, force=True)
        self.assertEqual(400, cm.exception.status, cm.exception.text)
        message = json.loads(cm.exception.text)['badRequest']['message']
        self.assertIn('(%s)' % code, message)
        self.assertIn(reason_part, message)
        self.assertEqual('error',
                         self.wait_migration(server['id'], before)['status'])
        self.wait_active(server['id'])
        self.assertEqual(source, self.host_of(server['id']))
        self.assertGuestRuns(source, server, ticks)

    def assertGuestRuns(self, host, server, ticks):
        self.assertEqual('running', self.domain_state(host, server))
        base.wait(lambda: self.ticks(server['id']) > ticks,
                  'the guest on %s to keep counting' % host, 60)

    def readiness(self, host):
        """``secmig-status upgrade check`` on a host: (status, output)."""
        cmd = self.hosts[host].enter([
            os.path.join(self.cloud['venv'], 'bin', 'secmig-status'),
            '--config-file', SECMIG_CONF,
            '--nova-config', '/etc/nova/nova.conf',
            '--qemu-config', '/etc/libvirt/qemu.conf',
            '--libvirtd-config', '/etc/libvirt/libvirtd.conf',
            'upgrade', 'check'])
        result = subprocess.run(cmd, capture_output=True, text=True,
                                timeout=120)
        return result.returncode, ' '.join(
            (result.stdout + result.stderr).split())

    def test_a_host_set_up_as_the_guide_says_is_ready(self):
        # cmp1 is never misconfigured here: every check must pass on it,
        # or an operator following doc/nova.rst would be told otherwise.
        status, out = self.readiness('cmp1')
        self.assertNotIn('Failure', out)
        # One clock serves every host of this cloud, and no time service
        # runs here to say it is synchronised: that check alone may warn.
        warnings = re.findall(r'Check: ([^|]+?) \| \| Result: Warning', out)
        self.assertIn(warnings, ([], ['Clock synchronisation']), out)
        self.assertEqual(1 if warnings else 0, status, out)

    def test_plaintext_host_refuses(self):
        path = '/etc/nova/nova.conf'
        with open(self.hosts['cmp2'].path(path)) as f:
            conf = f.read()
        # Cleanups run last first: the file is restored, then read.
        self.addCleanup(self.restart_compute, 'cmp2')
        self.replace_file('cmp2', path, conf.replace(
            'live_migration_with_native_tls = true',
            'live_migration_with_native_tls = false').replace(
            'live_migration_scheme = tls', 'live_migration_scheme = tcp'),
            self.addCleanup)
        self.restart_compute('cmp2')
        self.assertGuestRuns('cmp2', self.on_cmp2, 0)

        self.assertRefused(self.on_cmp1, 'cmp2', 'plaintext_migration',
                           'QEMU native TLS is off')
        self.assertRefused(self.on_cmp2, 'cmp1', 'plaintext_migration',
                           'QEMU native TLS is off')

    def test_broken_secmig_conf(self):
        self.addCleanup(self.restart_compute, 'cmp2')
        self.replace_file('cmp2', SECMIG_CONF,
                          '[pki]\ncert_dir = /etc/pki/qemu\n'
                          '[audit\njournal_path = nowhere\n',
                          self.addCleanup)
        self.restart_compute('cmp2')
        # nova-compute started; its guest runs on.
        self.assertGuestRuns('cmp2', self.on_cmp2, 0)

        self.assertRefused(self.on_cmp1, 'cmp2', 'secmig_unavailable',
                           SECMIG_CONF)
        self.assertRefused(self.on_cmp2, 'cmp1', 'secmig_unavailable',
                           SECMIG_CONF)
        status, out = self.readiness('cmp2')
        self.assertNotEqual(0, status, out)
        self.assertIn(SECMIG_CONF, out)
        self.assertIn('parse', out.lower())

    def test_unreadable_host_key(self):
        if self.cloud['compute_user'] != 'nova':
            self.skipTest('nova-compute runs as root on this machine: the '
                          'key is readable whatever its mode')
        key = self.hosts['cmp2'].path(HOST_KEY)
        stat = os.stat(key)
        self.addCleanup(os.chown, key, stat.st_uid, stat.st_gid)
        self.addCleanup(os.chmod, key, stat.st_mode & 0o7777)
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)

        # Read on each migration: no restart needed, none made.
        self.assertRefused(self.on_cmp1, 'cmp2', 'host_identity_unavailable',
                           'Permission denied')
        self.assertGuestRuns('cmp2', self.on_cmp2, 0)
        status, out = self.readiness('cmp2')
        self.assertNotEqual(0, status, out)
        self.assertIn('nova cannot read', out)
        self.assertIn(HOST_KEY, out)
