"""Properties of the migration policy that must hold for every input."""

import os
import unittest

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from secmig.decision import Decision
from secmig.policy import evaluate
from secmig.policy import facts
from secmig.policy import loader

SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                      'secmig', 'migration-policy.yaml.sample')
POLICY = loader.load(SAMPLE)
MAC = POLICY.mac
NOW = 1_700_000_000.0

level_text = st.one_of(
    st.integers(0, 100).map(str),
    st.sampled_from(sorted(MAC.levels)),
    st.sampled_from(sorted(MAC.levels)).map(str.upper))
any_text = st.one_of(level_text, st.text(max_size=8))
admin_value = st.one_of(st.none(), level_text)
names = st.text(max_size=6)
string_maps = st.dictionaries(
    st.one_of(names, st.sampled_from([MAC.flavor_extra_spec,
                                      MAC.image_property,
                                      MAC.instance_metadata,
                                      'secmig:auto_migrate'])),
    any_text, max_size=4)
times = st.one_of(st.none(), st.floats(allow_nan=True,
                                       allow_infinity=True))
hosts = st.builds(
    facts.HostFacts, name=names, clearance=st.integers(-5, 105),
    certificate_valid=st.booleans(), certificate_code=names,
    tls_ready=st.booleans(),
    aggregates=st.frozensets(st.sampled_from(
        ['secmig-enrolled', 'hardened', 'other']), max_size=3),
    availability_zone=st.one_of(st.none(), st.sampled_from(['az1', 'az2',
                                                            'az3'])))
credentials = st.fixed_dictionaries(
    {'roles': st.lists(st.sampled_from(['admin', 'manager', 'member',
                                        'service']), max_size=3)},
    optional={'project_id': st.sampled_from(['p1', 'p2']),
              'user_id': names,
              'user_name': st.sampled_from(['watcher', 'ada']),
              'user_domain_id': st.sampled_from(['default', 'tenant'])})
requests = st.builds(facts.Request,
                     trigger=st.one_of(st.sampled_from(facts.TRIGGERS),
                                       names),
                     credentials=credentials)
instances = st.builds(
    facts.InstanceFacts, uuid=names, project_id=st.sampled_from(['p1', 'p2']),
    user_id=names, flavor_name=st.sampled_from(['m1.small',
                                                'db.pinned.large']),
    flavor_extra_specs=string_maps, image_properties=string_maps,
    metadata=string_maps, last_migrated_at=times)


def _instance(flavor, image, tenant):
    def spec(key, value):
        return {} if value is None else {key: value}
    return facts.InstanceFacts(
        'i', 'p1', flavor_extra_specs=spec(MAC.flavor_extra_spec, flavor),
        image_properties=spec(MAC.image_property, image),
        metadata=spec(MAC.instance_metadata, tenant))


class TenantLevelTest(unittest.TestCase):

    @settings(max_examples=200, deadline=None)
    @given(admin_value, admin_value, any_text)
    def test_tenant_value_never_lowers_the_level(self, flavor, image,
                                                 tenant):
        without, _, problem = evaluate.instance_level(
            _instance(flavor, image, None), MAC)
        self.assertIsNone(problem)
        level, origins, problem = evaluate.instance_level(
            _instance(flavor, image, tenant), MAC)
        if problem is None:
            self.assertGreaterEqual(level, without)
            self.assertGreaterEqual(level, origins['tenant'])
        else:
            self.assertEqual('mac.instance_metadata', problem[0])

    @settings(max_examples=200, deadline=None)
    @given(admin_value, any_text, st.integers(0, 100))
    def test_tenant_value_never_admits_a_lower_clearance(
            self, flavor, tenant, clearance):
        dest = facts.HostFacts('cmp2', clearance, True, 'ok', True,
                               frozenset(['secmig-enrolled', 'hardened']),
                               'az1')
        source = facts.HostFacts('cmp1', 100, True, 'ok', True,
                                 frozenset(), 'az1')
        admin = facts.Request('api', {'roles': ['admin']})
        without = evaluate.evaluate(admin, _instance(flavor, None, None),
                                    source, dest, POLICY, NOW)
        with_tenant = evaluate.evaluate(admin,
                                        _instance(flavor, None, tenant),
                                        source, dest, POLICY, NOW)
        if not without:
            self.assertFalse(with_tenant, with_tenant)


class TotalityTest(unittest.TestCase):

    @settings(max_examples=300, deadline=None)
    @given(requests, instances, hosts, hosts,
           st.floats())
    def test_evaluation_never_raises(self, request, instance, source,
                                     destination, now):
        decision = evaluate.evaluate(request, instance, source, destination,
                                     POLICY, now)
        self.assertIsInstance(decision, Decision)
        self.assertNotEqual('evaluation_error', decision.code, decision)
        self.assertEqual(POLICY.digest, decision.details['policy_digest'])
        self.assertTrue(decision.details['rule'])
        if decision:
            self.assertTrue(source.certificate_valid
                            and destination.certificate_valid
                            and source.tls_ready and destination.tls_ready)
            self.assertGreaterEqual(destination.clearance,
                                    decision.details['instance_level'])
            self.assertEqual('required',
                             decision.details['constraints']['encryption'])
