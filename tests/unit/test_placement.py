"""Which policies need a host's aggregates and zone."""

import textwrap
import unittest

from secmig import placement
from secmig.policy import loader

BASE = textwrap.dedent("""\
    version: 1
    rules:
      admin: "role:admin"
    rbac:
      api: "rule:admin"
      watcher: "role:service"
    mac:
      levels: {public: 0, secret: 3}
    """)


def policy(destinations=''):
    return loader.loads(BASE + textwrap.dedent(destinations), 'test.yaml')


class NeededTest(unittest.TestCase):

    def test_policy_without_destinations_rules_needs_nothing(self):
        self.assertFalse(placement.needed(policy()))
        self.assertFalse(placement.needed(policy("""\
            destinations:
              same_availability_zone: false
            """)))

    def test_each_destinations_rule_needs_placement(self):
        for rule in ('availability_zones: [az1]',
                     'aggregates: [secmig-hosts]',
                     'same_availability_zone: true',
                     'by_level: [{min_level: secret, aggregates: [vault]}]'):
            self.assertTrue(placement.needed(policy(
                'destinations:\n  %s\n' % rule)), rule)

    def test_refusal_says_the_facts_were_unknown(self):
        decision = placement.refusal('dest', 'connection refused')
        self.assertFalse(decision)
        self.assertEqual('placement_unavailable', decision.code)
        self.assertEqual(
            'the aggregates and availability zone of dest could not be '
            'read, and the migration policy decides on them (destinations '
            'rules): connection refused', decision.reason)
