"""Read what a hotspot audit needs from Gnocchi in a handful of requests.

:class:`AggregatesReader` takes a gnocchiclient v1 ``Client`` (the one
Watcher's datasource configuration builds) and reads through its public
aggregates API (``client.aggregates.fetch``): each request searches
resources by id (or host name) and answers for all of them at once,
whatever the number of hosts and VMs. The request kinds are:

1. instance meters: ``cpu`` (cumulative nanoseconds),
   ``memory.resident`` (MiB, the host's view: published whether or not
   the guest has a balloon driver) and the dirty-rate gauge, if named;
2. the byte and dropped-packet counters of every
   ``instance_network_interface`` of those instances, asked with
   ``details`` so the interface-to-instance mapping (attribute
   ``instance_id``) comes back with the measures;
3. the host meters on ``nova_compute`` resources, with ``details`` for
   their host names: the CPU per cent gauge, and the operator's link and
   swap-out counters and available-memory gauge, if named.

Every series is read with its ``mean`` aggregation, which Ceilometer's
archive policies all offer. A counter's rate is the difference of two
successive period means divided by the time between them: right
whatever the polling interval (one sample per period or several), and
across a period without samples (a missed poll). The period that holds
``now`` is still filling: its mean sits earlier in the period than the
others', so counters leave it out. A negative difference (a counter
reset) is dropped.

Gnocchi's cost is per metric read, not per request, so
:meth:`AggregatesReader.observe` reads in two stages: the host meters of
every host, then the meters of the running VMs on the hosts that
:func:`secmig.hotspot.detect.screen` picks (a host CPU meter missing, a
figure near a threshold, a saturated link), of the kinds each host was
picked for (resident memory on a host that may swap), and their dirty
rate; :meth:`AggregatesReader.complete` reads the rest of some VMs
later, in two requests. With no host meter named, every running VM's
CPU and dirty rate are read. A caller can send stage 1 first
(:meth:`AggregatesReader.begin`) and build its inventory while Gnocchi
answers.

The hosts are split into ``max(concurrency, ceil(hosts / page_hosts))``
requests, and each host request is followed by at most three VM
requests for the VMs of its hosts (two on ``instance`` resources, see
:func:`_merge_subsets`, and one on their interfaces), so no answer grows
beyond ``page_hosts`` hosts and their VMs. Up to ``concurrency`` requests are
in flight at once, so a Gnocchi API with several worker processes
answers an audit in a fraction of the serial time.

A request that fails for a reason that may pass (Gnocchi unreachable, a
timeout, HTTP 5xx or 429) is sent again, ``retry_interval`` seconds
later, up to ``attempts`` times in all (Watcher's ``[watcher_datasources]
query_max_retries`` and ``query_interval``); then, or on any other error
answer, :class:`GnocchiQueryError` names the request that failed. An
answer that is not what the request asked for (not JSON, another shape,
a value that is not a finite number, a timestamp that is not one) raises
it with code ``gnocchi_bad_answer``, never another exception. A metric
that exists nowhere is not an error: its series are simply absent.
"""

import collections
from concurrent import futures
import dataclasses
import datetime
import logging
import math
import threading
import time
import typing

from gnocchiclient import exceptions as gexc
from keystoneauth1 import exceptions as ksa_exc

from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model

LOG = logging.getLogger(__name__)
NS = 1e9
#: The VM kinds each of the two VM request kinds reads.
INSTANCE_KINDS = ('cpu', 'resident', 'dirty')
INTERFACE_KINDS = ('net_in', 'net_out', 'drop_in', 'drop_out')
#: What a VM is read for when no host meter is named.
INSTANCES_MODE_KINDS = frozenset(('cpu',) + model.COST_KINDS)
_EXPECTED = {'net_in': 'expected_in', 'net_out': 'expected_out'}
_DROPS = {'net_in': 'drop_in', 'net_out': 'drop_out'}

_TRANSIENT = (gexc.ConnectionFailure, gexc.ConnectionTimeout,
              gexc.UnknownConnectionError, gexc.RetryAfterException)
#: What a malformed answer can raise inside gnocchiclient's parsing or
#: ours (RecursionError, for nesting deeper than the parser takes, is a
#: RuntimeError).
_MALFORMED = (AttributeError, IndexError, KeyError, OverflowError,
              RuntimeError, TypeError, ValueError)


