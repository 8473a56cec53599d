"""The planner: which VMs move where, within limits, with evidence."""

import unittest

from secmig.decision import Decision
from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model
from secmig.hotspot import plan

G = 60
NOW = 100000.0
TH = detect.Thresholds(window=10 * G, granularity=G, stale_after=3 * G,
                       min_points=3)
LINK = 125e6


def series(value):
    end = NOW - G
    return tuple((end - G * k, float(value)) for k in range(9, -1, -1))


class Cluster(object):
    """Hosts of 4 CPUs; VMs with constant loads (cores, bytes/s, MiB).

    Each host's link meters carry its VMs' traffic; its swap-out and
    available-memory meters are set per host.
    """

    def __init__(self):
        self.hosts = []
        self.vms = []
        self.data = {}
        self.free = {}
        self.candidates = {}
        self.refused = {}
        self.swap = {}
        self.mem_free = {}

    def host(self, name, free=plan.Resources(8, 8192, 100), memory=None,
             swap=0.0, mem_free=None):
        self.hosts.append(model.HostInfo(name, 4, LINK, memory_mb=memory))
        self.free[name] = free
        self.swap[name] = swap
        if mem_free is not None:
            self.mem_free[name] = mem_free
        return self

    def vm(self, vm_id, host, cpu=0.1, net_in=0.0, expected_in=None,
           blocked=None, resident=None, dirty=None):
        self.vms.append(model.VmInfo(vm_id, host, expected_in=expected_in,
                                     memory_mb=1024))
        self.data[vm_id] = {'cpu': series(cpu), 'net_in': series(net_in),
                            'net_out': series(0)}
        if resident is not None:
            self.data[vm_id]['resident'] = series(resident)
        if dirty is not None:
            self.data[vm_id]['dirty'] = series(dirty)
        self.candidates[vm_id] = plan.Candidate(
            vm_id, plan.Resources(1, 1024, 10), blocked)
        return self

    def eligible(self, vm_id, source, destination):
        code = self.refused.get(destination)
        if code:
            return Decision.refuse(code, 'refused by the test policy')
        return Decision.allow('ok', rule='rbac.watcher', policy_digest='d',
                              constraints={'encryption': 'required'})

    def observations(self):
        meters = {}
        for host in self.hosts:
            on = [v.id for v in self.vms if v.host == host.name]
            meters[host.name] = {
                'net_in': series(sum(self.data[i]['net_in'][0][1]
                                     for i in on)),
                'net_out': series(0), 'swap_out': series(
                    self.swap[host.name])}
            if host.name in self.mem_free:
                meters[host.name]['mem_free'] = series(
                    self.mem_free[host.name])
        return model.Observations(NOW, TH.window, G, vm=self.data,
                                  host=meters)

    def run(self, history=None, **limits):
        obs = self.observations()
        report = detect.detect(self.hosts, self.vms, obs, TH)
        return report, plan.plan(report, self.hosts, self.vms, obs, TH,
                                 self.free, self.candidates, self.eligible,
                                 history, NOW, plan.Limits(**limits))


def moves(result):
    return [(m.instance, m.source, m.destination) for m in result.moves]


