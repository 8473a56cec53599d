"""Two-stage reads: host meters first, then only the VMs that matter.

One real Gnocchi holds two copies of the same loads: cluster ``m-`` with
host meters on every host (``compute.node.cpu.percent`` and the
operator's host network and swap meters; ``m-gap`` lacks its outbound
network meter), cluster ``p-`` without any host meter. The audit of
``m-`` must read only the VMs of the hosts that need it (and of those
only the kinds each host was screened for); the audit of ``p-`` reads
every VM's CPU, finds the same CPU hotspot and says the link and swap
conditions were not evaluated. Cluster ``b-`` (with host meters) has a
hot host whose unread network loads, bounded by its busy link, fit
nowhere: the audit reads them and plans again.
"""

import threading
import uuid

from tests.watcher import strategy_util as su  # noqa: I100 (first)

from secmig.hotspot import detect
from secmig.hotspot import model
from tests import gnocchi_fixture as gf

G = 60
POINTS = 10
MB = 1e6
CPUS = 4
PARAMS = dict(window=POINTS * G, granularity=G, stale_after=3 * G,
              min_points=3, link_gbps=1.0)
EXPECT_50MB = {'secmig:expected_bandwidth': str(50 * MB / 1024)}

#: name: (host suffix, SimVm rates, metadata)
LOADS = {
    'cpu1': ('cpu', dict(cpu=1.8), None),
    'cpu2': ('cpu', dict(cpu=1.8), None),
    'victim': ('net', dict(net_in=10 * MB), EXPECT_50MB),
    'hog1': ('net', dict(net_in=55 * MB), None),
    'hog2': ('net', dict(net_in=55 * MB), None),
    'swap1': ('swap', dict(cpu=0.3), None),
    'swap2': ('swap', dict(cpu=0.2), None),
    'gap1': ('gap', dict(cpu=0.2, net_out=1 * MB), None),
    'cool0': ('cool0', dict(cpu=0.2, net_in=1 * MB), None),
    'cool1': ('cool1', dict(cpu=0.2, net_in=1 * MB), None),
    'cool2': ('cool2', dict(cpu=0.2, net_in=1 * MB), None),
    'cool3': ('cool3', dict(cpu=0.2, net_in=1 * MB), None),
    'cool4': ('cool3', dict(cpu=0.3, net_in=2 * MB), None),
}
#: Cluster b-: cpu at 87.5 % of 4 CPUs, its link in at 60 % of 1 Gb/s;
#: the destination's link is at 32 %, so the 75 MB/s bound cannot fit
#: under 70 % but the 1 MB/s each light VM really receives can.
BOUNDED = {
    'light1': ('cpu', dict(cpu=1.8, net_in=1 * MB)),
    'light2': ('cpu', dict(cpu=1.5, net_in=1 * MB)),
    'heavy': ('cpu', dict(cpu=0.2, net_in=73 * MB)),
    'other': ('dest', dict(cpu=0.2, net_in=40 * MB)),
}


