"""The demo's metrics: a hotspot, in Gnocchi or in an embedded store.

:func:`demo_vms` turns the demo's servers into simulated Ceilometer
meters (:class:`secmig.demo.gnocchi.SimVm`). They go to a real Gnocchi
(:func:`secmig.demo.gnocchi.load_cluster`) when PostgreSQL is reachable,
else to :class:`EmbeddedMetricStore`: **embedded, not Gnocchi**, an
in-memory store that answers the ``POST /v1/aggregates`` requests
:class:`secmig.hotspot.gnocchi_query.AggregatesReader` sends (the same
URL, body and answer layout), computing ``mean`` and ``rate:mean`` over
the same Ceilometer samples. It implements only those requests.
"""

import collections
import datetime
import re
import threading
import urllib.parse

from secmig.demo import gnocchi

LABEL_GNOCCHI = 'Gnocchi 4.7 (real: PostgreSQL indexer, file storage)'
LABEL_EMBEDDED = 'embedded, not Gnocchi (in-memory aggregates store)'


def demo_vms(servers, hot_host, hot_cpu=1.8, cool_cpu=0.2):
    """SimVms for ``servers`` (``[(id, host)]``).

    VMs on ``hot_host`` use ``hot_cpu`` cores each, the others
    ``cool_cpu``; every VM sends and receives 1 MB/s.
    """
    return [gnocchi.SimVm(sid, host,
                          cpu=hot_cpu if host == hot_host else cool_cpu,
                          net_in=1e6, net_out=1e6)
            for sid, host in servers]


class _Response:
    def __init__(self, status_code, body):
        self.status_code = status_code
        self._body = body
        self.text = repr(body)

    def json(self):
        return self._body


class _Api:
    def __init__(self, store):
        self.store = store

    def post(self, url, json=None, raise_exc=False, headers=None):
        return self.store.aggregates(url, json)


class EmbeddedMetricStore:
    """In-memory resources and samples answering Gnocchi aggregates.

    ``client()`` returns an object with gnocchiclient's ``api.post``, the
    only call the hotspot reader makes. ``requests`` counts the
    aggregates requests answered.
    """

    label = LABEL_EMBEDDED

    def __init__(self):
        #: resource id -> (type, attributes, {metric: [(epoch, value)]})
        self.resources = {}
        self.requests = 0
        self._lock = threading.Lock()

    def client(self):
        api = _Api(self)
        return type('EmbeddedClient', (), {'api': api})()

    # -- loading, as Ceilometer would publish ----------------------------

    def add(self, rid, rtype, attributes, measures):
        metrics = {name: [(ts.timestamp(), v) for ts, v in points]
                   for name, points in measures.items()}
        self.resources[rid] = (rtype, dict(attributes, id=rid), metrics)

    def load_cluster(self, hosts, vms, points=10, granularity=60, now=None):
        """The same resources and samples as :func:`gnocchi.load_cluster`.

        Returns the aligned end time (epoch s).
        """
        for host in hosts:
            self.add('%s_%s' % (host, host), 'nova_compute',
                     {'host_name': host}, {})
        end, stamps = gnocchi.sample_times(points, granularity, now)
        for vm in vms:
            nic = 'instance-%s-tap%%d' % vm.id
            measures = gnocchi.vm_measures(vm, stamps, granularity,
                                           lambda n, nic=nic: nic % n)
            for rid, metrics in measures.items():
                if rid == vm.id:
                    self.add(rid, 'instance', {'host': vm.host}, metrics)
                else:
                    self.add(rid, 'instance_network_interface',
                             {'instance_id': vm.id,
                              'name': rid.rsplit('-', 1)[1]}, metrics)
        return end

    # -- the aggregates API ---------------------------------------------

    def aggregates(self, url, body):
        with self._lock:
            self.requests += 1
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
        start = float(query['start'])
        granularity = float(query['granularity'])
        (attribute, wanted), = body['search']['in'].items()
        wanted = set(wanted)
        try:
            series = _parse(body['operations'])
        except ValueError as e:
            return _Response(400, {'description': str(e)})
        measures, references = {}, []
        for rid, (rtype, attrs, metrics) in sorted(self.resources.items()):
            if rtype != body['resource_type'] or (
                    attrs.get(attribute) not in wanted):
                continue
            out = {}
            for name, aggregation in series:
                if name not in metrics:
                    continue
                points = _aggregate(metrics[name], aggregation, granularity)
                # Like Gnocchi, from the period that holds ``start``.
                out.setdefault(name, {})[aggregation] = [
                    (_iso(t), granularity, v) for t, v in points
                    if t + granularity > start]
            if out:
                measures[rid] = out
                references.append(attrs)
        if not measures:
            # Gnocchi's wording, which the reader treats as "no data".
            return _Response(404, {'description': 'Metric %s does not exist'
                                   % ', '.join(n for n, _ in series)})
        answer = {'measures': measures}
        if query.get('details') == 'true':
            answer['references'] = references
        return _Response(200, answer)


def _parse(operations):
    """``[(metric, aggregation)]`` of the reader's one form.

    ``(metric (NAME AGG) ...)``.
    """
    text = operations.strip()
    many = re.fullmatch(r'\(metric\s+((?:\([^()]+\)\s*)+)\)', text)
    if many:
        return [tuple(p.split()) for p in
                re.findall(r'\(([^()]+)\)', many.group(1))]
    raise ValueError('operations not served by the embedded store: %s'
                     % operations)


def _aggregate(samples, aggregation, granularity):
    """Period means, or (``rate:mean``) their successive differences."""
    buckets = collections.OrderedDict()
    for t, v in sorted(samples):
        buckets.setdefault(t // granularity * granularity, []).append(v)
    means = [(t, sum(vs) / len(vs)) for t, vs in buckets.items()]
    if aggregation == 'rate:mean':
        return _rate(means)
    if aggregation == 'mean':
        return means
    raise ValueError('aggregation %s not served' % aggregation)


def _rate(points):
    return [(t2, v2 - v1) for (_, v1), (t2, v2) in zip(points, points[1:])]


def _iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).isoformat()
