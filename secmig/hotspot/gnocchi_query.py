"""Read what a hotspot audit needs from Gnocchi in a handful of requests.

:class:`AggregatesReader` takes a gnocchiclient v1 ``Client`` (the one
Watcher's datasource configuration builds) and sends ``POST
/v1/aggregates`` requests, each searching resources by id (or host name)
and answering for all of them at once, whatever the number of hosts and
VMs. The request kinds are:

1. instance CPU and swap-out in one request, ``(metric (cpu rate:mean)
   (memory.swap.out mean))`` (cumulative nanoseconds and MiB; the swap
   counter is archived without a ``rate:`` method by Ceilometer, so its
   successive differences are taken here, as ``rateofchange`` would);
2. network bytes of every ``instance_network_interface`` of those
   instances, both directions in one request, with ``details`` so the
   interface-to-instance mapping (attribute ``instance_id``) comes back
   with the measures;
3. the host meters on ``nova_compute`` resources, with ``details`` for
   their host names: the CPU per cent gauge and the operator-provided
   cumulative network and swap-out counters (differences taken here), if
   any are named.

Gnocchi's cost is per metric read, not per request, so
:meth:`AggregatesReader.observe` reads in two stages: the host meters of
every host, then the VM meters of the VMs on the hosts that
:func:`secmig.hotspot.detect.screen` picks (a host meter missing, a
figure near a threshold, a saturated link), of the kinds each host was
picked for; :meth:`AggregatesReader.complete` reads the rest of some
VMs later, in two requests. With no host meter at all
every VM is read, as :meth:`AggregatesReader.fetch` does. A caller can
send stage 1 first (:meth:`AggregatesReader.begin`) and build its
inventory while Gnocchi answers.

Up to ``concurrency`` requests are in flight at once: the host list is
split into that many requests, and the VM requests run side by side, so
a Gnocchi API with several worker processes (``gnocchi-api`` starts 1.5
per CPU) answers an audit in a fraction of the serial time. ``fetch``
sends at most ``concurrency + 2`` requests, ``observe`` at most four
times ``concurrency`` (three VM requests per host request: CPU, swap-out
and network).

Values are converted to the units of :mod:`secmig.hotspot.model` (per
second). Like Watcher, the conversion of ``rate:mean`` assumes one sample
per granularity period (Ceilometer's polling interval equals the archive
policy granularity).

A metric that exists nowhere is not an error: its series are simply
absent and :func:`secmig.hotspot.detect.detect` reports them as gaps. An
unreachable Gnocchi, or any other error answer, raises
:class:`GnocchiQueryError` naming the request that failed; so does an
answer that is not what the request asked for (``gnocchi_bad_answer``:
not JSON, another shape, a value that is not a finite number, a
timestamp that is not ISO 8601), never another exception.
"""

import collections
from concurrent import futures
import dataclasses
import datetime
import functools
import logging
import math
import time
import typing
import urllib.parse

from gnocchiclient import exceptions as gexc

from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model

LOG = logging.getLogger(__name__)
NS = 1e9
#: The VM kinds each of the two VM requests reads.
INSTANCE_KINDS = ('cpu', 'swap_out')
INTERFACE_KINDS = ('net_in', 'net_out')


class GnocchiQueryError(exception.SecmigError):
    """Gnocchi could not answer a hotspot query."""

    code = 'gnocchi_error'


