"""The source's side of the handshakes destinations start with it.

A destination starts a handshake with the source of an instance
(``auth1``); the source answers (``auth2``) and receives the
confirmation (``auth3``) in a later call. :class:`AnsweringHost` holds
what the source keeps in between: its replay cache and the handshakes
waiting for confirmation, at most one per *(instance, destination)*.
A handshake is kept only once its ``auth1`` is signed with the key of a
certificate valid for the destination it names, so no host can displace
or end a handshake it is not party to:

- an enrolled host's ``auth1`` for the same instance waits beside the
  others; it never replaces another host's handshake;
- an ``auth3`` completes the one handshake whose transcript its
  signature covers. One that confirms none (altered, forged, replayed,
  or meant for another instance) is refused and every waiting handshake
  stays open, so the destination's own ``auth3`` still completes it;
- when ``[auth] max_pending_handshakes`` handshakes wait, a new one is
  refused (``too_many_handshakes``); none is dropped to make room.

Every refusal's details name whom it concerns: ``peer_host`` is the
destination the refused message names or the handshake was with (None
when the message names none), and ``signed_by_peer`` says whether the
message was proven to come from it (see :mod:`secmig.auth.handshake`).
An audit record must not hold ``peer_host`` responsible when
``signed_by_peer`` is False.

Thread-safe.
"""

import collections
import threading
import time

from secmig.auth import binding as binding_mod
from secmig.auth import handshake
from secmig.auth import messages
from secmig.auth import replay
from secmig.decision import Decision
from secmig import exception

#: Codes of refusals made here, beside those of the handshake steps.
CODES = ('no_handshake', 'too_many_handshakes', 'bad_binding')


