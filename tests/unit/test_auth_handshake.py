"""The handshake between two hosts: success and every refusal.

Each refusal test plays one attacker move (replay, reflection, a stale
or future message, a tampered field, a foreign or revoked certificate,
a wrong policy, a message out of order) and asserts the decision code
that names it.
"""

import copy
import tempfile
import unittest

from secmig.auth import binding as binding_mod
from secmig.auth import credentials
from secmig.auth import replay
from secmig import exception
from tests import pkiutil
from tests.unit import authutil
from tests.unit.authutil import field
from tests.unit.authutil import flip_b64
from tests.unit.authutil import rewrite


class HandshakeTestBase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World(clearances={'dst': 3, 'src': 2})

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def setUp(self):
        self.clock = authutil.ManualClock()
        self.conf = authutil.make_conf()
        self.cache = replay.ReplayCache.from_conf(self.conf)
        self.binding = authutil.make_binding()

    def initiator(self, **kw):
        kw.setdefault('clock', self.clock)
        kw.setdefault('conf', self.conf)
        kw.setdefault('binding', self.binding)
        return self.world.initiator(**kw)

    def responder(self, **kw):
        kw.setdefault('clock', self.clock)
        kw.setdefault('conf', self.conf)
        kw.setdefault('cache', self.cache)
        return self.world.responder(**kw)

    def assertRefused(self, code, decision, **details):
        self.assertFalse(decision.allowed, decision)
        self.assertEqual(code, decision.code, decision)
        for name, value in details.items():
            self.assertEqual(value, decision.details.get(name), decision)

    def run_to_msg2(self):
        """(initiator, responder, msg1, msg2) after a good auth1."""
        initiator, responder = self.initiator(), self.responder()
        msg1 = initiator.start()
        msg2, decision = responder.respond(msg1, self.binding)
        self.assertEqual('awaiting_confirmation', decision.code)
        return initiator, responder, msg1, msg2

    def run_to_msg3(self):
        initiator, responder, msg1, msg2 = self.run_to_msg2()
        msg3, decision = initiator.finish(msg2)
        self.assertEqual('authenticated', decision.code)
        return responder, msg1, msg2, msg3


class GoodHandshakeTest(HandshakeTestBase):

    def test_both_sides_authenticate_and_agree(self):
        responder, _, _, msg3 = self.run_to_msg3()
        final = responder.confirm(msg3)
        self.assertTrue(final.allowed, final)
        self.assertEqual('authenticated', final.code)
        self.assertEqual('src', final.details['peer_host'])
        self.assertEqual(2, final.details['peer_clearance'])
        self.assertEqual(self.world.creds['src'].fingerprint,
                         final.details['initiator_fingerprint'])
        self.assertEqual(self.world.creds['dst'].fingerprint,
                         final.details['responder_fingerprint'])
        self.assertEqual('42', final.details['migration_id'])
        self.assertEqual(64, len(final.details['transcript_hash']))
        self.assertEqual('done', responder.state)

    def test_initiator_sees_responder_details_and_same_transcript(self):
        initiator, responder = self.initiator(), self.responder()
        msg2, _ = responder.respond(initiator.start(), self.binding)
        msg3, mine = initiator.finish(msg2)
        theirs = responder.confirm(msg3)
        self.assertEqual('dst', mine.details['peer_host'])
        self.assertEqual(3, mine.details['peer_clearance'])
        for name in ('transcript_hash', 'initiator_fingerprint',
                     'responder_fingerprint', 'policy_digest'):
            self.assertEqual(mine.details[name], theirs.details[name])

    def test_destination_may_initiate(self):
        initiator = self.initiator(host='dst')
        responder = self.responder(host='src')
        msg2, _ = responder.respond(initiator.start(), self.binding)
        msg3, mine = initiator.finish(msg2)
        self.assertEqual('authenticated', mine.code)
        self.assertEqual('authenticated', responder.confirm(msg3).code)

    def test_two_handshakes_have_distinct_nonces_and_transcripts(self):
        first = self.run_to_msg3()
        self.clock.advance(1)
        self.binding = authutil.make_binding(migration_id='43')
        second = self.run_to_msg3()
        self.assertNotEqual(field(first[1], 'nonce'),
                            field(second[1], 'nonce'))
        self.assertNotEqual(first[0].confirm(first[3]).details[
            'transcript_hash'], second[0].confirm(second[3]).details[
                'transcript_hash'])

    def test_host_outside_the_binding_is_a_local_error(self):
        with self.assertRaises(exception.SecmigError) as ctx:
            self.initiator(host='other')
        self.assertEqual('bad_binding', ctx.exception.code)
        with self.assertRaises(exception.SecmigError) as ctx:
            self.responder(host='other').respond(b'{}', self.binding)
        self.assertEqual('bad_binding', ctx.exception.code)

    def test_start_twice_is_a_local_error(self):
        initiator = self.initiator()
        initiator.start()
        with self.assertRaises(exception.SecmigError) as ctx:
            initiator.start()
        self.assertEqual('handshake_state', ctx.exception.code)


