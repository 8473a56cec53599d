"""Read what a hotspot audit needs from Gnocchi in a handful of requests.

:class:`AggregatesReader` takes a gnocchiclient v1 ``Client`` (the one
Watcher's datasource configuration builds) and sends ``POST
/v1/aggregates`` requests, each searching resources by id (or host name)
and answering for all of them at once, whatever the number of hosts and
VMs. The request kinds are:

1. instance CPU, ``(metric cpu rate:mean)`` (cumulative nanoseconds);
2. instance swap-out, ``(rateofchange (metric memory.swap.out mean))``
   (cumulative MiB, archived without a ``rate:`` method by Ceilometer);
3. network bytes of every ``instance_network_interface`` of those
   instances, both directions in one request, with ``details`` so the
   interface-to-instance mapping (attribute ``instance_id``) comes back
   with the measures;
4. host CPU per cent from ``nova_compute`` resources (a gauge), if any;
5. operator-provided cumulative host meters (network per direction,
   swap-out), if any, through ``rateofchange``.

Gnocchi's cost is per metric read, not per request, so
:meth:`AggregatesReader.observe` reads in two stages: the host meters of
every host (requests 4 and 5), then the VM meters (requests 1 to 3) of
the VMs on the hosts that :func:`secmig.hotspot.detect.screen` picks (a
host meter missing, a figure near a threshold, a saturated link). With
no host meter at all every VM is read, as :meth:`AggregatesReader.fetch`
does. Either way an audit sends at most five requests.

Values are converted to the units of :mod:`secmig.hotspot.model` (per
second). Like Watcher, the conversion of ``rate:mean`` assumes one sample
per granularity period (Ceilometer's polling interval equals the archive
policy granularity).

A metric that exists nowhere is not an error: its series are simply
absent and :func:`secmig.hotspot.detect.detect` reports them as gaps. An
unreachable Gnocchi, or any other error answer, raises
:class:`GnocchiQueryError` naming the request that failed.
"""

import dataclasses
import datetime
import logging
import time
import typing
import urllib.parse

from gnocchiclient import exceptions as gexc

from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model

LOG = logging.getLogger(__name__)
NS = 1e9


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
        for kind, name in self._host_cumulative() + [
                ('cpu_pct', self.host_cpu_pct)]:
            if name:
                names[('host', kind)] = name
        return names

    def _host_cumulative(self):
        return [('net_in', self.host_net_in), ('net_out', self.host_net_out),
                ('swap_out', self.host_swap_out)]

    def host_cumulative(self):
        return [(k, n) for k, n in self._host_cumulative() if n]