class AnsweringHost:
    """One source host's answers to handshakes, for all its instances.

    :param host: this host's name, the source of every binding
    :param conf: a ``ConfigOpts`` with the ``[auth]`` and ``[pki]`` groups
    :param clock: returns seconds since the epoch
    """

    def __init__(self, host, conf, clock=time.time):
        self.host = host
        self._conf = conf
        self._clock = clock
        self._max_bytes = conf.auth.max_message_bytes
        self._max_waiting = conf.auth.max_pending_handshakes
        self._ttl = conf.auth.handshake_timeout
        self._replay = replay.ReplayCache.from_conf(conf)
        #: (instance uuid, destination) -> (stored at, Responder)
        self._waiting = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self):
        """How many handshakes wait for confirmation (expired included)."""
        return len(self._waiting)

    def hello(self, creds, trust, migration_id, instance_uuid,
              policy_digest, auth1, dest_host=None):
        """Answer a destination's ``auth1``: ``(auth2 or None, Decision)``.

        :param creds: this host's credentials (``creds.host`` is
            :attr:`host`)
        :param trust: the trust store to verify the destination with
        :param migration_id: the migration of the instance, from this
            host's own knowledge
        :param instance_uuid: the instance, from this host's own knowledge
            (the adapter checks it is on this host)
        :param policy_digest: the digest of the policy this host enforces
        :param auth1: the received bytes
        :param dest_host: the destination this host expects, when it
            knows it; otherwise the destination is the host ``auth1``
            names, which its certificate and signature must prove

        Never raises for anything in ``auth1``. An allowed decision
        (``awaiting_confirmation``) means the handshake now waits for
        :meth:`confirm`.
        """
        claimed = self._claimed_destination(auth1)
        peer = dest_host or claimed
        if peer is None:
            return None, self._unattributed(
                auth1, 'auth1', 'auth1 names no destination')
        if peer == self.host:
            return None, Decision.refuse(
                'binding_mismatch', 'auth1 names this host (%s) as the '
                'destination of a migration from it' % self.host,
                role='responder', migration_id=migration_id,
                peer_host=None, signed_by_peer=False, stage='auth1',
                fields=['dest_host'])
        try:
            expected = binding_mod.Binding(migration_id, instance_uuid,
                                           self.host, peer, policy_digest)
        except exception.SecmigError as e:
            # This host's own values are not a valid binding.
            return None, Decision.refuse(
                e.code, str(e), role='responder', migration_id=migration_id,
                peer_host=peer, signed_by_peer=False, stage='auth1')
        responder = handshake.Responder(creds, trust, self._conf,
                                        self._replay, self._clock)
        auth2, decision = responder.respond(auth1, expected)
        if auth2 is None:
            return None, decision
        refusal = self._keep((instance_uuid, peer), responder)
        if refusal is not None:
            return None, refusal
        return auth2, decision

    def confirm(self, instance_uuid, auth3):
        """Complete the handshake ``auth3`` confirms; return the Decision.

        Allowed (``authenticated``): its details name the destination
        (``peer_host``) and carry what :meth:`Responder.confirm
        <secmig.auth.handshake.Responder.confirm>` returns. Never raises.
        """
        waiting = self._waiting_for(instance_uuid)
        if not waiting:
            return Decision.refuse(
                'no_handshake', 'no handshake for instance %s is waiting '
                'for confirmation on %s (it expired or never started)'
                % (instance_uuid, self.host), role='responder',
                peer_host=None, signed_by_peer=False, stage='auth3')
        for key, responder in waiting:
            if not responder.confirms(auth3):
                continue
            if self._take(key, responder):
                return responder.confirm(auth3)
            return Decision.refuse(
                'no_handshake', 'the handshake with %s that this auth3 '
                'confirms is no longer waiting (confirmed or expired '
                'meanwhile)' % key[1], role='responder', peer_host=key[1],
                signed_by_peer=True, stage='auth3')
        peers = sorted(key[1] for key, _ in waiting)
        return self._unattributed(
            auth3, 'auth3', 'the auth3 message confirms none of the '
            'handshakes waiting for instance %s (with %s); they stay open'
            % (instance_uuid, ', '.join(peers)), waiting_peers=peers)

    # The table ---------------------------------------------------------

    def _expire(self, now):
        for key in [k for k, (stored, _) in self._waiting.items()
                    if now - stored > self._ttl]:
            del self._waiting[key]

    def _keep(self, key, responder):
        now = self._clock()
        with self._lock:
            self._expire(now)
            self._waiting.pop(key, None)
            if len(self._waiting) >= self._max_waiting:
                return Decision.refuse(
                    'too_many_handshakes', '%d handshakes already wait for '
                    'confirmation on %s ([auth] max_pending_handshakes); '
                    'none is dropped to make room' % (len(self._waiting),
                                                      self.host),
                    role='responder', peer_host=key[1],
                    signed_by_peer=True, stage='auth1')
            self._waiting[key] = (now, responder)
        return None

    def _waiting_for(self, instance_uuid):
        with self._lock:
            self._expire(self._clock())
            return [(key, responder)
                    for key, (_, responder) in self._waiting.items()
                    if key[0] == instance_uuid]

    def _take(self, key, responder):
        """Remove ``key`` if it still holds ``responder``."""
        with self._lock:
            entry = self._waiting.get(key)
            if entry is None or entry[1] is not responder:
                return False
            del self._waiting[key]
            return True

    # Messages that cannot be attributed -------------------------------

    def _claimed_destination(self, auth1):
        try:
            msg = messages.decode(auth1, self._max_bytes)
        except messages.MalformedMessage:
            return None
        binding = getattr(msg, 'binding', None)
        return binding.dest_host if binding is not None else None

    def _unattributed(self, data, stage, unmatched, **details):
        """Refuse ``data``, which belongs to no handshake of this host.

        ``unmatched`` is the reason when it is a well-formed message of
        the expected type.
        """
        try:
            kind = messages.decode(data, self._max_bytes).type
        except messages.MalformedMessage as e:
            code, reason = 'malformed_message', (
                'malformed handshake message: %s' % e)
        else:
            code, reason = (
                ('bad_signature', unmatched) if kind == stage else
                ('unexpected_message', 'expected a %s message, received %s'
                 % (stage, kind)))
        return Decision.refuse(code, reason, role='responder',
                               peer_host=None, signed_by_peer=False,
                               stage=stage, **details)
