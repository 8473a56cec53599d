"""Scenarios for the Watcher strategy: Watcher's model, real PKI, policy.

Imports ``watcher.tests.unit`` first (see the module docstring of
tests/watcher/__init__.py and facts.md: Watcher's oslo.service backend
must be chosen by its test package before other Watcher modules load).
"""

import os
import shutil
import tempfile

from watcher.tests.unit import base as _watcher_test_base  # noqa: F401

from watcher.common import clients
from watcher.common import utils
from watcher.decision_engine.model import element
from watcher.decision_engine.model import model_root

from secmig import conf as secmig_conf
from secmig.pki import host as host_files
from secmig.watcher import strategy as strategy_mod
from tests import pkiutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, 'tests', 'etc', 'migration-policy.yaml')
WATCHER_CREDENTIALS = {'user_id': 'watcher-id', 'user_name': 'watcher',
                       'user_domain_id': 'default',
                       'project_id': 'service', 'roles': ['service']}
PROJECT = '91fffe30-78a0-4152-acd2-8310ff274dc9'


def build_model(hosts, vms, node_vcpus=4, node_memory=16384, node_disk=500,
                memory=None):
    """A Watcher ``ModelRoot``: ``hosts`` names, ``vms`` SimVm-like items.

    ``memory`` maps a host to its memory (MB) when it differs. A VM may
    carry ``vcpus``, ``memory_mb``, ``extra_specs``, ``metadata`` and
    ``state`` attributes; defaults are 1 vCPU, 1024 MB, active.
    """
    memory = memory or {}
    model = model_root.ModelRoot()
    for i, name in enumerate(hosts):
        model.add_node(element.ComputeNode(
            id=i, uuid='node-%s' % name, hostname=name,
            memory=memory.get(name, node_memory), memory_mb_reserved=0,
            memory_ratio=1.0, disk=node_disk, disk_capacity=node_disk,
            disk_gb_reserved=0, disk_ratio=1.0, vcpus=node_vcpus,
            vcpu_reserved=0, vcpu_ratio=1.0))
    for vm in vms:
        instance = element.Instance(
            uuid=vm.id, name='vm-%s' % vm.id[:8],
            memory=getattr(vm, 'memory_mb', 1024), disk=10,
            vcpus=getattr(vm, 'vcpus', 1), project_id=PROJECT,
            metadata=getattr(vm, 'metadata', {}),
            flavor_extra_specs=getattr(vm, 'extra_specs', {}),
            state=getattr(vm, 'state', 'active'), host=vm.host,
            hypervisor_hostname=vm.host)
        model.add_instance(instance)
        model.map_instance(instance, model.get_node_by_uuid(
            'node-%s' % vm.host))
    return model


class Site(object):
    """A CA, enrolled hosts, the host certificate directory, the policy."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='secmig-watcher-')
        self.pki = pkiutil.TestPKI(os.path.join(self.dir, 'pki'))
        self.cert_dir = os.path.join(self.dir, 'trust')
        self.host_cert_dir = os.path.join(self.dir, 'host-certs')
        os.makedirs(self.cert_dir)
        os.makedirs(self.host_cert_dir)
        self._publish_trust()

    def _publish_trust(self):
        for name, pem in ((host_files.CA_CERT, self.pki.ca_cert_pem),
                          (host_files.CA_CRL, self.pki.crl_pem)):
            with open(os.path.join(self.cert_dir, name), 'wb') as f:
                f.write(pem)

    def enroll(self, *names, clearance=0):
        for name in names:
            identity = self.pki.enroll(name, clearance=clearance)
            with open(os.path.join(self.host_cert_dir, name + '.pem'),
                      'w') as f:
                f.write(identity.cert_pem.decode('ascii')
                        if isinstance(identity.cert_pem, bytes)
                        else identity.cert_pem)

    def conf(self):
        conf = secmig_conf.new_conf()
        conf.set_override('cert_dir', self.cert_dir, group='pki')
        conf.set_override('policy_file', POLICY, group='policy')
        conf.set_override('host_cert_dir', self.host_cert_dir,
                          group='watcher')
        return conf

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def quick_retries(test, attempts=2):
    """Watcher's Gnocchi retries for ``test``: ``attempts``, no wait.

    Sets ``[watcher_datasources]`` until the test ends.
    """
    from oslo_config import cfg
    from watcher import conf  # noqa: F401 (registers the options)
    for name, value in (('query_max_retries', attempts),
                        ('query_interval', 0)):
        cfg.CONF.set_override(name, value, 'watcher_datasources')
        test.addCleanup(cfg.CONF.clear_override, name,
                        'watcher_datasources')


def gnocchi_clients(client):
    """Watcher's own OpenStackClients, holding the fixture's Gnocchi client.

    Watcher builds its gnocchiclient from ``[gnocchi_client]`` and a
    keystone session; the test Gnocchi uses basic auth, so the client is
    built for it and handed to Watcher's client holder.
    """
    osc = clients.OpenStackClients()
    osc._gnocchi = client
    return osc


def make_strategy(site, compute_model, client, now, history=None,
                  **params):
    """A SecureHotspot on ``compute_model`` reading the test Gnocchi."""
    strategy = strategy_mod.SecureHotspot(
        config=utils.Struct(datasources=None, config_file=None),
        osc=gnocchi_clients(client))
    strategy._compute_model = compute_model
    strategy.input_parameters = utils.Struct(params)
    strategy.secmig_conf = site.conf()
    strategy.credentials = WATCHER_CREDENTIALS
    strategy.history_source = lambda since: dict(history or {})
    strategy.placement_source = dict  # no aggregate, no zone
    strategy.clock = lambda: now
    return strategy


def actions(solution):
    """The solution's actions as plain dicts, evidence decoded."""
    return strategy_mod.plain_actions(solution)


