"""The guard of a host where secmig could not start refuses every step."""

import unittest

from secmig import guard
from secmig.policy import facts
from secmig import unavailable

INSTANCE = facts.InstanceFacts('11111111-2222-3333-4444-555555555555',
                               'project-1')
REQUEST = facts.Request('api', {'user_id': 'alice', 'roles': ['admin']})


class ReportingChannel(guard.PeerChannel):
    """Keeps what the destination tells the source."""

    def __init__(self):
        self.reports = []

    def report(self, peer_host, instance_uuid, decision):
        self.reports.append((peer_host, instance_uuid, decision.code))


class UnavailableGuardTest(unittest.TestCase):

    def setUp(self):
        self.decision = unavailable.refusal(
            'dest', 'secmig.conf /etc/secmig/secmig.conf is invalid: bad',
            'config_invalid')
        self.guard = unavailable.UnavailableGuard('dest', self.decision)

    def test_refusal_names_host_problem_and_cause(self):
        self.assertFalse(self.decision)
        self.assertEqual('secmig_unavailable', self.decision.code)
        self.assertEqual('config_invalid', self.decision.details['cause'])
        self.assertEqual(
            'secmig is unavailable on dest and refuses every migration: '
            'secmig.conf /etc/secmig/secmig.conf is invalid: bad',
            self.decision.reason)

    def test_incoming_is_refused_and_reported_to_the_source(self):
        channel = ReportingChannel()
        decision = self.guard.authorise_incoming(
            'migration-1', REQUEST, INSTANCE, 'src', None, channel,
            (), None)
        self.assertIs(self.decision, decision)
        self.assertEqual([('src', INSTANCE.uuid, 'secmig_unavailable')],
                         channel.reports)

    def test_every_source_step_is_refused(self):
        auth2, decision = self.guard.answer_hello('m', INSTANCE.uuid, b'x')
        self.assertIsNone(auth2)
        self.assertEqual('secmig_unavailable', decision.code)
        for decision in (
                self.guard.answer_confirm(INSTANCE.uuid, b'x'),
                self.guard.authorise_outgoing(REQUEST, INSTANCE, None,
                                              lambda host: ((), None)),
                self.guard.start_outgoing(INSTANCE.uuid, 'qemu+tls://d',
                                          0, 0, 0, {})[0],
                self.guard.record_phase('copied', INSTANCE.uuid),
                self.guard.record('refused', 'm', INSTANCE.uuid,
                                  'failure')):
            self.assertEqual('secmig_unavailable', decision.code)
        self.assertIsNone(self.guard.start_outgoing(
            INSTANCE.uuid, 'qemu+tls://d', 0, 0, 0, {})[1])
        self.assertIsNone(self.guard.is_authorised(INSTANCE.uuid))
        self.assertIsNone(self.guard.audit)
