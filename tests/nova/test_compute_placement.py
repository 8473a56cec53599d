"""Compute hosts read aggregates through Nova's API, not its database.

In a multi-cell cloud a compute host reaches only its cell conductor,
which has no ``[api_database]``: aggregates, which live there, come from
Nova's public API (``os-aggregates``) with secmig.conf's ``[nova]``
credentials. Here the API is Nova's own in-process WSGI application; the
stubbed Keystone of Nova's fixtures reads the caller from headers, which
keystoneauth's ``none`` plugin is given for the test.
"""

import functools
import os
import threading

import fixtures
from oslo_db import exception as db_exc
import testtools

import nova.conf
from nova import objects

from secmig import conf as secmig_conf
from secmig.conf import nova_api
from secmig.nova import driver
from secmig.nova import placement
from secmig import placement as secmig_placement
from tests.nova import test_live_migration

CONF = nova.conf.CONF
POLICY_DESTINATIONS = """
destinations:
  aggregates: [secmig-hosts]
"""


def _admin_headers(plugin, session, **kwargs):
    return {'X-Auth-User': 'admin', 'X-Auth-Project-Id': 'admin',
            'X-Roles': 'admin,reader,member'}


class CellCompute(fixtures.Fixture):
    """Compute hosts' checks cannot read the API database.

    While a compute host runs its live-migration checks, an aggregate
    read from the API database fails as it does through a cell conductor
    without ``[api_database]``; Nova's own services (in this process
    too) keep their access.
    """

    CHECKS = ('check_can_live_migrate_destination',
              'check_can_live_migrate_source')

    def _setUp(self):
        local = threading.local()
        original = objects.AggregateList.get_by_host

        def get_by_host(cls, *args, **kwargs):
            if getattr(local, 'in_compute', False):
                raise db_exc.CantStartEngineError(
                    'No sql_connection parameter is established')
            return original(*args, **kwargs)

        def in_compute(method):
            @functools.wraps(method)
            def check(*args, **kwargs):
                local.in_compute = True
                try:
                    return method(*args, **kwargs)
                finally:
                    local.in_compute = False
            return check

        self.useFixture(fixtures.MonkeyPatch(
            'nova.objects.AggregateList.get_by_host',
            classmethod(get_by_host)))
        for name in self.CHECKS:
            self.useFixture(fixtures.MonkeyPatch(
                'secmig.nova.driver.SecureLibvirtDriver.' + name,
                in_compute(getattr(driver.SecureLibvirtDriver, name))))


class ComputePlacementTest(test_live_migration.SecmigFunctionalTest):
    """Hosts ``src`` and ``dest``, in aggregate ``secmig-hosts``."""

    #: ``[nova] endpoint_override`` of the computes (None: the API's)
    NOVA_ENDPOINT = None
    AGGREGATE_HOSTS = ('src', 'dest')

    def setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'keystoneauth1.noauth.NoAuth.get_headers', _admin_headers))
        super().setUp()
        aggregate = self.api.post_aggregate(
            {'aggregate': {'name': 'secmig-hosts'}})
        others = self.api.post_aggregate({'aggregate': {'name': 'others'}})
        for host in self.HOSTS:
            target = (aggregate if host in self.AGGREGATE_HOSTS
                      else others)
            self.api.add_host_to_aggregate(target['id'], host)
        self.useFixture(CellCompute())

    def write_policy(self):
        path = super().write_policy()
        with open(path, 'a') as f:
            f.write(POLICY_DESTINATIONS)
        return path

    def secmig_conf(self, host, **overrides):
        if host != 'scheduler':
            overrides.setdefault('nova', {
                'auth_type': 'none',
                'endpoint_override': self.NOVA_ENDPOINT or self.api.base_url,
                'connect_retries': 0, 'timeout': 5})
        return super().secmig_conf(host, **overrides)


