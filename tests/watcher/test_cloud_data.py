"""SecureHotspot on data shaped as a real cloud sends it.

One real Gnocchi holds small clusters published by
:func:`tests.gnocchi_fixture.publish`: Ceilometer's archive policies
(``mean`` and ``rate:mean``), samples not aligned to periods, and each
cluster one trait of a real cloud:

* ``poll-``: polled every 60 s under a 300 s granularity (Ceilometer's
  default policies): a host's two busy VMs use 90 % of its CPUs, another
  host's link (its own meter) carries 88 %;
* ``miss-``: polled every 300 s, one poll missed;
* ``stop-``: stopped VMs (resources, no sample) and guests without
  balloon statistics (no ``memory.usage`` nor ``memory.swap.out``);
* ``idle-``: a saturated link, idle VMs that expect bandwidth beside a
  starved one that drops packets;
* ``swap-``: a host that swaps while its guests do not, and guests that
  swap on a host that does not;
* ``sum-``: no host network nor host swap meter (as Ceilometer alone
  publishes): VMs that talk to each other, guests that swap;
* ``agg-``: a policy that names aggregates and availability zones, as
  doc/policy.rst shows, with hosts in and out of them.
"""

import os
import time
import uuid

from tests.watcher import strategy_util as su  # noqa: I100 (first)

from tests import gnocchi_fixture as gf

MB = 1e6
LINK = 125e6  # 1 Gbit/s in bytes/s
CPUS = 4
SPAN = 2400
EXPECT_50MB = {'secmig:expected_bandwidth': str(50 * MB / 1024)}
#: Ceilometer's default: a 300 s granularity (polled every 60 s or 300 s)
SLOW = dict(window=1800, granularity=300, stale_after=900, min_points=3,
            link_gbps=1.0)
#: Ceilometer's high-rate policies: polled and archived every 60 s
FAST = dict(window=600, granularity=60, stale_after=180, min_points=3,
            link_gbps=1.0)


def guest(host, **kwargs):
    return gf.Guest(str(uuid.uuid4()), host, **kwargs)