class ReplayTest(HandshakeTestBase):

    def test_replay_to_same_host_after_completion(self):
        responder, msg1, _, msg3 = self.run_to_msg3()
        self.assertTrue(responder.confirm(msg3))
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('replayed', decision)

    def test_replay_to_same_responder_object(self):
        _, responder, msg1, _ = self.run_to_msg2()
        msg2, decision = responder.respond(msg1, self.binding)
        self.assertIsNone(msg2)
        self.assertRefused('replayed', decision)

    def test_replay_into_another_session(self):
        _, _, msg1, _ = self.run_to_msg2()
        other = authutil.make_binding(migration_id='77')
        _, decision = self.responder().respond(msg1, other)
        self.assertRefused('replayed', decision, migration_id='77')

    def test_replay_to_another_host(self):
        _, _, msg1, _ = self.run_to_msg2()
        own_cache = replay.ReplayCache.from_conf(self.conf)
        _, decision = self.responder(host='other', cache=own_cache).respond(
            msg1, authutil.make_binding(dest_host='other'))
        self.assertRefused('binding_mismatch', decision,
                           fields=['dest_host'])

    def test_replay_beyond_cache_horizon(self):
        # A full cache forgets the oldest nonce, and from then on refuses
        # every message as old as it: eviction never lets a replay in.
        cache = replay.ReplayCache(1, 30000)
        initiator = self.initiator()
        msg1 = initiator.start()
        self.assertTrue(self.responder(cache=cache).respond(
            msg1, self.binding)[1])
        self.clock.advance(0.01)
        later = self.initiator(binding=authutil.make_binding(
            migration_id='43')).start()
        self.assertTrue(self.responder(cache=cache).respond(
            later, authutil.make_binding(migration_id='43'))[1])
        _, decision = self.responder(cache=cache).respond(msg1, self.binding)
        self.assertRefused('replayed', decision)
        self.assertIn('horizon', decision.reason)

    def test_replayed_msg3_does_not_complete_another_session(self):
        first, _, _, msg3 = self.run_to_msg3()
        self.assertTrue(first.confirm(msg3))
        _, second, _, _ = self.run_to_msg2()
        self.assertRefused('bad_signature', second.confirm(msg3))


class ReflectionTest(HandshakeTestBase):

    def test_msg1_reflected_to_senders_own_responder(self):
        msg1 = self.initiator().start()
        _, decision = self.responder(host='src').respond(msg1, self.binding)
        self.assertRefused('reflected', decision)

    def test_msg1_reflected_to_its_initiator(self):
        initiator = self.initiator()
        msg1 = initiator.start()
        self.assertRefused('reflected', initiator.finish(msg1)[1])

    def test_msg2_reflected_to_its_responder(self):
        _, responder, _, msg2 = self.run_to_msg2()
        self.assertRefused('reflected', responder.confirm(msg2))

    def test_msg2_echoing_initiator_nonce(self):
        initiator, _, msg1, msg2 = self.run_to_msg2()
        forged = rewrite(msg2, nonce=field(msg1, 'nonce'))
        self.assertRefused('reflected', initiator.finish(forged)[1])


