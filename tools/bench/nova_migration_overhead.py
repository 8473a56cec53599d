#!/usr/bin/env python3
"""Benchmark: what secmig adds to one live migration in Nova.

Runs Nova's services in-process (fake libvirt, as in tests/nova) twice in
the same run: plain Nova with native TLS, then the same cloud with secmig
(driver, filter, enrolled hosts, policy, audit journals). Each performs
``--count`` live migrations back and forth between two hosts, timed from
the API request to the migration's ``completed`` status. It also times
the guard's own calls (policy, handshake over the message bus, audit
writes) inside the secmig run.

Usage: tools/bench/nova_migration_overhead.py [--count N]
"""

import argparse
import os
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from nova.tests.functional import integrated_helpers  # noqa: E402
from nova.tests.functional.libvirt import base as libvirt_base  # noqa: E402

from secmig import guard  # noqa: E402
from tests.nova import base  # noqa: E402

COUNT = 20
RESULTS = {}
GUARD_TIME = []


def _timed(method):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            GUARD_TIME.append(time.perf_counter() - start)
    return wrapper


class _Migrations:
    ADMIN_API = True
    microversion = 'latest'
    LABEL = None

    def setUp(self):
        super().setUp()
        self.computes_by_name = {h: self.start_compute(hostname=h)
                                 for h in ('src', 'dest')}
        self.src = self.computes['src']
        self.dest = self.computes['dest']

    def test_migrations(self):
        server = self._create_server(host='src', networks='none')
        self.server = server  # read by LibvirtMigrationMixin's stub
        samples = []
        for i in range(COUNT):
            target = 'dest' if i % 2 == 0 else 'src'
            self.src, self.dest = (self.computes['dest' if target == 'src'
                                                 else 'src'],
                                   self.computes[target])
            start = time.perf_counter()
            self.api.post_server_action(server['id'], {'os-migrateLive': {
                'host': target, 'block_migration': 'auto'}})
            self._wait_completed(server, i + 1)
            samples.append(time.perf_counter() - start)
            server = self._wait_for_state_change(server, 'ACTIVE')
            self.assertEqual(target, server['OS-EXT-SRV-ATTR:host'])
        RESULTS[self.LABEL] = samples

    def _wait_completed(self, server, count, timeout=30):
        """Poll every 10 ms (Nova's test helper polls every 500 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            migrations = self.api.api_get(
                '/os-migrations?instance_uuid=%s' % server['id']
            ).body['migrations']
            done = [m for m in migrations if m['status'] == 'completed']
            if len(done) >= count:
                return
            if any(m['status'] in ('error', 'failed') for m in migrations):
                self.fail('migration failed: %s' % migrations)
            time.sleep(0.01)
        self.fail('migration %d did not complete in %d s' % (count, timeout))


class PlainNova(_Migrations, libvirt_base.LibvirtMigrationMixin,
                libvirt_base.ServersTestBase,
                integrated_helpers.InstanceHelperMixin):
    LABEL = 'nova'

    def setUp(self):
        self.flags(api_paste_config=base.API_PASTE, group='wsgi')
        self.flags(live_migration_with_native_tls=True,
                   live_migration_scheme='tls', group='libvirt')
        super().setUp()


class SecmigNova(_Migrations, base.SecmigCloudMixin,
                 libvirt_base.LibvirtMigrationMixin,
                 libvirt_base.ServersTestBase,
                 integrated_helpers.InstanceHelperMixin):
    LABEL = 'nova+secmig'

    def setUp(self):
        for name in ('authorise_incoming', 'authorise_outgoing',
                     'start_outgoing'):
            original = getattr(guard.HostGuard, name)
            setattr(guard.HostGuard, name, _timed(original))
            self.addCleanup(setattr, guard.HostGuard, name, original)
        super().setUp()


def main():
    global COUNT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=COUNT)
    COUNT = parser.parse_args().count
    suite = unittest.TestSuite()
    for cls in (PlainNova, SecmigNova):
        suite.addTest(cls('test_migrations'))
    result = unittest.TextTestRunner(stream=open(os.devnull, 'w')).run(
        suite)
    if not result.wasSuccessful():
        for _, trace in result.errors + result.failures:
            print(trace, file=sys.stderr)
        return 1
    plain = statistics.median(RESULTS['nova']) * 1000
    secure = statistics.median(RESULTS['nova+secmig']) * 1000
    per_migration = sum(GUARD_TIME) / COUNT * 1000
    print('live migrations: %d per run, fake libvirt, in-process services'
          % COUNT)
    print('%-14s %10s' % ('run', 'median ms'))
    print('%-14s %10.1f' % ('nova', plain))
    print('%-14s %10.1f' % ('nova+secmig', secure))
    print('added: %.1f ms per migration (ratio %.2f)'
          % (secure - plain, secure / plain))
    print('secmig guard calls (policy, handshake over RPC, audit writes): '
          '%.1f ms per migration' % per_migration)
    return 0


if __name__ == '__main__':
    sys.exit(main())
