"""SecureMigrationFilter on Nova's own RequestSpec and HostState objects.

Real certificates from secmig's CA, the test policy file, real
``nova.scheduler.host_manager.HostState`` objects updated from
``ComputeNode`` objects as the host manager does; no database and no
mocks.
"""

import datetime
import os
import shutil

import fixtures
from oslo_utils import uuidutils

from nova import context as nova_context
from nova import exception
from nova import objects
from nova.scheduler import host_manager
from nova import test

from secmig.nova import filter as secmig_filter
from secmig.nova import stats as secmig_stats
from secmig.pki import ca as ca_mod
from secmig.pki import host as host_files
from tests import auditutil
from tests import pkiutil

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(HERE), 'etc', 'migration-policy.yaml')
INSTANCE = '11111111-2222-3333-4444-555555555555'
OTHER_INSTANCE = '66666666-7777-8888-9999-000000000000'
ZONED_POLICY = """
version: 1
rules:
  admin: "role:admin"
rbac:
  api: "rule:admin"
  watcher: "role:service"
mac:
  levels: {public: 0, internal: 1, secret: 3}
destinations:
  availability_zones: [az1]
  aggregates: [secmig-hosts]
"""


def aggregate(ident, name, zone=None):
    metadata = {'availability_zone': zone} if zone else {}
    return objects.Aggregate(id=ident, name=name, hosts=[],
                             metadata=metadata)


AZ1 = aggregate(1, 'rack-1', zone='az1')
AZ2 = aggregate(2, 'rack-2', zone='az2')
SECMIG_HOSTS = aggregate(3, 'secmig-hosts')
OTHERS = aggregate(4, 'others')


def host_state(name, cert_pem, tls='ready', aggregates=(AZ1, SECMIG_HOSTS),
               instances=(), cls=host_manager.HostState):
    """A HostState as the host manager builds it from a compute node.

    ``instances`` are the uuids of the instances on the host.
    """
    stats = {'num_instances': '1'}
    if cert_pem is not None:
        stats[secmig_stats.CERT] = cert_pem
    if tls is not None:
        stats[secmig_stats.TLS] = tls
    state = cls(name, name, 'cell1')
    state.update(
        compute=objects.ComputeNode(
            uuid=uuidutils.generate_uuid(), host=name,
            hypervisor_hostname=name, memory_mb=8192,
            free_ram_mb=4096, local_gb=100, free_disk_gb=50,
            local_gb_used=50, disk_available_least=50, vcpus=8,
            vcpus_used=1, updated_at=None, numa_topology=None,
            pci_device_pools=None, host_ip='192.0.2.10',
            hypervisor_type='QEMU', hypervisor_version=7002000,
            cpu_info='{}', supported_hv_specs=[], metrics='[]',
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            disk_allocation_ratio=1.0, stats=stats),
        aggregates=list(aggregates),
        inst_dict={uuid: objects.Instance(uuid=uuid) for uuid in instances})
    return state


class FilterFixtures:
    """A CA, enrolled hosts, and the filter built on a secmig.conf."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._tmp = fixtures.TempDir()
        cls._tmp.setUp()
        pki = pkiutil.TestPKI(os.path.join(cls._tmp.path, 'pki'))
        cls.pems = {name: pki.enroll(name, clearance=level).cert_pem.decode()
                    for name, level in (('good', 1), ('secret', 3),
                                        ('low', 0), ('revoked', 1),
                                        ('controller', 0))}
        pki.revoke('revoked')
        cls.pems['expired'] = _expired_certificate(pki, 'expired')
        cls.pki = pki

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        cert_dir = os.path.join(self.dir, 'controller')
        os.makedirs(cert_dir)
        for name, data in ((host_files.CA_CERT, self.pki.ca_cert_pem),
                           (host_files.CA_CRL, self.pki.crl_pem)):
            with open(os.path.join(cert_dir, name), 'wb') as f:
                f.write(data)
        self.policy_file = POLICY
        self.cert_dir = cert_dir

    def filter(self, extra=''):
        """The filter, built as nova-scheduler builds it, on our conf.

        ``extra`` is appended to the secmig.conf written.
        """
        path = os.path.join(self.dir, 'secmig.conf')
        with open(path, 'w') as f:
            f.write('[pki]\ncert_dir = %s\n[policy]\npolicy_file = %s\n'
                    % (self.cert_dir, self.policy_file) + extra)
        self.flags(config_file=path, group='secmig')
        return secmig_filter.SecureMigrationFilter()

    def spec(self, roles=('admin',), level=None, move=True,
             instance=INSTANCE, **kwargs):
        """A RequestSpec as the conductor builds it for a live migration.

        ``move=False``: as Nova's API builds it for a boot.
        """
        context = nova_context.RequestContext(
            'user-1', 'project-1', roles=list(roles),
            is_admin='admin' in roles)
        extra_specs = {'secmig:level': level} if level else {}
        if move:
            kwargs.setdefault('ignore_hosts', ['source'])
        return objects.RequestSpec(
            context, instance_uuid=instance, project_id='project-1',
            user_id='user-1', num_instances=1,
            flavor=objects.Flavor(name='m1.small', extra_specs=extra_specs),
            image=objects.ImageMeta(properties=objects.ImageMetaProps()),
            **kwargs)

    def passing(self, hosts, spec):
        flt = self.filter()
        return [h.host for h in flt.filter_all(hosts, spec)]


class FilterTestCase(FilterFixtures, test.NoDBTestCase):
    """The filter without Nova's databases."""

    def setUp(self):
        super().setUp()
        # No database: no compute node has published a certificate that
        # the filter could read when it is built.
        self.useFixture(fixtures.MockPatchObject(
            secmig_stats, 'published_certificates', return_value={}))