class TimestampTest(HandshakeTestBase):

    def test_stale_msg1(self):
        msg1 = self.initiator().start()
        self.clock.advance(self.conf.auth.max_clock_skew + 1)
        self.assertRefused('stale_timestamp',
                           self.responder().respond(msg1, self.binding)[1])

    def test_future_msg1(self):
        ahead = authutil.ManualClock(self.clock.now + 31)
        msg1 = self.initiator(clock=ahead).start()
        self.assertRefused('future_timestamp',
                           self.responder().respond(msg1, self.binding)[1])

    def test_msg1_within_skew_is_accepted(self):
        ahead = authutil.ManualClock(self.clock.now + 29)
        msg1 = self.initiator(clock=ahead).start()
        self.assertTrue(self.responder().respond(msg1, self.binding)[1])

    def test_stale_msg2(self):
        initiator, _, _, msg2 = self.run_to_msg2()
        self.clock.advance(31)
        self.assertRefused('stale_timestamp', initiator.finish(msg2)[1])

    def test_future_msg2(self):
        # A responder whose clock runs 31 s ahead (it has a larger skew
        # bound, so it took auth1) stamps and signs auth2 in the future.
        initiator = self.initiator()
        msg1 = initiator.start()
        ahead = authutil.ManualClock(self.clock.now + 31)
        msg2, _ = self.responder(
            clock=ahead, conf=authutil.make_conf(max_clock_skew=60)).respond(
                msg1, self.binding)
        self.assertRefused('future_timestamp', initiator.finish(msg2)[1],
                           signed_by_peer=True)

    def test_stale_msg3(self):
        initiator = self.initiator()
        msg1 = initiator.start()
        ahead = authutil.ManualClock(self.clock.now)
        responder = self.responder(clock=ahead)
        msg2, _ = responder.respond(msg1, self.binding)
        msg3, _ = initiator.finish(msg2)
        ahead.advance(31)
        self.assertRefused('stale_timestamp', responder.confirm(msg3))

    def test_msg3_after_handshake_timeout(self):
        initiator, responder, _, msg2 = self.run_to_msg2()
        msg3, _ = initiator.finish(msg2)
        self.clock.advance(self.conf.auth.handshake_timeout + 1)
        self.assertRefused('handshake_timeout', responder.confirm(msg3))

    def test_msg2_after_handshake_timeout(self):
        conf = authutil.make_conf(handshake_timeout=5)
        initiator = self.initiator(conf=conf)
        msg1 = initiator.start()
        self.clock.advance(6)
        msg2, _ = self.responder().respond(msg1, self.binding)
        self.assertRefused('handshake_timeout', initiator.finish(msg2)[1])


class TamperingTest(HandshakeTestBase):
    """Each field of each message changed on the way.

    Whatever the channel alters is ``bad_signature``, never a reason
    that describes the peer (its policy, its clock, the migration it
    means), and the refusal says the peer did not sign it.
    """

    def test_msg1_fields(self):
        spare = authutil.der_b64(self.world.spare['src'])
        cases = [
            ({'binding_migration_id': '43'}, 'bad_signature'),
            ({'binding_instance_uuid': authutil.UUID[:-1] + '0'},
             'bad_signature'),
            ({'binding_source_host': 'other'}, 'bad_signature'),
            ({'binding_dest_host': 'other'}, 'bad_signature'),
            ({'binding_policy_digest': authutil.OTHER_POLICY},
             'bad_signature'),
            ({'nonce': None}, 'bad_signature'),
            ({'ts': None}, 'bad_signature'),
            ({'cert': spare}, 'bad_signature'),
            ({'sig': None}, 'bad_signature'),
            ({'v': 1}, 'malformed_message'),
        ]
        for change, code in cases:
            with self.subTest(change=change):
                msg1 = self.initiator().start()
                change = self._fill(msg1, change)
                _, decision = self.responder().respond(
                    rewrite(msg1, **change), self.binding)
                self.assertRefused(code, decision, signed_by_peer=False,
                                   peer_host='src')

    def test_msg2_fields(self):
        cases = [
            ({'nonce': None}, 'bad_signature'),
            ({'ts': None}, 'bad_signature'),
            ({'ts': int((self.clock.now + 31) * 1000)}, 'bad_signature'),
            ({'policy_digest': authutil.OTHER_POLICY}, 'bad_signature'),
            ({'cert': authutil.der_b64(self.world.spare['dst'])},
             'bad_signature'),
            ({'sig': None}, 'bad_signature'),
            ({'type': 'auth3'}, 'malformed_message'),
        ]
        for change, code in cases:
            with self.subTest(change=change):
                initiator, _, _, msg2 = self.run_to_msg2()
                change = self._fill(msg2, change)
                msg3, decision = initiator.finish(rewrite(msg2, **change))
                self.assertIsNone(msg3)
                self.assertRefused(code, decision, signed_by_peer=False,
                                   peer_host='dst')
                self.assertEqual('failed', initiator.state)

    def test_msg3_fields(self):
        for change in ({'ts': None}, {'sig': None}):
            with self.subTest(change=change):
                responder, _, _, msg3 = self.run_to_msg3()
                change = self._fill(msg3, change)
                self.assertRefused('bad_signature', responder.confirm(
                    rewrite(msg3, **change)), signed_by_peer=False)

    @staticmethod
    def _fill(data, change):
        """Turn ``None`` values into a small change of the field."""
        filled = {}
        for name, value in change.items():
            if value is None:
                value = field(data, name)
                value = value - 1 if name == 'ts' else flip_b64(value)
            filled[name] = value
        return filled


