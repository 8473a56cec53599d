"""The guard of a host where secmig could not be set up.

A compute service keeps running its guests when secmig is broken on its
host (a secmig.conf that does not parse or holds a bad value, a host key
or policy that cannot be read, a journal that cannot be opened): the
adapter then installs an :class:`UnavailableGuard` in place of
:class:`secmig.guard.HostGuard`. It answers every step of every live
migration, in either direction, with the same refusal, whose code is
``secmig_unavailable`` and whose reason names what failed.
"""

from secmig.decision import Decision

CODE = 'secmig_unavailable'


def refusal(host, problem, cause):
    """The Decision every step gets on a host where secmig is broken.

    :param problem: what failed and why, as an exception or a sentence
        that names the file concerned
    :param cause: a machine-readable code, e.g. ``config_invalid``
    """
    return Decision.refuse(
        CODE, 'secmig is unavailable on %s and refuses every migration: %s'
        % (host, problem), cause=cause)


class UnavailableGuard:
    """Stands in for :class:`~secmig.guard.HostGuard`; refuses everything.

    It has the guard's interface (the methods the Nova adapter and its
    RPC endpoint call; arguments it does not need are accepted and
    ignored) and writes no audit record: there may be no usable journal
    or key to write one with.
    """

    #: No audit trail is open.
    audit = None

    def __init__(self, host, decision):
        self.host = host
        self.decision = decision

    def authorise_incoming(self, migration_id, request, instance,
                           source_host, settings, peer, *args, **kwargs):
        # The source records the refusal, if it can.
        peer.report(source_host, instance.uuid, self.decision)
        return self.decision

    def answer_hello(self, migration_id, instance_uuid, auth1,
                     dest_host=None):
        return None, self.decision

    def answer_confirm(self, instance_uuid, auth3):
        return self.decision

    def answer_report(self, migration_id, instance_uuid, reporter,
                      decision):
        return self.decision

    def authorise_outgoing(self, request, instance, *args, **kwargs):
        return self.decision

    def start_outgoing(self, instance_uuid, *args, **kwargs):
        return self.decision, None

    def is_authorised(self, instance_uuid):
        return None

    def record(self, step, migration_id, instance_uuid, *args, **kwargs):
        return self.decision

    def record_phase(self, step, instance_uuid, *args, **kwargs):
        return self.decision
