"""Aggregates and availability zones of compute hosts, from Nova's API.

Compute hosts talk to a cell conductor, which has no access to Nova's
API database where aggregates live, so a compute host reads them where
a multi-cell cloud serves them: Nova's public API (``GET
/os-aggregates``), with the credentials of secmig.conf's ``[nova]``
group (:mod:`secmig.conf.nova_api`). One read answers for every host and
is kept ``[nova] aggregates_cache_time`` seconds.

When the API cannot answer, a migration is refused only if the policy
decides on aggregates or zones (:func:`secmig.placement.needed`), with
the code ``placement_unavailable``; otherwise it goes on without them.
"""

import threading
import time

from keystoneauth1 import loading as ks_loading
from novaclient import client as nova_client
from oslo_log import log as logging

from nova import exception as nova_exception

from secmig.conf import nova_api
from secmig.nova import facts
from secmig import placement as placement_mod
from secmig.policy import loader

LOG = logging.getLogger(__name__)
#: ``os-aggregates`` has every field secmig reads since the first
#: microversion.
API_VERSION = '2.1'


class AggregateReader:
    """``host -> (aggregate names, zone or None)``, from one listing.

    :param list_aggregates: returns the aggregates, objects with
        ``name``, ``hosts`` and ``availability_zone`` (novaclient's)
    :param cache_time: seconds a listing is used for
    """

    def __init__(self, list_aggregates, cache_time, clock=time.monotonic):
        self._list = list_aggregates
        self._cache_time = cache_time
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = None
        self._by_host = {}

    @classmethod
    def from_conf(cls, conf):
        """The reader of ``[nova]``.

        :raises secmig.placement.Unavailable: when ``[nova]`` has no
            ``auth_type`` or its options do not load
        """
        group = conf[nova_api.GROUP]
        if not group.auth_type:
            raise placement_mod.Unavailable(
                '[%s] auth_type is not set in secmig.conf'
                % nova_api.GROUP)
        try:
            auth = ks_loading.load_auth_from_conf_options(
                conf, nova_api.GROUP)
            session = ks_loading.load_session_from_conf_options(
                conf, nova_api.GROUP, auth=auth)
        except Exception as e:
            raise placement_mod.Unavailable(
                '[%s] in secmig.conf: %s: %s'
                % (nova_api.GROUP, type(e).__name__, e)) from e
        client = nova_client.Client(
            API_VERSION, session=session,
            service_type=group.service_type,
            service_name=group.service_name,
            interface=group.valid_interfaces,
            region_name=group.region_name,
            endpoint_override=group.endpoint_override,
            connect_retries=group.connect_retries)
        return cls(client.aggregates.list, group.aggregates_cache_time)

    def placement(self, host):
        """``(frozenset of aggregate names, zone or None)`` of ``host``.

        :raises secmig.placement.Unavailable: when the API cannot answer
        """
        with self._lock:
            now = self._clock()
            if (self._read_at is None
                    or now - self._read_at >= self._cache_time):
                self._by_host = self._read()
                self._read_at = now
            return self._by_host.get(host, (frozenset(), None))

    def _read(self):
        try:
            aggregates = list(self._list())
        except Exception as e:
            raise placement_mod.Unavailable(
                'Nova\'s API did not list the aggregates: %s: %s'
                % (type(e).__name__, e)) from e
        names, zones = {}, {}
        for aggregate in aggregates:
            for host in getattr(aggregate, 'hosts', None) or ():
                names.setdefault(host, set()).add(aggregate.name)
                zone = getattr(aggregate, 'availability_zone', None)
                if zone:
                    zones.setdefault(host, zone)
        return {host: (frozenset(names[host]), zones.get(host))
                for host in names}


class HostPlacement:
    """``(context, host, instance) -> (aggregate names, zone or None)``.

    The compute driver's view: a migration of ``instance`` asks where
    ``host`` stands. If the reader cannot answer and the policy needs
    the answer, the migration is refused: the refusal is audited and
    raised as ``MigrationPreCheckError``.
    """

    def __init__(self, guard, reader=None, error=None):
        self._guard = guard
        self._reader = reader
        self._error = error

    def __call__(self, context, host, instance):
        try:
            if self._reader is None:
                raise placement_mod.Unavailable(self._error)
            return self._reader.placement(host)
        except placement_mod.Unavailable as e:
            if not self._needed():
                LOG.warning("secmig: aggregates and zone of %s unknown, "
                            "and the policy needs none: %s", host, e)
                return frozenset(), None
            decision = placement_mod.refusal(host, e)
        LOG.warning("secmig refused the migration of instance %s: %s",
                    instance.uuid, decision.reason)
        written = self._guard.record(
            'refused', facts.migration_id(context, instance.uuid)
            or 'unknown', instance.uuid, 'failure', decision=decision,
            source_host=instance.host, destination_host=host)
        if not written:
            LOG.error("secmig: the refusal of instance %s was not audited: "
                      "%s", instance.uuid, written.reason)
        raise nova_exception.MigrationPreCheckError(
            reason='secmig refused the migration (%s): %s'
            % (decision.code, decision.reason))

    def _needed(self):
        source = getattr(self._guard, 'policy_source', None)
        if source is None:
            return False
        try:
            return placement_mod.needed(source.get())
        except loader.PolicyError:
            # The guard refuses with the policy's own reason.
            return False


def for_host(conf, guard):
    """The :class:`HostPlacement` of a compute host; never raises.

    :param conf: secmig's ``ConfigOpts``, or None when it did not load
        (then the guard refuses everything anyway)
    """
    if conf is None:
        return HostPlacement(guard, error='secmig.conf did not load')
    try:
        return HostPlacement(guard, AggregateReader.from_conf(conf))
    except placement_mod.Unavailable as e:
        LOG.warning("secmig: aggregates and zones of hosts are unknown on "
                    "%s; a policy with destinations rules refuses every "
                    "migration: %s", guard.host, e)
        return HostPlacement(guard, error=str(e))
