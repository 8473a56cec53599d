"""The scheduler's per-request decisions (verdicts: test_verdicts).

The only stand-ins are spies (``mock.patch.object(..., wraps=...)``)
that count calls of the real functions.
"""

import os
import tempfile
import unittest
from unittest import mock

from secmig import eligibility
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts
from secmig.policy import loader

POLICY = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'etc', 'migration-policy.yaml')


class RequestDecisionsTest(unittest.TestCase):

    ADMIN = facts.Request('api', {'user_id': 'u1', 'project_id': 'p1',
                                  'roles': ['admin']})
    MEMBER = facts.Request('api', {'user_id': 'u2', 'project_id': 'p1',
                                   'roles': ['member']})

    def setUp(self):
        self.policy = loader.load(POLICY)
        self.instance = facts.InstanceFacts(
            'inst-1', 'p1', flavor_name='m1',
            flavor_extra_specs={'secmig:level': 'internal'})

    def decisions(self, request):
        return eligibility.RequestDecisions(
            request, self.instance, 'source', self.policy, 1.7e9)

    def host(self, name, clearance=1, aggregates=('rack1',)):
        return facts.HostFacts(name, clearance, True, 'ok', True,
                               frozenset(aggregates), 'az1')

    def test_alike_hosts_share_one_evaluation(self):
        # Given one request and three hosts alike but for their names
        decisions = self.decisions(self.ADMIN)
        with mock.patch.object(evaluate_mod, 'evaluate',
                               wraps=evaluate_mod.evaluate) as spy:
            results = [decisions.decide(self.host(n))
                       for n in ('h1', 'h2', 'h3')]
            # When a host differing in clearance is decided too
            low = decisions.decide(self.host('h4', clearance=0))
        # Then the alike hosts share one evaluation, the other has its own
        self.assertEqual(2, spy.call_count)
        self.assertTrue(all(r.allowed for r in results))
        self.assertIs(results[0], results[2])
        self.assertEqual('insufficient_clearance', low.code)
        self.assertFalse(eligibility.is_request_level(low))

    def test_a_rule_on_the_destination_name_is_judged_per_host(self):
        # Given a policy whose RBAC rule names the one allowed destination
        path = os.path.join(self.tmp(), 'policy.yaml')
        with open(POLICY) as f:
            text = f.read()
        rule = 'api: "rule:admin or rule:project_manager"'
        self.assertIn(rule, text)
        with open(path, 'w') as f:
            f.write(text.replace(
                rule, 'api: "rule:admin and \'h2\':%(target.destination)s"'))
        self.policy = loader.load(path)
        decisions = self.decisions(self.ADMIN)
        # When hosts alike but for their names are decided
        h1, h2 = (decisions.decide(self.host(n)) for n in ('h1', 'h2'))
        # Then each is judged on its own name, and the refusal of h1 is
        # not taken for the whole request
        self.assertTrue(decisions.per_host)
        self.assertEqual('rbac_denied', h1.code)
        self.assertFalse(decisions.is_request_level(h1))
        self.assertTrue(h2.allowed, h2)

    def test_rules_that_ignore_the_destination_share_decisions(self):
        self.assertFalse(self.decisions(self.ADMIN).per_host)

    def tmp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def test_rbac_refusal_is_request_level(self):
        decision = self.decisions(self.MEMBER).decide(self.host('h1'))
        self.assertEqual('rbac_denied', decision.code)
        self.assertTrue(eligibility.is_request_level(decision))

    def test_allowed_is_not_request_level(self):
        decision = self.decisions(self.ADMIN).decide(self.host('h1'))
        self.assertTrue(decision)
        self.assertFalse(eligibility.is_request_level(decision))

    def test_request_level_codes(self):
        for code in ('rbac_denied', 'policy_unavailable', 'cooldown',
                     'automatic_disabled', 'bad_instance_level'):
            self.assertIn(code, eligibility.REQUEST_LEVEL)
        for code in ('insufficient_clearance', 'aggregate_not_allowed',
                     'destination_certificate_invalid',
                     'destination_not_tls_ready'):
            self.assertNotIn(code, eligibility.REQUEST_LEVEL)
