"""secmig on a real cloud, shown step by step.

Usage (as root, with the project's virtualenv's python)::

    python tools/cloud/demo.py [--keep]

Uses the cloud of ``cloud.py`` (started first when none is running) and
shows, as an admin and as a tenant would see it through Nova's API:

1. a guest booted on cmp1, counting on its console;
2. an admin's live migration: the scheduler picks cmp2, the source QEMU
   is given TLS credentials and the destination's name, the first bytes
   on the wire are a TLS handshake, and the guest goes on counting on
   cmp2;
3. forced moves to the unenrolled cmp3 and the revoked cmp4, refused
   with their reasons;
4. a project manager refused by the sample policy, a member by Nova;
5. the audit trail of the migration on both hosts, and both journals
   verified.

Exits 1 if any step does not behave as shown. The guests are deleted at
the end; ``--keep`` leaves the cloud running (it is stopped otherwise
only if this demo started it).
"""

import argparse
import json
import os
import subprocess
import sys

import api
import driver
import wire

HERE = os.path.dirname(os.path.abspath(__file__))


class Demo(driver.CloudDriver):
    cleanups = []
    failures = []

    @classmethod
    def cleanup_later(cls, func, *args):
        cls.cleanups.append((func, args))

    @classmethod
    def step(cls, title, func):
        print('\n== %s' % title, flush=True)
        try:
            func()
        except (AssertionError, api.ApiError, driver.hosts_mod.procs.
                CloudError) as e:
            cls.failures.append(title)
            print('   FAILED: %s' % e, flush=True)
            return
        print('   ok', flush=True)

    @staticmethod
    def show(label, text):
        print('   %-22s %s' % (label, text), flush=True)

    @classmethod
    def expect(cls, ok, what):
        if not ok:
            raise AssertionError(what)

    # The story ---------------------------------------------------------

    @classmethod
    def boot_guest(cls):
        for host in cls.cloud['hosts']:
            cls.show(host['name'], '%s, %s' % (host['address'],
                                               host['enrollment']))
        cls.guest = cls.boot('demo', 'cmp1')
        cls.show('guest', '%s on %s, heartbeat %d' % (
            cls.guest['id'], cls.host_of(cls.guest['id']),
            cls.ticks(cls.guest['id'])))

    @classmethod
    def migrate(cls):
        server = cls.guest
        before = len(cls.migrations(server['id']))
        sniffer = wire.FirstBytes(cls.hosts['cmp2'].address,
                                  wire.MIGRATION_PORTS)
        sniffer.start()
        cls.live_migrate(server['id'])
        params = driver.wait(lambda: cls.tls_parameters('cmp1', server),
                             'TLS parameters on cmp1', 120, interval=0.2)
        ticks = cls.ticks(server['id'])
        cls.migration = cls.wait_migration(server['id'], before)
        first = sniffer.stop()
        cls.show('source QEMU', 'tls-creds=%s tls-hostname=%s'
                 % (params['tls-creds'], params['tls-hostname']))
        for (_, port), payloads in sorted(first.items(),
                                          key=lambda i: i[0][1]):
            cls.show('to cmp2:%d' % port, ' | '.join(
                p[:12].hex(' ') for p in payloads))
            cls.expect(wire.encrypted(payloads),
                       'port %d is not TLS' % port)
        cls.show('migration', '%s: %s -> %s, %s' % (
            cls.migration['uuid'], cls.migration['source_compute'],
            cls.migration['dest_compute'], cls.migration['status']))
        cls.expect(cls.migration['status'] == 'completed', 'not completed')
        cls.expect(first, 'no connection to cmp2 seen')
        after = driver.wait(lambda: cls.ticks(server['id']) > ticks,
                            'heartbeats on cmp2', 60) and cls.ticks(
                                server['id'])
        cls.show('guest', 'on %s, heartbeat %d (was %d before the move)'
                 % (cls.host_of(server['id']), after, ticks))

    @classmethod
    def refusal(cls, dest, session=None, microversion='2.30', force=True):
        try:
            cls.live_migrate(cls.guest['id'], host=dest, force=force,
                             microversion=microversion, session=session)
        except api.ApiError as e:
            body = json.loads(e.text)
            message = next(iter(body.values()))['message']
            cls.show('Nova answered', '%d %s' % (e.status, message))
            return message
        raise AssertionError('the migration was accepted')

    @classmethod
    def refusals(cls):
        cls.expect('(host_identity_unavailable)' in cls.refusal('cmp3'),
                   'cmp3 not refused for its missing identity')
        cls.expect('revoked' in cls.refusal('cmp4'),
                   'cmp4 not refused as revoked')
        cls.wait_active(cls.guest['id'])
        cls.show('guest', 'still on %s' % cls.host_of(cls.guest['id']))

    @classmethod
    def tenant(cls):
        manager = api.session('manager', 'demo')
        member = api.session('member', 'demo')
        guest = cls.boot('demo-tenant', None, session=manager)
        saved, cls.guest = cls.guest, guest
        try:
            cls.expect('(rbac_denied)' in cls.refusal(None, manager,
                                                      force=None),
                       'the manager was not refused by the policy')
            cls.expect('migrate_live' in cls.refusal(None, member,
                                                     force=None),
                       'the member was not refused by Nova')
        finally:
            cls.guest = saved

    @classmethod
    def audit(cls):
        for host in ('cmp1', 'cmp2'):
            for record in cls.journal(host, cls.migration['uuid']):
                cls.show(host, '%-18s %s' % (record['step'],
                                             record['outcome']))
            status, out = cls.secmig(host, 'audit', 'verify',
                                     driver.JOURNAL)
            cls.show(host, out.strip().splitlines()[0] if out else '')
            cls.expect(status == 0, '%s: the journal does not verify'
                       % host)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keep', action='store_true',
                        help='leave the cloud running')
    args = parser.parse_args()
    started = False
    if not os.path.exists(os.path.join(driver.STATE, 'cloud.json')):
        subprocess.run([sys.executable, os.path.join(HERE, 'cloud.py'),
                        'up'], check=True)
        started = True
    Demo.connect()
    try:
        Demo.step('1. a guest on cmp1', Demo.boot_guest)
        Demo.step('2. an admin moves it (the scheduler chooses)',
                  Demo.migrate)
        Demo.step('3. forced to the unenrolled and the revoked host',
                  Demo.refusals)
        Demo.step('4. a project manager and a member ask', Demo.tenant)
        if hasattr(Demo, 'migration'):
            Demo.step('5. the audit trail, verified', Demo.audit)
    finally:
        for func, fargs in reversed(Demo.cleanups):
            func(*fargs)
        if started and not args.keep:
            subprocess.run([sys.executable, os.path.join(HERE, 'cloud.py'),
                            'down'])
    print('\nsecmig demo: %s' % ('every step behaved as shown'
                                 if not Demo.failures else
                                 'FAILED: %s' % ', '.join(Demo.failures)))
    return 1 if Demo.failures else 0


if __name__ == '__main__':
    sys.exit(main())
