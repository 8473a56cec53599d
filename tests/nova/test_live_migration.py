"""Live migrations through Nova's API, with secmig enforcing them.

Real Nova services in-process (API, conductor, scheduler with the secmig
filter, computes on Nova's fake libvirt with secmig's driver loaded by
the launcher's mechanism), real certificates from secmig's CA, the
policy from a file, the handshake over Nova's message bus, a real
signed audit journal per host.
"""

import contextlib
import io
import json
import os

import fixtures
from lxml import etree

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base as libvirt_base

from secmig.cmd import main as secmig_cli
from secmig import guard as guard_mod
from secmig.nova import rpc
from tests import auditutil
from tests.nova import base
from tests.unit import authutil

VIR_MIGRATE_TLS = fakelibvirt.VIR_MIGRATE_TLS


class SecmigFunctionalTest(base.SecmigCloudMixin,
                           libvirt_base.LibvirtMigrationMixin,
                           libvirt_base.ServersTestBase,
                           integrated_helpers.InstanceHelperMixin):
    """Hosts ``src`` and ``dest`` enrolled with clearance 1, by default."""

    ADMIN_API = True
    microversion = 'latest'
    # Casts stay casts, as in a cloud: asynchronous errors are seen the
    # way a user sees them (migration status, instance actions).
    CAST_AS_CALL = False
    HOSTS = ('src', 'dest')

    def setUp(self):
        super().setUp()
        for host in self.HOSTS:
            self.start_compute(hostname=host)
        self.src = self.computes['src']
        self.libvirt_calls = []
        self.fail_on_destination = False

    def _migrate_stub(self, domain, destination, params, flags):
        """What libvirt does: the guest appears on the destination host."""
        self.libvirt_calls.append((destination, flags))
        if self.fail_on_destination:
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError, 'destination host failed',
                error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED)
        dest = self.computes[destination.split('/')[2]]
        dest.driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        uuid = etree.fromstring(params['destination_xml']).find('./uuid')
        source = self.computes[self._host_of(uuid.text)]
        source.driver._host.get_connection().lookupByUUIDString(
            uuid.text).complete_job()

    def _host_of(self, server_id):
        return self.api.get_server(server_id)['OS-EXT-SRV-ATTR:host']

    def boot(self, flavor_id=None):
        server = self._create_server(host='src', networks='none',
                                     flavor_id=flavor_id)
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        return server

    def force_live_migrate(self, server, host):
        """A forced live migration (microversion 2.30): no scheduler.

        At this microversion the API waits for the pre-checks, so the
        refusal comes back in the response. Returns its message.
        """
        self.api.microversion = '2.30'
        with self.assertRaises(client.OpenStackApiException) as ctx:
            self.api.post_server_action(server['id'], {'os-migrateLive': {
                'host': host, 'block_migration': 'auto', 'force': True}})
        self.api.microversion = self.microversion
        self.assertEqual(400, ctx.exception.response.status_code)
        self._wait_for_migration_status(server, ['error'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        return ctx.exception.response.json()['badRequest']['message']

    def assertJournalIntact(self, host):
        """``secmig audit verify`` accepts the host's journal."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = secmig_cli.main([
                'audit', 'verify', self.journal(host), '--ca',
                os.path.join(self.pki.ca_dir, 'ca-cert.pem')])
        self.assertEqual(0, status, out.getvalue())
        self.assertIn('intact', out.getvalue())

    def refusals(self, host):
        return [code for step, outcome, code in self.audit_steps(host)
                if step == 'refused']


class PermittedMigrationTest(SecmigFunctionalTest):

    def test_requested_host(self):
        server = self._live_migrate(self.boot(), host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        uri, flags = self.libvirt_calls[0]
        self.assertTrue(uri.startswith('qemu+tls://dest'), uri)
        self.assertTrue(flags & VIR_MIGRATE_TLS, flags)
        self.assertEqual(
            ['requested', 'authenticated', 'authorised', 'activated'],
            [s for s, _, _ in self.audit_steps('dest')])
        self.assertEqual(
            ['authenticated', 'authorised', 'started', 'copied',
             'source_cleaned_up'],
            [s for s, _, _ in self.audit_steps('src')])
        for host in ('src', 'dest'):
            self.assertJournalIntact(host)

    def test_replayed_handshake_message(self):
        """The bus delivers the destination's auth1 twice."""
        original = rpc.RPCPeerChannel.hello

        def hello_twice(channel, *args):
            original(channel, *args)
            return original(channel, *args)

        self.useFixture(fixtures.MonkeyPatch(
            'secmig.nova.rpc.RPCPeerChannel.hello', hello_twice))
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': 'dest', 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('replayed', self.refusals('src'))
        self.assertEqual([], self.libvirt_calls)

    def test_tampered_handshake_message(self):
        """The bus flips one bit of the destination's auth3."""
        original = rpc.RPCPeerChannel.confirm

        def tampered(channel, peer, instance_uuid, auth3):
            ts = json.loads(auth3)['ts']
            return original(channel, peer, instance_uuid,
                            authutil.rewrite(auth3, ts=ts - 1))

        self.useFixture(fixtures.MonkeyPatch(
            'secmig.nova.rpc.RPCPeerChannel.confirm', tampered))
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': 'dest', 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        self.assertEqual('src', self._wait_for_state_change(
            server, 'ACTIVE')['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(['bad_signature'], self.refusals('src'))
        self.assertEqual([], self.libvirt_calls)

    def test_another_enrolled_host_cannot_take_the_instance(self):
        """An enrolled host's handshake cannot displace the destination's.

        Right after the destination authenticates itself to the source,
        another enrolled host completes its own handshake for the same
        instance: the source refuses it, and the instance goes where
        Nova sent it.
        """
        hello, confirm = rpc.RPCPeerChannel.hello, rpc.RPCPeerChannel.confirm
        migrations, intruded = [], []

        def remember(channel, peer, migration_id, instance_uuid, auth1):
            migrations.append(migration_id)
            return hello(channel, peer, migration_id, instance_uuid, auth1)

        def intrude(channel, peer, instance_uuid, auth3):
            answer = confirm(channel, peer, instance_uuid, auth3)
            other = self.computes['other'].driver._secmig
            creds, trust, _ = other._identity()
            intruder = guard_mod.handshake.Initiator(
                creds, trust, authutil.make_binding(
                    migration_id=migrations[-1], instance_uuid=instance_uuid,
                    source_host='src', dest_host='other',
                    policy_digest=other._policy()[0].digest), other.conf)
            auth2, _ = hello(channel, peer, migrations[-1], instance_uuid,
                             intruder.start())
            intruded.append(confirm(channel, peer, instance_uuid,
                                    intruder.finish(auth2)[0]))
            return answer

        self.start_compute(hostname='other')
        self.useFixture(fixtures.MonkeyPatch(
            'secmig.nova.rpc.RPCPeerChannel.hello', remember))
        self.useFixture(fixtures.MonkeyPatch(
            'secmig.nova.rpc.RPCPeerChannel.confirm', intrude))
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': 'dest', 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['completed'])
        self.assertEqual('dest', self._host_of(server['id']))
        [refused] = intruded
        self.assertEqual('handshake_in_progress', refused.code, refused)
        self.assertIn('other', refused.reason)
        self.assertIn('dest, which authenticated first', refused.reason)
        self.assertIn('handshake_in_progress', self.refusals('src'))
        self.assertEqual(['dest'], [uri.split('/')[2]
                                    for uri, _ in self.libvirt_calls])

    def test_destination_failure_rolls_back(self):
        self.fail_on_destination = True
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': 'dest', 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error', 'failed'])
        # Nova 34 surfaces the libvirt error after its rollback and marks
        # the instance ERROR; the guest keeps running on the source.
        server = self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(1, server['OS-EXT-STS:power_state'])  # running
        src_steps = [s for s, _, _ in self.audit_steps('src')]
        self.assertIn('started', src_steps)
        self.assertIn('rolled_back', src_steps)
        self.assertNotIn('source_cleaned_up', src_steps)
        # Nova does not call the destination's rollback when there is
        # nothing to clean there; it never activated the guest.
        self.assertNotIn('activated',
                         [s for s, _, _ in self.audit_steps('dest')])
        for host in ('src', 'dest'):
            self.assertJournalIntact(host)