class PlanTest(unittest.TestCase):

    def test_one_move_relieves_a_hot_cpu_host(self):
        c = Cluster().host('hot').host('cool').host('warm')
        c.vm('a', 'hot', cpu=1.9).vm('b', 'hot', cpu=1.5)
        c.vm('w', 'warm', cpu=1.5).vm('c', 'cool', cpu=0.2)
        report, result = c.run()
        # Then the smallest VM that is enough alone goes to the least
        # loaded host
        self.assertEqual([('b', 'hot', 'cool')], moves(result))
        self.assertEqual((), result.unresolved)
        evidence = result.moves[0].evidence
        self.assertEqual('host_cpu', evidence['condition'])
        self.assertEqual(['cpu'], evidence['hotspot']['metrics'])
        self.assertAlmostEqual(85.0, evidence['source']['before']['cpu_pct'])
        self.assertAlmostEqual(47.5, evidence['source']['after']['cpu_pct'])
        self.assertAlmostEqual(42.5,
                               evidence['destination']['after']['cpu_pct'])
        self.assertEqual('d', evidence['policy']['policy_digest'])
        # And after the plan no hotspot is left
        after = detect.detect(c.hosts, plan.apply(c.vms, result.moves),
                              model.Observations(NOW, TH.window, G,
                                                 vm=c.data), TH)
        self.assertEqual((), after.hotspots)

    def test_cpu_relief_moves_the_vm_that_migrates_fastest(self):
        # 'hot' at 86.25 %, 16.25 points over its 70 % target: 'big'
        # (36.25 %) and 'small' (37.5 %) each relieve it alone, dirtying
        # alike; 'big' holds ten times the memory
        def cluster(big_resident):
            c = Cluster().host('hot').host('cool')
            c.vm('big', 'hot', cpu=1.45, resident=big_resident, dirty=8)
            c.vm('small', 'hot', cpu=1.5, resident=600, dirty=8)
            c.vm('base', 'hot', cpu=0.5).vm('c', 'cool', cpu=0.2)
            return c

        _, result = cluster(6000).run()
        # Then 'small' moves: the same relief in a tenth of the time
        # (600 / 120 s against 6000 / 120 s), though 'big' is the
        # smaller load that is enough
        self.assertEqual([('small', 'hot', 'cool')], moves(result))
        self.assertEqual((), result.unresolved)
        self.assertEqual(5.0, result.moves[0].evidence['migration']
                         ['estimated_seconds'])
        # And alike in memory, the smaller load that is enough goes
        _, result = cluster(600).run()
        self.assertEqual([('big', 'hot', 'cool')], moves(result))

    def test_ineligible_best_host_is_passed_over(self):
        c = Cluster().host('hot').host('best').host('ok')
        c.vm('a', 'hot', cpu=1.9).vm('b', 'hot', cpu=1.5)
        c.vm('o', 'ok', cpu=0.8)
        c.refused['best'] = 'insufficient_clearance'
        _, result = c.run()
        self.assertEqual([('b', 'hot', 'ok')], moves(result))

    def test_full_destinations_leave_the_hotspot_reported(self):
        c = Cluster().host('hot').host('full', plan.Resources(0, 0, 0))
        c.host('bad')
        c.vm('a', 'hot', cpu=1.9).vm('b', 'hot', cpu=1.5)
        c.refused['bad'] = 'destination_certificate_invalid'
        _, result = c.run()
        self.assertEqual([], moves(result))
        [left] = result.unresolved
        self.assertEqual('no_eligible_destination', left.code)
        self.assertEqual({'no_capacity': 2,
                          'destination_certificate_invalid': 2},
                         left.details['refusals'])

    def test_destination_would_become_hot(self):
        c = Cluster().host('hot').host('busy')
        c.vm('a', 'hot', cpu=1.9).vm('b', 'hot', cpu=1.5)
        c.vm('x', 'busy', cpu=1.6)
        _, result = c.run()
        self.assertEqual([], moves(result))
        self.assertEqual({'would_overload': 2},
                         result.unresolved[0].details['refusals'])

    def test_starved_vm_moves_where_its_bandwidth_fits(self):
        c = Cluster().host('net').host('roomy').host('tight')
        c.host('spare').vm('sp', 'spare', net_in=20e6)
        c.vm('victim', 'net', net_in=10e6, expected_in=50e6)
        c.vm('hog1', 'net', net_in=55e6).vm('hog2', 'net', net_in=55e6)
        c.vm('t', 'tight', net_in=60e6)
        _, result = c.run()
        found = moves(result)
        self.assertEqual(('victim', 'net', 'roomy'), found[0])
        self.assertEqual('vm_bandwidth_shortfall', result.moves[0].condition)
        self.assertEqual(50e6, result.moves[0].evidence['hotspot']
                         ['expected_bps'])
        # the link stays saturated after the victim leaves: a hog follows
        self.assertEqual('host_network', result.moves[1].condition)
        self.assertEqual('spare', result.moves[1].destination)
        self.assertEqual((), result.unresolved)

    def test_limits_per_audit_and_per_destination(self):
        c = Cluster().host('cool')
        for i in range(3):
            c.host('hot%d' % i)
            c.vm('a%d' % i, 'hot%d' % i, cpu=1.9)
            c.vm('b%d' % i, 'hot%d' % i, cpu=1.5)
        _, result = c.run(max_per_destination=1)
        self.assertEqual(1, len(result.moves))
        # 'cool' took one VM and the other hot hosts are no destination,
        # for each of the two VMs of each hot host left
        self.assertEqual([{'destination_cap': 2, 'destination_hot': 4}] * 2,
                         [u.details['refusals'] for u in result.unresolved])
        c.host('cool2').host('cool3')
        _, result = c.run(max_migrations=2)
        self.assertEqual(2, len(result.moves))
        self.assertEqual(['audit_cap'],
                         [u.code for u in result.unresolved])

    def test_cooldown_doubles_and_backoff_leaves_alone(self):
        limits = plan.Limits(cooldown=100, backoff_window=1000,
                             backoff_max=3)
        self.assertIsNone(plan.backoff([], NOW, limits))
        self.assertEqual('cooldown',
                         plan.backoff([NOW - 50], NOW, limits)[0])
        self.assertIsNone(plan.backoff([NOW - 150], NOW, limits))
        # two recent moves: the cooldown is 200 s
        self.assertEqual('cooldown', plan.backoff(
            [NOW - 900, NOW - 150], NOW, limits)[0])
        self.assertEqual('backoff', plan.backoff(
            [NOW - 900, NOW - 600, NOW - 300], NOW, limits)[0])
        self.assertIsNone(plan.backoff([NOW - 5000], NOW, limits))

    def test_vms_in_cooldown_are_skipped_and_reported(self):
        c = Cluster().host('hot').host('cool')
        c.vm('a', 'hot', cpu=1.9).vm('b', 'hot', cpu=1.5)
        c.vm('x', 'hot', cpu=0.1, blocked=('not_active', 'stopped'))
        _, result = c.run(history={'a': [NOW - 60], 'b': [NOW - 60]})
        self.assertEqual([], moves(result))
        self.assertEqual({('a', 'cooldown'), ('b', 'cooldown'),
                          ('x', 'not_active')},
                         {(s.instance, s.code) for s in result.skipped})
        self.assertEqual('no_movable_instance', result.unresolved[0].code)

    def test_swapping_host_sends_resident_memory_to_free_memory(self):
        # swap swaps out 5 MiB/s with 100 MiB free of 8192; 'tight' has
        # 1500 MiB free, 'roomy' 6000
        c = Cluster().host('swap', memory=8192, swap=5.0, mem_free=100)
        c.host('tight', memory=8192, mem_free=1500)
        c.host('roomy', memory=8192, mem_free=6000)
        c.vm('big', 'swap', resident=3000).vm('small', 'swap', resident=900)
        c.vm('busy', 'swap', resident=1000, dirty=100)
        _, result = c.run()
        # 719 MiB are missing to keep 10 % free: 'small' gives them at
        # the least cost (900 MiB at 128 MiB/s), and 'tight' would keep
        # less than 10 % free with it
        self.assertEqual([('small', 'swap', 'roomy')], moves(result))
        evidence = result.moves[0].evidence
        self.assertEqual('host_swap', evidence['condition'])
        self.assertEqual({'resident_mib': 900.0, 'dirty_mibps': 0.0,
                          'migration_mibps': 128.0,
                          'estimated_seconds': round(900 / 128, 3)},
                         evidence['migration'])
        self.assertEqual(['dirty'], evidence['instance_load_unknown'])
        self.assertEqual((100.0, 1000.0),
                         (evidence['source']['before']['mem_free'],
                          evidence['source']['after']['mem_free']))
        self.assertEqual((6000.0, 5100.0),
                         (evidence['destination']['before']['mem_free'],
                          evidence['destination']['after']['mem_free']))

    def test_swap_relief_weighs_relief_against_migration_time(self):
        c = Cluster().host('swap', memory=8192, swap=5.0, mem_free=0)
        c.host('roomy', memory=8192, mem_free=8000)
        # 820 MiB missing: 'a' frees 820 in 900/128 s; 'b' frees 820 in
        # 1000/(128 - 100) s: 'a' first, and it is enough
        c.vm('a', 'swap', resident=900)
        c.vm('b', 'swap', resident=1000, dirty=100)
        _, result = c.run()
        self.assertEqual([('a', 'swap', 'roomy')], moves(result))

    def test_memory_estimated_from_flavors_without_a_meter(self):
        # no available-memory meter: 8192 MiB less two 1024 MiB flavors
        c = Cluster().host('swap', memory=8192, swap=5.0)
        c.host('cool', memory=2048)
        c.vm('a', 'swap', resident=800).vm('c', 'cool', resident=500)
        c.vm('d', 'cool', resident=500)
        _, result = c.run()
        # 'cool' holds two flavors of 1024 MiB: nothing free
        self.assertEqual([], moves(result))
        self.assertEqual({'no_free_memory': 1},
                         result.unresolved[0].details['refusals'])

    def test_vm_dirtying_faster_than_a_migration_is_not_moved(self):
        c = Cluster().host('hot').host('cool')
        c.vm('a', 'hot', cpu=1.9, dirty=200)
        c.vm('b', 'hot', cpu=1.5, dirty=150)
        _, result = c.run()
        self.assertEqual([], moves(result))
        self.assertEqual({('a', 'would_not_converge'),
                          ('b', 'would_not_converge')},
                         {(s.instance, s.code) for s in result.skipped})

    def test_limits_reject_negative_values(self):
        with self.assertRaises(exception.SecmigError) as cm:
            plan.Limits(max_migrations=-1)
        self.assertEqual('invalid_limit', cm.exception.code)