class AggregatesFromApiTest(ComputePlacementTest):

    HOSTS = ('src', 'dest', 'outside')
    AGGREGATE_HOSTS = ('src', 'dest')

    def test_migration_within_the_aggregate_completes(self):
        server = self._live_migrate(self.boot(), 'completed', host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('authorised',
                      [s for s, _, _ in self.audit_steps('dest')])
        self.assertIn('authorised',
                      [s for s, _, _ in self.audit_steps('src')])

    def test_forced_host_outside_the_aggregate_is_refused_on_compute(self):
        message = self.force_live_migrate(self.boot(), 'outside')
        self.assertIn('secmig refused the migration (aggregate_not_allowed)'
                      ': destination outside is in none of the aggregates '
                      'secmig-hosts', message)
        self.assertEqual(['aggregate_not_allowed'],
                         self.refusals('outside'))
        self.assertEqual([], self.libvirt_calls)


class ApiUnreachableTest(ComputePlacementTest):
    """Nothing listens on the computes' ``[nova] endpoint_override``."""

    NOVA_ENDPOINT = 'http://127.0.0.1:9/v2.1'

    def test_policy_with_aggregates_refuses_with_the_reason(self):
        message = self.force_live_migrate(self.boot(), 'dest')
        self.assertIn('secmig refused the migration (placement_unavailable)'
                      ': the aggregates and availability zone of dest could '
                      'not be read, and the migration policy decides on '
                      'them', message)
        self.assertIn('Nova\'s API did not list the aggregates', message)
        self.assertEqual(['placement_unavailable'], self.refusals('dest'))
        self.assertEqual([], self.libvirt_calls)

    def test_refusal_leaves_no_shared_storage_test_file(self):
        """The destination's checks clean up after a placement refusal.

        Nova's own destination checks leave a file made by ``mkstemp`` in
        ``instances_path`` for the source to look for, and remove it only
        when the checks return.
        """
        server = self.boot()
        before = set(os.listdir(CONF.instances_path))
        self.force_live_migrate(server, 'dest')
        self.assertEqual(['placement_unavailable'], self.refusals('dest'))
        self.assertEqual(before, set(os.listdir(CONF.instances_path)))


class ApiUnreachableNoDestinationRulesTest(ComputePlacementTest):
    """The same, under a policy without destinations rules."""

    NOVA_ENDPOINT = 'http://127.0.0.1:9/v2.1'

    def write_policy(self):
        return test_live_migration.SecmigFunctionalTest.write_policy(self)

    def test_migration_completes(self):
        server = self._live_migrate(self.boot(), 'completed', host='dest')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])


class Aggregate:
    """What novaclient returns for one aggregate (the fields read)."""

    def __init__(self, name, hosts, availability_zone=None):
        self.name = name
        self.hosts = hosts
        self.availability_zone = availability_zone


class AggregateReaderTest(testtools.TestCase):
    """One listing answers for every host for the cache time."""

    def setUp(self):
        super().setUp()
        self.now = 1000.0
        self.calls = 0
        self.failure = None
        self.reader = placement.AggregateReader(
            self.list_aggregates, 60, clock=lambda: self.now)

    def list_aggregates(self):
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return [Aggregate('rack-1', ['a', 'b'], 'az1'),
                Aggregate('secmig-hosts', ['a']),
                Aggregate('empty', [])]

    def test_names_and_zone_of_each_host(self):
        self.assertEqual((frozenset({'rack-1', 'secmig-hosts'}), 'az1'),
                         self.reader.placement('a'))
        self.assertEqual((frozenset({'rack-1'}), 'az1'),
                         self.reader.placement('b'))
        self.assertEqual((frozenset(), None), self.reader.placement('c'))
        self.assertEqual(1, self.calls)

    def test_listing_is_read_again_after_the_cache_time(self):
        self.reader.placement('a')
        self.now += 59
        self.reader.placement('a')
        self.assertEqual(1, self.calls)
        self.now += 1
        self.reader.placement('a')
        self.assertEqual(2, self.calls)

    def test_api_failure_is_unavailable_and_not_cached(self):
        self.failure = ConnectionError('connection refused')
        error = self.assertRaises(secmig_placement.Unavailable,
                                  self.reader.placement, 'a')
        self.assertEqual('Nova\'s API did not list the aggregates: '
                         'ConnectionError: connection refused', str(error))
        self.failure = None
        self.assertEqual('az1', self.reader.placement('a')[1])
        self.assertEqual(2, self.calls)

    def test_unconfigured_group_is_unavailable(self):
        conf = secmig_conf.new_conf()
        nova_api.register_opts(conf)
        error = self.assertRaises(secmig_placement.Unavailable,
                                  placement.AggregateReader.from_conf, conf)
        self.assertEqual('[nova] auth_type is not set in secmig.conf',
                         str(error))