@dataclasses.dataclass(frozen=True)
class Meters:
    """Metric and resource names (Ceilometer's by default).

    Host-level meters set to ``None`` are not queried. The host network
    and swap meters are not produced by Ceilometer: name the meters an
    operator's own pollster publishes on ``nova_compute`` resources.
    """

    instance_type: str = 'instance'
    interface_type: str = 'instance_network_interface'
    host_type: str = 'nova_compute'
    host_attribute: str = 'host_name'
    cpu: str = 'cpu'
    cpu_aggregation: str = 'rate:mean'
    swap_out: str = 'memory.swap.out'
    net_in: str = 'network.incoming.bytes'
    net_out: str = 'network.outgoing.bytes'
    net_aggregation: str = 'rate:mean'
    host_cpu_pct: typing.Optional[str] = 'compute.node.cpu.percent'
    host_net_in: typing.Optional[str] = 'host.network.incoming.bytes'
    host_net_out: typing.Optional[str] = 'host.network.outgoing.bytes'
    host_swap_out: typing.Optional[str] = 'host.memory.swap.out'

    def names(self):
        """``{('vm'|'host', kind): metric name}`` for evidence."""
        names = {('vm', 'cpu'): self.cpu, ('vm', 'swap_out'): self.swap_out,
                 ('vm', 'net_in'): self.net_in,
                 ('vm', 'net_out'): self.net_out}
        for kind, name in self.host_gauges() + self.host_cumulative():
            names[('host', kind)] = name
        return names

    def host_gauges(self):
        """``[(kind, metric name)]`` of the host gauges queried."""
        return [('cpu_pct', self.host_cpu_pct)] if self.host_cpu_pct else []

    def host_cumulative(self):
        """``[(kind, metric name)]`` of the host counters queried."""
        return [(k, n) for k, n in (('net_in', self.host_net_in),
                                    ('net_out', self.host_net_out),
                                    ('swap_out', self.host_swap_out)) if n]

    def host_names(self):
        """Names of every host meter queried."""
        return [n for _, n in self.host_gauges() + self.host_cumulative()]