def migrations(solution):
    return [(a['input_parameters']['resource_id'],
             a['input_parameters']['source_node'],
             a['input_parameters']['destination_node'])
            for a in solution.actions if a['action_type'] == 'migrate']


def observations(server, hosts, vms, now, window, granularity):
    """The measures of ``vms`` as secmig reads them, for judging plans."""
    from secmig.hotspot import gnocchi_query
    reader = gnocchi_query.AggregatesReader(server.client())
    return reader.fetch([v.id for v in vms], hosts, window, granularity,
                        now=now)


#: Host meters as secmig reads them by default: Nova's CPU monitor, and
#: the names of operator-provided cumulative network and swap meters.
HOST_METERS = {'cpu_pct': 'compute.node.cpu.percent',
               'net_in': 'host.network.incoming.bytes',
               'net_out': 'host.network.outgoing.bytes',
               'swap_out': 'host.memory.swap.out'}
HOST_RATE_POLICY = 'secmig-test-host-rate'
HOST_GAUGE_POLICY = 'secmig-test-host-gauge'


def host_figures(vms, cpus, kinds=tuple(HOST_METERS)):
    """What a host's own meters would report: the sums of its SimVms.

    Returns ``{host: {kind: value}}`` in the units of
    :mod:`secmig.hotspot.model` (CPU in per cent of ``cpus``). SimVm
    rates must be constants.
    """
    sums = {}
    for v in vms:
        if not v.measured:
            continue
        host = sums.setdefault(v.host, dict.fromkeys(kinds, 0.0))
        loads = {'cpu_pct': v.cpu * 100.0 / cpus, 'net_in': v.net_in,
                 'net_out': v.net_out, 'swap_out': v.swap_out}
        for kind in kinds:
            host[kind] += float(loads[kind])
    return sums


def load_host_meters(server, figures, end, points, granularity):
    """Create ``nova_compute`` resources with host meters, and samples.

    ``figures`` maps a host to ``{kind: value}`` (see
    :func:`host_figures`); a kind a host lacks gets no metric (a missing
    host meter). ``cpu_pct`` is a gauge, one point per period; the others
    are cumulative counters (bytes, MiB) with ``points + 1`` samples, as
    :func:`tests.gnocchi_fixture.load_cluster` writes the VMs' meters,
    ending at ``end``. Load the VMs with ``load_cluster(server, [], ...)``
    so that these are the only ``nova_compute`` resources.
    """
    server.create_archive_policy(HOST_RATE_POLICY, granularity)
    server.create_archive_policy(HOST_GAUGE_POLICY, granularity,
                                 methods=('mean',))
    stamps = [end - granularity * (points + 1 - k)
              for k in range(points + 1)]
    resources, measures = [], {}
    for host, kinds in sorted(figures.items()):
        metrics, samples = {}, {}
        for kind, value in kinds.items():
            name = HOST_METERS[kind]
            if kind == 'cpu_pct':
                metrics[name] = {'archive_policy_name': HOST_GAUGE_POLICY}
                samples[name] = [(_utc(t), value) for t in stamps[1:]]
            else:
                metrics[name] = {'archive_policy_name': HOST_RATE_POLICY}
                samples[name] = [(_utc(t), value * granularity * k)
                                 for k, t in enumerate(stamps)]
        resource = server.add_host(host, metrics)
        resources.append(resource)
        if samples:
            measures[resource['id']] = samples
    server.insert_resources('nova_compute', resources)
    server.post_measures(measures)
    server.wait_processed(timeout=600)


def _utc(epoch):
    import datetime
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def request_body(kwargs):
    """The JSON body of a request gnocchiclient sends (``data``)."""
    import json
    return json.loads(kwargs['data'])


class RecordingClient(object):
    """A real gnocchiclient whose aggregates requests are recorded.

    ``bodies`` lists the JSON body of every ``api.post`` sent, so a test
    can check which resources each request searched.
    """

    def __init__(self, session):
        from gnocchiclient.v1 import client as gclient
        self.client = gclient.Client(session=session)
        self.bodies = []
        post = self.client.api.post

        def recorded(url, **kwargs):
            self.bodies.append(request_body(kwargs))
            return post(url, **kwargs)

        self.client.api.post = recorded

    def searched(self, resource_type):
        """The ids searched in requests on ``resource_type``, per request."""
        return [sorted(next(iter(b['search']['in'].values())))
                for b in self.bodies if b['resource_type'] == resource_type]
