"""The flags and URIs Nova really migrates with, checked before it moves.

Nova computes its libvirt migration flags once, in ``init_host``; these
tests start computes with chosen ``[libvirt]`` options and check that
secmig refuses at the checks (before ``pre_live_migration`` on the
destination, before any libvirt call) what it would otherwise refuse,
or get wrong, only at the libvirt call: plaintext flags, post-copy the
policy forbids, control URIs that weaken TLS, an inbound address (or,
without one, a libvirt hostname) that is not a name of the destination's
certificate.
"""

import fixtures

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import driver as libvirt_driver

from tests.nova import test_live_migration

VIR_MIGRATE_TLS = fakelibvirt.VIR_MIGRATE_TLS
VIR_MIGRATE_POSTCOPY = fakelibvirt.VIR_MIGRATE_POSTCOPY
VIR_MIGRATE_AUTO_CONVERGE = fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE


class MigrationFlagsTest(test_live_migration.SecmigFunctionalTest):
    """``LIBVIRT`` holds the ``[libvirt]`` options the computes start with."""

    LIBVIRT = {}

    def setUp(self):
        # Before the computes start: Nova reads them in init_host.
        for name, value in self.LIBVIRT.items():
            self.flags(**{name: value, 'group': 'libvirt'})
        super().setUp()
        self.prepared = []
        original = libvirt_driver.LibvirtDriver.pre_live_migration

        def pre_live_migration(driver, context, instance, *args, **kwargs):
            self.prepared.append(driver._secmig.host)
            return original(driver, context, instance, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.pre_live_migration',
            pre_live_migration))

    def assertRefusedAtTheChecks(self, code, host, server=None):
        """A forced migration to ``dest`` is refused before it moves."""
        message = self.force_live_migrate(server or self.boot(), 'dest')
        self.assertIn('secmig refused the migration (%s)' % code, message)
        self.assertIn(code, self.refusals(host))
        self.assertEqual([], self.prepared)
        self.assertEqual([], self.libvirt_calls)
        return message


class PostCopyTest(MigrationFlagsTest):
    """Nova permits post-copy; the test policy forbids it."""

    LIBVIRT = {'live_migration_permit_post_copy': True}

    def test_refused_at_the_checks_with_what_to_change(self):
        message = self.assertRefusedAtTheChecks('post_copy_forbidden', 'src')
        self.assertIn('live_migration_permit_post_copy = false', message)


class PostCopyUnderACapTest(MigrationFlagsTest):
    """The policy allows post-copy but caps the bandwidth."""

    LIBVIRT = {'live_migration_permit_post_copy': True}
    SECMIG_POLICY_CHANGES = {'post_copy: forbidden': 'post_copy: allowed'}

    def test_refused_at_the_checks(self):
        message = self.assertRefusedAtTheChecks('post_copy_uncapped', 'src')
        self.assertIn('500 MiB/s', message)


