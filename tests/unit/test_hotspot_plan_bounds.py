"""The planner on loads partly read: unread kinds are bounded by the host."""

import unittest

from secmig.decision import Decision
from secmig.hotspot import detect
from secmig.hotspot import model
from secmig.hotspot import plan
from tests.unit import test_hotspot_plan as base

G, LINK, NOW, TH, series = base.G, base.LINK, base.NOW, base.TH, base.series

MB = 1e6
NEEDS = plan.Resources(1, 1024, 10)


def allow(vm_id, source, destination):
    return Decision.allow('ok', rule='rbac.watcher', policy_digest='d')


def run(host_meters, vms, unread):
    """Plan over host meters, VM series ``vms`` and ``unread`` kinds.

    ``host_meters``: ``{host: (cpu_pct, net_in bytes/s)}``;
    ``vms``: ``{vm_id: (host, vcpus, {kind: value})}``.
    """
    hosts = [model.HostInfo(h, 4, LINK) for h in sorted(host_meters)]
    host = {h: {'cpu_pct': series(cpu), 'net_in': series(net),
                'net_out': series(0), 'swap_out': series(0)}
            for h, (cpu, net) in host_meters.items()}
    infos = [model.VmInfo(v, h, vcpus) for v, (h, vcpus, _) in vms.items()]
    data = {v: {k: series(x) for k, x in loads.items()}
            for v, (_, _, loads) in vms.items()}
    obs = model.Observations(NOW, TH.window, G, vm=data, host=host,
                             mode='host_meters', unread=unread)
    report = detect.detect(hosts, infos, obs, TH)
    free = {h.name: plan.Resources(8, 8192, 100) for h in hosts}
    candidates = {v: plan.Candidate(v, NEEDS) for v in vms}
    return plan.plan(report, hosts, infos, obs, TH, free, candidates, allow,
                     {}, NOW, plan.Limits())


class BoundsTest(unittest.TestCase):

    def test_unread_network_is_bounded_by_the_host_link(self):
        result = run({'hot': (90.0, 60 * MB), 'cool': (10.0, 20 * MB)},
                     {'a': ('hot', 2, {'cpu': 1.9}),
                      'b': ('hot', 2, {'cpu': 1.6})},
                     {'a': {'net_in', 'net_out'}, 'b': {'net_in', 'net_out'}})
        self.assertEqual([('b', 'hot', 'cool')],
                         [(m.instance, m.source, m.destination)
                          for m in result.moves])
        evidence = result.moves[0].evidence
        self.assertEqual(['net_in', 'net_out'],
                         evidence['instance_load_bounded'])
        # the destination gets the whole link figure of the source, the
        # source keeps it: neither is understated
        self.assertEqual(60 * MB, evidence['instance_load']['net_in'])
        self.assertEqual(80 * MB,
                         evidence['destination']['after']['net_in'])
        self.assertEqual(60 * MB, evidence['source']['after']['net_in'])
        # the CPU, read, moves from one to the other
        self.assertEqual(40.0, evidence['source']['before']['cpu_pct']
                         - evidence['source']['after']['cpu_pct'])

    def test_a_bound_that_fits_nowhere_leaves_the_hotspot_stuck(self):
        # 60 MB/s bound + 40 MB/s = 80 % of the link, over 80 - 10 %
        result = run({'hot': (90.0, 60 * MB), 'cool': (10.0, 40 * MB)},
                     {'b': ('hot', 2, {'cpu': 1.6}),
                      'a': ('hot', 2, {'cpu': 1.9})},
                     {'a': {'net_in', 'net_out'}, 'b': {'net_in', 'net_out'}})
        self.assertEqual((), result.moves)
        self.assertEqual(['no_eligible_destination'],
                         [u.code for u in result.unresolved])
        self.assertEqual({'would_overload': 2},
                         result.unresolved[0].details['refusals'])

    def test_unread_cpu_is_bounded_by_the_vcpus(self):
        # hot on the network; the VM's CPU is not read: 1 vCPU at most,
        # not the 3.6 cores of its host
        result = run({'hot': (90.0, 110 * MB), 'cool': (10.0, 0.0)},
                     {'n': ('hot', 1, {'net_in': 50 * MB, 'net_out': 0.0}),
                      'm': ('hot', 1, {'net_in': 40 * MB, 'net_out': 0.0})},
                     {'n': {'cpu'}, 'm': {'cpu'}})
        moved = [m for m in result.moves if m.condition == 'host_network']
        self.assertEqual(1, len(moved))
        evidence = moved[0].evidence
        self.assertEqual(['cpu'], evidence['instance_load_bounded'])
        self.assertEqual(25.0, evidence['instance_load']['cpu_pct'])
        self.assertEqual(35.0, evidence['destination']['after']['cpu_pct'])

    def test_a_vm_is_never_chosen_on_a_bound_of_the_hot_kind(self):
        result = run({'hot': (90.0, 0.0), 'cool': (10.0, 0.0)},
                     {'a': ('hot', 4, {'net_in': 0.0, 'net_out': 0.0})},
                     {'a': {'cpu'}})
        self.assertEqual((), result.moves)
        self.assertEqual(['no_movable_instance'],
                         [u.code for u in result.unresolved if
                          u.condition == 'host_cpu'])
        self.assertEqual([('a', 'unread_load', 'its cpu load was not read')],
                         [(s.instance, s.code, s.reason)
                          for s in result.skipped])


if __name__ == '__main__':
    unittest.main()
