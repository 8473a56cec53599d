"""Screening hosts on their host meters: which VMs a two-stage read needs."""

import random
import unittest

from secmig.hotspot import detect
from secmig.hotspot import model

G = 60
NOW = 1_800_000_000.0
TH = detect.Thresholds(window=600, granularity=G, stale_after=180,
                       min_points=3)
GBIT = 125e6
MB = 1e6


def flat(value, n=10, end=NOW):
    return tuple((end - G * (n - i), float(value)) for i in range(n))


def host_meters(cpu=20.0, net_in=10 * MB, net_out=10 * MB, swap=0.0):
    return {'cpu_pct': flat(cpu), 'net_in': flat(net_in),
            'net_out': flat(net_out), 'swap_out': flat(swap)}


def observe(host=None, vm=None):
    return model.Observations(now=NOW, window=600, granularity=G,
                              vm=vm or {}, host=host or {})


def host(name):
    return model.HostInfo(name, cpus=4, link_bps=GBIT)


class TestScreen(unittest.TestCase):

    def test_only_the_hot_host_is_read(self):
        hosts = [host('h1'), host('h2'), host('h3')]
        vms = [model.VmInfo('a', 'h1'), model.VmInfo('b', 'h2'),
               model.VmInfo('c', 'h3')]
        obs = observe({'h1': host_meters(), 'h2': host_meters(cpu=90.0),
                       'h3': host_meters()})
        self.assertEqual({'h2': ('cpu_pct:near_threshold',)},
                         detect.screen(hosts, vms, obs, TH))

    def test_margin_reads_hosts_near_a_threshold(self):
        hosts = [host('h1')]
        vms = [model.VmInfo('a', 'h1')]
        near = observe({'h1': host_meters(cpu=75.0)})
        self.assertEqual({'h1': ('cpu_pct:near_threshold',)},
                         detect.screen(hosts, vms, near, TH, margin_pct=10))
        self.assertEqual({}, detect.screen(hosts, vms, near, TH,
                                           margin_pct=0))
        # a single point near the threshold is enough: a peak
        spike = host_meters()
        spike['swap_out'] = flat(0.0, 9) + ((NOW - G, 0.95),)
        self.assertEqual(
            {'h1': ('swap_out:near_threshold',)},
            detect.screen(hosts, vms, observe({'h1': spike}), TH))

    def test_missing_or_stale_cpu_meter_falls_back_to_the_vms(self):
        hosts = [host('h1'), host('h2'), host('h3')]
        vms = [model.VmInfo('a', 'h1'), model.VmInfo('b', 'h2'),
               model.VmInfo('c', 'h3')]
        partial = host_meters()
        del partial['cpu_pct']
        stale = host_meters()
        stale['cpu_pct'] = flat(20.0, end=NOW - 600)
        # a missing link or swap meter needs no VM figure: those
        # conditions are not evaluated on h3
        other = host_meters()
        del other['net_out'], other['swap_out']
        why = detect.screen(hosts, vms, observe({'h1': partial, 'h2': stale,
                                                 'h3': other}), TH)
        self.assertEqual({'h1': ('cpu_pct:no_host_meter',),
                          'h2': ('cpu_pct:no_host_meter',)}, why)

    def test_vms_that_do_not_run_are_not_read(self):
        vms = [model.VmInfo('off', 'h1', running=False)]
        obs = observe({'h1': host_meters(cpu=95.0)})
        self.assertEqual({}, detect.screen([host('h1')], vms, obs, TH))

    def test_saturated_link_reads_vms_that_expect_bandwidth(self):
        # the link threshold is out of reach: only a shortfall matters
        th = detect.Thresholds(window=600, granularity=G, stale_after=180,
                               min_points=3, host_net_pct=99.0)
        hosts = [host('h1'), host('h2')]
        vms = [model.VmInfo('a', 'h1', expected_in=50 * MB),
               model.VmInfo('b', 'h2')]
        full = host_meters(net_in=0.95 * GBIT)
        why = detect.screen(hosts, vms, observe({'h1': full, 'h2': full}),
                            th, margin_pct=0)
        self.assertEqual({'h1': ('net_in:link_saturated',)}, why)

    def test_hosts_without_vms_are_left_out(self):
        obs = observe({'h1': host_meters(cpu=95.0)})
        self.assertEqual({}, detect.screen([host('h1')], [], obs, TH))


