"""Real Nova services in-process, with secmig loaded as in production.

Nova's own functional base (``ServersTestBase``) runs the API, conductor,
scheduler and compute services in one process, on Nova's fake libvirt
and an in-process message bus. :class:`SecmigCloudMixin` adds what a
secmig cloud has: a CA, an enrolled certificate per compute host, a
secmig.conf per host pointed to by ``[secmig] config_file``, the secmig
driver installed by :func:`secmig.nova.launcher.install` (the mechanism
``secmig-nova-compute`` uses), the scheduler filter, and libvirt set for
QEMU native TLS with a TLS control connection. The functional tests
(``tests/nova``) and the demo (:class:`DemoCloud`) share it.

Nova's base classes are unittest TestCases: the demo creates one
:class:`DemoCloud`, calls :meth:`DemoCloud.start` (its ``setUp``) and
:meth:`DemoCloud.stop` (its cleanups), and in between calls the same
helpers a functional test calls. Nothing here edits Nova's code; the
only stand-in is Nova's fake libvirt, whose ``migrateToURI3`` the demo
completes the way libvirt would (the guest appears on the destination).

This module imports nova: import it only in a process that does not
import watcher.
"""

# As Nova's functional test package does, before anything imports oslo.db:
# its per-thread transaction state must be green-thread local, or green
# threads sharing a context (a scatter-gather over cells, a periodic task)
# see each other's transactions ("Can't upgrade a READER transaction").
from nova import monkey_patch; monkey_patch.patch()  # noqa: E702,I100

import os
import sys

import fixtures
from lxml import etree

import nova.conf
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base as libvirt_base
import nova.virt.libvirt

from secmig.nova import launcher

#: The WSGI pipeline shipped in the nova wheel (installed under the
#: virtualenv, not next to the nova package where the fixture looks).
API_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
FILTER = 'secmig.nova.filter.SecureMigrationFilter'
ApiError = client.OpenStackApiException


class SecmigCloudMixin:
    """Mix in before Nova's ``ServersTestBase``.

    Subclasses give :meth:`make_pki` (an object with ``base_dir``,
    ``hosts``, ``enroll(name, clearance)``, ``ca_cert_pem`` and
    ``crl_pem``) and ``SECMIG_POLICY_SOURCE`` (the migration policy file).
    ``CLEARANCES`` gives each enrolled host's clearance (default 1); hosts
    in ``UNENROLLED`` start without any certificate.
    """

    CLEARANCES = {}
    UNENROLLED = ()
    SECMIG_FILTER = True
    SECMIG_POLICY_SOURCE = None
    #: Text replacements turning the policy source into this class's.
    SECMIG_POLICY_CHANGES = {}
    LIBVIRT_SCHEME = 'tls'

    def make_pki(self, base_dir):
        raise NotImplementedError

    def make_secmig_dir(self):
        """Directory for secmig.conf files, journals and certificates."""
        return self.useFixture(fixtures.TempDir()).path

    def setUp(self):
        self.secmig_dir = self.make_secmig_dir()
        self.pki = self.make_pki(os.path.join(self.secmig_dir, 'pki'))
        original = nova.virt.libvirt.LibvirtDriver
        self.addCleanup(setattr, nova.virt.libvirt, 'LibvirtDriver',
                        original)
        launcher.install()
        self.policy_file = self.write_policy()
        # Before Nova's setUp: it starts the API and the services.
        self.flags(api_paste_config=API_PASTE, group='wsgi')
        self.flags(live_migration_with_native_tls=True,
                   live_migration_scheme=self.LIBVIRT_SCHEME,
                   group='libvirt')
        super().setUp()

    def write_policy(self):
        with open(self.SECMIG_POLICY_SOURCE) as f:
            text = f.read()
        for old, new in self.SECMIG_POLICY_CHANGES.items():
            self.assertIn(old, text)
            text = text.replace(old, new)
        path = os.path.join(self.secmig_dir, 'migration-policy.yaml')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def publish_crl(self):
        """Copy the CA's current CRL to the controller and every host."""
        for name in list(self.pki.hosts) + ['controller']:
            path = os.path.join(self.pki.base_dir, name, 'ca-crl.pem')
            if os.path.isdir(os.path.dirname(path)):
                with open(path, 'wb') as f:
                    f.write(self.pki.crl_pem)

    def _setup_scheduler_service(self):
        if self.SECMIG_FILTER:
            self.flags(available_filters=[
                'nova.scheduler.filters.all_filters', FILTER],
                group='filter_scheduler')
            enabled = list(nova.conf.CONF.filter_scheduler.enabled_filters)
            self.flags(enabled_filters=enabled + ['SecureMigrationFilter'],
                       group='filter_scheduler')
            self.flags(config_file=self.secmig_conf('scheduler'),
                       group='secmig')
        return super()._setup_scheduler_service()

    def secmig_conf(self, host, **overrides):
        """Write ``host``'s secmig.conf; return its path."""
        cert_dir = os.path.join(self.pki.base_dir, host)
        if host == 'scheduler':
            cert_dir = self.scheduler_cert_dir()
        values = {
            'pki': {'cert_dir': cert_dir, 'verdict_refresh_interval': 0},
            'policy': {'policy_file': self.policy_file},
            'audit': {'journal_path': self.journal(host), 'deliver': False},
        }
        for group, options in overrides.items():
            values.setdefault(group, {}).update(options)
        path = os.path.join(self.secmig_dir, host + '.conf')
        with open(path, 'w') as f:
            for group, options in values.items():
                f.write('[%s]\n' % group)
                for key, value in options.items():
                    f.write('%s = %s\n' % (key, value))
        return path

    def scheduler_cert_dir(self):
        """The controller's directory: CA, CRL and a key of its own.

        With a key, the scheduler filter journals its choices.
        """
        if 'controller' not in self.pki.hosts:
            self.pki.enroll('controller', clearance=0)
        return os.path.join(self.pki.base_dir, 'controller')

    def journal(self, host):
        return os.path.join(self.secmig_dir, 'audit', host + '.jsonl')

    def start_compute(self, hostname='compute1', *args, **kwargs):
        if hostname not in self.UNENROLLED and hostname not in self.pki.hosts:
            self.pki.enroll(hostname,
                            clearance=self.CLEARANCES.get(hostname, 1))
        os.makedirs(os.path.join(self.pki.base_dir, hostname),
                    exist_ok=True)
        self.flags(config_file=self.secmig_conf(hostname), group='secmig')
        return super().start_compute(hostname, *args, **kwargs)


