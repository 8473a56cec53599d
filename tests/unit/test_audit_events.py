"""CADF events for migration steps carry the evidence, or are refused."""

import unittest
import uuid

from pycadf import cadftype

from secmig.audit import events
from secmig.decision import Decision
from secmig import exception

MIGRATION = str(uuid.uuid4())
INSTANCE = str(uuid.uuid4())
USER = uuid.uuid4().hex


class TestBuildEvent(unittest.TestCase):

    def test_refusal_carries_the_decision_and_evidence(self):
        decision = Decision.refuse('clearance', 'host clearance 1 is below '
                                   'instance level 2', level=2)
        event = events.build_event(
            'refused', MIGRATION, INSTANCE, 'failure', 'cmp1',
            decision=decision,
            requester={'user_id': USER, 'user_name': 'alice',
                       'project_id': 'p1'},
            trigger={'metric': 'host.cpu.percent', 'value': 93.5},
            policy_digest='sha256:abc', source_fingerprint='aa' * 32,
            destination_fingerprint='bb' * 32,
            tls_flags=['VIR_MIGRATE_TLS', 'VIR_MIGRATE_PEER2PEER'])
        self.assertTrue(event.is_valid())
        data = event.as_dict()
        self.assertEqual(cadftype.EVENTTYPE_CONTROL, data['eventType'])
        self.assertEqual('deny', data['action'])
        self.assertEqual('failure', data['outcome'])
        self.assertEqual(USER, data['initiator']['id'])
        self.assertEqual(INSTANCE, data['target']['id'])
        self.assertEqual('cmp1', data['observer']['name'])
        self.assertEqual('clearance', data['reason']['reasonCode'])
        self.assertEqual('sha256:abc', data['reason']['policyId'])
        self.assertIn('migration_id?value=%s' % MIGRATION, data['tags'])
        evidence = events.evidence_of(data)
        self.assertEqual(decision.as_dict(), evidence['decision'])
        self.assertEqual(93.5, evidence['trigger']['value'])
        self.assertEqual(['VIR_MIGRATE_TLS', 'VIR_MIGRATE_PEER2PEER'],
                         evidence['tls_flags'])
        self.assertEqual('bb' * 32, evidence['destination_fingerprint'])

    def test_fast_as_dict_matches_pycadf(self):
        event = events.build_event(
            'refused', MIGRATION, INSTANCE, 'failure', 'cmp1',
            decision=Decision.refuse('x', 'y', n=1),
            requester={'user_id': USER}, tls_flags=['A', 'B'],
            trigger={'value': 1.5, 'ok': True, 'none': None})
        self.assertEqual(event.as_dict(), events.as_dict(event))

    def test_every_step_makes_a_valid_event(self):
        for step, (event_type, action) in events.STEPS.items():
            data = events.build_event(step, MIGRATION, INSTANCE, 'success',
                                      'cmp1').as_dict()
            self.assertEqual(event_type, data['eventType'], step)
            self.assertEqual(action, data['action'], step)
            # Without a requester the host itself is the initiator.
            self.assertEqual(data['observer'], data['initiator'])

    def test_event_ids_are_unique(self):
        ids = {events.build_event('started', MIGRATION, INSTANCE, 'success',
                                  'cmp1').id for _ in range(50)}
        self.assertEqual(50, len(ids))

    def test_bad_input_is_refused_with_a_reason(self):
        cases = [
            (('teleported', MIGRATION, INSTANCE, 'success'), {},
             'unknown audit step'),
            (('started', MIGRATION, INSTANCE, 'maybe'), {},
             'unknown audit outcome'),
            (('started', '', INSTANCE, 'success'), {}, 'migration id'),
            (('started', MIGRATION, INSTANCE, 'success'),
             {'trigger': object()}, 'cannot be recorded'),
            (('started', MIGRATION, INSTANCE, 'success'),
             {'trigger': float('nan')}, 'cannot be recorded'),
        ]
        for args, evidence, message in cases:
            with self.assertRaises(exception.SecmigError) as ctx:
                events.build_event(*args, observer='cmp1', **evidence)
            self.assertEqual('bad_audit_event', ctx.exception.code)
            self.assertIn(message, str(ctx.exception))