class TestShortfallNeedsASaturatedLink(unittest.TestCase):

    def test_vm_figures_are_not_needed_on_a_free_link(self):
        # With a host meter showing a quiet link, a VM that expects
        # bandwidth but was not read is no gap: no shortfall is possible.
        vms = [model.VmInfo('a', 'h1', expected_in=50 * MB)]
        obs = observe({'h1': host_meters()})
        report = detect.detect([host('h1')], vms, obs, TH)
        self.assertEqual((), report.hotspots)
        self.assertEqual((), report.gaps)

    def test_vm_figures_are_needed_on_a_saturated_link(self):
        vms = [model.VmInfo('a', 'h1', expected_in=50 * MB)]
        obs = observe({'h1': host_meters(net_in=0.95 * GBIT)})
        report = detect.detect([host('h1')], vms, obs, TH)
        self.assertEqual({('missing', 'a', 'net_in')},
                         {(g.code, g.instance, g.kind)
                          for g in report.gaps})


def _cluster(rnd, n_hosts=30, per_host=4):
    """Random hosts, some hot, with host meters equal to their VM sums.

    A host swaps on its own meter; a starved VM gets a steady share of
    a saturated link, or drops packets.
    """
    hosts = [host('h%02d' % i) for i in range(n_hosts)]
    vms, vm_obs, host_obs = [], {}, {}
    for h in hosts:
        hot = rnd.choice(['cpu', 'net', 'swap', 'starve', None, None,
                          None])
        sums = {'cpu': 0.0, 'net_in': 0.0, 'net_out': 0.0}
        for k in range(per_host):
            vid = '%s-%d' % (h.name, k)
            load = {'cpu': rnd.uniform(0.1, 0.6),
                    'net_in': rnd.uniform(1, 20) * MB,
                    'net_out': rnd.uniform(1, 20) * MB,
                    'drop_in': 0.0}
            expected = None
            if hot == 'cpu':
                load['cpu'] = rnd.uniform(0.85, 1.0)
            elif hot == 'net':
                load['net_out'] = rnd.uniform(0.21, 0.25) * GBIT
            elif hot == 'starve':
                load['net_in'] = rnd.uniform(0.23, 0.25) * GBIT
                if k == 0:
                    load['net_in'] = 5 * MB
                    load['drop_in'] = rnd.choice([0.0, 30.0])
                    expected = 50 * MB
            vms.append(model.VmInfo(vid, h.name, expected_in=expected))
            vm_obs[vid] = {kind: flat(v) for kind, v in load.items()}
            for kind in sums:
                sums[kind] += load[kind]
        meters = {'cpu_pct': flat(sums['cpu'] * 100.0 / h.cpus),
                  'net_in': flat(sums['net_in']),
                  'net_out': flat(sums['net_out']),
                  'swap_out': flat(rnd.uniform(1.2, 2.0) if hot == 'swap'
                                   else 0.0)}
        if rnd.random() < 0.15:
            del meters[rnd.choice(sorted(meters))]
        host_obs[h.name] = meters
    return hosts, vms, vm_obs, host_obs


class TestTwoStageGivesTheSameReport(unittest.TestCase):

    def test_same_hotspots_and_gaps_as_reading_every_vm(self):
        for seed in range(20):
            rnd = random.Random(seed)
            hosts, vms, vm_obs, host_obs = _cluster(rnd)
            full = detect.detect(hosts, vms, observe(host_obs, vm_obs), TH)
            screened = detect.screen(hosts, vms, observe(host_obs), TH)
            read = {v.id: vm_obs[v.id] for v in vms if v.host in screened}
            two = detect.detect(hosts, vms, observe(host_obs, read), TH)
            self.assertEqual(full.hotspots, two.hotspots, seed)
            self.assertEqual(full.gaps, two.gaps, seed)
            self.assertEqual(full.unevaluated, two.unevaluated, seed)
            # every hot host was read, and fewer VMs than all were read
            self.assertLessEqual(set(full.hot_hosts), set(screened), seed)
            self.assertLess(len(read), len(vms), seed)
            self.assertTrue(full.hotspots, seed)
