"""Hotspot detection over synthetic series: each condition, none, gaps."""

import unittest

from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model

G = 60
NOW = 1_800_000_000.0
TH = detect.Thresholds(window=600, granularity=G, stale_after=180,
                       min_points=3)
GBIT = 125e6  # bytes/s of a 1 Gbit/s link
MB = 1e6


def series(values, end=NOW):
    """Points one granularity apart, the last one covering up to ``end``."""
    n = len(values)
    return tuple((end - G * (n - i), float(v)) for i, v in enumerate(values))


def flat(value, n=10, end=NOW):
    return series([value] * n, end)


def observe(vm=None, host=None):
    return model.Observations(now=NOW, window=600, granularity=G,
                              vm=vm or {}, host=host or {},
                              meters={('vm', 'cpu'): 'cpu',
                                      ('vm', 'net_in'): 'network.in',
                                      ('vm', 'net_out'): 'network.out',
                                      ('vm', 'drop_in'): 'drop.in',
                                      ('host', 'cpu_pct'): 'host.cpu',
                                      ('host', 'net_in'): 'host.net.in',
                                      ('host', 'net_out'): 'host.net.out',
                                      ('host', 'swap_out'): 'host.swap'})


def quiet(cpu=0.2, net=1 * MB):
    return {'cpu': flat(cpu), 'net_in': flat(net), 'net_out': flat(net)}


def meters(net_in=10 * MB, net_out=10 * MB, swap=0.0, **more):
    """Host meters of a link and of swap (and ``more`` kinds)."""
    return dict({'net_in': flat(net_in), 'net_out': flat(net_out),
                 'swap_out': flat(swap)},
                **{k: flat(v) for k, v in more.items()})


HOST = model.HostInfo('h1', cpus=4, link_bps=GBIT)
OTHER = model.HostInfo('h2', cpus=4, link_bps=GBIT)


def vms(*ids, host='h1', **kw):
    return [model.VmInfo(i, host, **kw) for i in ids]


def conditions(report):
    return sorted((h.condition, h.host, h.instance,
                   h.evidence.get('direction')) for h in report.hotspots)


class TestNoHotspot(unittest.TestCase):

    def test_quiet_cluster_is_complete_and_cold(self):
        # Given two hosts whose VMs and host meters all report low figures
        obs = observe(vm={i: quiet() for i in ('a', 'b', 'c', 'd')},
                      host={'h1': meters(), 'h2': meters()})
        # When
        report = detect.detect([HOST, OTHER],
                               vms('a', 'b') + vms('c', 'd', host='h2'),
                               obs, TH)
        # Then no hotspot, and no gap: a genuine "all clear"
        self.assertEqual([], conditions(report))
        self.assertEqual([], [g.as_dict() for g in report.gaps])
        self.assertEqual((), report.unevaluated)
        self.assertTrue(report.complete)
        self.assertEqual('instances', report.figures['h1']['cpu_pct'].source)
        self.assertAlmostEqual(10.0, report.figures['h1']['cpu_pct'].mean)

    def test_host_without_vms_is_idle_not_missing(self):
        report = detect.detect([HOST], [], observe(host={'h1': meters()}),
                               TH)
        self.assertEqual((), report.hotspots)
        self.assertTrue(report.complete)


