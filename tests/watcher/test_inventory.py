"""The inventory read from Watcher's compute model (no Gnocchi needed)."""

import types

from tests.watcher import strategy_util as su  # noqa: I100 (first)

import testtools

from secmig.watcher import model as model_mod
from secmig.watcher import placement as placement_mod


def sim(vm_id, host, vcpus, memory_mb, state='active', extra_specs=None,
        metadata=None):
    return types.SimpleNamespace(
        id=vm_id, host=host, vcpus=vcpus, memory_mb=memory_mb, state=state,
        extra_specs=extra_specs or {}, metadata=metadata or {})


class InventoryTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.model = su.build_model(
            ['a', 'b', 'c'],
            [sim('v1', 'a', 2, 2048), sim('v2', 'a', 1, 512,
                                          state='stopped'),
             sim('v3', 'b', 4, 4096,
                 extra_specs={'quota:vif_inbound_average': '1000'}),
             sim('v4', 'b', 1, 1024, metadata={'secmig:level': '2'})],
            node_vcpus=8, node_memory=16384, memory={'c': 8192})

    def test_free_resources_match_watcher(self):
        inv = model_mod.inventory(self.model, 1e9)
        for name, node in inv.nodes.items():
            free = self.model.get_node_free_resources(node)
            self.assertEqual((free['vcpu'], free['memory'], free['disk']),
                             (inv.free[name].vcpus, inv.free[name].memory_mb,
                              inv.free[name].disk_gb), name)

    def test_candidates_and_facts_are_built_when_read(self):
        inv = model_mod.inventory(self.model, 1e9,
                                  history={'v4': [100.0, 250.0]})
        self.assertEqual({'v1', 'v2', 'v3', 'v4'}, set(inv.candidates))
        self.assertEqual(4, len(inv.instances))
        self.assertEqual({}, inv.candidates._built)
        self.assertEqual(('not_active', 'state is stopped'),
                         inv.candidates['v2'].blocked)
        self.assertIsNone(inv.candidates.get('v1').blocked)
        self.assertEqual((4, 4096, 10), (inv.candidates['v3'].needs.vcpus,
                                         inv.candidates['v3'].needs.memory_mb,
                                         inv.candidates['v3'].needs.disk_gb))
        self.assertEqual({'v1', 'v2', 'v3'}, set(inv.candidates._built))
        facts = inv.instances['v4']
        self.assertEqual((su.PROJECT, {'secmig:level': '2'}, 250.0),
                         (facts.project_id, dict(facts.metadata),
                          facts.last_migrated_at))
        self.assertIsNone(inv.candidates.get('unknown'))
        self.assertNotIn('unknown', inv.instances)
        # the expected bandwidth is read for every VM at once (KB/s)
        self.assertEqual({'v3': 1024000.0},
                         {v.id: v.expected_in for v in inv.vms
                          if v.expected_in})

    def test_placement_reads_aggregates_and_zones_as_the_filter_does(self):
        from watcher.common import nova_helper

        def aggregate(name, hosts, zone=None, metadata=None):
            return nova_helper.Aggregate(id='1', name=name, hosts=hosts,
                                         availability_zone=zone,
                                         metadata=metadata or {})

        placement = placement_mod.placement([
            aggregate('enrolled', ['a', 'b']),
            aggregate('zone-1', ['a'], zone='az1'),
            aggregate('zone-2', ['b'],
                      metadata={'availability_zone': 'az2'}),
            aggregate('zone-3', ['b'], zone='az3')])
        self.assertEqual(
            {'a': (frozenset({'enrolled', 'zone-1'}), 'az1'),
             'b': (frozenset({'enrolled', 'zone-2', 'zone-3'}), 'az2')},
            placement)