class DemoCloud(SecmigCloudMixin,
                libvirt_base.LibvirtMigrationMixin,
                libvirt_base.ServersTestBase,
                integrated_helpers.InstanceHelperMixin):
    """The demo's cloud: Nova services over an existing secmig site.

    :param site: a :class:`secmig.demo.pki.CliPKI` whose hosts are
        already enrolled (or revoked) with ``secmig pki``.
    :param workdir: where secmig.conf files and journals are written.
    :param policy_file: the migration policy every host runs.
    :param hosts: compute host names to start, in order.
    :param unenrolled: hosts without a certificate.
    """

    ADMIN_API = True
    microversion = 'latest'
    CAST_AS_CALL = False

    def __init__(self, site, workdir, policy_file, hosts, unenrolled=()):
        super().__init__('runTest')
        self.site = site
        self.workdir = workdir
        self.SECMIG_POLICY_SOURCE = policy_file
        self.UNENROLLED = tuple(unenrolled)
        self.host_names = list(hosts)
        self.migrate_calls = []

    def runTest(self):
        """Unused: the demo drives :meth:`start` and :meth:`stop`."""

    def make_pki(self, base_dir):
        return self.site

    def make_secmig_dir(self):
        return self.workdir

    # -- life cycle -----------------------------------------------------

    def start(self):
        """Start the API, conductor, scheduler and every compute."""
        try:
            self.setUp()
            for host in self.host_names:
                self.start_compute(hostname=host)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop every service and undo every patch (Nova's cleanups)."""
        self.doCleanups()

    # -- what libvirt would do ----------------------------------------

    def _migrate_stub(self, domain, destination, params, flags):
        """The guest appears on the destination host, as with libvirt."""
        self.migrate_calls.append((destination, flags))
        dest = self.computes[destination.split('/')[2]]
        dest.driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        uuid = etree.fromstring(params['destination_xml']).find('./uuid')
        source = self.computes[self.host_of(uuid.text)]
        source.driver._host.get_connection().lookupByUUIDString(
            uuid.text).complete_job()

    # -- what the story does ------------------------------------------

    def host_of(self, server_id):
        return self.api.get_server(server_id)['OS-EXT-SRV-ATTR:host']

    def flavor(self, vcpus, memory_mb=1024, extra_specs=None):
        """Create a flavor; return its id."""
        return self._create_flavor(memory_mb=memory_mb, vcpu=vcpus, disk=1,
                                   ephemeral=0, extra_spec=extra_specs)

    def boot(self, host, name, flavor=None):
        """Boot a server on ``host``; return its API representation."""
        return self._create_server(name=name, host=host, networks='none',
                                   flavor_id=flavor)

    def flavor_of(self, server):
        """``(vcpus, ram MB, disk GB, extra_specs)`` of a server."""
        flavor = server['flavor']
        return (flavor['vcpus'], flavor['ram'], flavor['disk'],
                flavor.get('extra_specs', {}))

    def client(self, user, roles, microversion='latest'):
        """A Nova API client for ``user`` with ``roles`` in the project."""
        api = client.TestOpenStackClient(
            user, self.api.base_url, project_id=self.api.project_id,
            roles=list(roles))
        api.microversion = microversion
        return api

    def live_migrate(self, api, server, host, force=False):
        """POST os-migrateLive; return the response status code."""
        body = {'host': host, 'block_migration': 'auto'}
        if force:
            body['force'] = True
        response = api.post_server_action(server['id'],
                                          {'os-migrateLive': body})
        return getattr(response, 'status_code', 202)

    def wait_migration(self, server, statuses=('completed', 'error',
                                               'failed')):
        """Wait for the server's latest migration; return its status."""
        migration = self._wait_for_migration_status(server, list(statuses))
        self._wait_for_server_parameter(server,
                                        {'OS-EXT-STS:task_state': None})
        return migration['status']

    def refusal_of(self, api, server, host=None, force=False):
        """A request expected to be refused at microversion 2.30.

        Returns ``(HTTP status, Nova's message)``, or ``(202, None)`` if
        the request was accepted; waits until the server is ACTIVE again.
        """
        try:
            self.live_migrate(api, server, host, force=force)
        except ApiError as e:
            status = e.response.status_code
            try:
                message = e.response.json()['badRequest']['message']
            except (ValueError, KeyError, TypeError):
                message = e.response.text
        else:
            status, message = 202, None
        self._wait_for_state_change(server, 'ACTIVE')
        self._wait_for_server_parameter(server,
                                        {'OS-EXT-STS:task_state': None})
        return status, message


VIR_MIGRATE_TLS = fakelibvirt.VIR_MIGRATE_TLS
