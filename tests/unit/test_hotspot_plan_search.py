"""The planner's destination search equals scoring every host.

:meth:`secmig.hotspot.plan._Planner.destination_for` stops early (a
threshold walk over the hosts' loads). The oracle here scores every
host and sorts, as a reader would write it; on random clusters with
hosts of several sizes and link speeds, refusing policies and tight
limits, both must plan the same moves and leave the same hotspots.
The refusal counts of a hotspot left may differ in one way: the walk
counts hosts it stopped before as ``would_overload`` (or
``destination_data_incomplete``), where the oracle may have found
another reason first.
"""

import collections
import unittest
from unittest import mock

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from secmig.decision import Decision
from secmig.hotspot import detect
from secmig.hotspot import model
from secmig.hotspot import plan

G = 60
NOW = 100000.0
TH = detect.Thresholds(window=10 * G, granularity=G, stale_after=3 * G,
                       min_points=3)


class ExhaustivePlanner(plan._Planner):
    """The oracle: score every fit host, try them in sorted order."""

    def destination_for(self, vm_id, source, load, extra=None):
        cand = self.candidates.get(vm_id) or plan.Candidate(vm_id)
        refusals = collections.Counter()
        scored = []
        for name in self.hosts:
            if name == source:
                continue
            code, score = self._fit(name, cand, load, extra)
            if code:
                refusals[code] += 1
                continue
            scored.append((score, name))
        for _, name in sorted(scored):
            decision = self.eligible(vm_id, source, name)
            if decision:
                return name, decision, refusals
            refusals[decision.code] += 1
        return None, None, refusals


def flat(value):
    return tuple((NOW - G * k, float(value)) for k in range(10, 0, -1))


host_shapes = st.tuples(st.sampled_from([2, 4, 8, 16]),
                        st.sampled_from([125e6, 1.25e9]),
                        st.integers(0, 6), st.booleans(),
                        st.sampled_from([False] * 5 + [True]))
vm_loads = st.tuples(st.floats(0, 3), st.floats(0, 120e6),
                     st.floats(0, 120e6),
                     st.sampled_from([None, None, 60e6]))


@st.composite
def clusters(draw):
    """Hosts whose link meters carry their VMs' traffic; some swap.

    Some hosts' inbound link figures are stale: they cannot be judged.
    """
    shapes = draw(st.lists(host_shapes, min_size=2, max_size=14))
    hosts, vms, data, free, candidates, refused = [], [], {}, {}, {}, {}
    meters = {}
    for i, (cpus, link, free_vcpus, refuse, blind) in enumerate(shapes):
        name = 'h%02d' % i
        hosts.append(model.HostInfo(name, cpus, link))
        free[name] = plan.Resources(free_vcpus, 8192, 100)
        if refuse:
            refused[name] = 'insufficient_clearance'
        sums = {'net_in': 0.0, 'net_out': 0.0}
        for j, (cpu, net_in, net_out, expected) in enumerate(
                draw(st.lists(vm_loads, max_size=5))):
            vm_id = '%s-vm%d' % (name, j)
            vms.append(model.VmInfo(vm_id, name, expected_in=expected))
            data[vm_id] = {'cpu': flat(cpu), 'net_in': flat(net_in),
                           'net_out': flat(net_out)}
            sums['net_in'] += net_in
            sums['net_out'] += net_out
            candidates[vm_id] = plan.Candidate(
                vm_id, plan.Resources(1, 1024, 10))
        meters[name] = {k: flat(v) for k, v in sums.items()}
        meters[name]['swap_out'] = flat(draw(st.sampled_from([0.0, 2.0])))
        if blind:
            meters[name]['net_in'] = tuple((t - 7200, v)
                                           for t, v in meters[name]['net_in'])
    limits = plan.Limits(max_migrations=draw(st.integers(1, 12)),
                         max_per_source=draw(st.integers(1, 4)),
                         max_per_destination=draw(st.integers(1, 3)))
    return hosts, vms, data, meters, free, candidates, refused, limits


def run(planner_class, cluster):
    hosts, vms, data, meters, free, candidates, refused, limits = cluster

    def eligible(vm_id, source, destination):
        if destination in refused:
            return Decision.refuse(refused[destination], 'test policy')
        return Decision.allow('ok')

    obs = model.Observations(NOW, TH.window, G, vm=data, host=meters)
    report = detect.detect(hosts, vms, obs, TH)
    with mock.patch.object(plan, '_Planner', planner_class):
        result = plan.plan(report, hosts, vms, obs, TH, free, candidates,
                           eligible, {}, NOW, limits)
    return ([(m.instance, m.source, m.destination, m.condition)
             for m in result.moves],
            [(u.condition, u.host, u.instance, u.code,
              {k: v for k, v in u.details.items() if k != 'refusals'})
             for u in result.unresolved],
            [collections.Counter(u.details.get('refusals', {}))
             for u in result.unresolved])


#: What the walk may count a host it did not reach as.
UNREACHED = ('would_overload', 'destination_data_incomplete')


