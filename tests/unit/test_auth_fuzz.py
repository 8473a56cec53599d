"""Property-based tests of every decoder of untrusted bytes.

Whatever bytes arrive, the codec raises only ``MalformedMessage`` and
each handshake step returns only a refusal with a known code: no
exception escapes, and no malformed or altered message is accepted.
Runs are bounded and derandomised so that the suite is repeatable.
"""

import base64
import copy
import json
import unittest

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from secmig.auth import messages
from tests.unit import authutil

LIMIT = 16384
BOUNDED = settings(max_examples=300, deadline=None, database=None,
                   derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])

_json_leaf = (st.none() | st.booleans() | st.integers()
              | st.floats(allow_nan=False) | st.text(max_size=40))
json_values = st.recursive(
    _json_leaf, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':')).encode()


@st.composite
def mutations(draw, data):
    """``data`` with one byte replaced, inserted or deleted, or cut."""
    kind = draw(st.sampled_from(('replace', 'insert', 'delete', 'cut')))
    i = draw(st.integers(0, len(data) - 1))
    if kind == 'replace':
        byte = draw(st.integers(0, 255).filter(lambda b: b != data[i]))
        return data[:i] + bytes([byte]) + data[i + 1:]
    if kind == 'insert':
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]
    if kind == 'delete':
        return data[:i] + data[i + 1:]
    return data[:i]


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
        obj['binding']['migration_id'] = draw(st.from_regex(
            r'[A-Za-z0-9]{1,20}', fullmatch=True))
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

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def assertRefusedSafely(self, decision):
        self.assertFalse(decision.allowed, decision)
        self.assertIn(decision.code, authutil.CODES, decision)

    def respond(self, data):
        responder = self.world.responder(clock=self.clock, conf=self.conf)
        msg2, decision = responder.respond(data, self.binding)
        self.assertIsNone(msg2)
        self.assertRefusedSafely(decision)

    def finish(self, data):
        msg3, decision = copy.copy(self.waiting_initiator).finish(data)
        self.assertIsNone(msg3)
        self.assertRefusedSafely(decision)

    def confirm(self, data):
        self.assertRefusedSafely(
            copy.copy(self.waiting_responder).confirm(data))

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

    @BOUNDED
    @given(st.data())
    def test_wellformed_changes_are_refused(self, data):
        for original, step in ((self.msg1, self.respond),
                               (self.msg2, self.finish),
                               (self.msg3, self.confirm)):
            changed = data.draw(wellformed_changes(original))
            if changed == original:
                continue
            messages.decode(changed, LIMIT)  # passes the codec
            step(changed)


if __name__ == '__main__':
    unittest.main()
