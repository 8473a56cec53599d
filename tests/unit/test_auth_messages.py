"""The wire codec: one canonical encoding, everything else refused."""

import base64
import json
import unittest

from secmig.auth import messages
from tests.unit import authutil
from tests.unit.authutil import field
from tests.unit.authutil import rewrite

LIMIT = 16384


class CodecTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = authutil.World()
        initiator = cls.world.initiator()
        responder = cls.world.responder()
        cls.msg1 = initiator.start()
        cls.msg2, _ = responder.respond(cls.msg1, authutil.make_binding())
        cls.msg3, _ = initiator.finish(cls.msg2)

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def assertMalformed(self, data, why=None):
        with self.assertRaises(messages.MalformedMessage) as ctx:
            messages.decode(data, LIMIT)
        if why:
            self.assertIn(why, str(ctx.exception))

    def test_round_trip_is_exact(self):
        for data, cls in ((self.msg1, messages.Hello),
                          (self.msg2, messages.Reply),
                          (self.msg3, messages.Confirm)):
            msg = messages.decode(data, LIMIT)
            self.assertIsInstance(msg, cls)
            self.assertEqual(data, messages.encode(msg))

    def test_decoded_fields(self):
        hello = messages.decode(self.msg1, LIMIT)
        self.assertEqual(authutil.make_binding(), hello.binding)
        self.assertEqual(32, len(hello.nonce))
        self.assertEqual(self.world.creds['src'].cert, hello.cert)

    def test_non_canonical_forms(self):
        obj = json.loads(self.msg3)
        for data, why in (
                (json.dumps(obj, sort_keys=True).encode(), 'canonical'),
                (json.dumps(dict(reversed(sorted(obj.items()))),
                            separators=(',', ':')).encode(), 'canonical'),
                (self.msg3 + b'\n', 'canonical'),
                (b' ' + self.msg3, 'canonical'),
                (self.msg3.replace(b'"ts"', b'"\\u0074s"'), 'canonical')):
            with self.subTest(data=data):
                self.assertMalformed(data, why)

    def test_json_shapes_refused(self):
        ts = field(self.msg3, 'ts')
        for data, why in (
                (b'{"sig":"AA==","sig":"AA==","ts":1,"type":"auth3","v":2}',
                 'duplicate'),
                (rewrite(self.msg3, ts=float(ts)), 'floating'),
                (self.msg3.replace(str(ts).encode(), b'NaN'), 'NaN'),
                (self.msg3.replace(str(ts).encode(), b'Infinity'),
                 'Infinity'),
                (rewrite(self.msg3, ts=True), 'positive integer'),
                (rewrite(self.msg3, ts=0), 'positive integer'),
                (rewrite(self.msg3, ts=2 ** 53), 'positive integer'),
                (rewrite(self.msg3, ts=str(ts)), 'positive integer'),
                (b'[' * 5000 + b']' * 5000, 'not JSON'),
                (b'"auth3"', 'JSON object'),
                ('{}', 'bytes'),
                (bytes(self.msg3).replace(b'auth3', b'auth\xe9'), 'ASCII'),
                (b'{"x":' + b'1' * 5000 + b'}', 'not JSON')):
            with self.subTest(data=data[:60]):
                self.assertMalformed(data, why)

    def test_size_limit(self):
        self.assertMalformed(self.msg1 + b' ' * LIMIT, 'exceeds the limit')
        with self.assertRaises(messages.MalformedMessage):
            messages.decode(self.msg1, len(self.msg1) - 1)
        self.assertIsNotNone(messages.decode(self.msg1, len(self.msg1)))

    def test_envelope(self):
        for change, why in (({'v': 1}, 'version'), ({'v': 3}, 'version'),
                            ({'v': '2'}, 'version'),
                            ({'v': True}, 'version'),
                            ({'type': 'auth4'}, 'unknown message type'),
                            ({'type': ['auth1']}, 'unknown message type'),
                            ({'extra': 1}, 'expected exactly'),
                            ({'binding': None}, 'binding')):
            with self.subTest(change=change):
                self.assertMalformed(rewrite(self.msg1, **change), why)
        obj = json.loads(self.msg1)
        del obj['nonce']
        self.assertMalformed(json.dumps(obj, sort_keys=True, separators=(
            ',', ':')).encode(), 'expected exactly')

    def test_byte_fields(self):
        nonce = field(self.msg1, 'nonce')
        sig = field(self.msg1, 'sig')
        for change, why in (
                ({'nonce': nonce[:-4]}, 'must be 32 to 32 bytes'),
                ({'nonce': base64.b64encode(b'n' * 33).decode()},
                 'must be 32 to 32 bytes'),
                ({'nonce': nonce.rstrip('=')}, 'base64'),
                ({'nonce': nonce[:-2] + 'B='}, 'canonical base64'),
                ({'nonce': nonce.replace('=', '-')}, 'base64'),
                ({'sig': ''}, 'must be 1 to 1024'),
                ({'sig': 'A' * 4000}, 'base64'),
                ({'sig': sig.replace(sig[0], '\u00e9', 1)}, 'ASCII'),
                ({'cert': 'AAAA'}, 'not a DER certificate'),
                ({'cert': 12}, 'base64')):
            with self.subTest(change=change):
                data = json.dumps(dict(json.loads(self.msg1), **change),
                                  sort_keys=True,
                                  separators=(',', ':')).encode()
                if why == 'ASCII':
                    data = data.decode('unicode_escape').encode('utf-8')
                self.assertMalformed(data, why)

    def test_binding_fields(self):
        for name, value in (('migration_id', ''), ('migration_id', 7),
                            ('instance_uuid', authutil.UUID.upper()),
                            ('source_host', 'dst'),
                            ('dest_host', 'a/b'),
                            ('policy_digest', 'SHA256:' + 'ab' * 32)):
            with self.subTest(name=name, value=value):
                self.assertMalformed(
                    rewrite(self.msg1, **{'binding_' + name: value}),
                    'binding')

    def test_policy_digest_of_reply(self):
        self.assertMalformed(rewrite(self.msg2, policy_digest='x'),
                             'policy_digest')


if __name__ == '__main__':
    unittest.main()
