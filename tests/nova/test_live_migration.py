"""Live migrations through Nova's API with secmig enforcing them."""

from lxml import etree

from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base as libvirt_base

from tests.nova import base


class SecureLiveMigrationTest(base.SecmigCloudMixin,
                              libvirt_base.LibvirtMigrationMixin,
                              libvirt_base.ServersTestBase,
                              integrated_helpers.InstanceHelperMixin):
    """Three enrolled hosts and one that is not."""

    ADMIN_API = True
    microversion = 'latest'
    UNENROLLED = ('rogue',)

    def setUp(self):
        super().setUp()
        for host in ('src', 'dest', 'other', 'rogue'):
            self.start_compute(hostname=host)
        self.src = self.computes['src']
        self.flags_seen = []

    def _migrate_stub(self, domain, destination, params, flags):
        """What libvirt would do: the guest appears on the destination."""
        self.flags_seen.append((destination, flags))
        dest = self.computes[self.migrating_to]
        dest.driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        uuid = etree.fromstring(params['destination_xml']).find('./uuid')
        conn = self.src.driver._host.get_connection()
        conn.lookupByUUIDString(uuid.text).complete_job()

    def boot(self):
        server = self._create_server(host='src', networks='none')
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        return server

    def test_permitted_migration_to_a_requested_host(self):
        server = self.boot()
        self.migrating_to = 'dest'
        server = self._live_migrate(server, host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        uri, flags = self.flags_seen[0]
        self.assertTrue(uri.startswith('qemu+tls://dest'), uri)
        self.assertTrue(flags & 65536, flags)  # VIR_MIGRATE_TLS
        self.assertEqual(
            ['requested', 'authenticated', 'authorised', 'activated'],
            [s for s, _, _ in self.audit_steps('dest')])
        self.assertEqual(
            ['authenticated', 'authorised', 'started', 'copied',
             'source_cleaned_up'],
            [s for s, _, _ in self.audit_steps('src')])