class EligibilityTest(SecmigFunctionalTest):
    """The scheduler's choice among eligible and ineligible hosts."""

    HOSTS = ('src', 'dest', 'rogue', 'low', 'revoked')
    UNENROLLED = ('rogue',)
    CLEARANCES = {'low': 0}

    def setUp(self):
        super().setUp()
        self.pki.revoke('revoked')
        self.publish_crl()
        self.flavor = self._create_flavor(
            extra_spec={'secmig:level': 'internal'})

    def test_scheduler_never_chooses_an_ineligible_host(self):
        server = self.boot(flavor_id=self.flavor)
        for expected in ('dest', 'src', 'dest'):
            server = self._live_migrate(server)
            self.assertEqual(expected, server['OS-EXT-SRV-ATTR:host'])
        for host in ('rogue', 'low', 'revoked'):
            self.assertEqual([], self.audit_steps(host))
        # The scheduler's journal says why each host was left out.
        records = auditutil.journal_evidence(self.journal('scheduler'),
                                             'scheduled')
        self.assertEqual(3, len(records))
        self.assertEqual({'not_enrolled': ['rogue'],
                          'insufficient_clearance': ['low'],
                          'revoked': ['revoked']},
                         records[0]['refused_hosts'])
        self.assertEqual(['dest'], records[0]['eligible_hosts'])
        self.assertJournalIntact('scheduler')

    def test_forced_host_without_certificate_is_refused_on_compute(self):
        message = self.force_live_migrate(self.boot(), 'rogue')
        self.assertIn('secmig refused the migration '
                      '(host_identity_unavailable): this host (rogue) has '
                      'no usable certificate', message)
        self.assertEqual(['host_identity_unavailable'],
                         self.refusals('src'))
        self.assertEqual([], self.libvirt_calls)
        self.assertJournalIntact('src')

    def test_forced_host_with_revoked_certificate(self):
        message = self.force_live_migrate(self.boot(), 'revoked')
        self.assertIn('(revoked)', message)
        self.assertIn('revoked', self.refusals('revoked'))
        self.assertIn('revoked', self.refusals('src'))

    def test_forced_host_under_cleared(self):
        message = self.force_live_migrate(
            self.boot(flavor_id=self.flavor), 'low')
        self.assertIn('(insufficient_clearance)', message)
        self.assertIn('insufficient_clearance', self.refusals('low'))