class SearchTest(unittest.TestCase):

    @settings(max_examples=300, deadline=None)
    @given(clusters())
    def test_same_plan_as_scoring_every_host(self, cluster):
        moves, left, oracle_refusals = run(ExhaustivePlanner, cluster)
        walked = run(plan._Planner, cluster)
        self.assertEqual((moves, left), walked[:2])
        for expected, refusals in zip(oracle_refusals, walked[2]):
            self.assertEqual(sum(expected.values()), sum(refusals.values()))
            for code, count in refusals.items():
                if code not in UNREACHED:
                    self.assertLessEqual(count, expected[code], code)

    def test_the_walk_stops_early_on_a_large_cluster(self):
        # 400 alike hosts with distinct loads, one hot: the search
        # scores a handful of hosts, not all of them.
        report, result, scored = plan_counting(lambda i: [
            (3.6 if i == 0 else 0.5 + (i % 97) / 100.0, 1e6)] * 4)
        self.assertEqual(['h000'], [h.host for h in report.hotspots])
        self.assertEqual(1, len(result.moves))
        # the least loaded host (i % 97 == 0, lowest name) got the VM
        self.assertEqual('h097', result.moves[0].destination)
        self.assertLess(len(scored), 40)

    def test_the_walk_stops_early_among_alike_hosts(self):
        # 400 hosts with the same load (a batch of new hosts), one hot:
        # the first alike host in name order takes the VM, and the search
        # does not score the other alike hosts to be sure of it.
        report, result, scored = plan_counting(
            lambda i: [(3.6, 1e6)] * 4 if i == 0 else [(0.5, 1e6)])
        self.assertEqual(['h000'], [h.host for h in report.hotspots])
        self.assertEqual(['h001'], [m.destination for m in result.moves])
        self.assertLess(len(scored), 20)

    def test_the_walk_stops_early_when_no_host_can_fit(self):
        # 400 hosts; on one, a VM alone fills 95 % of the link: no host
        # can take it, and the search knows it after a few hosts.
        def loads(i):
            cpu = 0.2 + (i % 97) / 100.0
            small = (cpu, 1e6 * (1 + i % 7))
            return [(cpu, 0.95 * 1.25e9) if i == 0 else small, small]

        report, result, scored = plan_counting(loads, host_meters=True)
        self.assertEqual([('h000', detect.HOST_NETWORK)],
                         [(h.host, h.condition) for h in report.hotspots])
        # The small VM moves, which does not bring the link under its
        # threshold; the big one cannot go anywhere.
        self.assertEqual(['h000-1'], [m.instance for m in result.moves])
        [left] = result.unresolved
        self.assertEqual(('h000', 'no_eligible_destination'),
                         (left.host, left.code))
        # Every other host refused the big VM, in each of the two rounds
        # (before and after the small one moved).
        self.assertEqual({'would_overload': 2 * 399},
                         left.details['refusals'])
        self.assertLess(len(scored), 20)

    def test_the_walk_follows_the_order_nearest_its_end(self):
        # Hosts busy on CPU are idle on their link and the other way
        # round; the VM adds much CPU and little traffic. The best host
        # (h131) balances both; the walk ends when one order passes its
        # score, which the CPU order does 130 hosts in and the inbound
        # order 270 hosts in. Walked in turns, the three orders score
        # some 260 hosts; the CPU order alone, some 140.
        def loads(i):
            if i == 0:
                return [(3.6, 1e6)] * 4
            return [(0.2 + 12.0 * i / 400, 0.9e9 * (1 - i / 400.0))]

        report, result, scored = plan_counting(loads, host_meters=True)
        self.assertEqual([('h000', detect.HOST_CPU)],
                         [(h.host, h.condition) for h in report.hotspots])
        self.assertEqual(['h131'], [m.destination for m in result.moves])
        self.assertLess(len(scored), 180)

    def test_hot_hosts_are_not_walked(self):
        # 40 hosts with a saturated link and idle CPUs come first in the
        # CPU order; as hotspots themselves they never take a VM, and
        # no search scores them.
        def loads(i):
            if i == 0:
                return [(3.6, 1e6)] * 4
            if i <= 40:
                return [(0.1, 0.45 * 1.25e9)] * 2
            return [(1.0 + (i % 97) / 100.0, 1e6)]

        report, result, scored = plan_counting(loads, host_meters=True)
        hot = {h.host for h in report.hotspots}
        self.assertEqual(41, len(hot))
        self.assertTrue(result.moves)
        self.assertEqual(set(), hot & set(scored))


def plan_counting(loads, host_meters=False):
    """Plan on 400 hosts of 16 cores and 10 Gb/s, counting hosts scored.

    ``loads(i)`` gives the ``(cores, net_in bytes/s)`` of each VM of host
    ``i``; with ``host_meters``, each host's link meters carry its VMs'
    traffic. Returns the report, the plan and the names ``_fit`` scored.
    """
    hosts = [model.HostInfo('h%03d' % i, 16, 1.25e9) for i in range(400)]
    vms, data, meters = [], {}, {}
    for i, host in enumerate(hosts):
        for j, (cpu, net_in) in enumerate(loads(i)):
            vm_id = '%s-%d' % (host.name, j)
            vms.append(model.VmInfo(vm_id, host.name))
            data[vm_id] = {'cpu': flat(cpu), 'net_in': flat(net_in),
                           'net_out': flat(1e6)}
        if host_meters:
            meters[host.name] = {
                'net_in': flat(sum(n for _, n in loads(i))),
                'net_out': flat(1e6 * len(loads(i)))}
    free = {h.name: plan.Resources(8, 8192, 100) for h in hosts}
    candidates = {v.id: plan.Candidate(v.id, plan.Resources(1, 1024, 10))
                  for v in vms}
    obs = model.Observations(NOW, TH.window, G, vm=data, host=meters)
    report = detect.detect(hosts, vms, obs, TH)
    scored = []
    fit = plan._Planner._fit

    def counting(planner, name, *args):
        scored.append(name)
        return fit(planner, name, *args)

    with mock.patch.object(plan._Planner, '_fit', counting):
        result = plan.plan(report, hosts, vms, obs, TH, free, candidates,
                           lambda *a: Decision.allow('ok'), {}, NOW,
                           plan.Limits())
    return report, result, scored
