"""The demo's Watcher audit, in its own process.

Nova and Watcher cannot be imported into one Python process (both
register the global option ``host``), so the demo runs this module as
``python -m secmig.watcher.demo_step INPUT OUTPUT``. INPUT is JSON::

    {"hosts": [{"name", "vcpus", "memory_mb", "disk_gb"}],
     "vms": [{"id", "name", "host", "vcpus", "memory_mb", "disk_gb",
              "extra_specs", "project_id"}],
     "metrics": {"store": "gnocchi", "endpoint": URL}
              | {"store": "embedded", "vms": [SimVm fields],
                 "hosts": [...], "points": N, "granularity": S},
     "secmig": {"cert_dir", "host_cert_dir", "policy_file"},
     "credentials": {...}, "params": {...}, "now": EPOCH}

It builds Watcher's own compute model of those hosts and VMs, runs
:class:`secmig.watcher.strategy.SecureHotspot` on it against the metric
store, and writes OUTPUT: ``{"actions": [...], "requests": N,
"hotspots": [...]}`` with each action as Watcher's solution holds it
(``nop`` evidence decoded).
"""

import datetime
import json
import sys
import urllib.parse

from gnocchiclient import exceptions as gexc
from watcher import objects

objects.register_all()

from watcher.common import utils  # noqa: E402
from watcher.decision_engine.model import element  # noqa: E402
from watcher.decision_engine.model import model_root  # noqa: E402

from secmig import conf as secmig_conf  # noqa: E402
from secmig.demo import gnocchi  # noqa: E402
from secmig.demo import metrics  # noqa: E402
from secmig.watcher import strategy as strategy_mod  # noqa: E402


def build_model(hosts, vms):
    """Watcher's ``ModelRoot`` for the demo's hosts and VMs."""
    model = model_root.ModelRoot()
    for i, h in enumerate(hosts):
        model.add_node(element.ComputeNode(
            id=i, uuid='node-%s' % h['name'], hostname=h['name'],
            memory=h['memory_mb'], memory_mb_reserved=0, memory_ratio=1.0,
            disk=h['disk_gb'], disk_capacity=h['disk_gb'],
            disk_gb_reserved=0, disk_ratio=1.0, vcpus=h['vcpus'],
            vcpu_reserved=0, vcpu_ratio=1.0))
    for vm in vms:
        instance = element.Instance(
            uuid=vm['id'], name=vm['name'], memory=vm['memory_mb'],
            disk=vm['disk_gb'], vcpus=vm['vcpus'],
            project_id=vm['project_id'], metadata={},
            flavor_extra_specs=vm.get('extra_specs', {}), state='active',
            host=vm['host'], hypervisor_hostname=vm['host'])
        model.add_instance(instance)
        model.map_instance(instance,
                           model.get_node_by_uuid('node-%s' % vm['host']))
    return model


class EmbeddedAggregates(object):
    """gnocchiclient's ``aggregates.fetch`` over the embedded store.

    :class:`secmig.demo.metrics.EmbeddedMetricStore` answers the
    aggregates request as Gnocchi's HTTP API does; this gives it the
    client-side API the hotspot reader calls: the same URL and body, an
    error answer raised as gnocchiclient raises it, timestamps turned
    into datetimes.
    """

    def __init__(self, store):
        self.store = store

    def fetch(self, operations, search=None, resource_type='generic',
              start=None, granularity=None, details=False, **unused):
        url = 'v1/aggregates?' + urllib.parse.urlencode({
            'start': repr(start.timestamp()),
            'granularity': str(granularity),
            'details': 'true' if details else 'false'})
        response = self.store.aggregates(url, {
            'operations': operations, 'resource_type': resource_type,
            'search': search})
        answer = response.json()
        if response.status_code != 200:
            description = answer.get('description')
            error = (gexc.NotFound if response.status_code == 404
                     else gexc.ClientException)
            raise error(response.status_code, description)
        for metrics_ in answer['measures'].values():
            for aggregations in metrics_.values():
                for name, points in aggregations.items():
                    aggregations[name] = [
                        (datetime.datetime.fromisoformat(t), g, v)
                        for t, g, v in points]
        return answer


def metric_client(spec):
    """A gnocchiclient for a real Gnocchi, or the embedded store's."""
    if spec['store'] == 'gnocchi':
        from gnocchiclient.v1 import client
        return client.Client(session=gnocchi.basic_session(spec['endpoint']))
    store = metrics.EmbeddedMetricStore()
    store.load_cluster(spec['hosts'],
                       [gnocchi.SimVm(**v) for v in spec['vms']],
                       points=spec['points'],
                       granularity=spec['granularity'], now=spec['now'])
    return embedded_client(store)


def embedded_client(store):
    """The embedded store's client, with :class:`EmbeddedAggregates`."""
    client = store.client()
    client.aggregates = EmbeddedAggregates(store)
    return client


def run(spec):
    strategy = strategy_mod.SecureHotspot(
        config=utils.Struct(datasources=None, config_file=None))
    strategy._compute_model = build_model(spec['hosts'], spec['vms'])
    strategy.input_parameters = utils.Struct(spec['params'])
    conf = secmig_conf.new_conf()
    for key, group in (('cert_dir', 'pki'), ('policy_file', 'policy'),
                       ('host_cert_dir', 'watcher')):
        conf.set_override(key, spec['secmig'][key], group=group)
    strategy.secmig_conf = conf
    strategy.credentials = spec['credentials']
    strategy.history_source = lambda since: {}
    strategy.placement_source = dict
    strategy.clock = lambda: spec['now']
    strategy.gnocchi_client = metric_client(spec['metrics'])
    solution = strategy.execute()
    actions = strategy_mod.plain_actions(solution)
    hotspots = [{'host': h.host, 'condition': h.condition}
                for h in getattr(strategy.report, 'hotspots', ())]
    return {'actions': actions, 'requests': strategy.requests,
            'hotspots': hotspots}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit('usage: python -m secmig.watcher.demo_step INPUT OUTPUT')
    with open(argv[0]) as f:
        spec = json.load(f)
    result = run(spec)
    with open(argv[1], 'w') as f:
        json.dump(result, f, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == '__main__':
    sys.exit(main())
