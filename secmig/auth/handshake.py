"""The host-to-host handshake: an initiator and a responder.

Three messages (see ``doc/protocol.rst`` for the full specification)::

    initiator                                   responder
    start()      --- auth1: binding, Ni, ts, cert, sig_I --->  respond()
    finish()     <-- auth2: Nr, ts, policy, cert, sig_R  ----
                 --- auth3: ts, sig_I                    --->  confirm()

Every received byte string is untrusted. Each step returns a
:class:`~secmig.decision.Decision` and never raises for anything a peer
or the channel can send; the first failed check refuses, and a refused
handshake is over (later calls are ``unexpected_message``). Refusal
codes: ``malformed_message``, ``unexpected_message``, ``reflected``,
``stale_timestamp``, ``future_timestamp``, ``handshake_timeout``,
``replayed``, ``binding_mismatch``, ``policy_mismatch``,
``peer_certificate_invalid`` (details ``pki_code``: the code of
:func:`secmig.pki.verify.verify_certificate`, e.g. ``revoked``,
``foreign_ca``, ``wrong_host``) and ``bad_signature``.

A received message is checked in this order: its form
(``malformed_message``, ``reflected``, ``unexpected_message``), what this
host knows on its own (``handshake_timeout``, ``replayed``), the
signature with the key of the certificate the message carries
(``bad_signature``), that certificate (``peer_certificate_invalid``),
and only then what the message says (``stale_timestamp``,
``future_timestamp``, ``policy_mismatch``, ``binding_mismatch``). So a
refusal that describes the peer (its clock, its policy, the migration it
means) is made only on content the peer signed; whatever the channel
alters is ``bad_signature``. Every refusal carries the detail
``signed_by_peer``: True when the refused message was signed with the
key of a certificate valid for ``peer_host``. A record of a refusal
must not hold ``peer_host`` responsible when it is False.

The initiator has authenticated the responder when :meth:`Initiator.
finish` allows (code ``authenticated``). The responder has authenticated
the initiator only when :meth:`Responder.confirm` allows (code
``authenticated``); :meth:`Responder.respond`'s ``awaiting_confirmation``
is not an authentication. Success details carry both certificate
fingerprints, the transcript hash (the same on both hosts, see
:mod:`secmig.auth.transcript`) and the peer's clearance.

Objects of this module hold one handshake each and are not thread-safe,
except that :meth:`Responder.confirms` may be called at any time.
Time is read only from the ``clock`` argument (seconds since the epoch).
"""

import dataclasses
import datetime
import functools
import logging
import os
import time

from cryptography.hazmat.primitives import serialization

from secmig.auth import messages
from secmig.auth import signing
from secmig.auth import transcript
from secmig.decision import Decision
from secmig import exception
from secmig.pki import verify

LOG = logging.getLogger(__name__)

_NEW, _WAITING, _DONE, _FAILED = 'new', 'waiting', 'done', 'failed'


def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