class TestTwoStageRead(gf.GnocchiTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.site = su.Site()
        cls.addClassCleanup(cls.site.cleanup)
        cls.vms = {}
        for prefix in ('m-', 'p-'):
            for name, (host, rates, meta) in LOADS.items():
                sim = gf.SimVm(str(uuid.uuid4()), prefix + host, **rates)
                if meta:
                    sim.metadata = meta
                cls.vms[prefix + name] = sim
        for name, (host, rates) in BOUNDED.items():
            cls.vms['b-' + name] = gf.SimVm(str(uuid.uuid4()), 'b-' + host,
                                            **rates)
        sims = list(cls.vms.values())
        hosts = sorted({s.host for s in sims})
        cls.site.enroll(*hosts)
        # nova_compute resources come from load_host_meters only
        cls.end = gf.load_cluster(cls.gnocchi, [], sims, points=POINTS,
                                  granularity=G)
        figures = su.host_figures(
            [s for s in sims if s.host[:2] in ('m-', 'b-')], CPUS)
        figures['m-swap']['swap_out'] = 1.3  # the host swaps, not guests
        del figures['m-gap']['net_out']
        figures.update({h: {} for h in hosts if h.startswith('p-')})
        su.load_host_meters(cls.gnocchi, figures, cls.end, POINTS, G)
        cls.now = cls.end + 5

    def audit(self, prefix):
        sims = [s for s in self.vms.values() if s.host.startswith(prefix)]
        hosts = sorted({s.host for s in sims})
        recorder = su.RecordingClient(self.gnocchi.session())
        strategy = su.make_strategy(
            self.site, su.build_model(hosts, sims, node_vcpus=CPUS),
            recorder.client, self.now, **PARAMS)
        with self.gnocchi.counting() as served:
            solution = strategy.execute()
        return strategy, solution, recorder, served['requests']

    def ids_on(self, *hosts):
        return sorted(s.id for s in self.vms.values() if s.host in hosts)

    def found(self, strategy, prefix):
        """Hotspots as (condition, host, VM name, direction), unprefixed."""
        names = {s.id: n[len(prefix):] for n, s in self.vms.items()}
        return sorted((h.condition, h.host[len(prefix):],
                       names.get(h.instance), h.evidence.get('direction'))
                      for h in strategy.report.hotspots)

    def test_host_meters_limit_the_vms_read(self):
        strategy, solution, recorder, served = self.audit('m-')
        obs = strategy.observations
        self.assertEqual('host_meters', obs.mode)
        self.assertEqual(served, strategy.requests)
        # m-gap's missing link meter needs no VM read: that direction is
        # not evaluated there
        self.assertEqual({'m-cpu': ('cpu_pct:near_threshold',),
                          'm-net': ('net_in:near_threshold',
                                    'net_in:link_saturated'),
                          'm-swap': ('swap_out:near_threshold',)},
                         dict(obs.screened))
        # Then two host requests (the hosts split in two), and for the
        # half with the screened hosts, requests for their VMs only, of
        # the kinds each host needs: the CPU of m-cpu's VMs, the resident
        # memory of m-swap's (the relief), the inbound traffic of m-net's,
        # and every VM's dirty rate (what decides if a move converges).
        # m-net's VMs would need only their dirty rate on instance
        # resources: they are read with m-cpu's, CPU included, rather
        # than in a request of their own.
        halves = recorder.searched('nova_compute')
        self.assertEqual(2, len(halves))
        self.assertEqual(sorted({s.host for s in self.vms.values()
                                 if s.host.startswith('m-')}),
                         sorted(halves[0] + halves[1]))
        self.assertEqual(1, len([h for h in halves
                                 if set(h) & set(obs.screened)]))
        self.assertEqual(5, served)
        on_cpu, on_swap = self.ids_on('m-cpu'), self.ids_on('m-swap')
        on_net = self.ids_on('m-net')
        self.assertEqual(
            sorted([('(metric (cpu mean) (memory.dirty.rate mean))',
                     sorted(on_cpu + on_net)),
                    ('(metric (memory.dirty.rate mean) (memory.resident '
                     'mean))', on_swap),
                    ('(metric (network.incoming.packets.drop mean) '
                     '(network.incoming.bytes mean))', on_net)]),
            sorted((b['operations'], sorted(sum(b['search']['in'].values(),
                                                [])))
                   for b in recorder.bodies
                   if b['resource_type'] != 'nova_compute'))
        # load_cluster publishes no memory.resident: only CPU and
        # network came back
        self.assertEqual(sorted(on_cpu + on_net), sorted(obs.vm))
        link = {'net_in', 'net_out', 'drop_in', 'drop_out'}
        self.assertEqual(
            dict({i: link | {'resident'} for i in on_cpu},
                 **{i: link | {'cpu'} for i in on_swap},
                 **{i: {'net_out', 'drop_out', 'resident'}
                    for i in on_net}),
            {i: set(kinds) for i, kinds in obs.unread.items()})
        # and every hotspot is found, from the host meters
        self.assertEqual([
            ('host_cpu', 'cpu', None, None),
            ('host_network', 'net', None, 'in'),
            ('host_swap', 'swap', None, None),
            ('vm_bandwidth_shortfall', 'net', 'victim', 'in'),
        ], self.found(strategy, 'm-'))
        sources = {h.evidence.get('source', h.evidence.get('host_source'))
                   for h in strategy.report.hotspots}
        self.assertEqual({'host_meter'}, sources)
        self.assertTrue(strategy.report.complete,
                        [g.as_dict() for g in strategy.report.gaps])
        # and relieved in one audit, the mode in each move's evidence
        plain = su.actions(solution)
        self.assertEqual(['nop', 'migrate'] * 4 + ['nop'],
                         [a['action_type'] for a in plain])
        bounded = {}
        for evidence in plain[:-1:2]:
            message = evidence['input_parameters']['message']
            self.assertEqual('host_meters', message['data']['mode'])
            self.assertEqual(list(obs.screened[message['source']]),
                             message['data']['source_read_because'])
            bounded[message['source']] = message['evidence'][
                'instance_load_bounded']
        # the loads not read (or not published: resident memory) are
        # bounds, named in the evidence
        self.assertEqual({'m-cpu': ['net_in', 'net_out', 'resident'],
                          'm-swap': ['cpu', 'net_in', 'net_out',
                                     'resident'],
                          'm-net': ['net_out', 'resident']}, bounded)
        # the final report says what was not evaluated
        report = plain[-1]['input_parameters']['message']
        self.assertEqual([('host_network', 'net_out', ['m-gap'])],
                         [(u['condition'], u['kind'], u['hosts'])
                          for u in report['unevaluated']])

    def test_unread_loads_are_read_when_their_bounds_fit_nowhere(self):
        strategy, solution, recorder, served = self.audit('b-')
        obs = strategy.observations
        self.assertEqual({'b-cpu': ('cpu_pct:near_threshold',)},
                         dict(obs.screened))
        # host meters (two requests), the VMs' CPU, then all their
        # meters in two more requests
        self.assertEqual(5, served)
        self.assertEqual(served, strategy.requests)
        every = ('(metric (cpu mean) (memory.dirty.rate mean) '
                 '(memory.resident mean))')
        self.assertEqual(['(metric (cpu mean) (memory.dirty.rate mean))',
                          every],
                         [b['operations'] for b in recorder.bodies
                          if b['resource_type'] == 'instance'])
        self.assertEqual({}, dict(obs.unread))
        # and the light VM goes to the only other host, on its real load
        light2 = self.vms['b-light2'].id
        self.assertEqual([(light2, 'b-cpu', 'b-dest')],
                         su.migrations(solution))
        message = su.actions(solution)[0]['input_parameters']['message']
        self.assertEqual(['resident'],
                         message['evidence']['instance_load_bounded'])
        self.assertAlmostEqual(
            1 * MB, message['evidence']['instance_load']['net_in'], places=0)
        self.assertEqual(5, message['data']['requests'])
        self.assertTrue(strategy.plan.complete)

    def test_a_missing_link_meter_leaves_that_direction_unjudged(self):
        strategy, _, _, _ = self.audit('m-')
        gap = strategy.report.figures['m-gap']
        self.assertNotIn('net_out', gap)
        self.assertEqual('host_meter', gap['net_in'].source)
        self.assertIn(('host_network', 'net_out', ('m-gap',)),
                      [(u.condition, u.kind, u.hosts)
                       for u in strategy.report.unevaluated])
        self.assertEqual((), strategy.report.gaps)

    def test_without_host_meters_every_running_vm_is_read_for_its_cpu(self):
        strategy, solution, recorder, served = self.audit('p-')
        obs = strategy.observations
        self.assertEqual('instances', obs.mode)
        self.assertEqual({}, dict(obs.screened))
        everyone = self.ids_on(*{s.host for n, s in self.vms.items()
                                 if n.startswith('p-')})
        self.assertEqual(everyone,
                         sorted(sum(recorder.searched('instance'), [])))
        self.assertEqual([], recorder.searched('instance_network_interface'))
        self.assertEqual(4, served)  # each half's VMs in one request
        # the CPU hotspot of m-; link and swap are not evaluated
        self.assertEqual([('host_cpu', 'cpu', None, None)],
                         self.found(strategy, 'p-'))
        self.assertEqual(
            [('host_network', 'net_in'), ('host_network', 'net_out'),
             ('host_swap', 'swap_out'),
             ('vm_bandwidth_shortfall', 'net_in'),
             ('vm_bandwidth_shortfall', 'net_out')],
            [(u.condition, u.kind) for u in strategy.report.unevaluated])
        # and the same report as reading everything in one pass
        sims = [s for s in self.vms.values() if s.host.startswith('p-')]
        hosts = sorted({s.host for s in sims})
        full = su.observations(self.gnocchi, hosts, sims, self.now,
                               POINTS * G, G)
        infos = [model.HostInfo(h, CPUS, 125e6) for h in hosts]
        expected = {self.vms['p-victim'].id: 50 * MB}
        vms = [model.VmInfo(s.id, s.host, expected_in=expected.get(s.id),
                            expected_out=expected.get(s.id)) for s in sims]
        before = detect.detect(infos, vms, full, strategy.thresholds())
        self.assertEqual(before.hotspots, strategy.report.hotspots)
        self.assertEqual(before.gaps, strategy.report.gaps)
        self.assertEqual(1, len(su.migrations(solution)))

    def test_gnocchi_stopped_between_the_stages_fails_the_audit(self):
        from secmig.watcher import strategy as strategy_mod
        self.restart_api_at_end()
        su.quick_retries(self, attempts=1)
        sims = [s for s in self.vms.values() if s.host.startswith('m-')]
        recorder = su.RecordingClient(self.gnocchi.session())
        post = recorder.client.api.post
        stopping = threading.Lock()
        answered = []
        stage_one_answered = threading.Event()

        def stop_before_stage_two(url, **kwargs):
            # A VM request may go out while the other host request is
            # still answered: stop only once stage 1 is complete.
            if su.request_body(kwargs)['resource_type'] != 'nova_compute':
                self.assertTrue(stage_one_answered.wait(60))
                with stopping:
                    self.gnocchi.stop_api()
                return post(url, **kwargs)
            answer = post(url, **kwargs)
            answered.append(answer)
            if len(answered) == 2:
                stage_one_answered.set()
            return answer

        recorder.client.api.post = stop_before_stage_two
        strategy = su.make_strategy(
            self.site, su.build_model(sorted({s.host for s in sims}), sims,
                                      node_vcpus=CPUS),
            recorder.client, self.now, **PARAMS)
        with self.assertRaises(strategy_mod.HotspotAuditError) as cm:
            strategy.execute()
        self.assertEqual('gnocchi_unreachable',
                         cm.exception.kwargs['secmig_code'])
        # the host meters were read; the VM requests failed
        self.assertEqual([200, 200], [a.status_code for a in answered])
        sent = [b['resource_type'] for b in recorder.bodies]
        self.assertEqual(2, sent.count('nova_compute'))
        self.assertIn('instance', sent)
        self.assertEqual(len(sent), strategy.requests)
