"""Hosts, clocks and message surgery for the handshake tests.

The hosts are real: certificates from secmig's own CA, keys on disk,
loaded through :mod:`secmig.auth.credentials`. The clock is an input the
test sets, not a patch of the system clock.
"""

import base64
import dataclasses
import json
import os
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric import utils as asym_utils

from secmig.auth import binding as binding_mod
from secmig.auth import credentials
from secmig.auth import handshake
from secmig.auth import messages
from secmig.auth import replay
from secmig.auth import signing
from secmig.auth import transcript
from secmig import conf as secmig_conf
from secmig.pki import keys
from tests import pkiutil

UUID = '8d0b8f0e-6f3c-4c59-9a7e-1f0e2b6a7c11'
POLICY = 'sha256:' + 'ab' * 32
OTHER_POLICY = 'sha256:' + 'cd' * 32

#: Every code a handshake step may return.
CODES = {'malformed_message', 'unexpected_message', 'reflected',
         'stale_timestamp', 'future_timestamp', 'handshake_timeout',
         'replayed', 'binding_mismatch', 'policy_mismatch',
         'peer_certificate_invalid', 'bad_signature'}

#: The order n of each curve's group: (r, s) and (r, n - s) both verify.
CURVE_ORDERS = {
    'secp256r1': int('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9'
                     'cac2fc632551', 16),
    'secp384r1': int('ffffffffffffffffffffffffffffffffffffffffffffffffc7634d'
                     '81f4372ddf581a0db248b0a77aecec196accc52973', 16),
}


class ManualClock:
    """A clock that moves only when the test says so (seconds)."""

    def __init__(self, now=None):
        self.now = time.time() if now is None else now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def make_binding(**changes):
    values = dict(migration_id='42', instance_uuid=UUID, source_host='src',
                  dest_host='dst', policy_digest=POLICY)
    values.update(changes)
    return binding_mod.Binding(**values)


def make_conf(**auth):
    conf = secmig_conf.new_conf()
    for name, value in auth.items():
        conf.set_override(name, value, group='auth')
    return conf


def rewrite(data, **changes):
    """Change fields of ``data`` and re-encode it canonically.

    This is what an attacker on the channel can do. ``binding_<name>``
    changes a field of the binding.
    """
    obj = json.loads(data)
    for name, value in changes.items():
        if name.startswith('binding_'):
            obj['binding'][name[len('binding_'):]] = value
        else:
            obj[name] = value
    return json.dumps(obj, sort_keys=True, separators=(',', ':')).encode()


def field(data, name):
    return json.loads(data)[name]


def flip_b64(value, index=8):
    raw = bytearray(base64.b64decode(value))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def flip_s(data, public_key):
    """``data`` with its ECDSA signature (r, s) sent as (r, n - s).

    Anyone on the channel can do this without the key: the result is a
    different byte string that verifies just as well.
    """
    obj = json.loads(data)
    r, s = asym_utils.decode_dss_signature(base64.b64decode(obj['sig']))
    order = CURVE_ORDERS[public_key.curve.name]
    obj['sig'] = base64.b64encode(
        asym_utils.encode_dss_signature(r, order - s)).decode()
    return json.dumps(obj, sort_keys=True, separators=(',', ':')).encode()


def chain(*earlier):
    """The transcript's chaining value after the messages ``earlier``."""
    h = transcript.initial()
    for data in earlier:
        h = transcript.absorb(h, messages.encode_body(
            messages.decode(data, 1 << 20)))
    return h


def resign(data, creds, earlier=(), **changes):
    """``data`` changed as :func:`rewrite` does, then signed with ``creds``.

    This is what the holder of that key can send: content it signed.
    ``earlier`` are the messages before ``data`` in its handshake.
    """
    msg = messages.decode(rewrite(data, **changes), 1 << 20)
    chained = transcript.absorb(chain(*earlier), messages.encode_body(msg))
    return messages.encode(dataclasses.replace(msg, sig=signing.sign(
        creds.key, transcript.to_be_signed(msg.type, chained))))


def der_b64(cert):
    return base64.b64encode(
        cert.public_bytes(keys.serialization.Encoding.DER)).decode()


class World:
    """A CA and hosts ``src``, ``dst`` and ``other`` enrolled with it.

    ``spare`` holds a second valid certificate of ``src`` and ``dst``
    with a different key (a legitimate re-enrollment).
    """

    def __init__(self, key_types=None, clearances=None):
        key_types = key_types or {}
        clearances = clearances or {}
        self._tmp = tempfile.TemporaryDirectory()
        self.base = self._tmp.name
        self.pki = pkiutil.TestPKI(self.base)
        self.creds = {}
        for host in ('src', 'dst', 'other'):
            identity = self.pki.enroll(
                host, clearance=clearances.get(host, 0),
                key_type=key_types.get(host, keys.DEFAULT_KEY_TYPE))
            self.creds[host] = credentials.load(identity.cert_dir, host)
        self.spare = {host: self.pki.enroll(host).cert
                      for host in ('src', 'dst')}
        self.trust = credentials.load_trust(
            os.path.join(self.base, 'src'))

    def cleanup(self):
        self._tmp.cleanup()

    def initiator(self, host='src', binding=None, conf=None, clock=None,
                  creds=None, trust=None):
        return handshake.Initiator(
            creds or self.creds[host], trust or self.trust,
            binding or make_binding(), conf or make_conf(),
            clock or ManualClock())

    def responder(self, host='dst', conf=None, cache=None, clock=None,
                  creds=None, trust=None):
        conf = conf or make_conf()
        return handshake.Responder(
            creds or self.creds[host], trust or self.trust, conf,
            cache if cache is not None else replay.ReplayCache.from_conf(
                conf), clock or ManualClock())