class ImpostorTest(HandshakeTestBase):
    """Hosts with valid certificates that try to pass for another."""

    def test_signature_by_another_hosts_key(self):
        src, other = self.world.creds['src'], self.world.creds['other']
        impostor = credentials.HostCredentials('src', src.cert, other.key)
        msg1 = self.initiator(creds=impostor).start()
        self.assertRefused('bad_signature',
                           self.responder().respond(msg1, self.binding)[1])

    def test_msg2_signed_by_another_hosts_key(self):
        dst, other = self.world.creds['dst'], self.world.creds['other']
        impostor = credentials.HostCredentials('dst', dst.cert, other.key)
        initiator = self.initiator()
        msg2, _ = self.responder(creds=impostor).respond(
            initiator.start(), self.binding)
        self.assertRefused('bad_signature', initiator.finish(msg2)[1])

    def test_initiator_with_certificate_of_another_host(self):
        other = self.world.creds['other']
        impostor = credentials.HostCredentials('src', other.cert, other.key)
        msg1 = self.initiator(creds=impostor).start()
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('peer_certificate_invalid', decision,
                           pki_code='wrong_host')

    def test_responder_with_certificate_of_another_host(self):
        other = self.world.creds['other']
        impostor = credentials.HostCredentials('dst', other.cert, other.key)
        initiator = self.initiator()
        msg2, _ = self.responder(creds=impostor).respond(
            initiator.start(), self.binding)
        self.assertRefused('peer_certificate_invalid',
                           initiator.finish(msg2)[1], pki_code='wrong_host')

    def test_revoked_certificate(self):
        world = self.world
        identity = world.pki.enroll('gone')
        gone = credentials.load(identity.cert_dir, 'gone')
        world.pki.revoke('gone')
        binding = authutil.make_binding(source_host='gone')
        msg1 = self.initiator(creds=gone, binding=binding).start()
        _, decision = self.responder(trust=world.pki.trust()).respond(
            msg1, binding)
        self.assertRefused('peer_certificate_invalid', decision,
                           pki_code='revoked')

    def test_certificate_of_unknown_ca(self):
        with tempfile.TemporaryDirectory() as base:
            foreign = pkiutil.TestPKI(base, ca_name='secmig test CA')
            identity = foreign.enroll('src')
            creds = credentials.load(identity.cert_dir, 'src')
            msg1 = self.initiator(creds=creds).start()
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('peer_certificate_invalid', decision,
                           pki_code='forged_ca')

    def test_certificate_of_differently_named_ca(self):
        with tempfile.TemporaryDirectory() as base:
            foreign = pkiutil.TestPKI(base, ca_name='another CA')
            identity = foreign.enroll('src')
            creds = credentials.load(identity.cert_dir, 'src')
            msg1 = self.initiator(creds=creds).start()
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('peer_certificate_invalid', decision,
                           pki_code='foreign_ca')

    def test_ed25519_hosts(self):
        world = authutil.World(key_types={'src': 'ed25519',
                                          'dst': 'ed25519'})
        self.addCleanup(world.cleanup)
        initiator = world.initiator(clock=self.clock, conf=self.conf,
                                    binding=self.binding)
        responder = world.responder(clock=self.clock, conf=self.conf,
                                    cache=self.cache)
        msg2, _ = responder.respond(initiator.start(), self.binding)
        msg3, mine = initiator.finish(msg2)
        self.assertEqual('authenticated', mine.code, mine)
        self.assertEqual('authenticated', responder.confirm(msg3).code)


