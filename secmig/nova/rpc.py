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


def _b64(data):
    return base64.b64encode(data).decode('ascii') if data else None


def _unb64(text):
    return base64.b64decode(text) if text else None


def _decision(data):
    return Decision(bool(data['allowed']), str(data['code']),
                    str(data['reason']),
                    types.MappingProxyType(dict(data.get('details') or {})))


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
        if refusal is not None:
            return {'auth2': None, 'decision': refusal.as_dict()}
        auth2, decision = self.guard.answer_hello(
            migration_id, instance_uuid, _unb64(auth1))
        return {'auth2': _b64(auth2), 'decision': decision.as_dict()}

    def confirm(self, ctxt, instance_uuid, auth3):
        return self.guard.answer_confirm(instance_uuid,
                                         _unb64(auth3)).as_dict()

    def report(self, ctxt, instance_uuid, reporter, decision):
        admin = nova_context.get_admin_context()
        if self._check_instance(admin, instance_uuid) is not None:
            return
        self.guard.answer_report(
            facts.migration_id(admin, instance_uuid) or 'unknown',
            instance_uuid, str(reporter), _decision(decision))

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
        return _unb64(answer['auth2']), _decision(answer['decision'])

    def confirm(self, peer_host, instance_uuid, auth3):
        try:
            return _decision(self._client(peer_host).call(
                self.context, 'confirm', instance_uuid=instance_uuid,
                auth3=_b64(auth3)))
        except messaging.MessagingException as e:
            return _unreachable(peer_host, e)

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