class CloudDataTest(gf.GnocchiTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.site = su.Site()
        cls.addClassCleanup(cls.site.cleanup)
        # 130 s into a 300 s period: the current period is partial.
        cls.now = time.time() // 300 * 300 - 300 + 130
        g = cls.guests = {}
        slow_hosts = [gf.Host('poll-hot'), gf.Host('poll-cool'),
                      gf.Host('poll-net', net_in=0.88 * LINK,
                              net_out=1 * MB, cpu_pct=20.0),
                      gf.Host('poll-spare', net_in=1 * MB, net_out=1 * MB,
                              cpu_pct=10.0)]
        g['busy1'] = guest('poll-hot', cpu=1.8)
        g['busy2'] = guest('poll-hot', cpu=1.8)
        g['light'] = guest('poll-cool', cpu=0.2)
        g['net1'] = guest('poll-net', net_in=0.44 * LINK, cpu=0.2)
        g['net2'] = guest('poll-net', net_in=0.44 * LINK, cpu=0.2)
        g['spare'] = guest('poll-spare', cpu=0.2, net_in=1 * MB)
        g['missing'] = guest('miss-a', cpu=1.0, missed={4})
        gf.publish(cls.gnocchi, slow_hosts,
                   [v for v in g.values() if v.host.startswith('poll-')],
                   cls.now, SPAN, poll=60, granularity=300)
        miss = gf.Host('miss-a', swap_out=0.5, missed={4})
        gf.publish(cls.gnocchi, [miss], [g['missing']], cls.now, SPAN,
                   poll=300, granularity=300)
        fast_hosts = [
            gf.Host('idle-net', cpu_pct=30.0, net_in=0.95 * LINK,
                    net_out=2 * MB, swap_out=0.0, mem_free=8000.0),
            gf.Host('idle-dest', cpu_pct=20.0, net_in=10 * MB,
                    net_out=10 * MB, swap_out=0.0, mem_free=8000.0),
            gf.Host('swap-hot', cpu_pct=30.0, net_in=10 * MB,
                    net_out=10 * MB, swap_out=5.0, mem_free=100.0),
            gf.Host('swap-roomy', cpu_pct=20.0, net_in=10 * MB,
                    net_out=10 * MB, swap_out=0.0, mem_free=6000.0),
            gf.Host('swap-guest', cpu_pct=15.0, net_in=10 * MB,
                    net_out=10 * MB, swap_out=0.0, mem_free=1000.0),
            gf.Host('stop-hot'), gf.Host('stop-cool1'),
            gf.Host('stop-cool2'), gf.Host('sum-chatty'),
            gf.Host('sum-guestswap'), gf.Host('sum-cool')]
        g['starved'] = guest('idle-net', net_in=10 * MB, drop_in=40.0,
                             metadata=EXPECT_50MB)
        g['idle1'] = guest('idle-net', metadata=EXPECT_50MB, cpu=0.01)
        g['idle2'] = guest('idle-net', metadata=EXPECT_50MB, cpu=0.01)
        g['hog1'] = guest('idle-net', net_in=54 * MB)
        g['hog2'] = guest('idle-net', net_in=54 * MB)
        g['dest'] = guest('idle-dest', net_in=10 * MB)
        g['big'] = guest('swap-hot', resident=3000.0, memory_mb=3072)
        g['mid'] = guest('swap-hot', resident=2000.0, memory_mb=2048)
        g['small'] = guest('swap-hot', resident=1200.0, memory_mb=2048)
        g['roomy'] = guest('swap-roomy', resident=1000.0)
        g['gswap1'] = guest('swap-guest', guest_swap=3.0)
        g['gswap2'] = guest('swap-guest', guest_swap=3.0)
        g['hot1'] = guest('stop-hot', cpu=1.8)
        g['hot2'] = guest('stop-hot', cpu=1.8)
        g['off1'] = guest('stop-hot', running=False)
        g['noballoon1'] = guest('stop-cool1', cpu=0.2, balloon=False)
        g['off2'] = guest('stop-cool1', running=False)
        g['noballoon2'] = guest('stop-cool2', cpu=0.2, balloon=False)
        for i in (1, 2):
            g['chatty%d' % i] = guest('sum-chatty', net_in=55 * MB,
                                      net_out=55 * MB)
            g['gs%d' % i] = guest('sum-guestswap', guest_swap=0.7)
        g['sumcool'] = guest('sum-cool', cpu=0.2)
        for name in ('agg-hot1', 'agg-hot2', 'agg-hot3'):
            fast_hosts.append(gf.Host(name))
            for n in range(4):
                g['%s-%d' % (name, n)] = guest(name, cpu=0.9)
        for name in ('agg-in', 'agg-out', 'agg-far'):
            fast_hosts.append(gf.Host(name))
            g[name] = guest(name, cpu=0.1)
        fast = [h.name for h in fast_hosts]
        gf.publish(cls.gnocchi, fast_hosts,
                   [v for v in g.values() if v.host in fast],
                   cls.now, SPAN, poll=60, granularity=60)
        cls.site.enroll(*sorted({v.host for v in g.values()}
                                | {h.name for h in slow_hosts + fast_hosts}))

    def audit(self, prefix, params, memory=None, placement=None, conf=None,
              **more):
        guests = [v for v in self.guests.values()
                  if v.host.startswith(prefix)]
        hosts = sorted({v.host for v in guests})
        model = su.build_model(hosts, guests, node_vcpus=CPUS,
                               node_memory=8192, memory=memory)
        strategy = su.make_strategy(self.site, model, self.gnocchi.client(),
                                    self.now + 1, **dict(params, **more))
        strategy.placement_source = lambda: placement or {}
        strategy.secmig_conf = conf or strategy.secmig_conf
        solution = strategy.execute()
        return strategy, solution

    def name(self, vm_id):
        return {v.id: n for n, v in self.guests.items()}.get(vm_id)

    def moved(self, solution):
        return [(self.name(vm), src, dst)
                for vm, src, dst in su.migrations(solution)]

    def found(self, strategy):
        return sorted((h.condition, h.host, self.name(h.instance),
                       h.evidence.get('direction'))
                      for h in strategy.report.hotspots)

    def report(self, solution):
        [report] = [a['input_parameters']['message']
                    for a in su.actions(solution)
                    if a['action_type'] == 'nop'
                    and a['input_parameters']['message']['secmig']
                    == 'report']
        return report

    # -- rates -------------------------------------------------------------

    def test_rates_polled_every_minute_under_five_minute_periods(self):
        strategy, solution = self.audit('poll-', SLOW)
        # Then the CPU and the link read as they are: 90 % and 88 %
        self.assertEqual([('host_cpu', 'poll-hot', None, None),
                          ('host_network', 'poll-net', None, 'in')],
                         self.found(strategy))
        cpu = [h for h in strategy.report.hotspots
               if h.condition == 'host_cpu'][0]
        self.assertAlmostEqual(90.0, cpu.evidence['mean'], delta=1.0)
        for _, cores in strategy.observations.vm[
                self.guests['busy1'].id]['cpu']:
            self.assertAlmostEqual(1.8, cores, delta=0.02)
        # And each is relieved
        moved = self.moved(solution)
        self.assertEqual({'poll-hot', 'poll-net'}, {m[1] for m in moved})

    def test_a_missed_poll_does_not_double_a_rate(self):
        strategy, _ = self.audit('miss-', SLOW)
        obs = strategy.observations
        swap = [v for _, v in obs.host['miss-a']['swap_out']]
        cpu = [v for _, v in obs.vm[self.guests['missing'].id]['cpu']]
        self.assertGreaterEqual(len(swap), 4)
        self.assertGreaterEqual(len(cpu), 4)
        for value in swap:
            self.assertAlmostEqual(0.5, value, delta=0.01)
        for value in cpu:
            self.assertAlmostEqual(1.0, value, delta=0.01)

    # -- VMs without data ----------------------------------------------------

    def test_stopped_vms_and_guests_without_balloon_leave_hosts_usable(self):
        strategy, solution = self.audit('stop-', FAST)
        moved = self.moved(solution)
        self.assertEqual(1, len(moved), moved)
        self.assertEqual('stop-hot', moved[0][1])
        self.assertIn(moved[0][0], ('hot1', 'hot2'))
        self.assertTrue(moved[0][2].startswith('stop-cool'))
        # no host is left unjudged, and no stopped VM is a gap
        self.assertEqual([], [g.as_dict() for g in strategy.report.gaps])

    # -- bandwidth shortfall -----------------------------------------------

    def test_idle_vms_are_not_starved_and_the_starved_one_moves(self):
        strategy, solution = self.audit('idle-', FAST, max_migrations=1)
        shortfalls = [h for h in strategy.report.hotspots
                      if h.condition == 'vm_bandwidth_shortfall']
        self.assertEqual(['starved'],
                         [self.name(h.instance) for h in shortfalls])
        for hotspot in strategy.report.hotspots:
            self.assertLessEqual(hotspot.severity, 1.0, hotspot)
            self.assertGreater(hotspot.severity, 0.0, hotspot)
        self.assertEqual([('starved', 'idle-net', 'idle-dest')],
                         self.moved(solution))
        evidence = shortfalls[0].evidence
        self.assertIn('drops', evidence['demand'])

    # -- swap ------------------------------------------------------------

    def test_a_swapping_host_gives_resident_memory_to_free_memory(self):
        strategy, solution = self.audit('swap-', FAST)
        self.assertEqual([('host_swap', 'swap-hot', None, None)],
                         self.found(strategy))
        # Then the VM freeing what is missing at the least cost moves, to
        # the host with real free memory (the other, less loaded, has
        # too little), and one move is enough
        self.assertEqual([('small', 'swap-hot', 'swap-roomy')],
                         self.moved(solution))
        evidence = [a['input_parameters']['message']['evidence']
                    for a in su.actions(solution)
                    if a['input_parameters'].get('message', {}).get(
                        'secmig') == 'evidence']
        self.assertEqual({'host_swap'}, {e['condition'] for e in evidence})
        for e in evidence:
            self.assertGreater(e['migration']['resident_mib'], 0)
            self.assertLess(e['destination']['after']['mem_free'],
                            e['destination']['before']['mem_free'])

    def test_sums_over_vms_are_neither_a_link_nor_host_swap(self):
        strategy, solution = self.audit('sum-', FAST)
        self.assertEqual([], self.found(strategy))
        self.assertEqual([], self.moved(solution))
        unevaluated = {(u['condition'], u['kind']): u['hosts']
                       for u in self.report(solution)['unevaluated']}
        hosts = ['sum-chatty', 'sum-cool', 'sum-guestswap']
        self.assertEqual({('host_network', 'net_in'): hosts,
                          ('host_network', 'net_out'): hosts,
                          ('host_swap', 'swap_out'): hosts}, unevaluated)

    # -- aggregates and zones --------------------------------------------

    def test_destinations_carry_their_aggregates_and_zone(self):
        # Given a policy whose destinations must be in aggregate
        # secmig-enrolled and in zone az1 (the pattern of doc/policy.rst)
        with open(su.POLICY) as f:
            text = f.read()
        path = os.path.join(self.site.dir, 'aggregates-policy.yaml')
        with open(path, 'w') as f:
            f.write(text + 'destinations:\n'
                    '  availability_zones: [az1]\n'
                    '  aggregates: [secmig-enrolled]\n')
        conf = self.site.conf()
        conf.set_override('policy_file', path, group='policy')
        # and Nova's aggregates: agg-out is in no allowed aggregate,
        # agg-far in another zone
        placement = {
            'agg-in': (frozenset({'secmig-enrolled', 'ssd'}), 'az1'),
            'agg-out': (frozenset({'ssd'}), 'az1'),
            'agg-far': (frozenset({'secmig-enrolled'}), 'az2')}
        strategy, solution = self.audit('agg-', FAST, placement=placement,
                                        conf=conf)
        # Then the two moves the destination cap allows go to agg-in
        moved = self.moved(solution)
        self.assertEqual(['agg-in', 'agg-in'], [m[2] for m in moved])
        # and the third hot host's four VMs were refused the others
        [left] = strategy.plan.unresolved
        self.assertEqual('no_eligible_destination', left.code)
        refusals = left.details['refusals']
        self.assertEqual(
            (4, 4, 4), (refusals['destination_cap'],
                        refusals['aggregate_not_allowed'],
                        refusals['availability_zone_not_allowed']))
