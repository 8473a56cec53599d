"""The wire format of the handshake: a strict, canonical JSON codec.

Every message is one JSON object in canonical form: keys sorted, no
whitespace, ASCII only, no duplicate keys, integers only (no floats,
``NaN`` or ``Infinity``), byte strings in padded standard base64 with
zero padding bits. :func:`decode` accepts a byte string only if
re-encoding the decoded message gives back exactly the same bytes, so
one message has one encoding and the transcript hash is well defined.

Messages (``v`` is the protocol version, always 2; the transcript of
version 1 hashed signatures, see :mod:`secmig.auth.transcript`)::

    auth1  initiator -> responder  {binding, cert, nonce, sig, ts, type, v}
    auth2  responder -> initiator  {cert, nonce, policy_digest, sig, ts,
                                    type, v}
    auth3  initiator -> responder  {sig, ts, type, v}

``ts`` is the sender's clock in integer milliseconds since the epoch,
``nonce`` 32 random bytes, ``cert`` the sender's DER certificate and
``sig`` the sender's signature (see :mod:`secmig.auth.transcript`).
Every field but ``sig`` has exactly one encoding; a signature may have
several valid ones, which is why no decision and no hash depends on its
bytes beyond its verification.

:func:`decode` raises :class:`MalformedMessage` and nothing else, for any
input whatsoever.
"""

import base64
import binascii
import dataclasses
import json
import re

from cryptography.hazmat.primitives import serialization
from cryptography import x509

from secmig.auth import binding as binding_mod

VERSION = 2
NONCE_BYTES = 32
MAX_CERT_BYTES = 4096
MAX_SIGNATURE_BYTES = 1024
#: Timestamps are positive and below 2**53 ms (year 287396).
MAX_TIMESTAMP = 2 ** 53

_DER = serialization.Encoding.DER
_BASE64 = re.compile(r'(?:[A-Za-z0-9+/]{4})*'
                     r'(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?', re.ASCII)


class MalformedMessage(ValueError):
    """The bytes are not a well-formed message of this protocol."""


@dataclasses.dataclass(frozen=True)
class Hello:
    """``auth1``: the initiator's binding, nonce, time and certificate."""

    binding: binding_mod.Binding
    nonce: bytes
    ts: int
    cert: x509.Certificate
    sig: bytes = b''
    type = 'auth1'

    def fields(self):
        return {'binding': self.binding.as_dict(), 'cert': _der_b64(self.cert),
                'nonce': _b64(self.nonce), 'ts': self.ts}


@dataclasses.dataclass(frozen=True)
class Reply:
    """``auth2``: the responder's nonce, time, policy and certificate."""

    nonce: bytes
    ts: int
    policy_digest: str
    cert: x509.Certificate
    sig: bytes = b''
    type = 'auth2'

    def fields(self):
        return {'cert': _der_b64(self.cert), 'nonce': _b64(self.nonce),
                'policy_digest': self.policy_digest, 'ts': self.ts}


@dataclasses.dataclass(frozen=True)
class Confirm:
    """``auth3``: the initiator's time (its signature is the point)."""

    ts: int
    sig: bytes = b''
    type = 'auth3'

    def fields(self):
        return {'ts': self.ts}


MESSAGE_TYPES = {cls.type: cls for cls in (Hello, Reply, Confirm)}


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _der_b64(cert):
    return _b64(cert.public_bytes(_DER))


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True, allow_nan=False).encode('ascii')


def encode_body(message):
    """The canonical bytes of ``message`` without its signature.

    This is what the sender's signature covers (with the transcript).
    """
    return _canonical(dict(message.fields(), type=message.type, v=VERSION))


def encode(message):
    """The canonical bytes of a signed ``message``."""
    return _canonical(dict(message.fields(), type=message.type, v=VERSION,
                           sig=_b64(message.sig)))


# Decoding ---------------------------------------------------------------

def _reject_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedMessage('duplicate key %r' % key)
        obj[key] = value
    return obj


def _reject_constant(name):
    raise MalformedMessage('%s is not allowed' % name)


def _reject_float(text):
    raise MalformedMessage('floating-point numbers are not allowed')