class TenantPolicyTest(SecmigFunctionalTest):
    """Nova lets project managers live-migrate; this policy does not."""

    SECMIG_POLICY_CHANGES = {
        'api: "rule:admin or rule:project_manager"': 'api: "rule:admin"'}

    def manager(self, microversion):
        api = client.TestOpenStackClient(
            'manager', self.api.base_url, project_id=self.api.project_id,
            roles=['reader', 'member', 'manager'])
        api.microversion = microversion
        return api

    def test_manager_reads_the_reason_in_the_response(self):
        """Below 2.34 Nova waits for the checks and answers with them."""
        server = self.boot()
        with self.assertRaises(client.OpenStackApiException) as ctx:
            self.manager('2.30').post_server_action(
                server['id'], {'os-migrateLive': {
                    'host': None, 'block_migration': 'auto'}})
        self.assertEqual(400, ctx.exception.response.status_code)
        self.assertIn('No valid host was found. secmig refused the '
                      'migration (rbac_denied): the requester (user '
                      'manager', ctx.exception.response.text)
        self.assertEqual('src', self._wait_for_state_change(
            server, 'ACTIVE')['OS-EXT-SRV-ATTR:host'])

    def test_asynchronous_refusal_is_in_the_instance_action(self):
        """From 2.34 the request is accepted; the action holds the reason.

        Nova shows event details to admins only by default
        (``os_compute_api:os-instance-actions:events:details``).
        """
        server = self.boot()
        self.manager('latest').post_server_action(
            server['id'], {'os-migrateLive': {
                'host': None, 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        event = self._wait_for_instance_action_event(
            server, 'live-migration', 'conductor_live_migrate_instance',
            'Error')
        self.assertIn('secmig refused the migration (rbac_denied)',
                      event['details'])
        self.assertEqual('src', self._wait_for_state_change(
            server, 'ACTIVE')['OS-EXT-SRV-ATTR:host'])


class PlaintextTest(SecmigFunctionalTest):
    """Computes configured without a TLS control connection."""

    LIBVIRT_SCHEME = 'tcp'

    def test_forced_migration_refused(self):
        message = self.force_live_migrate(self.boot(), 'dest')
        self.assertIn('OSSN-0089', message)
        self.assertEqual(['plaintext_control'], self.refusals('dest'))
        self.assertEqual(['plaintext_control'], self.refusals('src'))
        self.assertEqual([], self.libvirt_calls)

    def test_scheduled_migration_finds_no_host(self):
        server = self.boot()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': None, 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        self.assertEqual('src', self._wait_for_state_change(
            server, 'ACTIVE')['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([], self.libvirt_calls)

    def test_native_tls_off(self):
        self.flags(live_migration_with_native_tls=False, group='libvirt')
        self.flags(live_migration_scheme='tls', group='libvirt')
        message = self.force_live_migrate(self.boot(), 'dest')
        self.assertIn('(plaintext_migration)', message)
        self.assertEqual(['plaintext_migration'], self.refusals('dest'))
