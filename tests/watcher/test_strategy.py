"""SecureHotspot against a real Gnocchi, Watcher's model and a real PKI.

One Gnocchi holds several small clusters; each test runs an audit on the
Watcher compute model of one of them and asserts on ``solution.actions``
as plain dicts. The ``k-`` hosts publish host meters (CPU, link, swap),
the others only their VMs' meters.
"""

import gc
import uuid

from tests.watcher import strategy_util as su  # noqa: I100 (first)

from gnocchiclient.v1 import client as gclient

from secmig.watcher import strategy as strategy_mod
from tests import gnocchi_fixture as gf

G = 60
POINTS = 10
MB = 1e6
PARAMS = dict(window=POINTS * G, granularity=G, stale_after=3 * G,
              min_points=3, link_gbps=1.0)


class Vm(gf.SimVm):
    pass


def vm(host, **kwargs):
    extra = {k: kwargs.pop(k) for k in ('metadata', 'memory_mb')
             if k in kwargs}
    sim = Vm(str(uuid.uuid4()), host, **kwargs)
    for key, value in extra.items():
        setattr(sim, key, value)
    return sim


SECRET = {'secmig:level': 'secret'}
EXPECT_50MB = {'secmig:expected_bandwidth': str(50 * MB / 1024)}


class TestSecureHotspot(gf.GnocchiTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.site = su.Site()
        cls.addClassCleanup(cls.site.cleanup)
        v = cls.vms = {}

        def add(name, host, **kwargs):
            v[name] = vm(host, **kwargs)

        # every hotspot kind, and four cool hosts to receive VMs
        add('cpu1', 'k-cpu', cpu=1.8)
        add('cpu2', 'k-cpu', cpu=1.8)
        add('victim', 'k-net', net_in=10 * MB, metadata=EXPECT_50MB)
        add('hog1', 'k-net', net_in=55 * MB)
        add('hog2', 'k-net', net_in=55 * MB)
        add('swap1', 'k-swap', cpu=0.3)
        add('swap2', 'k-swap', cpu=0.2)
        for i in range(4):
            add('cool%d' % i, 'k-cool%d' % i, cpu=0.2, net_in=1 * MB)
        # no hotspot at all
        for i in range(3):
            add('quiet%d' % i, 'n-%d' % i, cpu=0.5, net_in=5 * MB)
        # the only eligible destinations are full; the free one has no
        # certificate
        add('fhot1', 'f-hot', cpu=1.8)
        add('fhot2', 'f-hot', cpu=1.8)
        add('full1', 'f-full1', cpu=0.1, memory_mb=2048)
        add('full2', 'f-full2', cpu=0.1, memory_mb=2048)
        add('free', 'f-bad', cpu=0.1)
        # secret VMs; the least loaded host lacks the clearance
        add('sec1', 'i-hot', cpu=1.8, metadata=SECRET)
        add('sec2', 'i-hot', cpu=1.8, metadata=SECRET)
        add('ibest', 'i-best', cpu=0.1)
        add('iok', 'i-ok', cpu=0.6)
        # VMs moved recently, or too often
        add('recent', 'c-hot', cpu=2.0)
        add('restless', 'c-hot', cpu=1.8)
        add('ccool', 'c-cool', cpu=0.1)
        # one VM without any measure
        add('mfine', 'm-host', cpu=0.2)
        add('msilent', 'm-host', measured=False)
        add('mcool', 'm-cool', cpu=0.1)

        hosts = sorted({s.host for s in v.values()})
        cls.site.enroll(*[h for h in hosts
                          if h not in ('f-bad', 'i-ok', 'i-hot')])
        cls.site.enroll('i-ok', 'i-hot', clearance=3)
        metered = [h for h in hosts if h.startswith('k-')]
        cls.end = gf.load_cluster(
            cls.gnocchi, [h for h in hosts if h not in metered],
            list(v.values()), points=POINTS, granularity=G)
        # k-swap swaps 1.3 MiB/s out, its guests do not
        figures = su.host_figures([s for s in v.values()
                                   if s.host in metered], 4,
                                  ('cpu_pct', 'net_in', 'net_out'))
        for host in metered:
            figures[host]['swap_out'] = 1.3 if host == 'k-swap' else 0.0
        su.load_host_meters(cls.gnocchi, figures, cls.end, POINTS, G)
        cls.now = cls.end + 5

    def cluster(self, prefix, memory=None):
        vms = [s for s in self.vms.values() if s.host.startswith(prefix)]
        hosts = sorted({s.host for s in vms})
        return su.build_model(hosts, vms, memory=memory)

    def audit(self, prefix, client=None, history=None, memory=None,
              **params):
        model = self.cluster(prefix, memory)
        strategy = su.make_strategy(
            self.site, model, client or self.gnocchi.client(), self.now,
            history, **dict(PARAMS, **params))
        with self.gnocchi.counting() as served:
            solution = strategy.execute()
        strategy.served = served['requests']
        return strategy, solution

    def vid(self, name):
        return self.vms[name].id

    # -- tests ---------------------------------------------------------

    def test_every_hotspot_kind_is_relieved_in_one_audit(self):
        strategy, solution = self.audit('k-')
        moved = su.migrations(solution)
        by_vm = {m[0]: m for m in moved}
        # Then: one CPU VM, the starved VM, one hog, one VM off the
        # swapping host
        self.assertEqual(4, len(moved), moved)
        self.assertIn(self.vid('victim'), by_vm)
        self.assertEqual(1, len({self.vid('cpu1'), self.vid('cpu2')}
                                & set(by_vm)))
        self.assertEqual(1, len({self.vid('hog1'), self.vid('hog2')}
                                & set(by_vm)))
        self.assertEqual(1, len({self.vid('swap1'), self.vid('swap2')}
                                & set(by_vm)))
        # every destination is a cool host, none takes more than two
        destinations = [m[2] for m in moved]
        self.assertTrue(all(d.startswith('k-cool') for d in destinations))
        self.assertLessEqual(max(destinations.count(d)
                                 for d in destinations), 2)
        # each migration is preceded by its evidence
        plain = su.actions(solution)
        self.assertEqual(['nop', 'migrate'] * 4,
                         [a['action_type'] for a in plain])
        for evidence, migrate in zip(plain[::2], plain[1::2]):
            message = evidence['input_parameters']['message']
            params = migrate['input_parameters']
            self.assertEqual('evidence', message['secmig'])
            self.assertEqual(params['resource_id'], message['instance'])
            self.assertEqual(params['destination_node'],
                             message['destination'])
            self.assertEqual('live', params['migration_type'])
            self.assertEqual('ok', message['evidence']['policy']['code'])
            hotspot = message['evidence']['hotspot']
            self.assertTrue(hotspot.get('values')
                            or hotspot.get('observed_bps'))
        conditions = sorted(a['input_parameters']['message']['condition']
                            for a in plain[::2])
        self.assertEqual(['host_cpu', 'host_network', 'host_swap',
                          'vm_bandwidth_shortfall'], conditions)
        starved = [a['input_parameters']['message'] for a in plain[::2]
                   if a['input_parameters']['message']['instance']
                   == self.vid('victim')][0]
        self.assertEqual(50 * MB, starved['evidence']['hotspot']
                         ['expected_bps'])
        # Gnocchi was read in a handful of requests: the host meters in
        # two, the VMs of the hot hosts in three
        self.assertEqual(5, strategy.served)
        self.assertEqual(strategy.served, strategy.requests)
        # and the efficacy indicators count the migrations
        indicators = {i.name: i.value
                      for i in solution.efficacy_indicators}
        self.assertEqual(4, indicators['instance_migrations_count'])
        self.assertEqual(11, indicators['instances_count'])

    def test_no_hotspot_gives_no_migration_and_says_what_was_not_judged(
            self):
        strategy, solution = self.audit('n-')
        self.assertEqual([], su.migrations(solution))
        self.assertTrue(strategy.report.complete)
        self.assertEqual((), strategy.report.hotspots)
        # these hosts publish no link nor swap meter: the report says so
        [report] = [a['input_parameters']['message']
                    for a in su.actions(solution)]
        self.assertEqual('report', report['secmig'])
        self.assertEqual(
            [('host_network', 'net_in', 'host.network.incoming.bytes', 3),
             ('host_network', 'net_out', 'host.network.outgoing.bytes', 3),
             ('host_swap', 'swap_out', 'host.memory.swap.out', 3)],
            [(u['condition'], u['kind'], u['meter'], u['hosts_total'])
             for u in report['unevaluated']])
        self.assertEqual(([], [], []), (report['unresolved'],
                                        report['skipped'], report['gaps']))

    def test_only_full_or_ineligible_destinations_means_no_move(self):
        strategy, solution = self.audit(
            'f-', memory={'f-full1': 2048, 'f-full2': 2048})
        plain = su.actions(solution)
        self.assertEqual([], su.migrations(solution))
        self.assertEqual(['nop'], [a['action_type'] for a in plain])
        report = plain[0]['input_parameters']['message']
        self.assertEqual('report', report['secmig'])
        [left] = report['unresolved']
        self.assertEqual(('host_cpu', 'f-hot', 'no_eligible_destination'),
                         (left['condition'], left['host'], left['code']))
        self.assertEqual({'no_capacity', 'destination_certificate_invalid'},
                         set(left['details']['refusals']))

    def test_ineligible_best_host_is_passed_over(self):
        strategy, solution = self.audit('i-')
        moved = su.migrations(solution)
        self.assertEqual(1, len(moved), moved)
        self.assertEqual('i-ok', moved[0][2])
        # i-best was the least loaded host, refused for clearance
        decision = strategy_decision(strategy, moved[0][0], 'i-best')
        self.assertEqual('insufficient_clearance', decision.code)

    def test_vm_in_cooldown_or_backoff_is_left_alone_and_reported(self):
        history = {self.vid('recent'): [self.now - 600],
                   self.vid('restless'): [self.now - 80000,
                                          self.now - 40000,
                                          self.now - 20000]}
        strategy, solution = self.audit('c-', history=history)
        self.assertEqual([], su.migrations(solution))
        report = su.actions(solution)[0]['input_parameters']['message']
        skipped = {s['instance']: s['code'] for s in report['skipped']}
        self.assertEqual({self.vid('recent'): 'cooldown',
                          self.vid('restless'): 'backoff'}, skipped)
        self.assertEqual(['no_movable_instance'],
                         [u['code'] for u in report['unresolved']])

    def test_cooldown_over_lets_the_vm_move(self):
        history = {self.vid('recent'): [self.now - 4000],
                   self.vid('restless'): [self.now - 80000,
                                          self.now - 40000,
                                          self.now - 20000]}
        _, solution = self.audit('c-', history=history)
        self.assertEqual([(self.vid('recent'), 'c-hot', 'c-cool')],
                         su.migrations(solution))

    def test_missing_data_fails_the_audit_when_asked(self):
        with self.assertRaises(strategy_mod.HotspotAuditError) as cm:
            self.audit('m-', on_missing_data='fail')
        self.assertEqual('metrics_missing', cm.exception.kwargs[
            'secmig_code'])
        self.assertIn('no cpu data', str(cm.exception))

    def test_missing_data_is_reported_by_default(self):
        strategy, solution = self.audit('m-')
        plain = su.actions(solution)
        self.assertEqual(['nop'], [a['action_type'] for a in plain])
        report = plain[0]['input_parameters']['message']
        missing = {(g['instance'], g['code'], g['kind'])
                   for g in report['gaps']}
        self.assertIn((self.vid('msilent'), 'missing', 'cpu'), missing)
        self.assertEqual({'m-host'}, {g['host'] for g in report['gaps']})

    def test_gnocchi_stopped_mid_audit_fails_the_audit(self):
        self.restart_api_at_end()
        su.quick_retries(self, attempts=3)
        client = gclient.Client(session=self.gnocchi.session())
        post = client.api.post
        calls = []

        def post_then_stop(*args, **kwargs):
            # The API goes away after the audit's first request.
            answer = post(*args, **kwargs)
            calls.append(args[0])
            if len(calls) == 1:
                self.gnocchi.stop_api()
            return answer

        client.api.post = post_then_stop
        with self.assertRaises(strategy_mod.HotspotAuditError) as cm:
            # One request at a time, so that "first" is well defined.
            self.audit('k-', client=client, gnocchi_concurrency=1)
        self.assertEqual('gnocchi_unreachable',
                         cm.exception.kwargs['secmig_code'])
        self.assertIn('Gnocchi unreachable', str(cm.exception))
        self.assertIn('(3 attempts)', str(cm.exception))
        self.assertEqual(1, len(calls))

    def test_cyclic_gc_is_paused_for_the_audit_only(self):
        def run():
            seen = []
            strategy = su.make_strategy(
                self.site, self.cluster('k-'), self.gnocchi.client(),
                self.now, **PARAMS)
            strategy.history_source = lambda since: (
                seen.append(gc.isenabled()) or {})
            strategy.execute()
            return seen

        self.assertEqual([False], run())
        self.assertTrue(gc.isenabled())
        # a collector someone else turned off stays off
        gc.disable()
        try:
            self.assertEqual([False], run())
            self.assertFalse(gc.isenabled())
        finally:
            gc.enable()

    def test_schema_has_a_default_for_every_parameter(self):
        schema = strategy_mod.SecureHotspot.get_schema()
        missing = [name for name, spec in schema['properties'].items()
                   if 'default' not in spec]
        self.assertEqual([], missing)
        self.assertEqual('secmig_hotspot',
                         strategy_mod.SecureHotspot.get_name())
        self.assertEqual('workload_balancing',
                         strategy_mod.SecureHotspot.get_goal_name())


def strategy_decision(strategy, vm_id, destination):
    """Ask the audit's eligibility again, as the planner did."""
    from secmig.hotspot import eligible
    from secmig.policy import facts
    from secmig.policy import loader
    from secmig.watcher import model as model_mod
    conf = strategy.secmig_conf
    inv = model_mod.inventory(strategy.compute_model, 1.0)
    destinations = eligible.Destinations(
        strategy._verdicts(conf), conf.watcher.host_cert_dir,
        loader.load(conf.policy.policy_file),
        facts.Request('watcher', su.WATCHER_CREDENTIALS), inv.instances,
        strategy.clock())
    return destinations(vm_id, 'i-hot', destination)
