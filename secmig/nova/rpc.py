"""The handshake between two compute hosts, over Nova's message bus.

Each compute host serves topic ``secmig-handshake`` under its own host
name, beside Nova's own compute topics. The channel is not trusted: the
bus only carries the handshake's signed messages (base64 text, since
RPC payloads are JSON) and the peer's decisions, which the receiving
host never takes as proof of anything but a refusal.
"""

import base64
import types

from oslo_log import log as logging
import oslo_messaging as messaging

from nova import context as nova_context
from nova import exception
from nova import objects
from nova import rpc as nova_rpc

from secmig.decision import Decision
from secmig import guard as guard_mod
from secmig.nova import facts

LOG = logging.getLogger(__name__)
TOPIC = 'secmig-handshake'
#: How long a host waits for its peer's answer (seconds).
TIMEOUT = 30
#: The largest handshake message taken off the bus (the largest
#: ``[auth] max_message_bytes`` allows; the guard checks its own limit).
MESSAGE_LIMIT = 1048576


def _b64(data):
    return base64.b64encode(data).decode('ascii') if data else None


def _unb64(text, limit):
    """Bytes of a handshake message from the bus, or None if empty.

    Raises ``ValueError`` for anything but base64 text that decodes to at
    most ``limit`` bytes; the size is checked before decoding.
    """
    if not text:
        return None
    if not isinstance(text, str) or len(text) > 4 * (limit // 3 + 1):
        raise ValueError('not a handshake message of at most %d bytes'
                         % limit)
    return base64.b64decode(text.encode('ascii', 'replace'), validate=True)


def _decision(data):
    """A peer's decision from the bus; raises ``ValueError`` if malformed."""
    try:
        return Decision(
            bool(data['allowed']), str(data['code']), str(data['reason']),
            types.MappingProxyType(dict(data.get('details') or {})))
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError('not a decision: %s' % e)


def _malformed(what, error):
    return Decision.refuse('malformed_message', '%s from the bus is '
                           'malformed: %s' % (what, error),
                           signed_by_peer=False)


class HandshakeEndpoint:
    """The source side: answers destinations about its own instances."""

    target = messaging.Target(version='1.0')

    def __init__(self, guard, host):
        self.guard = guard
        self.host = host

    def hello(self, ctxt, instance_uuid, auth1):
        admin = nova_context.get_admin_context()
        refusal = self._check_instance(admin, instance_uuid)
        migration_id = facts.migration_id(admin, instance_uuid)
        if refusal is None and migration_id is None:
            refusal = Decision.refuse(
                'no_migration', 'instance %s has no live migration in '
                'progress' % instance_uuid)
        if refusal is None:
            auth1, refusal = self._message(auth1, 'auth1')
        if refusal is not None:
            return {'auth2': None, 'decision': refusal.as_dict()}
        # The destination is the host auth1 names and its certificate
        # proves: Nova records its choice only after these checks.
        auth2, decision = self.guard.answer_hello(
            migration_id, instance_uuid, auth1)
        return {'auth2': _b64(auth2), 'decision': decision.as_dict()}

    def confirm(self, ctxt, instance_uuid, auth3):
        auth3, refusal = self._message(auth3, 'auth3')
        if refusal is not None:
            return refusal.as_dict()
        return self.guard.answer_confirm(instance_uuid, auth3).as_dict()

    def _message(self, text, kind):
        try:
            return _unb64(text, MESSAGE_LIMIT), None
        except ValueError as e:
            return None, _malformed(kind, e)

    def report(self, ctxt, instance_uuid, reporter, decision):
        admin = nova_context.get_admin_context()
        if self._check_instance(admin, instance_uuid) is not None:
            return
        try:
            decision = _decision(decision)
        except ValueError as e:
            LOG.warning("secmig: ignored a malformed refusal report about "
                        "instance %s: %s", instance_uuid, e)
            return
        self.guard.answer_report(
            facts.migration_id(admin, instance_uuid) or 'unknown',
            instance_uuid, str(reporter), decision)

    def _check_instance(self, admin, instance_uuid):
        try:
            inst = objects.Instance.get_by_uuid(admin, instance_uuid)
        except exception.InstanceNotFound:
            inst = None
        if inst is None or inst.host != self.host:
            return Decision.refuse(
                'instance_not_here', 'instance %s is not on %s'
                % (instance_uuid, self.host))
        return None


def start_server(guard, host):
    """Serve this host's side of handshakes; returns the started server."""
    target = messaging.Target(topic=TOPIC, server=host)
    server = nova_rpc.get_server(target, [HandshakeEndpoint(guard, host)])
    server.start()
    return server


class RPCPeerChannel(guard_mod.PeerChannel):
    """A :class:`~secmig.guard.PeerChannel` to another compute host."""

    def __init__(self, context, host):
        self.context = context
        self.host = host

    def _client(self, host):
        target = messaging.Target(topic=TOPIC, server=host, version='1.0')
        return nova_rpc.get_client(target).prepare(timeout=TIMEOUT)

    def hello(self, peer_host, migration_id, instance_uuid, auth1):
        try:
            answer = self._client(peer_host).call(
                self.context, 'hello', instance_uuid=instance_uuid,
                auth1=_b64(auth1))
        except messaging.MessagingException as e:
            return None, _unreachable(peer_host, e)
        try:
            return (_unb64(answer['auth2'], MESSAGE_LIMIT),
                    _decision(answer['decision']))
        except (KeyError, TypeError, ValueError) as e:
            return None, _malformed('the answer of %s' % peer_host, e)

    def confirm(self, peer_host, instance_uuid, auth3):
        try:
            answer = self._client(peer_host).call(
                self.context, 'confirm', instance_uuid=instance_uuid,
                auth3=_b64(auth3))
        except messaging.MessagingException as e:
            return _unreachable(peer_host, e)
        try:
            return _decision(answer)
        except ValueError as e:
            return _malformed('the answer of %s' % peer_host, e)

    def report(self, peer_host, instance_uuid, decision):
        try:
            self._client(peer_host).cast(
                self.context, 'report', instance_uuid=instance_uuid,
                reporter=self.host, decision=decision.as_dict())
        except messaging.MessagingException as e:
            LOG.warning("secmig: could not tell %s about the refusal of "
                        "instance %s: %s", peer_host, instance_uuid, e)


def _unreachable(peer_host, error):
    return Decision.refuse(
        'peer_unreachable', 'the secmig handshake with %s failed: %s: %s'
        % (peer_host, type(error).__name__, error))