class PolicyTest(HandshakeTestBase):
    """``policy_mismatch`` is said only of a digest the peer signed."""

    def test_hosts_with_different_policies(self):
        msg1 = self.initiator().start()
        theirs = authutil.make_binding(policy_digest=authutil.OTHER_POLICY)
        _, decision = self.responder().respond(msg1, theirs)
        self.assertRefused('policy_mismatch', decision, signed_by_peer=True,
                           peer_policy_digest=authutil.POLICY)

    def test_responder_signing_another_policy(self):
        # A responder that answers although it enforces another policy:
        # the digest in auth2 is its own, signed with its key.
        initiator, _, msg1, msg2 = self.run_to_msg2()
        signed = authutil.resign(msg2, self.world.creds['dst'], [msg1],
                                 policy_digest=authutil.OTHER_POLICY)
        _, decision = initiator.finish(signed)
        self.assertRefused('policy_mismatch', decision, signed_by_peer=True,
                           peer_policy_digest=authutil.OTHER_POLICY)

    def test_digest_altered_in_auth1_is_not_a_policy_mismatch(self):
        msg1 = self.initiator().start()
        altered = rewrite(msg1, binding_policy_digest=authutil.OTHER_POLICY)
        _, decision = self.responder().respond(
            altered, authutil.make_binding(
                policy_digest=authutil.OTHER_POLICY))
        self.assertRefused('bad_signature', decision, signed_by_peer=False)
        self.assertNotIn('peer_policy_digest', decision.details)

    def test_digest_altered_in_auth2_is_not_a_policy_mismatch(self):
        initiator, _, _, msg2 = self.run_to_msg2()
        altered = rewrite(msg2, policy_digest=authutil.OTHER_POLICY)
        _, decision = initiator.finish(altered)
        self.assertRefused('bad_signature', decision, signed_by_peer=False)
        self.assertNotIn('peer_policy_digest', decision.details)

    def test_refused_msg1_leaves_no_replay_entry(self):
        msg1 = self.initiator().start()
        theirs = authutil.make_binding(policy_digest=authutil.OTHER_POLICY)
        self.responder().respond(msg1, theirs)
        self.assertEqual(0, len(self.cache))


class SignedClaimsTest(HandshakeTestBase):
    """Refusals that describe the peer are made on what it signed."""

    def test_initiator_meaning_another_migration(self):
        msg1 = self.initiator(binding=authutil.make_binding(
            migration_id='43')).start()
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('binding_mismatch', decision, signed_by_peer=True,
                           fields=['migration_id'])

    def test_signed_stale_msg1(self):
        msg1 = self.initiator().start()
        self.clock.advance(self.conf.auth.max_clock_skew + 1)
        _, decision = self.responder().respond(msg1, self.binding)
        self.assertRefused('stale_timestamp', decision, signed_by_peer=True)

    def test_certificate_swapped_for_another_of_the_same_host(self):
        # The spare certificate is valid for src, but src's key did not
        # sign with it: the channel swapped it, src is not to blame.
        msg1 = self.initiator().start()
        swapped = rewrite(msg1, cert=authutil.der_b64(
            self.world.spare['src']))
        _, decision = self.responder().respond(swapped, self.binding)
        self.assertRefused('bad_signature', decision, signed_by_peer=False)


class MalleabilityTest(HandshakeTestBase):
    """ECDSA signatures (r, s) sent as (r, n - s) by the channel.

    The altered signature verifies, so the handshake completes; both
    hosts must still hold the same transcript hash, because no hash
    covers signature bytes.
    """

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World(key_types={'src': 'ec-p256',
                                              'dst': 'ec-p384'})

    def flip(self, data, host):
        flipped = authutil.flip_s(data, self.world.creds[host].cert
                                  .public_key())
        self.assertNotEqual(field(data, 'sig'), field(flipped, 'sig'))
        return flipped

    def test_every_signature_flipped(self):
        for flipped in ('auth1', 'auth2', 'auth3'):
            with self.subTest(flipped=flipped):
                self.clock.advance(1)
                initiator, responder = self.initiator(), self.responder()
                msg1 = initiator.start()
                if flipped == 'auth1':
                    msg1 = self.flip(msg1, 'src')
                msg2, _ = responder.respond(msg1, self.binding)
                if flipped == 'auth2':
                    msg2 = self.flip(msg2, 'dst')
                msg3, mine = initiator.finish(msg2)
                if flipped == 'auth3':
                    msg3 = self.flip(msg3, 'src')
                theirs = responder.confirm(msg3)
                self.assertEqual('authenticated', mine.code, mine)
                self.assertEqual('authenticated', theirs.code, theirs)
                self.assertEqual(mine.details['transcript_hash'],
                                 theirs.details['transcript_hash'])

    def test_flipped_msg1_is_still_a_replay(self):
        # Replays are recognised by the nonce, not the signature bytes.
        _, _, msg1, _ = self.run_to_msg2()
        _, decision = self.responder().respond(self.flip(msg1, 'src'),
                                               self.binding)
        self.assertRefused('replayed', decision)