class _Party:
    """What the initiator and the responder share: the checks."""

    role = None

    def __init__(self, creds, trust, conf, clock):
        self._creds = creds
        self._trust = trust
        self._clock = clock
        self._skew_ms = conf.auth.max_clock_skew * 1000
        self._timeout_ms = conf.auth.handshake_timeout * 1000
        self._max_bytes = conf.auth.max_message_bytes
        self._margin = conf.pki.expiry_margin
        self._min_rsa_bits = conf.pki.min_rsa_bits
        self._require_crl = conf.pki.require_crl
        self._own_der = _der(creds.cert)
        self._state = _NEW
        self._nonce = None
        self._started = None
        self._context = {}

    @property
    def state(self):
        """``new``, ``waiting`` (for the peer), ``done`` or ``failed``."""
        return self._state

    def _now(self):
        return int(self._clock() * 1000)

    def _refuse(self, code, reason, signed_by_peer=False, **details):
        self._state = _FAILED
        decision = Decision.refuse(code, reason, role=self.role,
                                   signed_by_peer=signed_by_peer,
                                   **dict(self._context, **details))
        LOG.debug("handshake refused: %s", decision)
        return decision

    def _decode(self, data, expected_type):
        """Decode ``data`` as ``expected_type``; (message, refusal)."""
        stage = {'stage': expected_type}
        try:
            msg = messages.decode(data, self._max_bytes)
        except messages.MalformedMessage as e:
            return None, self._refuse(
                'malformed_message', 'malformed handshake message: %s' % e,
                **stage)
        cert = getattr(msg, 'cert', None)
        nonce = getattr(msg, 'nonce', None)
        if ((cert is not None and _der(cert) == self._own_der)
                or (nonce is not None and nonce == self._nonce)):
            return None, self._refuse(
                'reflected', 'received this host\'s own %s message back'
                % msg.type, **stage)
        if msg.type != expected_type:
            return None, self._refuse(
                'unexpected_message', 'expected a %s message, received %s'
                % (expected_type, msg.type), **stage)
        return msg, None

    def _check_timeout(self, msg, now):
        if (self._started is not None
                and now - self._started > self._timeout_ms):
            return self._refuse(
                'handshake_timeout', 'the %s message came %d ms after the '
                'handshake started, beyond the timeout of %d ms'
                % (msg.type, now - self._started, self._timeout_ms),
                stage=msg.type)
        return None

    def _check_skew(self, msg, now):
        """Refuse a signed ``msg`` stamped outside the skew bound."""
        if msg.ts < now - self._skew_ms:
            return self._refuse(
                'stale_timestamp', 'the %s message is stamped %d ms in the '
                'past, beyond the clock skew bound of %d ms'
                % (msg.type, now - msg.ts, self._skew_ms),
                signed_by_peer=True, stage=msg.type)
        if msg.ts > now + self._skew_ms:
            return self._refuse(
                'future_timestamp', 'the %s message is stamped %d ms in the '
                'future, beyond the clock skew bound of %d ms'
                % (msg.type, msg.ts - now, self._skew_ms),
                signed_by_peer=True, stage=msg.type)
        return None

    def _verify_peer(self, cert, peer_host, now, stage):
        """(verdict, refusal) for the peer's certificate."""
        verdict = verify.verify_certificate(
            cert, self._trust, host=peer_host, purpose='both',
            now=datetime.datetime.fromtimestamp(now / 1000,
                                                datetime.timezone.utc),
            margin=self._margin, min_rsa_bits=self._min_rsa_bits,
            require_crl=self._require_crl)
        if verdict and not verify.names_host(cert, peer_host):
            verdict = Decision.refuse(
                'wrong_host', 'certificate does not name %s' % peer_host)
        if not verdict:
            return None, self._refuse(
                'peer_certificate_invalid', 'the certificate presented for '
                '%s, whose key signed the message, is refused: %s'
                % (peer_host, verdict.reason),
                stage=stage, pki_code=verdict.code,
                pki_reason=verdict.reason,
                peer_subject=cert.subject.rfc4514_string())
        return verdict, None

    @staticmethod
    def _chained(previous, msg):
        """The chaining value after the body of the received ``msg``."""
        return transcript.absorb(previous, messages.encode_body(msg))

    @staticmethod
    def _signature_ok(msg, cert, chained):
        return signing.verify(cert.public_key(), msg.sig,
                              transcript.to_be_signed(msg.type, chained))

    def _check_signature(self, msg, cert, chained):
        if not self._signature_ok(msg, cert, chained):
            return self._refuse(
                'bad_signature', 'the signature of the %s message does not '
                'verify with the key of %s over this handshake\'s '
                'transcript' % (msg.type, cert.subject.rfc4514_string()),
                stage=msg.type)
        return None

    def _sign(self, msg, previous):
        """(the bytes of ``msg`` signed, the chaining value after it)."""
        chained = transcript.absorb(previous, messages.encode_body(msg))
        sig = signing.sign(self._creds.key,
                           transcript.to_be_signed(msg.type, chained))
        return messages.encode(dataclasses.replace(msg, sig=sig)), chained

    def _success(self, binding, verdict, peer_host, h3, initiator_fp,
                 responder_fp):
        self._state = _DONE
        return Decision.allow(
            '%s authenticated as %s for migration %s of instance %s'
            % (verdict.details['subject'], peer_host, binding.migration_id,
               binding.instance_uuid),
            code='authenticated', role=self.role, peer_host=peer_host,
            peer_subject=verdict.details['subject'],
            peer_names=list(verdict.details.get('names') or ()),
            peer_clearance=verdict.details['clearance'],
            initiator_fingerprint=initiator_fp,
            responder_fingerprint=responder_fp,
            transcript_hash=h3.hex(), **binding.as_dict())


def _first_refusal(*checks):
    """Run ``checks`` in order; return the first refusal, or None.

    A refusal is a Decision, which is false: test for None, not truth.
    """
    for check in checks:
        refusal = check()
        if refusal is not None:
            return refusal
    return None