class TestHostCpu(unittest.TestCase):

    def test_sustained_cpu_from_instance_meters(self):
        # 2 VMs x 1.8 cores on 4 CPUs: 90% > 80% on every point
        obs = observe(vm={'a': quiet(cpu=1.8), 'b': quiet(cpu=1.8)})
        report = detect.detect([HOST], vms('a', 'b'), obs, TH)
        self.assertEqual([('host_cpu', 'h1', None, None)], conditions(report))
        ev = report.hotspots[0].evidence
        self.assertEqual(['cpu'], ev['metrics'])
        self.assertEqual('instances', ev['source'])
        self.assertEqual(80.0, ev['threshold'])
        self.assertEqual((10, 10), (ev['points'], ev['points_over']))
        self.assertAlmostEqual(90.0, ev['mean'])
        self.assertEqual(600, ev['window'])
        # the share of the load beyond the line
        self.assertAlmostEqual(1 - 80 / 90, report.hotspots[0].severity)

    def test_single_spike_is_not_a_hotspot(self):
        cpu = series([0.4] * 9 + [4.0])
        obs = observe(vm={'a': dict(quiet(), cpu=cpu)})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertTrue(report.complete)

    def test_sustained_fraction(self):
        # 8 points out of 10 at 100%: hot at 0.7, not at the default 1.0
        cpu = series([4.0] * 4 + [0.4, 0.4] + [4.0] * 4)
        obs = observe(vm={'a': dict(quiet(), cpu=cpu)})
        relaxed = detect.Thresholds(window=600, granularity=G,
                                    stale_after=180, sustained_fraction=0.7)
        self.assertEqual([('host_cpu', 'h1', None, None)],
                         conditions(detect.detect([HOST], vms('a'), obs,
                                                  relaxed)))
        self.assertEqual([], conditions(detect.detect([HOST], vms('a'), obs,
                                                      TH)))

    def test_host_meter_wins_over_instance_sum(self):
        # VMs look idle but the host's own meter says 95% (host load)
        obs = observe(vm={'a': quiet()}, host={'h1': {'cpu_pct': flat(95)}})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([('host_cpu', 'h1', None, None)], conditions(report))
        ev = report.hotspots[0].evidence
        self.assertEqual(('host_meter', ['host.cpu']),
                         (ev['source'], ev['metrics']))

    def test_points_before_the_window_are_ignored(self):
        cpu = series([4.0] * 10 + [0.4] * 10)
        obs = observe(vm={'a': dict(quiet(), cpu=cpu)})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertEqual(10, len(report.figures['h1']['cpu_pct'].series))