class OrderTest(HandshakeTestBase):

    def test_msg3_sent_as_msg1(self):
        _, _, _, msg3 = self.run_to_msg3()
        self.assertRefused('unexpected_message',
                           self.responder().respond(msg3, self.binding)[1])

    def test_msg1_of_another_initiator_sent_as_msg2(self):
        initiator = self.initiator()
        initiator.start()
        other = self.initiator(host='dst').start()
        self.assertRefused('unexpected_message', initiator.finish(other)[1])

    def test_confirm_before_respond(self):
        msg3 = self.run_to_msg3()[3]
        self.assertRefused('unexpected_message',
                           self.responder().confirm(msg3))

    def test_finish_before_start(self):
        _, _, _, msg2 = self.run_to_msg2()
        self.assertRefused('unexpected_message',
                           self.initiator().finish(msg2)[1])

    def test_finish_twice(self):
        initiator, _, _, msg2 = self.run_to_msg2()
        again = copy.copy(msg2)
        self.assertTrue(initiator.finish(msg2)[1])
        self.assertRefused('unexpected_message', initiator.finish(again)[1])

    def test_refused_handshake_cannot_be_resumed(self):
        initiator, responder, _, msg2 = self.run_to_msg2()
        self.assertRefused('malformed_message', responder.confirm(b'junk'))
        msg3, _ = initiator.finish(msg2)
        self.assertRefused('unexpected_message', responder.confirm(msg3))


class MalformedTest(HandshakeTestBase):

    def test_garbage_and_oversize(self):
        limit = self.conf.auth.max_message_bytes
        for data in (b'', b'junk', b'{}', b'[]', 'text',
                     b' ' * (limit + 1), None):
            with self.subTest(data=data if data is None else data[:8]):
                _, decision = self.responder().respond(data, self.binding)
                self.assertRefused('malformed_message', decision)

    def test_message_over_the_size_limit_is_not_parsed(self):
        conf = authutil.make_conf(max_message_bytes=4096)
        msg1 = self.initiator().start()
        padded = msg1[:-1] + b' ' * (4096 - len(msg1)) + b'}'
        self.assertEqual(4096, len(padded))
        _, decision = self.responder(conf=conf).respond(padded + b' ',
                                                        self.binding)
        self.assertRefused('malformed_message', decision)
        self.assertIn('exceeds the limit', decision.reason)


class KeyTypesTest(HandshakeTestBase):
    """RSA-3072 and ECDSA P-384 host keys, mixed with P-256."""

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World(key_types={'src': 'rsa-3072',
                                              'dst': 'ec-p384'})

    def test_rsa_and_p384_hosts(self):
        responder, _, _, msg3 = self.run_to_msg3()
        self.assertEqual('authenticated', responder.confirm(msg3).code)

    def test_rsa_signature_tampered(self):
        msg1 = self.initiator().start()
        forged = rewrite(msg1, sig=flip_b64(field(msg1, 'sig'), 100))
        self.assertRefused('bad_signature',
                           self.responder().respond(forged, self.binding)[1])


class BindingTest(unittest.TestCase):

    def test_invalid_values_are_local_errors(self):
        good = authutil.make_binding().as_dict()
        for name, value in (('migration_id', ''), ('migration_id', 'a b'),
                            ('instance_uuid', authutil.UUID.upper()),
                            ('source_host', 'dst'), ('dest_host', 'x\n'),
                            ('policy_digest', 'ab' * 16)):
            with self.subTest(name=name, value=value):
                with self.assertRaises(exception.SecmigError) as ctx:
                    binding_mod.Binding(**dict(good, **{name: value}))
                self.assertEqual('bad_binding', ctx.exception.code)

    def test_peer_of(self):
        binding = authutil.make_binding()
        self.assertEqual('dst', binding.peer_of('src'))
        self.assertEqual('src', binding.peer_of('dst'))
        self.assertIsNone(binding.peer_of('other'))


if __name__ == '__main__':
    unittest.main()