class AggregatesReader(object):
    """Fetch :class:`~secmig.hotspot.model.Observations` from Gnocchi.

    ``requests`` counts the HTTP requests sent by this reader since it
    was built (one per aggregates call, no retries).
    """

    def __init__(self, client, meters=None):
        self.client = client
        self.meters = meters or Meters()
        self.requests = 0
        self._dates = {}

    def fetch(self, instance_ids, hosts, window, granularity, now=None):
        """Return the observations of ``instance_ids`` and ``hosts``.

        Every meter of every instance and host, in at most five requests.
        Series cover ``[now - window - granularity, now]``; ``now``
        defaults to the current time (seconds since the epoch).
        """
        now = time.time() if now is None else now
        first = self.requests
        ids = sorted(set(instance_ids))
        hosts = sorted(set(hosts))
        query = _query(now, window, granularity)
        vm = {i: {} for i in ids}
        host = {h: {} for h in hosts}
        if ids:
            self._instances(vm, ids, query, granularity)
            self._interfaces(vm, ids, query, granularity)
        if hosts:
            self._hosts(host, hosts, query, granularity)
        obs = model.Observations(
            now=now, window=window, granularity=granularity,
            vm={k: v for k, v in vm.items() if v},
            host={k: v for k, v in host.items() if v},
            meters=self.meters.names(), requests=self.requests - first)
        LOG.debug("Gnocchi: %d instances, %d hosts in %d requests",
                  len(ids), len(hosts), obs.requests)
        return obs

    def observe(self, hosts, vms, thresholds, margin_pct=10.0, now=None):
        """Read host meters, then only the VMs that need reading.

        ``hosts`` and ``vms`` are :class:`~secmig.hotspot.model.HostInfo`
        and :class:`~secmig.hotspot.model.VmInfo` iterables (the
        inventory); ``thresholds`` a :class:`~secmig.hotspot.detect.
        Thresholds` (window, granularity, levels). Stage 1 reads every
        host's host meters (two requests); stage 2 reads the meters of
        the VMs placed, in the inventory, on the hosts
        :func:`~secmig.hotspot.detect.screen` returns (three requests,
        none if no host needs it). If no host has any host meter, every
        VM is read and ``mode`` is ``instances``; otherwise ``mode`` is
        ``host_meters`` and ``screened`` maps the hosts read to why.
        :func:`~secmig.hotspot.detect.detect` gives the same hotspots and
        gaps over either result.
        """
        now = time.time() if now is None else now
        hosts, vms = list(hosts), list(vms)
        window, granularity = thresholds.window, thresholds.granularity
        first = self.requests
        query = _query(now, window, granularity)
        names = sorted({h.name for h in hosts})
        host = {h: {} for h in names}
        if names:
            self._hosts(host, names, query, granularity)
        host = {k: v for k, v in host.items() if v}
        if host:
            mode = 'host_meters'
            stage1 = model.Observations(
                now=now, window=window, granularity=granularity, host=host,
                meters=self.meters.names())
            screened = detect.screen(hosts, vms, stage1, thresholds,
                                     margin_pct)
            ids = sorted({v.id for v in vms if v.host in screened})
        else:
            mode, screened = 'instances', {}
            ids = sorted({v.id for v in vms})
        vm = {i: {} for i in ids}
        if ids:
            self._instances(vm, ids, query, granularity)
            self._interfaces(vm, ids, query, granularity)
        obs = model.Observations(
            now=now, window=window, granularity=granularity,
            vm={k: v for k, v in vm.items() if v}, host=host,
            meters=self.meters.names(), requests=self.requests - first,
            mode=mode, screened=screened)
        LOG.debug("Gnocchi (%s): host meters of %d hosts, meters of %d "
                  "instances on %d screened hosts, %d requests", mode,
                  len(host), len(ids), len(screened), obs.requests)
        return obs

    # -- one method per request kind ----------------------------------

    def _instances(self, vm, ids, query, granularity):
        m = self.meters
        search = {'in': {'id': ids}}
        answer = self._post('(metric %s %s)' % (m.cpu, m.cpu_aggregation),
                            m.instance_type, search, query)
        for rid, series in self._series(answer, m.cpu, m.cpu_aggregation):
            vm[rid]['cpu'] = _scale(series, 1.0 / (granularity * NS))
        answer = self._post('(rateofchange (metric %s mean))' % m.swap_out,
                            m.instance_type, search, query)
        for rid, series in self._series(answer, m.swap_out, 'mean'):
            vm[rid]['swap_out'] = _scale(series, 1.0 / granularity)

    def _interfaces(self, vm, ids, query, granularity):
        m = self.meters
        ops = '(metric (%s %s) (%s %s))' % (m.net_in, m.net_aggregation,
                                            m.net_out, m.net_aggregation)
        answer = self._post(ops, m.interface_type,
                            {'in': {'instance_id': ids}}, query, details=True)
        owner = self._owners(answer, 'instance_id')
        for kind, name in (('net_in', m.net_in), ('net_out', m.net_out)):
            sums = {}
            for rid, series in self._series(answer, name, m.net_aggregation):
                iid = owner.get(rid)
                if iid in vm:
                    _add(sums.setdefault(iid, {}), series)
            for iid, totals in sums.items():
                vm[iid][kind] = _scale(sorted(totals.items()),
                                       1.0 / granularity)

    def _hosts(self, host, hosts, query, granularity):
        m = self.meters
        search = {'in': {m.host_attribute: hosts}}
        if m.host_cpu_pct:
            answer = self._post('(metric %s mean)' % m.host_cpu_pct,
                                m.host_type, search, query, details=True)
            self._store_hosts(host, answer, m.host_cpu_pct, 'cpu_pct', 1.0)
        cumulative = m.host_cumulative()
        if cumulative:
            ops = '(rateofchange (metric %s))' % ' '.join(
                '(%s mean)' % name for _, name in cumulative)
            answer = self._post(ops, m.host_type, search, query,
                                details=True)
            for kind, name in cumulative:
                self._store_hosts(host, answer, name, kind, 1.0 / granularity)

    def _store_hosts(self, host, answer, name, kind, factor):
        owner = self._owners(answer, self.meters.host_attribute)
        for rid, series in self._series(answer, name, 'mean'):
            hostname = owner.get(rid)
            if hostname in host:
                host[hostname][kind] = _scale(series, factor)

    # -- HTTP and parsing -----------------------------------------------

    def _post(self, operations, resource_type, search, query, details=False):
        """One aggregates request; None when no resource has the metric."""
        params = dict(query, details='true' if details else 'false')
        url = 'v1/aggregates?' + urllib.parse.urlencode(params)
        body = {'operations': operations, 'resource_type': resource_type,
                'search': search}
        self.requests += 1
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
            return resp.json()
        description = _description(resp)
        if resp.status_code == 404 and isinstance(description, str) and (
                'does not exist' in description):
            LOG.debug("Gnocchi has no data for %s: %s", what, description)
            return None
        raise GnocchiQueryError(
            'Gnocchi answered HTTP %d to %s: %s'
            % (resp.status_code, what, description))

    def _series(self, answer, name, aggregation):
        """Yield ``(resource id, series)`` for one metric of an answer."""
        if not answer:
            return
        for rid, metrics in answer['measures'].items():
            points = metrics.get(name, {}).get(aggregation)
            if points:
                yield rid, [(self._date(ts), value)
                            for ts, _, value in points]

    def _date(self, text):
        stamp = self._dates.get(text)
        if stamp is None:
            stamp = datetime.datetime.fromisoformat(text).timestamp()
            self._dates[text] = stamp
        return stamp

    @staticmethod
    def _owners(answer, attribute):
        if not answer:
            return {}
        return {r['id']: r.get(attribute)
                for r in answer.get('references', ())}


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


def _scale(series, factor):
    """Per-second values; negative rates (counter resets) are dropped."""
    return tuple((t, v * factor) for t, v in series if v >= 0)


def _add(totals, series):
    for t, v in series:
        if v >= 0:
            totals[t] = totals.get(t, 0.0) + v