class TestHostNetworkAndSwap(unittest.TestCase):

    def test_outbound_link_above_threshold(self):
        obs = observe(vm={'a': quiet(), 'b': quiet()},
                      host={'h1': meters(net_out=110 * MB)})
        report = detect.detect([HOST], vms('a', 'b'), obs, TH)
        self.assertEqual([('host_network', 'h1', None, 'out')],
                         conditions(report))
        ev = report.hotspots[0].evidence
        self.assertAlmostEqual(88.0, ev['mean'])
        self.assertEqual(GBIT, ev['link_bps'])
        self.assertEqual(['host.net.out'], ev['metrics'])
        self.assertEqual('host_meter', ev['source'])

    def test_vm_traffic_is_not_the_link_without_its_meter(self):
        # VMs that talk to each other: their sums fill the link, the link
        # itself is not measured
        obs = observe(vm={'a': quiet(net=55 * MB), 'b': quiet(net=55 * MB)})
        report = detect.detect([HOST], vms('a', 'b'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertEqual((), report.gaps)
        self.assertEqual(
            [('host_network', 'net_in', 'host.net.in', ('h1',)),
             ('host_network', 'net_out', 'host.net.out', ('h1',)),
             ('host_swap', 'swap_out', 'host.swap', ('h1',))],
            [(u.condition, u.kind, u.meter, u.hosts)
             for u in report.unevaluated])

    def test_host_swap_out_rate_above_threshold(self):
        obs = observe(vm={'a': quiet(), 'b': quiet()},
                      host={'h1': meters(swap=1.3)})
        report = detect.detect([HOST], vms('a', 'b'), obs, TH)
        self.assertEqual([('host_swap', 'h1', None, None)],
                         conditions(report))
        ev = report.hotspots[0].evidence
        self.assertEqual(('MiB/s', 1.0), (ev['unit'], ev['threshold']))
        self.assertEqual(['host.swap'], ev['metrics'])
        self.assertAlmostEqual(1 - 1 / 1.3, report.hotspots[0].severity)

    def test_occasional_swap_is_not_a_hotspot(self):
        swap = series([0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        obs = observe(vm={'a': quiet()},
                      host={'h1': dict(meters(), swap_out=swap)})
        self.assertEqual([], conditions(detect.detect([HOST], vms('a'), obs,
                                                      TH)))

    def test_stale_host_meter_is_a_gap_of_the_host(self):
        obs = observe(vm={'a': quiet()},
                      host={'h1': dict(meters(),
                                       swap_out=flat(5.0, end=NOW - 600))})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertEqual([('stale', 'h1', None, 'swap_out')],
                         [(g.code, g.host, g.instance, g.kind)
                          for g in report.gaps])
        self.assertEqual({'h1'}, report.unjudged_hosts)


class TestVmBandwidth(unittest.TestCase):

    def _cluster(self, victim, others_in, link_in=None, drops=0.0):
        vm_list = (vms('victim', expected_in=50 * MB)
                   + vms('x', 'y'))
        victim_in = flat(victim) if isinstance(victim, float) else victim
        if link_in is None:  # the link carries what the VMs receive
            link_in = 2 * others_in + max(v for _, v in victim_in)
        obs = observe(vm={'victim': dict(quiet(), net_in=victim_in,
                                         drop_in=flat(drops)),
                          'x': dict(quiet(), net_in=flat(others_in)),
                          'y': dict(quiet(), net_in=flat(others_in))},
                      host={'h1': meters(net_in=link_in)})
        return detect.detect([HOST], vm_list, obs, TH)

    def shortfall(self, report):
        return [h for h in report.hotspots if h.instance]

    def test_vm_held_short_on_saturated_link(self):
        # victim gets a steady 10 MB/s of its 50 while neighbours fill
        # the link
        report = self._cluster(10 * MB, 55 * MB)
        self.assertEqual([('host_network', 'h1', None, 'in'),
                          ('vm_bandwidth_shortfall', 'h1', 'victim', 'in')],
                         conditions(report))
        [shortfall] = self.shortfall(report)
        ev = shortfall.evidence
        self.assertEqual(50 * MB, ev['expected_bps'])
        self.assertEqual(40 * MB, ev['floor_bps'])
        self.assertEqual(['network.in', 'drop.in', 'host.net.in'],
                         ev['metrics'])
        self.assertEqual((10, 10), (ev['points'], ev['points_over']))
        self.assertEqual(['held'], ev['demand'])
        self.assertAlmostEqual(1 - 10 / 40, shortfall.severity)

    def test_idle_vm_on_saturated_link_is_not_short(self):
        report = self._cluster(0.0, 60 * MB)
        self.assertEqual([('host_network', 'h1', None, 'in')],
                         conditions(report))
        # nor is a VM whose own traffic comes and goes
        varying = series([1 * MB, 8 * MB, 2 * MB, 9 * MB, 1 * MB] * 2)
        report = self._cluster(varying, 60 * MB)
        self.assertEqual([], self.shortfall(report))

    def test_vm_dropping_packets_is_short_however_little_it_gets(self):
        report = self._cluster(0.0, 60 * MB, drops=25.0)
        [shortfall] = self.shortfall(report)
        self.assertEqual(['drops'], shortfall.evidence['demand'])
        self.assertEqual(1.0, shortfall.severity)
        self.assertEqual(25.0, shortfall.evidence['drops_pps'][0][1])

    def test_vm_getting_its_bandwidth_is_fine(self):
        report = self._cluster(50 * MB, 30 * MB, link_in=115 * MB)
        self.assertNotIn('vm_bandwidth_shortfall',
                         [c for c, _, _, _ in conditions(report)])

    def test_low_vm_traffic_on_a_free_link_is_its_own_choice(self):
        report = self._cluster(1 * MB, 10 * MB)
        self.assertEqual([], conditions(report))

    def test_without_a_link_meter_shortfalls_are_not_evaluated(self):
        obs = observe(vm={'victim': dict(quiet(), net_in=flat(1 * MB),
                                         drop_in=flat(50.0))})
        report = detect.detect([HOST], vms('victim', expected_in=50 * MB),
                               obs, TH)
        self.assertEqual([], conditions(report))
        self.assertIn(('vm_bandwidth_shortfall', 'net_in', ('h1',)),
                      [(u.condition, u.kind, u.hosts)
                       for u in report.unevaluated])

    def test_expected_bandwidth_from_flavor_and_property(self):
        specs = {model.QUOTA_IN: '1000', model.QUOTA_OUT: '2048'}
        self.assertEqual((1000 * 1024, 2048 * 1024),
                         model.expected_bandwidth(specs))
        self.assertEqual((512 * 1024, 512 * 1024),
                         model.expected_bandwidth(
                             specs, {model.EXPECTED_BANDWIDTH: '512'}))
        self.assertEqual((None, None), model.expected_bandwidth({}))
        with self.assertRaises(exception.SecmigError) as cm:
            model.expected_bandwidth({model.QUOTA_IN: 'fast'})
        self.assertEqual('invalid_expected_bandwidth', cm.exception.code)


class TestSeverity(unittest.TestCase):

    def test_hotspots_of_every_condition_are_ordered_by_one_measure(self):
        # Given, in one cluster: a host at 1.25 times its CPU threshold
        # (100 % of 80 %), a host swapping out 1.1 times its threshold, a
        # link 1.1875 times its threshold (95 % of 80 %), and on that
        # link a VM getting half its floor (20 of 40 MB/s) and one
        # getting 0.85 of it (34 of 40 MB/s)
        hosts = [model.HostInfo(h, cpus=4, link_bps=GBIT)
                 for h in ('h-cpu', 'h-net', 'h-swap')]
        vm_list = (vms('c1', 'c2', host='h-cpu')
                   + vms('starved', 'short', host='h-net',
                         expected_in=50 * MB)
                   + vms('hog', host='h-net') + vms('s1', host='h-swap'))
        obs = observe(
            vm={'c1': quiet(cpu=2.0), 'c2': quiet(cpu=2.0),
                'starved': dict(quiet(), net_in=flat(20 * MB)),
                'short': dict(quiet(), net_in=flat(34 * MB)),
                'hog': dict(quiet(), net_in=flat(64.75 * MB)),
                's1': quiet()},
            host={'h-cpu': meters(), 'h-swap': meters(swap=1.1),
                  'h-net': meters(net_in=0.95 * GBIT)})
        # When
        report = detect.detect(hosts, vm_list, obs, TH)
        # Then they come worst first, each by the share of its figure
        # beyond its line: 1 - threshold / mean for a host, 1 - got /
        # floor for a VM
        expected = [
            ('vm_bandwidth_shortfall', 'h-net', 'starved', 1 - 20 / 40),
            ('host_cpu', 'h-cpu', None, 1 - 80 / 100),
            ('host_network', 'h-net', None, 1 - 80 / 95),
            ('vm_bandwidth_shortfall', 'h-net', 'short', 1 - 34 / 40),
            ('host_swap', 'h-swap', None, 1 - 1 / 1.1),
        ]
        self.assertEqual([e[:3] for e in expected],
                         [(h.condition, h.host, h.instance)
                          for h in report.hotspots])
        for (*_, severity), hotspot in zip(expected, report.hotspots):
            self.assertGreater(hotspot.severity, 0.0, hotspot)
            self.assertLessEqual(hotspot.severity, 1.0, hotspot)
            self.assertAlmostEqual(severity, hotspot.severity, msg=hotspot)


class TestMissingData(unittest.TestCase):

    def gaps(self, report):
        return sorted((g.code, g.host, g.instance or '', g.kind)
                      for g in report.gaps)

    def test_vm_without_any_data_is_unknown_on_its_own(self):
        obs = observe(vm={'a': quiet()})
        report = detect.detect([HOST], vms('a', 'ghost'), obs, TH)
        self.assertEqual([], conditions(report))
        # the VM is a gap; its host is judged with the VM at its bound
        # (1 of 4 CPUs: 30 % at most), so the host is clean and usable
        self.assertEqual([('missing', 'h1', 'ghost', 'cpu')],
                         self.gaps(report))
        self.assertEqual(set(), report.unjudged_hosts)
        figure = report.figures['h1']['cpu_pct']
        self.assertEqual(('ghost',), figure.incomplete)
        self.assertAlmostEqual(30.0, figure.upper)

    def test_vm_that_does_not_run_is_no_gap(self):
        stopped = [model.VmInfo('off', 'h1', running=False)]
        report = detect.detect([HOST], vms('a') + stopped,
                               observe(vm={'a': quiet()}), TH)
        self.assertEqual([], self.gaps(report))
        self.assertEqual(('a',), report.figures['h1']['cpu_pct'].members)

    def test_unknown_vm_that_could_make_a_hotspot_leaves_the_host_unjudged(
            self):
        # 75 % known, and a 1-vCPU VM of unknown load: up to 100 %
        obs = observe(vm={'a': quiet(cpu=3.0)})
        report = detect.detect([HOST], vms('a', 'ghost'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertIn(('incomplete', 'h1', '', 'cpu_pct'), self.gaps(report))
        self.assertEqual({'h1'}, report.unjudged_hosts)

    def test_host_whose_only_vm_has_no_data_is_judged_on_its_bound(self):
        report = detect.detect([HOST], vms('a'), observe(), TH)
        self.assertEqual([], conditions(report))
        self.assertEqual([('missing', 'h1', 'a', 'cpu')], self.gaps(report))
        self.assertEqual(set(), report.unjudged_hosts)
        big = [model.VmInfo('a', 'h1', vcpus=4)]
        report = detect.detect([HOST], big, observe(), TH)
        self.assertIn(('incomplete', 'h1', '', 'cpu_pct'), self.gaps(report))

    def test_stale_series(self):
        old = flat(3.9, end=NOW - 600)
        obs = observe(vm={'a': dict(quiet(), cpu=old)})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([], conditions(report))
        stale = [g for g in report.gaps if g.code == 'stale']
        self.assertEqual([('a', 'cpu')],
                         [(g.instance, g.kind) for g in stale])
        self.assertIn('600 s old', stale[0].reason)

    def test_partial_data_already_over_threshold_is_a_hotspot(self):
        obs = observe(vm={'a': quiet(cpu=3.8)})
        report = detect.detect([HOST], vms('a', 'ghost'), obs, TH)
        self.assertEqual([('host_cpu', 'h1', None, None)], conditions(report))
        self.assertEqual(['ghost'], report.hotspots[0].evidence['incomplete'])
        self.assertFalse(report.complete)

    def test_too_few_points(self):
        obs = observe(vm={'a': dict(quiet(), cpu=series([4.0, 4.0]))})
        report = detect.detect([HOST], vms('a'), obs, TH)
        self.assertEqual([], conditions(report))
        self.assertIn(('too_few_points', 'h1', '', 'cpu_pct'),
                      self.gaps(report))

    def test_unknown_capacities(self):
        host = model.HostInfo('h1')
        obs = observe(vm={'a': quiet()}, host={'h1': meters()})
        report = detect.detect([host], vms('a'), obs, TH)
        gaps = self.gaps(report)
        self.assertIn(('unknown_capacity', 'h1', '', 'cpus'), gaps)
        self.assertIn(('unknown_capacity', 'h1', '', 'link_bps'), gaps)

    def test_vm_on_unknown_host(self):
        obs = observe(vm={'a': quiet()})
        report = detect.detect([HOST], vms('a', host='nowhere'), obs, TH)
        self.assertEqual([('unknown_host', 'nowhere', 'a', 'placement')],
                         self.gaps(report))

    def test_invalid_thresholds_are_refused(self):
        for bad in ({'sustained_fraction': 0}, {'window': 0},
                    {'stale_after': -1}):
            with self.assertRaises(exception.SecmigError) as cm:
                detect.Thresholds(**bad)
            self.assertEqual('invalid_threshold', cm.exception.code)


if __name__ == '__main__':
    unittest.main()
