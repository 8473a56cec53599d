"""A compute host whose secmig is broken starts and refuses migrations.

nova-compute must start whatever secmig's state (its guests do not
depend on secmig): a secmig.conf that does not parse or holds a bad
value, a host key that cannot be read. Every live migration to or from
that host is then refused with the reason, and an ERROR log says why.
"""

import os
import shutil

from tests import auditutil
from tests.nova import test_live_migration


class BrokenSecmigTest(test_live_migration.SecmigFunctionalTest):

    #: host -> text appended to its secmig.conf
    BROKEN = {}

    def secmig_conf(self, host, **overrides):
        path = super().secmig_conf(host, **overrides)
        if host in self.BROKEN:
            with open(path, 'a') as f:
                f.write(self.BROKEN[host])
        return path

    def assertStarted(self, host):
        """The compute service of ``host`` runs and reports itself up."""
        services = self.admin_api.get_services(binary='nova-compute',
                                               host=host)
        self.assertEqual(['up'], [s['state'] for s in services])

    def assertLogged(self, text):
        errors = [line for line in self.stdlog.logger.output.splitlines()
                  if ' ERROR ' in line and text in line]
        self.assertNotEqual([], errors, text)


class UnparsableConfOnDestinationTest(BrokenSecmigTest):

    BROKEN = {'dest': '[pki\n'}

    def test_destination_starts_and_refuses_with_the_reason(self):
        self.assertStarted('dest')
        path = os.path.join(self.secmig_dir, 'dest.conf')
        reason = ('secmig is unavailable on dest and refuses every '
                  'migration: secmig.conf %s is invalid' % path)
        self.assertLogged(reason)
        message = self.force_live_migrate(self.boot(), 'dest')
        self.assertIn('secmig refused the migration (secmig_unavailable): '
                      + reason, message)
        self.assertIn('Invalid section (must end with ])', message)
        self.assertEqual([], self.libvirt_calls)

    def test_scheduler_leaves_the_destination_out(self):
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': None, 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        self.assertEqual('src', self._wait_for_state_change(
            server, 'ACTIVE')['OS-EXT-SRV-ATTR:host'])
        # It publishes no certificate, which the scheduler refuses.
        records = auditutil.journal_evidence(self.journal('scheduler'),
                                             'scheduled')
        self.assertEqual([{'not_enrolled': ['dest']}],
                         [r['refused_hosts'] for r in records])
        self.assertEqual([], self.libvirt_calls)


class BadValueOnSourceTest(BrokenSecmigTest):

    BROKEN = {'src': '[auth]\nmax_clock_skew = soon\n'}

    def test_source_runs_guests_and_refuses_to_send_them(self):
        self.assertStarted('src')
        server = self.boot()  # ACTIVE on src: its guests run
        self.assertLogged('secmig is unavailable on src')
        message = self.force_live_migrate(server, 'dest')
        self.assertIn('secmig refused the migration (secmig_unavailable): '
                      'src refused: secmig is unavailable on src and '
                      'refuses every migration: secmig.conf %s is invalid'
                      % os.path.join(self.secmig_dir, 'src.conf'), message)
        self.assertIn("invalid literal for int() with base 10: 'soon'",
                      message)
        # The destination, whose secmig works, journals the refusal.
        self.assertEqual(['secmig_unavailable'], self.refusals('dest'))
        self.assertEqual([], self.libvirt_calls)


class UnreadableHostKeyTest(BrokenSecmigTest):

    def start_compute(self, hostname='compute1', *args, **kwargs):
        if hostname == 'dest':
            self.pki.enroll('dest', clearance=1)
            key = os.path.join(self.pki.base_dir, 'dest', 'server-key.pem')
            os.unlink(key)
            os.mkdir(key)
            self.addCleanup(shutil.rmtree, key, True)
        return super().start_compute(hostname, *args, **kwargs)

    def test_destination_starts_and_refuses_with_the_reason(self):
        self.assertStarted('dest')
        self.assertLogged('every live migration to or from dest will be '
                          'refused until its certificate and key are usable')
        message = self.force_live_migrate(self.boot(), 'dest')
        self.assertIn('secmig refused the migration '
                      '(host_identity_unavailable): this host (dest) has no '
                      'usable certificate', message)
        self.assertIn('cannot read host key', message)
        self.assertEqual([], self.libvirt_calls)
