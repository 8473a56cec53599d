"""The source's answers: waiting handshakes no third host can touch.

The source ``src`` answers destinations about instance ``UUID``. The
intruder is ``other``: enrolled with the same CA, holding its own valid
key, and reading the bus. Each test plays its move and asserts the
decision that names it, and that the real destination ``dst`` still
completes its handshake.
"""

import unittest

from hypothesis import assume
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from secmig.auth import answering
from secmig.auth import binding as binding_mod
from secmig.pki import verify
from tests.unit import authutil
from tests.unit.authutil import rewrite

OTHER_UUID = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'
BOUNDED = settings(max_examples=150, deadline=None, database=None,
                   derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])
CODES = authutil.CODES | set(answering.CODES)


class AnsweringTestBase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World()

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def setUp(self):
        self.clock = authutil.ManualClock()
        self.conf = authutil.make_conf()
        self.source = answering.AnsweringHost('src', self.conf, self.clock)

    def start(self, dest='dst', instance=authutil.UUID, migration='42'):
        """A destination's initiator and its auth1."""
        initiator = self.world.initiator(
            host=dest, clock=self.clock, conf=self.conf,
            binding=authutil.make_binding(dest_host=dest,
                                          instance_uuid=instance,
                                          migration_id=migration))
        return initiator, initiator.start()

    def hello(self, auth1, instance=authutil.UUID, dest_host=None,
              migration='42'):
        return self.source.hello(
            self.world.creds['src'], self.world.trust, migration, instance,
            authutil.POLICY, auth1, dest_host=dest_host)

    def to_auth3(self, dest='dst', instance=authutil.UUID):
        """Run a destination's handshake up to its auth3."""
        initiator, auth1 = self.start(dest, instance)
        auth2, decision = self.hello(auth1, instance)
        self.assertEqual('awaiting_confirmation', decision.code, decision)
        auth3, decision = initiator.finish(auth2)
        self.assertEqual('authenticated', decision.code, decision)
        return auth3

    def assertRefused(self, code, decision, **details):
        self.assertFalse(decision.allowed, decision)
        self.assertEqual(code, decision.code, decision)
        for name, value in details.items():
            self.assertEqual(value, decision.details.get(name), decision)

    def assertConfirmed(self, auth3, peer, instance=authutil.UUID):
        decision = self.source.confirm(instance, auth3)
        self.assertEqual('authenticated', decision.code, decision)
        self.assertEqual(peer, decision.details['peer_host'])
        self.assertEqual(instance, decision.details['instance_uuid'])


class ThirdHostTest(AnsweringTestBase):

    def test_intruders_handshake_does_not_displace_the_destinations(self):
        auth3 = self.to_auth3('dst')
        intruder = self.to_auth3('other')
        self.assertEqual(2, len(self.source))
        self.assertConfirmed(auth3, 'dst')
        self.assertConfirmed(intruder, 'other')

    def test_intruders_auth3_cannot_end_the_destinations_handshake(self):
        auth3 = self.to_auth3('dst')
        # other replays, alters or forges an auth3 for the instance.
        for forged in (rewrite(auth3, ts=authutil.field(auth3, 'ts') - 1),
                       rewrite(auth3, sig=authutil.flip_b64(
                           authutil.field(auth3, 'sig')))):
            self.assertRefused('bad_signature',
                               self.source.confirm(authutil.UUID, forged),
                               peer_host=None, signed_by_peer=False,
                               waiting_peers=['dst'])
        self.assertRefused('malformed_message',
                           self.source.confirm(authutil.UUID, b'junk'),
                           peer_host=None, signed_by_peer=False)
        self.assertConfirmed(auth3, 'dst')

    def test_destination_known_to_the_source_refuses_the_intruder(self):
        auth3 = self.to_auth3('dst')
        _, auth1 = self.start('other')
        auth2, decision = self.hello(auth1, dest_host='dst')
        self.assertIsNone(auth2)
        # other signed its auth1; its certificate is not dst's.
        self.assertRefused('peer_certificate_invalid', decision,
                           pki_code='wrong_host', peer_host='dst',
                           signed_by_peer=False,
                           peer_subject=self.world.creds['other'].cert
                           .subject.rfc4514_string())
        self.assertEqual(1, len(self.source))
        self.assertConfirmed(auth3, 'dst')

    def test_intruder_rewriting_the_destination_of_auth1(self):
        # A keyless party renames the destination in dst's auth1: the
        # name is not attributed, nothing waits for it.
        _, auth1 = self.start('dst')
        auth2, decision = self.hello(rewrite(auth1,
                                             binding_dest_host='other'))
        self.assertIsNone(auth2)
        self.assertRefused('bad_signature', decision, peer_host='other',
                           signed_by_peer=False)
        self.assertEqual(0, len(self.source))

    def test_destination_starting_again_replaces_only_its_own(self):
        first = self.to_auth3('dst')
        self.clock.advance(1)
        second = self.to_auth3('dst')
        self.assertEqual(1, len(self.source))
        self.assertRefused('bad_signature',
                           self.source.confirm(authutil.UUID, first))
        self.assertConfirmed(second, 'dst')

    def test_confirmed_handshake_cannot_be_confirmed_again(self):
        auth3 = self.to_auth3('dst')
        self.assertConfirmed(auth3, 'dst')
        self.assertRefused('no_handshake',
                           self.source.confirm(authutil.UUID, auth3))