class SecureMigrationFilterTest(FilterTestCase):
    """Given/When/Then on one scheduler pass each."""

    def test_boot_passes_every_host(self):
        # Given hosts some of which secmig would refuse as destinations
        hosts = [host_state('good', self.pems['good']),
                 host_state('rogue', None, tls=None)]
        # When a new instance is placed (nothing in ignore_hosts)
        passed = self.passing(hosts, self.spec(move=False))
        # Then every host passes
        self.assertEqual(['good', 'rogue'], passed)

    def test_move_passes_enrolled_valid_host(self):
        # Given an enrolled, TLS-ready host with a valid certificate
        hosts = [host_state('good', self.pems['good'])]
        # When an admin live-migrates an internal instance
        passed = self.passing(hosts, self.spec(level='internal'))
        # Then it passes
        self.assertEqual(['good'], passed)

    def assertRefused(self, host, code, level=None):
        """Only ``good`` passes; ``host`` is refused with ``code``."""
        logs = self.useFixture(fixtures.FakeLogger(
            name=secmig_filter.__name__, level='DEBUG'))
        hosts = [host_state('good', self.pems['good']), host]
        passed = self.passing(hosts, self.spec(level=level))
        self.assertEqual(['good'], passed)
        self.assertIn('host %s refused for instance %s: %s'
                      % (host.host, INSTANCE, code), logs.output)

    def test_unenrolled_host_is_refused(self):
        # Given a host that publishes no certificate in its stats
        rogue = host_state('rogue', None)
        # When an instance moves, Then it is refused for that reason
        self.assertRefused(rogue, 'destination_certificate_invalid')
        self.assertIn('(not_enrolled)', self.refusal_reason(rogue))

    def test_revoked_host_is_refused(self):
        host = host_state('revoked', self.pems['revoked'])
        self.assertRefused(host, 'destination_certificate_invalid')
        self.assertIn('(revoked)', self.refusal_reason(host))

    def test_expired_host_is_refused(self):
        host = host_state('expired', self.pems['expired'])
        self.assertRefused(host, 'destination_certificate_invalid')
        self.assertIn('(expired)', self.refusal_reason(host))

    def test_host_publishing_another_hosts_certificate_is_refused(self):
        # Given a host that publishes good's (valid) certificate
        impostor = host_state('impostor', self.pems['good'])
        self.assertRefused(impostor, 'destination_certificate_invalid')
        self.assertIn('(wrong_host)', self.refusal_reason(impostor))

    def test_under_cleared_host_is_refused(self):
        # Given a host of clearance 0 and an instance of level secret
        hosts = [host_state('secret', self.pems['secret']),
                 host_state('good', self.pems['good']),
                 host_state('low', self.pems['low'])]
        # When the instance moves
        passed = self.passing(hosts, self.spec(level='secret'))
        # Then only the host cleared for secret passes
        self.assertEqual(['secret'], passed)

    def test_internal_instance_refuses_clearance_zero(self):
        self.assertRefused(host_state('low', self.pems['low']),
                           'insufficient_clearance', level='internal')

    def test_host_not_tls_ready_is_refused(self):
        host = host_state('secret', self.pems['secret'],
                          tls='native_tls_disabled')
        self.assertRefused(host, 'destination_not_tls_ready')

    def test_aggregate_and_zone_not_allowed_by_policy_are_refused(self):
        # Given a policy allowing only az1 and aggregate secmig-hosts
        self.policy_file = os.path.join(self.dir, 'zoned.yaml')
        with open(self.policy_file, 'w') as f:
            f.write(ZONED_POLICY)
        # When hosts in az2 or outside the aggregate are candidates
        self.assertRefused(
            host_state('secret', self.pems['secret'],
                       aggregates=(AZ2, SECMIG_HOSTS)),
            'availability_zone_not_allowed')
        self.assertRefused(
            host_state('low', self.pems['low'], aggregates=(AZ1, OTHERS)),
            'aggregate_not_allowed')

    def test_rbac_refused_requester_gets_no_valid_host(self):
        # Given a project member, whom the policy does not let migrate
        hosts = [host_state('good', self.pems['good'])]
        # When the member's move is scheduled
        error = self.assertRaises(
            exception.NoValidHost, self.passing, hosts,
            self.spec(roles=('member',)))
        # Then the whole request fails with secmig's reason
        self.assertIn('secmig refused the migration (rbac_denied)',
                      str(error))

    def test_requested_host_refused_gets_its_reason(self):
        # Given an admin's move to a host they name (the scheduler then
        # considers that host alone), a revoked one
        spec = self.spec(requested_destination=objects.Destination(
            host='revoked', node='revoked'))
        # When it is scheduled
        error = self.assertRaises(
            exception.NoValidHost, self.passing,
            [host_state('revoked', self.pems['revoked'])], spec)
        # Then the answer says why that host may not receive it
        self.assertIn('secmig refused the migration '
                      '(destination_certificate_invalid)', str(error))
        self.assertIn('(revoked)', str(error))

    def test_unnamed_hosts_refused_leave_the_answer_to_nova(self):
        # Given a move with no host named, and only a refused host
        hosts = [host_state('revoked', self.pems['revoked'])]
        # When it is scheduled, Then no host passes, and Nova says so
        self.assertEqual([], self.passing(hosts, self.spec()))

    def test_broken_policy_file_gets_no_valid_host(self):
        self.policy_file = os.path.join(self.dir, 'broken.yaml')
        with open(self.policy_file, 'w') as f:
            f.write('version: 1\nrbac: [not, a, mapping\n')
        hosts = [host_state('good', self.pems['good'])]
        error = self.assertRaises(exception.NoValidHost, self.passing,
                                  hosts, self.spec())
        self.assertIn('secmig refused the migration (policy_unavailable)',
                      str(error))

    # Resizes: Nova leaves ignore_hosts empty when the same host is allowed

    def resize_spec(self, level=None):
        """A resize's RequestSpec with ``allow_resize_to_same_host`` set.

        Nova's API then leaves ``ignore_hosts`` empty.
        """
        return self.spec(level=level, ignore_hosts=[],
                         requested_destination=objects.Destination(
                             allow_cross_cell_move=False))

    def test_resize_allowed_on_same_host_is_judged_as_a_move(self):
        # Given the instance's host, an unenrolled host and a good one
        hosts = [host_state('holder', self.pems['low'],
                            instances=[INSTANCE]),
                 host_state('rogue', None, tls=None),
                 host_state('good', self.pems['good'])]
        logs = self.useFixture(fixtures.FakeLogger(
            name=secmig_filter.__name__, level='DEBUG'))
        # When an internal instance is resized, its host allowed too
        passed = self.passing(hosts, self.resize_spec(level='internal'))
        # Then the rogue host is refused for its missing certificate, and
        # the instance may stay where it is though that host's clearance
        # is below its level (a resize in place moves nothing)
        self.assertEqual(['holder', 'good'], passed)
        self.assertIn('host rogue refused for instance %s: '
                      'destination_certificate_invalid' % INSTANCE,
                      logs.output)

    def test_resize_with_source_filtered_out_judges_every_host(self):
        # Given candidates that do not include the instance's host
        hosts = [host_state('low', self.pems['low']),
                 host_state('good', self.pems['good'])]
        logs = self.useFixture(fixtures.FakeLogger(
            name=secmig_filter.__name__, level='DEBUG'))
        passed = self.passing(hosts, self.resize_spec(level='internal'))
        self.assertEqual(['good'], passed)
        self.assertIn('host low refused for instance %s: '
                      'insufficient_clearance' % INSTANCE, logs.output)

    def test_resize_refused_requester_gets_no_valid_host(self):
        spec = self.resize_spec()
        spec._context = nova_context.RequestContext(
            'user-1', 'project-1', roles=['member'])
        error = self.assertRaises(
            exception.NoValidHost, self.passing,
            [host_state('good', self.pems['good'])], spec)
        self.assertIn('secmig refused the migration (rbac_denied)',
                      str(error))

    def test_boot_to_a_requested_host_passes(self):
        # Given a boot request naming its host (microversion 2.74)
        spec = self.spec(move=False, requested_destination=objects.
                         Destination(host='rogue', node='rogue'))
        passed = self.passing([host_state('rogue', None, tls=None)], spec)
        self.assertEqual(['rogue'], passed)

    # Concurrent requests

    def test_interleaved_requests_keep_their_own_state(self):
        """A second request runs while the first is half-way through."""
        # Given a scheduler host with a key of its own (it journals)
        for name in (host_files.SERVER_CERT, host_files.SERVER_KEY):
            shutil.copy(os.path.join(self.pki.base_dir, 'controller', name),
                        self.cert_dir)
        journal = os.path.join(self.dir, 'scheduler.jsonl')
        flt = self.filter('[audit]\njournal_path = %s\ndeliver = false\n'
                          % journal)
        self.addCleanup(flt._audit.close)
        second = self.spec(level='internal', instance=OTHER_INSTANCE,
                           ignore_hosts=['source-2'])
        armed, seen = [], []

        class Switching(host_manager.HostState):
            """The scheduler switches to the second request here."""

            @property
            def stats(self):
                if armed and not seen:
                    seen.append(
                        [h.host for h in flt.filter_all(
                            [host_state('low', self.test.pems['low']),
                             host_state('good', self.test.pems['good'])],
                            second)])
                return self._stats

            @stats.setter
            def stats(self, value):
                self._stats = value

        Switching.test = self
        first = self.spec(ignore_hosts=['source-1'])
        hosts = [host_state('rogue', None, tls=None),
                 host_state('switch', self.pems['good'], cls=Switching),
                 host_state('good', self.pems['good'])]
        # When the first request's hosts are filtered, the second request
        # running between its first and its last host
        armed.append(True)
        passed = [h.host for h in flt.filter_all(hosts, first)]
        # Then each request got its own answer
        self.assertEqual([['good']], seen)
        self.assertEqual(['good'], passed)
        # And each journal record holds its own request's refusals
        records = auditutil.journal_evidence(journal, 'scheduled')
        self.assertEqual(
            [('source-2', ['good'], {'insufficient_clearance': ['low']}),
             ('source-1', ['good'], {'not_enrolled': ['rogue'],
                                     'wrong_host': ['switch']})],
            [(r['source_host'], r['eligible_hosts'], r['refused_hosts'])
             for r in records])

    # A broken secmig.conf

    def broken_filter(self, text):
        path = os.path.join(self.dir, 'broken.conf')
        with open(path, 'w') as f:
            f.write(text)
        self.flags(config_file=path, group='secmig')
        logs = self.useFixture(fixtures.FakeLogger(
            name=secmig_filter.__name__, level='ERROR'))
        startup_logs = self.useFixture(fixtures.FakeLogger(
            name='secmig.nova.startup', level='ERROR'))
        flt = secmig_filter.SecureMigrationFilter()
        return flt, path, logs.output + startup_logs.output

    def assertBrokenConfRefusesMoves(self, text, problem):
        flt, path, logged = self.broken_filter(text)
        self.assertIn('secmig is unavailable', logged)
        self.assertIn(path, logged)
        hosts = [host_state('good', self.pems['good'])]
        # A new instance is still placed
        self.assertEqual(hosts, flt.filter_all(hosts, self.spec(move=False)))
        # A move is refused with the reason
        error = self.assertRaises(exception.NoValidHost, flt.filter_all,
                                  hosts, self.spec())
        self.assertIn('secmig refused the migration (secmig_unavailable): '
                      'secmig is unavailable on', str(error))
        self.assertIn('secmig.conf %s is invalid' % path, str(error))
        self.assertIn(problem, str(error))

    def test_unparsable_secmig_conf_refuses_moves(self):
        self.assertBrokenConfRefusesMoves(
            '[pki\ncert_dir = /etc/pki/qemu\n',
            'Invalid section (must end with ])')

    def test_bad_value_in_secmig_conf_refuses_moves(self):
        self.assertBrokenConfRefusesMoves(
            '[pki]\nverdict_refresh_interval = soon\n',
            "invalid literal for int() with base 10: 'soon'")

    def refusal_reason(self, host):
        """The logged reason the filter gave for ``host``."""
        logs = self.useFixture(fixtures.FakeLogger(
            name=secmig_filter.__name__, level='DEBUG'))
        self.passing([host], self.spec())
        return logs.output


def _expired_certificate(pki, name):
    """A certificate the CA issued three days ago, valid for one day."""
    past = ca_mod.utcnow() - datetime.timedelta(days=3)
    token = pki.ca.create_token(name, level=1, now=past)
    csr = host_files.make_key_and_csr(os.path.join(pki.base_dir, name), name)
    return pki.ca.sign(csr, token, days=1, now=past).decode()