class PostCopyPermittedTest(MigrationFlagsTest):
    """Post-copy allowed and no cap: Nova's flag reaches libvirt."""

    LIBVIRT = {'live_migration_permit_post_copy': True}
    SECMIG_POLICY_CHANGES = {'post_copy: forbidden': 'post_copy: allowed',
                             'max_bandwidth_mib: 500': ''}

    def test_post_copy_flag_kept(self):
        server = self._live_migrate(self.boot(), host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        _, flags = self.libvirt_calls[0]
        self.assertTrue(flags & VIR_MIGRATE_POSTCOPY, flags)
        self.assertTrue(flags & VIR_MIGRATE_TLS, flags)


class AutoConvergeTest(MigrationFlagsTest):

    LIBVIRT = {'live_migration_permit_auto_converge': False}

    def test_not_added_when_the_operator_did_not_permit_it(self):
        server = self._live_migrate(self.boot(), host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        _, flags = self.libvirt_calls[0]
        self.assertFalse(flags & VIR_MIGRATE_AUTO_CONVERGE, flags)
        self.assertFalse(flags & VIR_MIGRATE_POSTCOPY, flags)
        self.assertEqual(['dest'], self.prepared)


class PlaintextFlagsTest(MigrationFlagsTest):
    """The options say native TLS; the flags Nova computed at start do not.

    ``[libvirt]`` options are read by Nova once; secmig used to read the
    options of the moment, and refused only at the libvirt call.
    """

    def restart_with_plaintext_flags(self, host):
        """Restart ``host`` without native TLS, then set the option back."""
        self.flags(live_migration_with_native_tls=False, group='libvirt')
        self.restart_compute_service(host)
        self.flags(live_migration_with_native_tls=True, group='libvirt')
        self.src = self.computes['src']

    def test_source_flags_refused_at_the_source_checks(self):
        self.restart_with_plaintext_flags('src')
        message = self.assertRefusedAtTheChecks('plaintext_migration', 'src')
        self.assertIn('without VIR_MIGRATE_TLS', message)
        self.assertNotIn('plaintext_migration', self.refusals('dest'))

    def test_destination_flags_refused_at_the_destination_checks(self):
        self.restart_with_plaintext_flags('dest')
        self.assertRefusedAtTheChecks('plaintext_migration', 'dest')


class WeakControlURITest(MigrationFlagsTest):

    LIBVIRT = {'live_migration_uri': 'qemu+tls://%s/system?no_verify=1'}

    def test_refused_at_the_checks(self):
        message = self.assertRefusedAtTheChecks('weak_tls_uri', 'dest')
        self.assertIn('no_verify', message)


class InboundAddrTest(MigrationFlagsTest):
    """``live_migration_inbound_addr`` is the name QEMU verifies."""

    def _migrate_stub(self, domain, destination, params, flags):
        self.migrate_uris = getattr(self, 'migrate_uris', [])
        self.migrate_uris.append(params.get('migrate_uri'))
        # Every compute here has the same address: it is the destination.
        super()._migrate_stub(domain, destination.replace(
            '127.0.0.1', 'dest'), params, flags)
        self.libvirt_calls[-1] = (destination, flags)

    def test_address_outside_the_certificate_refused_at_the_checks(self):
        self.flags(live_migration_inbound_addr='192.0.2.7', group='libvirt')
        message = self.assertRefusedAtTheChecks(
            'inbound_addr_not_in_certificate', 'dest')
        self.assertIn('192.0.2.7', message)

    def test_address_in_the_certificate(self):
        self.flags(live_migration_inbound_addr='127.0.0.1', group='libvirt')
        server = self._live_migrate(self.boot(), host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([('qemu+tls://127.0.0.1/system', self.libvirt_calls[
            0][1])], self.libvirt_calls)
        self.assertEqual(['tcp://127.0.0.1'], self.migrate_uris)

    def set_libvirt_hostname(self, host, name):
        """``host``'s libvirtd now reports ``name`` as its hostname."""
        libvirt_host = self.computes[host].driver._host
        libvirt_host.get_connection().hostname = name
        libvirt_host._hostname = None  # Nova's cache of the first answer

    def test_hostname_outside_the_certificate_refused_at_the_checks(self):
        """Without an inbound address QEMU verifies the libvirt hostname."""
        self.set_libvirt_hostname('dest', 'dest.example.org')
        message = self.assertRefusedAtTheChecks(
            'inbound_addr_not_in_certificate', 'dest')
        self.assertIn('against dest.example.org, its hostname as libvirt '
                      'reports it ([libvirt] live_migration_inbound_addr is '
                      'not set', message)
        self.assertIn('set [libvirt] live_migration_inbound_addr to one of '
                      'them', message)
        self.assertNotIn('authenticated',
                         [s for s, _, _ in self.audit_steps('src')])

    def test_hostname_in_the_certificate(self):
        server = self._live_migrate(self.boot(), host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([None], self.migrate_uris)