class AcrossInstancesTest(AnsweringTestBase):

    def test_auth1_replayed_for_another_instance(self):
        _, auth1 = self.start('dst')
        self.assertTrue(self.hello(auth1)[1])
        self.assertRefused('replayed', self.hello(auth1,
                                                  instance=OTHER_UUID)[1])

    def test_auth1_first_delivered_for_another_instance(self):
        _, auth1 = self.start('dst')
        self.assertRefused('binding_mismatch',
                           self.hello(auth1, instance=OTHER_UUID)[1],
                           fields=['instance_uuid'], signed_by_peer=True)

    def test_auth3_delivered_for_another_instance(self):
        auth3 = self.to_auth3('dst')
        self.assertRefused('no_handshake',
                           self.source.confirm(OTHER_UUID, auth3))
        other = self.to_auth3('dst', instance=OTHER_UUID)
        self.assertRefused('bad_signature',
                           self.source.confirm(OTHER_UUID, auth3),
                           waiting_peers=['dst'])
        self.assertConfirmed(auth3, 'dst')
        self.assertConfirmed(other, 'dst', instance=OTHER_UUID)


class BoundsTest(AnsweringTestBase):

    def test_full_table_refuses_the_newcomer_and_keeps_the_rest(self):
        self.conf = authutil.make_conf(max_pending_handshakes=1)
        self.source = answering.AnsweringHost('src', self.conf, self.clock)
        auth3 = self.to_auth3('dst')
        _, auth1 = self.start('other')
        auth2, decision = self.hello(auth1)
        self.assertIsNone(auth2)
        self.assertRefused('too_many_handshakes', decision,
                           peer_host='other')
        self.assertConfirmed(auth3, 'dst')

    def test_expired_handshake_is_forgotten(self):
        auth3 = self.to_auth3('dst')
        self.clock.advance(self.conf.auth.handshake_timeout + 1)
        self.assertRefused('no_handshake',
                           self.source.confirm(authutil.UUID, auth3))
        self.assertEqual(0, len(self.source))

    def test_auth1_naming_the_source_as_destination(self):
        _, auth1 = self.start('dst')
        forged = rewrite(auth1, binding_source_host='other',
                         binding_dest_host='src')
        self.assertRefused('binding_mismatch', self.hello(forged)[1],
                           peer_host=None, signed_by_peer=False)

    def test_invalid_local_values_are_refused(self):
        _, auth1 = self.start('dst')
        self.assertRefused('bad_binding', self.hello(auth1,
                                                     migration='a b')[1])


class DestinationNameTest(AnsweringTestBase):
    """Any destination string in auth1: a refusal with a known code."""

    def assertAnswered(self, decision, name):
        self.assertIn(decision.details.get('peer_host'), (None, name),
                      decision)
        if not decision:
            self.assertIn(decision.code, CODES, decision)
            self.assertIn('signed_by_peer', decision.details, decision)

    @BOUNDED
    @given(st.text(max_size=300))
    def test_unsigned_destination(self, name):
        _, auth1 = self.start('dst')
        auth2, decision = self.hello(rewrite(auth1, binding_dest_host=name))
        self.assertIsNone(auth2)
        self.assertAnswered(decision, name)
        self.assertFalse(decision.details['signed_by_peer'])

    @BOUNDED
    @given(st.from_regex(binding_mod.FIELDS['dest_host'], fullmatch=True)
           | st.sampled_from(['dst.', 'dst..', 'DST', 'd_st', '127.0.0.1',
                              '127.0.0.1.', 'xn--dst', '1.2', '1.2.3.4.5',
                              'a' * 64 + '.dst', 'a' * 253]))
    def test_destination_signed_by_its_key(self, name):
        # dst signs a binding that names it ``name``.
        assume(name != 'src')
        _, auth1 = self.start('dst')
        signed = authutil.resign(auth1, self.world.creds['dst'],
                                 binding_dest_host=name)
        auth2, decision = self.hello(signed)
        self.assertAnswered(decision, name)
        names = verify.certificate_names(self.world.creds['dst'].cert)
        if decision:
            # Only a name of dst's certificate is accepted.
            self.assertTrue(verify.name_in(name, names), decision)


if __name__ == '__main__':
    unittest.main()
