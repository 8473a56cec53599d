"""Hotspots read from a real Gnocchi 4.7 in a fixed number of requests.

One Gnocchi (PostgreSQL indexer, file storage, basic auth, metricd) per
test process; see tests/gnocchi_fixture.py. ``h-net``, ``h-swap`` and
``h-meter`` publish host meters (link, swap, CPU), the others only their
VMs' meters.
"""

import uuid

from tests.watcher import strategy_util as su  # noqa: I100 (first)

from secmig.hotspot import detect
from secmig.hotspot import gnocchi_query
from secmig.hotspot import model
from tests import gnocchi_fixture as gf

G = 60
POINTS = 10
TH = detect.Thresholds(window=POINTS * G, granularity=G,
                       stale_after=3 * G, min_points=3)
GBIT = 125e6
MB = 1e6


def vm_id():
    return str(uuid.uuid4())


class PublicClient(object):
    """gnocchiclient v1's documented managers of a real ``Client``, only.

    No ``api`` (the session adapter the managers use internally): a
    caller that posts requests itself finds nothing to post them with.
    """

    MANAGERS = ('aggregates', 'archive_policy', 'archive_policy_rule',
                'build', 'capabilities', 'metric', 'resource',
                'resource_type', 'status')

    def __init__(self, client):
        for name in self.MANAGERS:
            setattr(self, name, getattr(client, name))