class GnocchiQueryError(exception.SecmigError):
    """Gnocchi could not answer a hotspot query."""

    code = 'gnocchi_error'


@dataclasses.dataclass(frozen=True)
class Meters:
    """Metric and resource names (Ceilometer's by default).

    Meters set to ``None`` are not queried. ``dirty`` and the host
    network, swap and memory meters are not produced by Ceilometer: they
    name the meters an operator's own pollster publishes (the dirty rate
    on ``instance`` resources, the others on ``nova_compute`` ones).
    """

    instance_type: str = 'instance'
    interface_type: str = 'instance_network_interface'
    host_type: str = 'nova_compute'
    host_attribute: str = 'host_name'
    cpu: str = 'cpu'
    resident: typing.Optional[str] = 'memory.resident'
    dirty: typing.Optional[str] = 'memory.dirty.rate'
    net_in: str = 'network.incoming.bytes'
    net_out: str = 'network.outgoing.bytes'
    drop_in: str = 'network.incoming.packets.drop'
    drop_out: str = 'network.outgoing.packets.drop'
    host_cpu_pct: typing.Optional[str] = 'compute.node.cpu.percent'
    host_net_in: typing.Optional[str] = 'host.network.incoming.bytes'
    host_net_out: typing.Optional[str] = 'host.network.outgoing.bytes'
    host_swap_out: typing.Optional[str] = 'host.memory.swap.out'
    host_mem_free: typing.Optional[str] = 'host.memory.available'

    def vm(self):
        """``{kind: (metric, counter scale or None for a gauge)}``."""
        return {k: v for k, v in (
            ('cpu', (self.cpu, 1.0 / NS)),
            ('resident', (self.resident, None)),
            ('dirty', (self.dirty, None)),
            ('net_in', (self.net_in, 1.0)),
            ('net_out', (self.net_out, 1.0)),
            ('drop_in', (self.drop_in, 1.0)),
            ('drop_out', (self.drop_out, 1.0))) if v[0]}

    def host(self):
        """``{kind: (metric, counter scale or None)}`` of the host meters."""
        return {k: v for k, v in (
            ('cpu_pct', (self.host_cpu_pct, None)),
            ('net_in', (self.host_net_in, 1.0)),
            ('net_out', (self.host_net_out, 1.0)),
            ('swap_out', (self.host_swap_out, 1.0)),
            ('mem_free', (self.host_mem_free, None))) if v[0]}

    def names(self):
        """``{('vm'|'host', kind): metric name}`` for evidence."""
        names = {('vm', k): n for k, (n, _) in self.vm().items()}
        names.update({('host', k): n for k, (n, _) in self.host().items()})
        return names