def _peer_or_raise(binding, host):
    peer = binding.peer_of(host)
    if peer is None:
        raise exception.SecmigError(
            'this host (%s) is neither the source (%s) nor the destination '
            '(%s) of migration %s' % (host, binding.source_host,
                                      binding.dest_host,
                                      binding.migration_id),
            code='bad_binding')
    return peer


class Initiator(_Party):
    """The host that starts the handshake (source or destination).

    :param creds: this host's :class:`~secmig.auth.credentials.
        HostCredentials`; ``creds.host`` must be one end of ``binding``
    :param trust: the :class:`~secmig.pki.verify.TrustStore` to verify
        the peer with
    :param binding: the :class:`~secmig.auth.binding.Binding` of this
        migration, from this host's own knowledge
    :param conf: a ``ConfigOpts`` with the ``[auth]`` and ``[pki]`` groups
    :param clock: returns seconds since the epoch
    :raises SecmigError: ``bad_binding`` if this host is not in ``binding``
    """

    role = 'initiator'

    def __init__(self, creds, trust, binding, conf, clock=time.time):
        super().__init__(creds, trust, conf, clock)
        self._binding = binding
        self._peer = _peer_or_raise(binding, creds.host)
        self._context = {'migration_id': binding.migration_id,
                         'peer_host': self._peer}
        self._previous = None

    def start(self):
        """Return ``auth1``; raises ``SecmigError`` if called twice."""
        if self._state != _NEW:
            raise exception.SecmigError('this handshake has already started',
                                        code='handshake_state')
        now = self._now()
        self._nonce = os.urandom(messages.NONCE_BYTES)
        self._started = now
        data, self._previous = self._sign(
            messages.Hello(self._binding, self._nonce, now,
                           self._creds.cert), transcript.initial())
        self._state = _WAITING
        return data

    def finish(self, data):
        """Check ``auth2``; return ``(auth3 bytes or None, Decision)``.

        An allowed decision (code ``authenticated``) means the peer is
        authenticated; send ``auth3`` so that it can authenticate this
        host. On refusal there is nothing to send.
        """
        if self._state != _WAITING:
            return None, self._refuse(
                'unexpected_message', 'no auth2 message is expected in '
                'state %s' % self._state, stage='auth2')
        msg, refusal = self._decode(data, 'auth2')
        if refusal is not None:
            return None, refusal
        now = self._now()
        h2 = self._chained(self._previous, msg)
        refusal = _first_refusal(
            lambda: self._check_timeout(msg, now),
            lambda: self._check_signature(msg, msg.cert, h2))
        if refusal is not None:
            return None, refusal
        verdict, refusal = self._verify_peer(msg.cert, self._peer, now,
                                             'auth2')
        if refusal is not None:
            return None, refusal
        refusal = _first_refusal(
            lambda: self._check_skew(msg, now),
            lambda: self._check_policy(msg.policy_digest))
        if refusal is not None:
            return None, refusal
        confirm, h3 = self._sign(messages.Confirm(now), h2)
        return confirm, self._success(
            self._binding, verdict, self._peer, h3, self._creds.fingerprint,
            verdict.details['fingerprint'])

    def _check_policy(self, digest):
        if digest != self._binding.policy_digest:
            return self._refuse(
                'policy_mismatch', '%s signed that it enforces policy %s; '
                'this host enforces %s' % (self._peer, digest,
                                           self._binding.policy_digest),
                signed_by_peer=True, stage='auth2',
                peer_policy_digest=digest)
        return None


