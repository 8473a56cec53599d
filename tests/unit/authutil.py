"""Hosts, clocks and message surgery for the handshake tests.

The hosts are real: certificates from secmig's own CA, keys on disk,
loaded through :mod:`secmig.auth.credentials`. The clock is an input the
test sets, not a patch of the system clock.
"""

import base64
import json
import os
import tempfile
import time


from secmig.auth import binding as binding_mod
from secmig.auth import credentials
from secmig.auth import handshake
from secmig.auth import replay
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