class AggregatesReader(object):
    """Fetch :class:`~secmig.hotspot.model.Observations` from Gnocchi.

    ``requests`` counts the HTTP requests sent by this reader since it
    was built (one per aggregates call, no retries). ``concurrency``
    (at least 1) bounds the requests in flight at once.
    """

    def __init__(self, client, meters=None, concurrency=2):
        if concurrency < 1:
            raise ValueError('concurrency must be at least 1')
        self.client = client
        self.meters = meters or Meters()
        self.concurrency = concurrency
        self.requests = 0
        self._dates = {}

    def fetch(self, instance_ids, hosts, window, granularity, now=None):
        """Return the observations of ``instance_ids`` and ``hosts``.

        Every meter of every instance and host, in at most
        ``concurrency + 2`` requests. Series cover ``[now - window -
        granularity, now]``; ``now`` defaults to the current time
        (seconds since the epoch).
        """
        now = time.time() if now is None else now
        first = self.requests
        query = _query(now, window, granularity)
        ids = sorted(set(instance_ids))
        with futures.ThreadPoolExecutor(self.concurrency) as pool:
            pending, _ = self._submit(pool, query, sorted(set(hosts)),
                                      dict.fromkeys(ids, model.VM_KINDS))
            vm, host = self._collect(pending, granularity)
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
        query = _query(observations.now, observations.window,
                       observations.granularity)
        with futures.ThreadPoolExecutor(self.concurrency) as pool:
            pending, _ = self._submit(pool, query, [],
                                      dict.fromkeys(wanted, model.VM_KINDS))
            vm, _ = self._collect(pending, observations.granularity)
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
        request per kind of :data:`INSTANCE_KINDS` (one for both when the
        same ids need both), to the ids that need it, and one interface
        request (:data:`INTERFACE_KINDS`) to the ids that need either
        direction, for every direction any of them needs. The host
        requests split ``hosts`` into at most ``concurrency`` parts.
        Returns the pending requests for :meth:`_collect` and ``{id:
        frozenset of the kinds asked}``.
        """
        calls = []  # (request, its argument, parser, host series?)
        asked = collections.defaultdict(frozenset)
        groups = []  # (request, parser, ids, kinds)
        by_ids = {}  # the instance kinds to read, by the ids needing them
        for kind in INSTANCE_KINDS:
            ids = tuple(sorted(i for i, kinds in vms.items() if kind in kinds))
            if ids:
                by_ids.setdefault(ids, []).append(kind)
        for ids, kinds in by_ids.items():
            groups.append((self._instances, self._instance_series, ids,
                           tuple(kinds)))
        ids = tuple(sorted(i for i, kinds in vms.items()
                           if set(kinds) & set(INTERFACE_KINDS)))
        if ids:
            groups.append((self._interfaces, self._interface_series, ids,
                           tuple(k for k in INTERFACE_KINDS
                                 if any(k in vms[i] for i in ids))))
        for request, parse, ids, kinds in groups:
            for i in ids:
                asked[i] |= frozenset(kinds)
            calls.append((functools.partial(request, kinds=kinds),
                          list(ids), parse, False))
        if hosts and self.meters.host_names():
            size = -(-len(hosts) // self.concurrency)  # ceiling division
            calls += [(self._hosts, hosts[i:i + size], self._host_series,
                       True) for i in range(0, len(hosts), size)]
        self.requests += len(calls)
        return [_Pending(pool.submit(request, arg, query), arg, parse,
                         of_hosts)
                for request, arg, parse, of_hosts in calls], dict(asked)

    @staticmethod
    def _collect(pending, granularity):
        """``(vm, host)`` series of answered requests; raises their errors.

        Entries without any series are left out.
        """
        vm, host = {}, {}
        for request in pending:
            target = host if request.of_hosts else vm
            for key, kind, series in request.series(granularity):
                target.setdefault(key, {})[kind] = series
        return vm, host

    # -- one request and one parser per request kind --------------------

    def _instances(self, ids, query, kinds=INSTANCE_KINDS):
        m = self.meters
        ops = {'cpu': '(%s %s)' % (m.cpu, m.cpu_aggregation),
               'swap_out': '(%s mean)' % m.swap_out}
        return self._post('(metric %s)' % ' '.join(ops[k] for k in kinds),
                          m.instance_type, {'in': {'id': ids}}, query)

    def _instance_series(self, answer, granularity):
        """Yield ``(instance id, kind, series)``: CPU and swap-out."""
        m = self.meters
        for rid, metrics in self._measures(answer):
            series = self._points(metrics, m.cpu, m.cpu_aggregation)
            if series:
                yield rid, 'cpu', _scale(series, 1.0 / (granularity * NS))
            series = self._points(metrics, m.swap_out, 'mean')
            if series:
                yield rid, 'swap_out', _scale(_diff(series),
                                              1.0 / granularity)

    def _interfaces(self, ids, query, kinds=INTERFACE_KINDS):
        m = self.meters
        names = {'net_in': m.net_in, 'net_out': m.net_out}
        return self._post('(metric %s)' % ' '.join(
            '(%s %s)' % (names[k], m.net_aggregation) for k in kinds),
            m.interface_type, {'in': {'instance_id': ids}}, query,
            details=True)

    def _interface_series(self, answer, granularity):
        """Yield ``(instance id, kind, series)``: its interfaces' sums."""
        m = self.meters
        for iid, members in self._by_owner(answer, 'instance_id'):
            for kind, name in (('net_in', m.net_in), ('net_out', m.net_out)):
                totals = {}
                for _, metrics in members:
                    _add(totals, self._points(metrics, name,
                                              m.net_aggregation))
                if totals:
                    yield iid, kind, _scale(sorted(totals.items()),
                                            1.0 / granularity)

    def _hosts(self, hosts, query):
        m = self.meters
        return self._post('(metric %s)' % ' '.join('(%s mean)' % n
                                                   for n in m.host_names()),
                          m.host_type, {'in': {m.host_attribute: hosts}},
                          query, details=True)

    def _host_series(self, answer, granularity):
        """Yield ``(host name, kind, series)`` of the host meters."""
        m = self.meters
        wanted = ([(kind, name, 1.0, False) for kind, name in
                   m.host_gauges()]
                  + [(kind, name, 1.0 / granularity, True)
                     for kind, name in m.host_cumulative()])
        for host, members in self._by_owner(answer, m.host_attribute):
            # One nova_compute resource per host; should an operator
            # keep several, the last one read wins.
            for _, metrics in members:
                for kind, name, factor, counter in wanted:
                    series = self._points(metrics, name, 'mean')
                    if series:
                        yield host, kind, _scale(
                            _diff(series) if counter else series, factor)

    # -- HTTP and parsing -----------------------------------------------

    def _post(self, operations, resource_type, search, query, details=False):
        """One aggregates request; None when no resource has the metric.

        With ``details`` the answer lists the resources found
        (``references``): Gnocchi serves that about 10 % faster than
        ``groupby`` for the same answer.
        """
        params = dict(query, details='true' if details else 'false')
        url = 'v1/aggregates?' + urllib.parse.urlencode(params)
        body = {'operations': operations, 'resource_type': resource_type,
                'search': search}
        what = '%s on %s resources' % (operations, resource_type)
        try:
            resp = self.client.api.post(
                url, json=body, raise_exc=False,
                headers={'Accept': 'application/json'})
        except (gexc.ConnectionFailure, gexc.ConnectionTimeout,
                gexc.UnknownConnectionError, gexc.SSLError) as e:
            raise GnocchiQueryError(
                'Gnocchi unreachable while reading %s: %s' % (what, e),
                code='gnocchi_unreachable')
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as e:
                raise GnocchiQueryError(
                    'Gnocchi answered %s with something other than JSON: %s'
                    % (what, e), code='gnocchi_bad_answer')
        description = _description(resp)
        if resp.status_code == 404 and isinstance(description, str) and (
                'does not exist' in description):
            LOG.debug("Gnocchi has no data for %s: %s", what, description)
            return None
        raise GnocchiQueryError(
            'Gnocchi answered HTTP %d to %s: %s'
            % (resp.status_code, what, description))

    @staticmethod
    def _measures(answer):
        """``(resource id, {metric: {aggregation: points}})`` pairs."""
        return answer['measures'].items() if answer else ()

    def _by_owner(self, answer, attribute):
        """``(attribute value, measures pairs)``: resources by owner.

        ``answer`` was asked with ``details``; each resource's
        ``attribute`` (its host, its instance) comes from the references.
        """
        if not answer:
            return
        owner = {r['id']: r.get(attribute)
                 for r in answer.get('references', ())}
        members = collections.defaultdict(list)
        for rid, metrics in self._measures(answer):
            members[owner.get(rid)].append((rid, metrics))
        for key, pairs in members.items():
            if key is not None:
                yield key, pairs

    def _points(self, metrics, name, aggregation):
        """One metric's series as ``[(epoch, value)]`` (maybe empty)."""
        points = metrics.get(name, {}).get(aggregation) or ()
        return [(self._date(ts), _number(value)) for ts, _, value in points]

    def _date(self, text):
        # Called from one thread: answers are parsed after the requests.
        stamp = self._dates.get(text)
        if stamp is None:
            stamp = datetime.datetime.fromisoformat(text).timestamp()
            self._dates[text] = stamp
        return stamp


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A request sent: its future, what it asked for, how to read it."""

    future: futures.Future
    asked: list
    parse: typing.Callable
    of_hosts: bool

    def series(self, granularity):
        """Wait for the answer; return its ``(key, kind, series)`` list.

        Raises the request's :class:`GnocchiQueryError`, or one coded
        ``gnocchi_bad_answer`` if the answer is not shaped as asked.
        """
        answer = self.future.result()
        try:
            return list(self.parse(answer, granularity))
        except (AttributeError, IndexError, KeyError, OverflowError,
                TypeError, ValueError) as e:
            raise GnocchiQueryError(
                'Gnocchi answered a request about %d %s with a malformed '
                'answer (%s: %s)' % (len(self.asked),
                                     'hosts' if self.of_hosts else 'VMs',
                                     type(e).__name__, e),
                code='gnocchi_bad_answer')


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
        self.query = _query(now, thresholds.window, thresholds.granularity)
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
        inventory). Stage 2 reads the meters of the VMs placed, in the
        inventory, on the hosts :func:`~secmig.hotspot.detect.screen`
        returns (none if no host needs it), of the kinds each host was
        screened for (a host near its CPU threshold: its VMs' CPU, not
        their network): as each host request is answered, its hosts are
        screened and their VMs' requests sent, so an audit sends at most
        four requests per unit of ``concurrency``. ``unread`` lists the
        kinds left out per VM; :meth:`AggregatesReader.complete` reads
        them. If no host has any host meter, every VM is read and
        ``mode`` is ``instances``; otherwise ``mode`` is ``host_meters``
        and ``screened`` maps the hosts read to why.
        :func:`~secmig.hotspot.detect.detect` gives the same hotspots and
        gaps over either result.
        """
        reader, th = self.reader, self.thresholds
        hosts, vms = list(hosts), list(vms)
        granularity = th.granularity
        infos = {h.name: h for h in hosts}
        placed = collections.defaultdict(list)
        for v in vms:
            placed[v.host].append(v)
        host, screened, stage2, asked = {}, {}, [], {}
        if not self.pending:  # no host meter is named: read every VM
            stage2, asked = reader._submit(
                self.pool, self.query, [],
                dict.fromkeys((v.id for v in vms), model.VM_KINDS))
        by_future = {p.future: p for p in self.pending}
        for future in futures.as_completed(by_future):
            chunk, why = self._screen(by_future[future], infos, placed,
                                      margin_pct)
            host.update(chunk)
            screened.update(why)
            pending, chunk_asked = reader._submit(
                self.pool, self.query, [],
                {v.id: _vm_kinds(reasons) for name, reasons in why.items()
                 for v in placed[name]})
            stage2 += pending
            asked.update(chunk_asked)
        vm, _ = reader._collect(stage2, granularity)
        mode = 'host_meters' if host else 'instances'
        unread = {i: frozenset(model.VM_KINDS) - kinds
                  for i, kinds in asked.items()}
        obs = model.Observations(
            now=self.now, window=th.window, granularity=granularity, vm=vm,
            host=host, meters=reader.meters.names(),
            requests=reader.requests - self.first, mode=mode,
            screened=screened if host else {},
            unread={i: kinds for i, kinds in unread.items() if kinds})
        LOG.debug("Gnocchi (%s): host meters of %d hosts, meters of %d "
                  "instances on %d screened hosts, %d requests", mode,
                  len(host), len(vm), len(screened), obs.requests)
        return obs

    def _screen(self, request, infos, placed, margin_pct):
        """One host request's series, and its hosts that need VM reads."""
        _, chunk = self.reader._collect([request], self.thresholds
                                        .granularity)
        stage1 = model.Observations(
            now=self.now, window=self.thresholds.window,
            granularity=self.thresholds.granularity, host=chunk,
            meters=self.reader.meters.names())
        names = [n for n in request.asked if n in infos]
        why = detect.screen([infos[n] for n in names],
                            [v for n in names for v in placed[n]], stage1,
                            self.thresholds, margin_pct)
        return chunk, why


def _vm_kinds(reasons):
    """The VM kinds to read for a host screened for ``reasons``."""
    return frozenset(model.vm_kind(reason.split(':', 1)[0])
                     for reason in reasons)


def _query(now, window, granularity):
    return {'start': '%.0f' % (now - window - granularity),
            'granularity': str(granularity)}


def _description(resp):
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        return body.get('description', body)
    return body


def _number(value):
    """``value`` if it is a finite number; raises ``ValueError``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)):
        raise ValueError('%r is not a finite number' % (value,))
    return value


def _scale(series, factor):
    """Per-second values; negative rates (counter resets) are dropped."""
    return tuple((t, v * factor) for t, v in series if v >= 0)


def _diff(series):
    """Successive differences of a counter, as Gnocchi's ``rateofchange``.

    Each difference is stamped with the later point's time.
    """
    return [(t2, v2 - v1) for (_, v1), (t2, v2) in zip(series, series[1:])]


def _add(totals, series):
    for t, v in series:
        if v >= 0:
            totals[t] = totals.get(t, 0.0) + v