class Responder(_Party):
    """The host that answers a handshake.

    :param replay_cache: this host's :class:`~secmig.auth.replay.
        ReplayCache`, shared by all its responders
    Other parameters as for :class:`Initiator`. Between :meth:`respond`
    and :meth:`confirm` keep the object in memory (for example in a
    :class:`~secmig.auth.answering.AnsweringHost`); its state is a few
    hundred bytes plus the peer's certificate.
    """

    role = 'responder'

    def __init__(self, creds, trust, conf, replay_cache, clock=time.time):
        super().__init__(creds, trust, conf, clock)
        self._replay = replay_cache
        self._binding = None
        self._peer = None
        self._peer_cert = None
        self._verdict = None
        self._previous = None

    def respond(self, data, expected_binding):
        """Check ``auth1``; return ``(auth2 bytes or None, Decision)``.

        :param expected_binding: the binding of the migration this host
            expects, from its own knowledge (not from the message)
        :raises SecmigError: ``bad_binding`` if this host is not in
            ``expected_binding`` (a local error, not the peer's)

        An allowed decision has code ``awaiting_confirmation``: send
        ``auth2`` and pass the peer's ``auth3`` to :meth:`confirm`.
        """
        peer = _peer_or_raise(expected_binding, self._creds.host)
        self._context = {'migration_id': expected_binding.migration_id,
                         'peer_host': peer}
        msg, refusal = self._decode(data, 'auth1')
        if refusal is not None:
            return None, refusal
        now = self._now()
        h1 = self._chained(transcript.initial(), msg)
        refusal = _first_refusal(
            lambda: self._check_replay(msg, self._replay.check),
            self._check_fresh_session,
            lambda: self._check_signature(msg, msg.cert, h1))
        if refusal is not None:
            return None, refusal
        verdict, refusal = self._verify_peer(msg.cert, peer, now, 'auth1')
        if refusal is not None:
            return None, refusal
        refusal = _first_refusal(
            lambda: self._check_skew(msg, now),
            lambda: self._check_binding(msg.binding, expected_binding),
            lambda: self._check_replay(
                msg, functools.partial(self._replay.add, now=now),
                signed_by_peer=True))
        if refusal is not None:
            return None, refusal
        self._binding, self._peer = expected_binding, peer
        self._peer_cert, self._verdict = msg.cert, verdict
        self._nonce = os.urandom(messages.NONCE_BYTES)
        self._started = now
        reply, self._previous = self._sign(
            messages.Reply(self._nonce, now, expected_binding.policy_digest,
                           self._creds.cert), h1)
        self._state = _WAITING
        return reply, Decision.allow(
            'auth1 from %s accepted; awaiting its confirmation' % peer,
            code='awaiting_confirmation', role=self.role, peer_host=peer,
            migration_id=expected_binding.migration_id)

    def _check_replay(self, msg, lookup, signed_by_peer=False):
        why = lookup(msg.nonce, msg.ts)
        if why:
            return self._refuse('replayed', 'auth1 refused as a replay: %s'
                                % why, signed_by_peer=signed_by_peer,
                                stage='auth1')
        return None

    def _check_fresh_session(self):
        if self._state != _NEW:
            return self._refuse(
                'unexpected_message', 'no auth1 message is expected in '
                'state %s' % self._state, stage='auth1')
        return None

    def _check_binding(self, received, expected):
        signed = {'signed_by_peer': True, 'stage': 'auth1'}
        if received.policy_digest != expected.policy_digest:
            return self._refuse(
                'policy_mismatch', 'the initiator signed that it enforces '
                'policy %s; this host enforces %s'
                % (received.policy_digest, expected.policy_digest),
                peer_policy_digest=received.policy_digest, **signed)
        fields = received.differences(expected)
        if fields:
            return self._refuse(
                'binding_mismatch', 'the handshake is for another migration: '
                '%s differ from what this host expects' % ', '.join(fields),
                fields=fields, **signed)
        return None

    def confirms(self, data):
        """True when ``data`` is this handshake's ``auth3``.

        That is: an ``auth3`` message whose signature verifies with the
        initiator's key over this handshake's transcript, while this
        handshake awaits it. Changes nothing and never raises, so a
        holder of several handshakes can find the one a message belongs
        to without ending the others.
        """
        if self._state != _WAITING:
            return False
        try:
            msg = messages.decode(data, self._max_bytes)
        except messages.MalformedMessage:
            return False
        return msg.type == 'auth3' and self._signature_ok(
            msg, self._peer_cert, self._chained(self._previous, msg))

    def confirm(self, data):
        """Check ``auth3``; return the final Decision.

        Allowed (code ``authenticated``) means the initiator is
        authenticated and the handshake is complete.
        """
        if self._state != _WAITING:
            return self._refuse(
                'unexpected_message', 'no auth3 message is expected in '
                'state %s' % self._state, stage='auth3')
        msg, refusal = self._decode(data, 'auth3')
        if refusal is not None:
            return refusal
        now = self._now()
        h3 = self._chained(self._previous, msg)
        refusal = _first_refusal(
            lambda: self._check_timeout(msg, now),
            lambda: self._check_signature(msg, self._peer_cert, h3),
            lambda: self._check_skew(msg, now))
        if refusal is not None:
            return refusal
        return self._success(
            self._binding, self._verdict, self._peer, h3,
            self._verdict.details['fingerprint'], self._creds.fingerprint)