class TestGnocchiQuery(gf.GnocchiTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ids = {}
        sims = []

        def add(name, host, **rates):
            cls.ids[name] = vm_id()
            sims.append(gf.SimVm(cls.ids[name], host, **rates))

        # h-cpu: two busy VMs, 3.6 of 4 cores
        add('busy1', 'h-cpu', cpu=1.8)
        add('busy2', 'h-cpu', cpu=1.8)
        # h-net: neighbours fill the inbound link, the victim (two NICs)
        # gets 10 MB/s of its expected 50
        add('victim', 'h-net', net_in=10 * MB, interfaces=2)
        add('hog1', 'h-net', net_in=55 * MB)
        add('hog2', 'h-net', net_in=55 * MB)
        # h-swap: the host swaps 1.3 MiB/s out, its guests do not
        add('swap1', 'h-swap')
        add('swap2', 'h-swap')
        # h-spike: one period at full CPU, otherwise quiet
        add('spiky', 'h-spike', cpu=[0.4] * (POINTS - 1) + [4.0])
        # h-meter: quiet VMs, but the host's own meter says 95%
        add('calm', 'h-meter', cpu=0.2)
        # h-gap: one VM has resources and metrics but no measures
        add('fine', 'h-gap', cpu=0.2)
        add('silent', 'h-gap', measured=False)
        # a quiet background cluster, to show the request count is fixed
        cls.background = ['bg-%02d' % i for i in range(12)]
        for host in cls.background:
            for _ in range(3):
                sims.append(gf.SimVm(vm_id(), host, cpu=0.3,
                                     net_in=2 * MB, net_out=2 * MB))
        cls.hosts = ['h-cpu', 'h-net', 'h-swap', 'h-spike', 'h-meter',
                     'h-gap'] + cls.background
        cls.sims = sims
        metered = {'h-net': {'net_in': 120 * MB, 'net_out': 1 * MB},
                   'h-swap': {'swap_out': 1.3}, 'h-meter': {'cpu_pct': 95.0}}
        cls.end = gf.load_cluster(
            cls.gnocchi, [h for h in cls.hosts if h not in metered], sims,
            points=POINTS, granularity=G)
        su.load_host_meters(cls.gnocchi, metered, cls.end, POINTS, G)

    def inventory(self, hosts):
        infos = [model.HostInfo(h, cpus=4, link_bps=GBIT) for h in hosts]
        vms = [model.VmInfo(s.id, s.host,
                            expected_in=(50 * MB if s.id == self.ids['victim']
                                         else None))
               for s in self.sims if s.host in hosts]
        return infos, vms

    def fetch(self, hosts, reader=None):
        reader = reader or gnocchi_query.AggregatesReader(
            self.gnocchi.client())
        return self.fetch_with(reader, hosts)

    def fetch_with(self, reader, hosts):
        infos, vms = self.inventory(hosts)
        with self.gnocchi.counting() as served:
            obs = reader.fetch([v.id for v in vms], hosts, TH.window, G,
                               now=self.end + 5)
        return infos, vms, obs, served['requests']

    def test_every_hotspot_found_in_four_requests(self):
        # Given the whole cluster, when fetched and analysed
        infos, vms, obs, served = self.fetch(self.hosts)
        report = detect.detect(infos, vms, obs, TH)
        # Then the server saw exactly the requests the reader counted:
        # two for the VMs, the hosts split in two
        self.assertEqual(4, obs.requests)
        self.assertEqual(4, served)
        found = sorted((h.condition, h.host, h.instance,
                        h.evidence.get('direction'))
                       for h in report.hotspots)
        self.assertEqual([
            ('host_cpu', 'h-cpu', None, None),
            ('host_cpu', 'h-meter', None, None),
            ('host_network', 'h-net', None, 'in'),
            ('host_swap', 'h-swap', None, None),
            ('vm_bandwidth_shortfall', 'h-net', self.ids['victim'], 'in'),
        ], found)
        # And the missing VM is reported, not read as an idle VM; its
        # host is judged with the VM's CPU at its bound
        silent = {(g.code, g.kind) for g in report.gaps
                  if g.instance == self.ids['silent']}
        self.assertEqual({('missing', 'cpu')}, silent)
        self.assertEqual({'h-gap'}, {g.host for g in report.gaps})
        self.assertEqual(set(), report.unjudged_hosts)

    def test_values_and_evidence_survive_the_round_trip(self):
        infos, vms, obs, _ = self.fetch(['h-cpu', 'h-net', 'h-meter'])
        busy = obs.vm[self.ids['busy1']]['cpu']
        # ten rates from the periods' counter means (the period holding
        # "now" is still filling: counters leave it out)
        self.assertEqual(POINTS, len(busy))
        for _, cores in busy:
            self.assertAlmostEqual(1.8, cores, places=6)
        # the victim's two interfaces are summed into one VM series
        for _, bps in obs.vm[self.ids['victim']]['net_in']:
            self.assertAlmostEqual(10 * MB, bps, places=3)
        self.assertEqual({'cpu_pct'}, set(obs.host['h-meter']))
        for _, bps in obs.host['h-net']['net_in']:
            self.assertAlmostEqual(120 * MB, bps, places=3)
        report = detect.detect(infos, vms, obs, TH)
        meter = [h for h in report.hotspots if h.host == 'h-meter'][0]
        self.assertEqual(['compute.node.cpu.percent'],
                         meter.evidence['metrics'])
        self.assertEqual('host_meter', meter.evidence['source'])
        cpu = [h for h in report.hotspots if h.host == 'h-cpu'][0]
        self.assertEqual(['cpu'], cpu.evidence['metrics'])
        self.assertAlmostEqual(90.0, cpu.evidence['mean'])

    def test_request_count_does_not_grow_with_the_cluster(self):
        one = self.fetch(['h-cpu'])
        two = self.fetch(['h-cpu', 'h-net'])
        large = self.fetch(self.hosts)
        # two VM requests, and the hosts in two requests: one host is
        # not split
        self.assertEqual(3, one[2].requests)
        self.assertEqual(4, two[2].requests)
        self.assertEqual(two[3], large[3])
        self.assertGreater(len(large[2].vm), 10 * len(one[2].vm))

    def test_spike_and_quiet_hosts_are_clear_and_complete(self):
        hosts = ['h-spike'] + self.background
        infos, vms, obs, _ = self.fetch(hosts)
        report = detect.detect(infos, vms, obs, TH)
        self.assertEqual((), report.hotspots)
        self.assertTrue(report.complete, [g.as_dict() for g in report.gaps])

    def test_reads_through_gnocchiclients_public_managers_only(self):
        """The reader uses the client's documented managers, not ``api``.

        Given a client that exposes only gnocchiclient's public managers
        (each forwarding to the real client), the reader's answers are
        those of the real client. A reader that posts to ``client.api``
        itself fails here with an AttributeError on ``api``.
        """
        real = self.gnocchi.client()
        public = PublicClient(real)
        self.assertFalse(hasattr(public, 'api'))
        hosts = ['h-cpu', 'h-net', 'h-meter']
        _, _, direct, _ = self.fetch(hosts)
        infos, vms, obs, served = self.fetch(
            hosts, gnocchi_query.AggregatesReader(public))
        # Then the same series, in the same number of requests
        self.assertEqual(direct.vm, obs.vm)
        self.assertEqual(direct.host, obs.host)
        self.assertEqual((4, 4), (obs.requests, served))
        for _, cores in obs.vm[self.ids['busy1']]['cpu']:
            self.assertAlmostEqual(1.8, cores, places=6)
        report = detect.detect(infos, vms, obs, TH)
        self.assertEqual(
            [('host_cpu', 'h-cpu'), ('host_cpu', 'h-meter'),
             ('host_network', 'h-net'), ('vm_bandwidth_shortfall', 'h-net')],
            sorted((h.condition, h.host) for h in report.hotspots))

    def test_unknown_instances_are_gaps_of_their_own(self):
        reader = gnocchi_query.AggregatesReader(self.gnocchi.client())
        ghost = vm_id()
        obs = reader.fetch([ghost], ['h-ghost'], TH.window, G,
                           now=self.end + 5)
        report = detect.detect([model.HostInfo('h-ghost', 4, GBIT)],
                               [model.VmInfo(ghost, 'h-ghost')], obs, TH)
        self.assertEqual({}, dict(obs.vm))
        self.assertEqual([('missing', ghost, 'cpu')],
                         [(g.code, g.instance, g.kind) for g in report.gaps])

    def test_gnocchi_error_answer_is_a_clear_error(self):
        meters = gnocchi_query.Meters(cpu='cpu)')
        reader = gnocchi_query.AggregatesReader(self.gnocchi.client(),
                                                meters, attempts=3)
        with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
            reader.fetch([self.ids['busy1']], ['h-cpu'], TH.window, G)
        self.assertEqual('gnocchi_error', cm.exception.code)
        self.assertIn('HTTP 400', str(cm.exception))
        self.assertIn('(metric (cpu) mean)', str(cm.exception))
        # an error answer is not retried
        self.assertEqual(3, reader.requests)

    def test_gnocchi_stopped_is_a_clear_error_after_the_retries(self):
        self.restart_api_at_end()
        waits = []
        reader = gnocchi_query.AggregatesReader(
            self.gnocchi.client(), attempts=3, retry_interval=7,
            sleep=waits.append)
        self.gnocchi.stop_api()
        with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
            reader.fetch([self.ids['busy1']], ['h-cpu'], TH.window, G)
        self.assertEqual('gnocchi_unreachable', cm.exception.code)
        self.assertIn('Gnocchi unreachable', str(cm.exception))
        self.assertIn('3 attempts', str(cm.exception))
        # three requests, each sent three times, 7 s apart
        self.assertEqual(9, reader.requests)
        self.assertEqual([7] * 6, waits)

    def test_a_retry_reads_gnocchi_back_up(self):
        self.restart_api_at_end()
        restarts = []

        def restart(interval):
            restarts.append(interval)
            self.gnocchi.start_api()

        reader = gnocchi_query.AggregatesReader(
            self.gnocchi.client(), concurrency=1, attempts=2,
            retry_interval=1, sleep=restart)
        self.gnocchi.stop_api()
        _, _, obs, served = self.fetch_with(reader, ['h-cpu'])
        self.assertEqual([1], restarts)
        self.assertEqual(4, obs.requests)  # three, one of them twice
        self.assertEqual(3, served)
        self.assertEqual(POINTS, len(obs.vm[self.ids['busy1']]['cpu']))
