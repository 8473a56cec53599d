"""Property-based tests of every decoder of untrusted bytes.

Whatever bytes arrive, the codec raises only ``MalformedMessage``, the
binding check and signature verification never raise, and each
handshake step (``Responder.respond``, ``Initiator.finish``,
``Responder.confirm`` and ``confirms``, ``AnsweringHost.hello`` and
``confirm``) returns only a decision with a known code: no exception
escapes, and no malformed or altered message is accepted. What the
channel alters keeping the form is ``bad_signature``; what the holder
of the sender's key signs is never called tampered. Runs are bounded
and derandomised so that the suite is repeatable.
"""

import base64
import copy
import json
import unittest

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa

from secmig.auth import answering
from secmig.auth import binding as binding_mod
from secmig.auth import messages
from secmig.auth import signing
from secmig import exception
from tests import fuzzutil
from tests.unit import authutil

LIMIT = 16384
BOUNDED = fuzzutil.bounded(300)
#: For properties whose every example runs three signed steps.
BOUNDED_STEPS = settings(BOUNDED, max_examples=120)

json_values = fuzzutil.json_values()
mutations = fuzzutil.mutations


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':')).encode()


@st.composite
def field_changes(draw, data):
    """``data`` (canonical JSON) with one field set to any JSON value."""
    obj = json.loads(data)
    target = obj
    if 'binding' in obj and draw(st.booleans()):
        target = obj['binding']
    name = draw(st.sampled_from(sorted(target)))
    value = draw(json_values.filter(lambda v: v != target[name]))
    target[name] = value
    return canonical(obj)


def _b64(raw):
    return base64.b64encode(raw).decode()


def _binding_value(name):
    """Valid values of one binding field."""
    if name == 'instance_uuid':
        return st.uuids().map(str)
    return st.from_regex(binding_mod.FIELDS[name], fullmatch=True)


#: Codes that describe the peer: only ever said of content it signed.
CLAIMS = {'stale_timestamp', 'future_timestamp', 'policy_mismatch',
          'binding_mismatch'}


@st.composite
def wellformed_changes(draw, data):
    """``data`` with fields changed to other values of the right form.

    These pass the codec, so they exercise the checks behind it.
    """
    obj = json.loads(data)
    candidates = {
        'nonce': st.binary(min_size=32, max_size=32).map(_b64),
        'ts': st.integers(obj['ts'] - 20000, obj['ts'] + 20000),
        'sig': st.binary(min_size=1, max_size=600).map(_b64),
        'policy_digest': st.just(authutil.OTHER_POLICY),
    }
    names = sorted(set(candidates) & set(obj))
    for name in draw(st.lists(st.sampled_from(names), min_size=1,
                              unique=True)):
        obj[name] = draw(candidates[name].filter(
            lambda v, n=name: v != obj[n]))
    if 'binding' in obj and draw(st.booleans()):
        binding = obj['binding']
        name = draw(st.sampled_from(sorted(binding_mod.FIELDS)))
        ends = {binding['source_host'], binding['dest_host']}
        binding[name] = draw(_binding_value(name).filter(
            lambda v: v not in ends and v != binding[name]))
    return canonical(obj)


class FuzzTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World()
        cls.binding = authutil.make_binding()
        cls.clock = authutil.ManualClock()
        cls.conf = authutil.make_conf()
        initiator = cls.world.initiator(clock=cls.clock, conf=cls.conf)
        responder = cls.world.responder(clock=cls.clock, conf=cls.conf)
        cls.msg1 = initiator.start()
        cls.waiting_initiator = copy.copy(initiator)
        cls.msg2, _ = responder.respond(cls.msg1, cls.binding)
        cls.waiting_responder = copy.copy(responder)
        cls.msg3, _ = initiator.finish(cls.msg2)
        cls.public_keys = [
            ec.generate_private_key(curve()).public_key()
            for curve in (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1,
                          ec.SECP256K1)] + [
            ed25519.Ed25519PrivateKey.generate().public_key(),
            rsa.generate_private_key(65537, 2048).public_key()]

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def assertRefusedSafely(self, decision):
        self.assertFalse(decision.allowed, decision)
        self.assertIn(decision.code, authutil.CODES, decision)
        self.assertIn('signed_by_peer', decision.details, decision)

    def decide(self, step, data):
        """The decision of the step that receives ``data`` as ``step``."""
        if step == 'auth1':
            responder = self.world.responder(clock=self.clock,
                                             conf=self.conf)
            reply, decision = responder.respond(data, self.binding)
        elif step == 'auth2':
            reply, decision = copy.copy(self.waiting_initiator).finish(data)
        else:
            reply, decision = None, copy.copy(
                self.waiting_responder).confirm(data)
        if not decision:
            self.assertIsNone(reply)
            self.assertRefusedSafely(decision)
        return decision

    def respond(self, data):
        self.assertRefusedSafely(self.decide('auth1', data))

    def finish(self, data):
        self.assertRefusedSafely(self.decide('auth2', data))

    def confirm(self, data):
        self.assertFalse(self.waiting_responder.confirms(data))
        self.assertRefusedSafely(self.decide('auth3', data))

    def decode(self, data):
        try:
            msg = messages.decode(data, LIMIT)
        except messages.MalformedMessage:
            return
        # Whatever decodes is canonical: it has one encoding.
        self.assertEqual(data, messages.encode(msg))

    def test_originals_are_accepted(self):
        # The properties below mean something only if these pass.
        responder = self.world.responder(clock=self.clock, conf=self.conf)
        self.assertTrue(responder.respond(self.msg1, self.binding)[1])
        self.assertTrue(copy.copy(self.waiting_initiator).finish(
            self.msg2)[1])
        self.assertTrue(copy.copy(self.waiting_responder).confirm(
            self.msg3))

    @BOUNDED
    @given(st.binary(max_size=2048))
    def test_arbitrary_bytes(self, data):
        self.decode(data)
        self.respond(data)
        self.finish(data)
        self.confirm(data)

    @BOUNDED
    @given(json_values)
    def test_arbitrary_json(self, value):
        data = canonical(value)
        self.decode(data)
        self.respond(data)
        self.finish(data)
        self.confirm(data)

    @BOUNDED
    @given(st.data())
    def test_mutated_msg1(self, data):
        mutated = data.draw(mutations(self.msg1) | field_changes(self.msg1))
        self.decode(mutated)
        self.respond(mutated)

    @BOUNDED
    @given(st.data())
    def test_mutated_msg2(self, data):
        mutated = data.draw(mutations(self.msg2) | field_changes(self.msg2))
        self.decode(mutated)
        self.finish(mutated)

    @BOUNDED
    @given(st.data())
    def test_mutated_msg3(self, data):
        mutated = data.draw(mutations(self.msg3) | field_changes(self.msg3))
        self.decode(mutated)
        self.confirm(mutated)

    def steps(self):
        """(message, the messages before it, its sender, its step)."""
        creds = self.world.creds
        return ((self.msg1, (), creds['src'], 'auth1'),
                (self.msg2, (self.msg1,), creds['dst'], 'auth2'),
                (self.msg3, (self.msg1, self.msg2), creds['src'], 'auth3'))

    @BOUNDED_STEPS
    @given(st.data())
    def test_wellformed_changes_are_bad_signatures(self, data):
        # What the channel alters is tampering, whatever field it is.
        for original, _, _, step in self.steps():
            changed = data.draw(wellformed_changes(original))
            messages.decode(changed, LIMIT)  # passes the codec
            decision = self.decide(step, changed)
            self.assertEqual('bad_signature', decision.code, decision)
            self.assertFalse(decision.details['signed_by_peer'])

    @BOUNDED_STEPS
    @given(st.data())
    def test_signed_changes_are_never_called_tampering(self, data):
        # The holder of the sender's key signs changed content: accepted,
        # or refused for what it says, never as altered on the way.
        for original, earlier, creds, step in self.steps():
            changed = authutil.resign(
                data.draw(wellformed_changes(original)), creds, earlier)
            decision = self.decide(step, changed)
            self.assertNotEqual('bad_signature', decision.code, decision)
            if decision.code in CLAIMS:
                self.assertTrue(decision.details['signed_by_peer'])

    @BOUNDED
    @given(json_values | st.fixed_dictionaries(
        {name: json_values | _binding_value(name)
         for name in binding_mod.FIELDS}))
    def test_binding_check(self, values):
        problem = binding_mod.check_fields(values)
        if not isinstance(values, dict) or set(values) != set(
                binding_mod.FIELDS):
            self.assertIsInstance(problem, str)
        elif problem is None:
            self.assertEqual(values, binding_mod.Binding(**values).as_dict())
        else:
            with self.assertRaises(exception.SecmigError) as ctx:
                binding_mod.Binding(**values)
            self.assertEqual('bad_binding', ctx.exception.code)

    @BOUNDED
    @given(st.binary(max_size=600), st.binary(max_size=64))
    def test_signature_verification(self, sig, data):
        for key in self.public_keys:
            self.assertIs(False, signing.verify(key, sig, data))


class AnsweringFuzzTest(unittest.TestCase):
    """A source with a destination's handshake waiting, under fire.

    No auth1 or auth3 of any shape raises, is accepted or touches the
    waiting handshake: its own auth3 still completes it.
    """

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World()
        cls.clock = authutil.ManualClock()
        cls.conf = authutil.make_conf()
        cls.source = answering.AnsweringHost('src', cls.conf, cls.clock)
        initiator = cls.world.initiator('dst', clock=cls.clock,
                                        conf=cls.conf)
        cls.msg1 = initiator.start()
        cls.msg2, _ = cls.hello(cls.msg1)
        cls.msg3, _ = initiator.finish(cls.msg2)
        cls.waiting = cls.source._waiting_for(authutil.UUID)[0][1]

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    @classmethod
    def hello(cls, data):
        return cls.source.hello(cls.world.creds['src'], cls.world.trust,
                                '42', authutil.UUID, authutil.POLICY, data)

    def assertUntouched(self):
        self.assertEqual(1, len(self.source))
        self.assertTrue(self.waiting.confirms(self.msg3))

    def assertRefusedSafely(self, decision):
        self.assertFalse(decision.allowed, decision)
        self.assertIn(decision.code, authutil.CODES | set(answering.CODES),
                      decision)
        self.assertIn('signed_by_peer', decision.details, decision)
        self.assertIn('peer_host', decision.details, decision)

    @BOUNDED
    @given(st.data())
    def test_hello(self, data):
        auth1 = data.draw(st.binary(max_size=2048)
                          | st.builds(canonical, json_values)
                          | mutations(self.msg1) | field_changes(self.msg1)
                          | wellformed_changes(self.msg1))
        auth2, decision = self.hello(auth1)
        self.assertIsNone(auth2)
        self.assertRefusedSafely(decision)
        self.assertUntouched()

    @BOUNDED
    @given(st.data())
    def test_confirm(self, data):
        auth3 = data.draw(st.binary(max_size=2048)
                          | st.builds(canonical, json_values)
                          | mutations(self.msg3) | field_changes(self.msg3)
                          | wellformed_changes(self.msg3)
                          | st.sampled_from((self.msg1, self.msg2)))
        self.assertRefusedSafely(self.source.confirm(authutil.UUID, auth3))
        self.assertUntouched()


if __name__ == '__main__':
    unittest.main()
