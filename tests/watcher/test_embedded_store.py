"""The demo's embedded metric store answers as Gnocchi does.

The same cluster (the same Ceilometer samples) goes into a real Gnocchi
and into :class:`secmig.demo.metrics.EmbeddedMetricStore` (through the
demo step's :class:`~secmig.watcher.demo_step.EmbeddedAggregates`); the
hotspot reader must observe the same figures from both.
"""

import time
import uuid

from tests.watcher import strategy_util  # noqa: F401,I100 (watcher first)

from secmig.demo import metrics
from secmig.hotspot import gnocchi_query
from secmig.watcher import demo_step
from tests import gnocchi_fixture as gf

G = 60
POINTS = 10


class EmbeddedStoreTest(gf.GnocchiTestCase):

    def test_same_observations_as_gnocchi(self):
        self.assert_same_observations(time.time())

    def test_same_observations_with_start_just_before_a_period(self):
        # The window starts 0.3 s before a period begins: both answer
        # from the period that holds it (a start rounded to the second
        # left that period out of the store's answer).
        self.assert_same_observations((time.time() // G - 1) * G - 0.3)

    def assert_same_observations(self, now):
        # Host names of their own: the tier's Gnocchi is shared.
        prefix = 'embedded-%s' % uuid.uuid4().hex[:8]
        hosts = [prefix + '-hot', prefix + '-cool']
        vms = [gf.SimVm(str(uuid.uuid4()), hosts[0], cpu=1.5, net_in=3e6,
                        net_out=1e6, swap_out=0.5, interfaces=2),
               gf.SimVm(str(uuid.uuid4()), hosts[1], cpu=0.2, net_in=1e5)]
        gf.load_cluster(self.gnocchi, hosts, vms, points=POINTS,
                        granularity=G, now=now, bulk=False)
        store = metrics.EmbeddedMetricStore()
        store.load_cluster(hosts, vms, points=POINTS, granularity=G, now=now)
        ids = [v.id for v in vms]
        real = gnocchi_query.AggregatesReader(self.gnocchi.client()).fetch(
            ids, hosts, POINTS * G, G, now=now)
        embedded = gnocchi_query.AggregatesReader(
            demo_step.embedded_client(store)).fetch(ids, hosts, POINTS * G,
                                                    G, now=now)
        self.assertEqual(set(ids), set(real.vm))
        for vm in vms:
            for kind in ('cpu', 'net_in', 'net_out'):
                self.assertEqual(
                    [(t, round(v, 6)) for t, v in real.vm[vm.id][kind]],
                    [(t, round(v, 6)) for t, v in embedded.vm[vm.id][kind]],
                    (vm.host, kind))
        self.assertAlmostEqual(1.5, real.vm[vms[0].id]['cpu'][-1][1])
        self.assertEqual(real.host, embedded.host)
        self.assertEqual(real.requests, embedded.requests)

    def test_unknown_operations_are_refused(self):
        store = metrics.EmbeddedMetricStore()
        response = store.client().api.post(
            'v1/aggregates?start=0&granularity=60',
            json={'operations': '(aggregate sum (metric cpu mean))',
                  'resource_type': 'instance', 'search': {'in': {'id': []}}})
        self.assertEqual(400, response.status_code)
        self.assertIn('not served by the embedded store',
                      response.json()['description'])