def _parse(data, max_bytes):
    if not isinstance(data, bytes):
        raise MalformedMessage('a message must be bytes, not %s'
                               % type(data).__name__)
    if len(data) > max_bytes:
        raise MalformedMessage('message of %d bytes exceeds the limit of %d'
                               % (len(data), max_bytes))
    if not data.isascii():
        raise MalformedMessage('message is not ASCII')
    try:
        obj = json.loads(data.decode('ascii'),
                         object_pairs_hook=_reject_duplicates,
                         parse_constant=_reject_constant,
                         parse_float=_reject_float)
    except MalformedMessage:
        raise
    except (ValueError, RecursionError) as e:
        raise MalformedMessage('not JSON: %s' % e) from None
    if not isinstance(obj, dict):
        raise MalformedMessage('a message must be a JSON object')
    try:
        canonical = _canonical(obj)
    except (ValueError, TypeError, RecursionError):
        raise MalformedMessage('message cannot be re-encoded') from None
    if canonical != data:
        raise MalformedMessage('message is not in canonical form')
    return obj


def _keys(obj, expected):
    if set(obj) != expected:
        raise MalformedMessage('fields %s, expected exactly %s'
                               % (sorted(obj), sorted(expected)))


def _int(value, name):
    # bool is an int subclass: refuse it explicitly.
    if type(value) is not int or not 0 < value < MAX_TIMESTAMP:
        raise MalformedMessage('%s must be a positive integer below 2**53'
                               % name)
    return value


def _bytes(value, name, min_len, max_len):
    if (not isinstance(value, str) or len(value) > 2 * max_len
            or not _BASE64.fullmatch(value)):
        raise MalformedMessage('%s is not padded standard base64' % name)
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise MalformedMessage('%s is not base64' % name) from None
    if _b64(raw) != value:
        raise MalformedMessage('%s is not canonical base64' % name)
    if not min_len <= len(raw) <= max_len:
        raise MalformedMessage('%s must be %d to %d bytes, not %d'
                               % (name, min_len, max_len, len(raw)))
    return raw


def _cert(value):
    der = _bytes(value, 'cert', 1, MAX_CERT_BYTES)
    try:
        cert = x509.load_der_x509_certificate(der)
        # Parsing is lazy for some parts; touch what the checks use.
        cert.public_key()
        cert.extensions
        cert.subject
        cert.issuer
    except Exception:
        # cryptography raises ValueError and, for unusual encodings,
        # other types; whatever it is, the certificate is unusable.
        raise MalformedMessage('cert is not a DER certificate') from None
    if cert.public_bytes(_DER) != der:
        raise MalformedMessage('cert is not in DER form')
    return cert


def _binding(value):
    problem = binding_mod.check_fields(value)
    if problem:
        raise MalformedMessage('binding: %s' % problem)
    return binding_mod.Binding(**value)


def _digest(value):
    if (not isinstance(value, str)
            or not binding_mod.FIELDS['policy_digest'].fullmatch(value)):
        raise MalformedMessage('policy_digest has an invalid value')
    return value


def _decode_hello(obj):
    return Hello(binding=_binding(obj['binding']),
                 nonce=_bytes(obj['nonce'], 'nonce', NONCE_BYTES,
                              NONCE_BYTES),
                 ts=_int(obj['ts'], 'ts'), cert=_cert(obj['cert']),
                 sig=_bytes(obj['sig'], 'sig', 1, MAX_SIGNATURE_BYTES))


def _decode_reply(obj):
    return Reply(nonce=_bytes(obj['nonce'], 'nonce', NONCE_BYTES,
                              NONCE_BYTES),
                 ts=_int(obj['ts'], 'ts'),
                 policy_digest=_digest(obj['policy_digest']),
                 cert=_cert(obj['cert']),
                 sig=_bytes(obj['sig'], 'sig', 1, MAX_SIGNATURE_BYTES))


def _decode_confirm(obj):
    return Confirm(ts=_int(obj['ts'], 'ts'),
                   sig=_bytes(obj['sig'], 'sig', 1, MAX_SIGNATURE_BYTES))


_FIELDS = {
    'auth1': ({'binding', 'cert', 'nonce', 'sig', 'ts', 'type', 'v'},
              _decode_hello),
    'auth2': ({'cert', 'nonce', 'policy_digest', 'sig', 'ts', 'type', 'v'},
              _decode_reply),
    'auth3': ({'sig', 'ts', 'type', 'v'}, _decode_confirm),
}


def decode(data, max_bytes):
    """Decode one message of any type from untrusted ``data``.

    :param data: the received bytes
    :param max_bytes: the size limit; larger inputs are refused unread
    :returns: a :class:`Hello`, :class:`Reply` or :class:`Confirm`
    :raises MalformedMessage: for anything else, with the reason
    """
    obj = _parse(data, max_bytes)
    if type(obj.get('v')) is not int or obj['v'] != VERSION:
        raise MalformedMessage('unsupported protocol version %r'
                               % (obj.get('v'),))
    kind = obj.get('type')
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MalformedMessage('unknown message type')
    expected, decoder = _FIELDS[kind]
    _keys(obj, expected)
    return decoder(obj)