class AggregatesReader(object):
    """Fetch :class:`~secmig.hotspot.model.Observations` from Gnocchi.

    ``requests`` counts the requests sent by this reader since it was
    built, retries included. ``concurrency`` (at least 1) bounds the
    requests in flight at once, ``page_hosts`` the hosts of one request;
    ``attempts`` and ``retry_interval`` (seconds) rule the retries.
    """

    def __init__(self, client, meters=None, concurrency=2, page_hosts=1000,
                 attempts=1, retry_interval=0.0, sleep=time.sleep):
        if concurrency < 1 or page_hosts < 1 or attempts < 1:
            raise ValueError('concurrency, page_hosts and attempts must be '
                             'at least 1')
        self.client = client
        self.meters = meters or Meters()
        self.concurrency = concurrency
        self.page_hosts = page_hosts
        self.attempts = attempts
        self.retry_interval = retry_interval
        self._sleep = sleep
        self.requests = 0
        self._lock = threading.Lock()

    def fetch(self, instance_ids, hosts, window, granularity, now=None):
        """Return the observations of ``instance_ids`` and ``hosts``.

        Every meter of every instance and host. Series cover ``[now -
        window - granularity, now]``; ``now`` defaults to the current time
        (seconds since the epoch).
        """
        now = time.time() if now is None else now
        first = self.requests
        query = _Query(now, window, granularity)
        ids = sorted(set(instance_ids))
        with futures.ThreadPoolExecutor(self.concurrency) as pool:
            pending, _ = self._submit(pool, query, sorted(set(hosts)),
                                      dict.fromkeys(ids, model.VM_KINDS))
            vm, host = self._collect(pending, query)
        obs = model.Observations(
            now=now, window=window, granularity=granularity, vm=vm,
            host=host, meters=self.meters.names(),
            requests=self.requests - first)
        LOG.debug("Gnocchi: %d instances, %d hosts in %d requests",
                  len(ids), len(hosts), obs.requests)
        return obs

    def observe(self, hosts, vms, thresholds, margin_pct=10.0, now=None):
        """Read host meters, then only the VMs that need reading.

        ``hosts`` and ``vms`` are :class:`~secmig.hotspot.model.HostInfo`
        and :class:`~secmig.hotspot.model.VmInfo` iterables (the
        inventory); see :meth:`begin` and :meth:`HostMeterRead.observe`,
        which this method chains.
        """
        hosts = list(hosts)
        with self.begin([h.name for h in hosts], thresholds, now) as read:
            return read.observe(hosts, vms, margin_pct)

    def begin(self, names, thresholds, now=None):
        """Send stage 1 (the host meters of ``names``) and return at once.

        ``thresholds`` is a :class:`~secmig.hotspot.detect.Thresholds`
        (window, granularity, levels). Returns a :class:`HostMeterRead`,
        a context manager: the caller may build its inventory while
        Gnocchi answers, then call its ``observe``.
        """
        return HostMeterRead(self, sorted(set(names)), thresholds,
                             time.time() if now is None else now)

    def complete(self, observations, ids):
        """``observations`` with every meter of ``ids`` read.

        Ids with nothing unread are ignored; the others are read again
        in full, in two requests, over the window of ``observations``.
        """
        wanted = [i for i in sorted(set(ids)) if observations.unread.get(i)]
        if not wanted:
            return observations
        first = self.requests
        query = _Query(observations.now, observations.window,
                       observations.granularity)
        with futures.ThreadPoolExecutor(self.concurrency) as pool:
            pending, _ = self._submit(pool, query, [],
                                      dict.fromkeys(wanted, model.VM_KINDS))
            vm, _ = self._collect(pending, query)
        LOG.debug("Gnocchi: unread meters of %d instances read in %d "
                  "requests", len(wanted), self.requests - first)
        return dataclasses.replace(
            observations, vm=dict(observations.vm, **vm),
            unread={i: kinds for i, kinds in observations.unread.items()
                    if i not in wanted},
            requests=observations.requests + self.requests - first)

    def _submit(self, pool, query, hosts, vms):
        """Send the requests for ``hosts`` and ``vms`` to ``pool``.

        ``vms`` maps instance ids to the VM kinds to read: one instance
        request per distinct set of :data:`INSTANCE_KINDS` wanted, to the
        ids that want it, and one interface request to the ids that want
        any of :data:`INTERFACE_KINDS`, for every kind any of them wants.
        The host requests split ``hosts`` into contiguous parts (see the
        module). Returns the pending requests for :meth:`_collect` and
        ``{id: frozenset of the kinds asked}``.
        """
        known = self.meters.vm()
        calls = []  # (resource type, attribute, ids, kinds, details)
        asked = collections.defaultdict(frozenset)
        by_kinds = collections.defaultdict(list)
        wanted_nics = {}
        for vm_id, kinds in sorted(vms.items()):
            kinds = frozenset(kinds) & set(known)
            own = frozenset(k for k in INSTANCE_KINDS if k in kinds)
            if own:
                by_kinds[own].append(vm_id)
            nics = kinds & set(INTERFACE_KINDS)
            if nics:
                wanted_nics[vm_id] = nics
        m = self.meters
        for kinds, ids in sorted(_merge_subsets(by_kinds).items(),
                                 key=lambda i: i[1]):
            calls.append((m.instance_type, 'id', ids, kinds, False))
        if wanted_nics:
            kinds = frozenset().union(*wanted_nics.values())
            calls.append((m.interface_type, 'instance_id',
                          sorted(wanted_nics), kinds, True))
        for _, _, ids, kinds, _ in calls:
            for i in ids:
                asked[i] |= kinds
        if hosts and self.meters.host():
            parts = max(self.concurrency, -(-len(hosts) // self.page_hosts))
            size = -(-len(hosts) // parts)
            calls += [(m.host_type, m.host_attribute, hosts[i:i + size],
                       frozenset(self.meters.host()), True)
                      for i in range(0, len(hosts), size)]
        pending = []
        for rtype, attribute, ids, kinds, details in calls:
            names = (self.meters.host() if rtype == m.host_type
                     else known)
            operations = '(metric %s)' % ' '.join(
                '(%s mean)' % names[k][0] for k in sorted(kinds))
            future = pool.submit(self._fetch, operations, rtype,
                                 {'in': {attribute: list(ids)}}, query,
                                 details)
            pending.append(_Pending(future, list(ids), rtype == m.host_type,
                                    attribute, kinds, names))
        return pending, dict(asked)

    @staticmethod
    def _collect(pending, query):
        """``(vm, host)`` series of answered requests; raises their errors.

        Entries without any series are left out.
        """
        vm, host = {}, {}
        for request in pending:
            target = host if request.of_hosts else vm
            for key, kind, series in request.series(query):
                target.setdefault(key, {})[kind] = series
        return vm, host

    # -- one request, with retries ----------------------------------------

    def _fetch(self, operations, resource_type, search, query, details):
        """One aggregates request; None when no resource has the metrics."""
        what = '%s on %s resources' % (operations, resource_type)
        fetch = self.client.aggregates.fetch
        for attempt in range(1, self.attempts + 1):
            with self._lock:
                self.requests += 1
            try:
                return fetch(
                    operations, search=search, resource_type=resource_type,
                    start=query.start, granularity=query.granularity,
                    details=details)
            except gexc.NotFound as e:
                if 'does not exist' in str(e.message):
                    LOG.debug("Gnocchi has no data for %s: %s", what, e)
                    return None
                raise GnocchiQueryError('Gnocchi answered %s to %s'
                                        % (_short(e), what))
            except gexc.ClientException as e:
                if e.code is not None and not _transient(e):
                    raise GnocchiQueryError('Gnocchi answered %s to %s'
                                            % (_short(e), what))
                if attempt == self.attempts or not _transient(e):
                    # no answer (or a 5xx, 429) after the last attempt,
                    # or a connection that cannot work (SSL)
                    raise GnocchiQueryError(
                        'Gnocchi unreachable while reading %s (%d '
                        'attempts): %s' % (what, attempt, _short(e)),
                        code='gnocchi_unreachable')
                LOG.warning("secmig: Gnocchi attempt %d of %d failed (%s); "
                            "retrying in %s s", attempt, self.attempts,
                            _short(e), self.retry_interval)
                self._sleep(self.retry_interval)
            except ksa_exc.ClientException as e:
                raise GnocchiQueryError(
                    'Gnocchi cannot be asked for %s: %s: %s'
                    % (what, type(e).__name__, e), code='gnocchi_unreachable')
            except _MALFORMED as e:
                raise GnocchiQueryError(
                    'Gnocchi answered %s with a malformed answer (%s: %s)'
                    % (what, type(e).__name__, _short(e)),
                    code='gnocchi_bad_answer')


@dataclasses.dataclass(frozen=True)
class _Query:
    """The time frame of every request of one read."""

    now: float
    window: int
    granularity: int

    @property
    def start(self):
        return datetime.datetime.fromtimestamp(
            self.now - self.window - self.granularity, datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A request sent: its future, what it asked for, how to read it."""

    future: futures.Future
    asked: list
    of_hosts: bool
    attribute: str
    kinds: frozenset
    names: typing.Mapping

    def series(self, query):
        """Wait for the answer; return its ``(key, kind, series)`` list.

        Raises the request's :class:`GnocchiQueryError`, or one coded
        ``gnocchi_bad_answer`` if the answer is not shaped as asked.
        """
        answer = self.future.result()
        try:
            return list(self._series(answer, query))
        except _MALFORMED as e:
            raise GnocchiQueryError(
                'Gnocchi answered a request about %d %s with a malformed '
                'answer (%s: %s)' % (len(self.asked),
                                     'hosts' if self.of_hosts else 'VMs',
                                     type(e).__name__, _short(e)),
                code='gnocchi_bad_answer')

    def _series(self, answer, query):
        if not answer:
            return
        measures = answer['measures'].items()
        if self.attribute == 'id':
            owners = ((rid, [metrics]) for rid, metrics in measures)
        else:
            owners = _by_owner(answer, measures, self.attribute)
        stamps = {}
        for owner, members in owners:
            for kind in sorted(self.kinds):
                name, scale = self.names[kind]
                totals = {}
                for metrics in members:
                    points = _points(metrics, name, stamps)
                    if scale is not None:
                        points = _rates(points, scale, query)
                    for t, v in points:
                        totals[t] = totals.get(t, 0.0) + v
                if totals:
                    yield owner, kind, tuple(sorted(totals.items()))


class HostMeterRead(object):
    """Stage 1 of :meth:`AggregatesReader.observe`, sent and pending.

    Use as a context manager; leaving it waits for the requests still in
    flight.
    """

    def __init__(self, reader, names, thresholds, now):
        self.reader = reader
        self.thresholds = thresholds
        self.now = now
        self.first = reader.requests
        self.query = _Query(now, thresholds.window, thresholds.granularity)
        self.pool = futures.ThreadPoolExecutor(reader.concurrency)
        try:
            self.pending, _ = reader._submit(self.pool, self.query, names,
                                             {})
        except BaseException:
            self.pool.shutdown()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(cancel_futures=True)

    def observe(self, hosts, vms, margin_pct=10.0):
        """Wait for stage 1, then read the VMs that need reading.

        ``hosts`` and ``vms`` are :class:`~secmig.hotspot.model.HostInfo`
        and :class:`~secmig.hotspot.model.VmInfo` iterables (the
        inventory). Stage 2 reads the meters of the running VMs placed,
        in the inventory, on the hosts :func:`~secmig.hotspot.detect.
        screen` returns, of the kinds each host was screened for (a host
        near its CPU threshold: its VMs' CPU, not their network) and their
        dirty rate: as each host request is answered, its hosts are
        screened and their VMs' requests sent. ``unread`` lists the kinds
        left out per VM; :meth:`AggregatesReader.complete` reads them. If
        no host meter is named, every running VM's CPU and dirty rate are
        read and ``mode`` is ``instances``; otherwise ``mode`` is
        ``host_meters`` (``instances`` if no host has any) and
        ``screened`` maps the hosts read to why.
        :func:`~secmig.hotspot.detect.detect` gives the same hotspots and
        gaps as over every VM's meters.
        """
        reader, th = self.reader, self.thresholds
        hosts, vms = list(hosts), list(vms)
        infos = {h.name: h for h in hosts}
        placed = collections.defaultdict(list)
        for v in vms:
            if v.running:
                placed[v.host].append(v)
        host, screened, stage2, asked = {}, {}, [], {}
        if not self.pending:  # no host meter is named
            stage2, asked = reader._submit(
                self.pool, self.query, [],
                dict.fromkeys((v.id for v in vms if v.running),
                              INSTANCES_MODE_KINDS))
        by_future = {p.future: p for p in self.pending}
        for future in futures.as_completed(by_future):
            chunk, why = self._screen(by_future[future], infos, placed,
                                      margin_pct)
            host.update(chunk)
            screened.update(why)
            pending, chunk_asked = reader._submit(
                self.pool, self.query, [],
                {v.id: _vm_kinds(reasons, v) for name, reasons in why.items()
                 for v in placed[name]})
            stage2 += pending
            asked.update(chunk_asked)
        vm, _ = reader._collect(stage2, self.query)
        mode = 'host_meters' if host else 'instances'
        unread = {i: frozenset(model.VM_KINDS) - kinds
                  for i, kinds in asked.items()}
        obs = model.Observations(
            now=self.now, window=th.window, granularity=th.granularity,
            vm=vm, host=host, meters=reader.meters.names(),
            requests=reader.requests - self.first, mode=mode,
            screened=screened if host else {},
            unread={i: kinds for i, kinds in unread.items() if kinds})
        LOG.debug("Gnocchi (%s): host meters of %d hosts, meters of %d "
                  "instances on %d screened hosts, %d requests", mode,
                  len(host), len(vm), len(screened), obs.requests)
        return obs

    def _screen(self, request, infos, placed, margin_pct):
        """One host request's series, and its hosts that need VM reads."""
        _, chunk = self.reader._collect([request], self.query)
        stage1 = model.Observations(
            now=self.now, window=self.thresholds.window,
            granularity=self.thresholds.granularity, host=chunk,
            meters=self.reader.meters.names())
        names = [n for n in request.asked if n in infos]
        why = detect.screen([infos[n] for n in names],
                            [v for n in names for v in placed[n]], stage1,
                            self.thresholds, margin_pct)
        return chunk, why


def _vm_kinds(reasons, vm):
    """The kinds to read of ``vm``, on a host screened for ``reasons``.

    Its dirty rate (:data:`~secmig.hotspot.model.COST_KINDS`), the kinds
    of its host's reasons, its resident memory on a host that may swap
    (the relief), and on a saturated link its dropped packets if it
    expects bandwidth that way (only a shortfall reads them).
    """
    kinds = set(model.COST_KINDS)
    for reason in reasons:
        kind, why = reason.split(':', 1)
        kinds.update(model.vm_kinds(kind))
        if kind == 'swap_out':
            kinds.add('resident')
        if why == 'link_saturated' and getattr(vm, _EXPECTED[kind]):
            kinds.add(_DROPS[kind])
    return frozenset(kinds)


def _merge_subsets(by_kinds):
    """``{kinds: ids}`` with each set of kinds read with its superset.

    The ids of a set that is part of another wanted set join the
    smallest such set: a few more series of those VMs cost Gnocchi about
    what another request over them would, and the instance requests of
    one host request stay at two (their kinds are a part of ``cpu``,
    ``resident`` and ``dirty``, and ``dirty``, when named, is in all).
    """
    merged = {}
    for kinds in sorted(by_kinds, key=lambda k: (-len(k), sorted(k))):
        into = min((m for m in merged if kinds < m),
                   key=lambda m: (len(m), sorted(m)), default=kinds)
        merged.setdefault(into, []).extend(by_kinds[kinds])
    return {kinds: sorted(ids) for kinds, ids in merged.items()}


def _by_owner(answer, measures, attribute):
    """``(attribute value, [metrics of each resource])``, by owner.

    ``answer`` was asked with ``details``; each resource's ``attribute``
    (its host, its instance) comes from the references.
    """
    owner = {r['id']: r.get(attribute)
             for r in answer.get('references', ())}
    members = collections.defaultdict(list)
    for rid, metrics in measures:
        members[owner.get(rid)].append(metrics)
    return ((key, group) for key, group in members.items()
            if key is not None)


def _points(metrics, name, stamps):
    """One metric's ``mean`` series as ``[(epoch, value)]`` (maybe []).

    ``stamps`` caches the epochs of the answer's timestamps (its series
    share them).
    """
    points = metrics.get(name, {}).get('mean') or ()
    return [(stamps.get(ts) or _epoch(ts, stamps), _number(value))
            for ts, _, value in points]


def _epoch(stamp, stamps):
    if type(stamp) is not datetime.datetime:
        raise ValueError('%r is not a timestamp' % (stamp,))
    stamps[stamp] = epoch = stamp.timestamp()
    return epoch


def _number(value):
    """``value`` if it is a finite number; raises ``ValueError``."""
    # bool is a subclass of int, not an instance of these exact types;
    # NaN and the infinities are not finite.
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError('%r is not a finite number' % (value,))
    return value


def _rates(points, scale, query):
    """A counter's per-second rates, times ``scale`` (see the module).

    Each rate is stamped with the later period; the period holding
    ``query.now`` is left out.
    """
    points = sorted(points)
    rates = []
    for (t1, v1), (t2, v2) in zip(points, points[1:]):
        if t2 + query.granularity > query.now:
            break
        if t2 > t1 and v2 >= v1:
            rates.append((t2, (v2 - v1) / (t2 - t1) * scale))
    return rates


def _transient(error):
    """True for a gnocchiclient error that may pass if asked again."""
    return isinstance(error, _TRANSIENT) or (
        isinstance(error.code, int) and error.code >= 500)


def _short(error):
    text = str(error)
    return text if len(text) <= 300 else text[:300] + '...'
