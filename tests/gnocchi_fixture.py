"""A real Gnocchi 4.7 for the watcher tier, and data as a cloud sends it.

The server launcher and the simple cluster loader live in
:mod:`secmig.demo.gnocchi` (the demo starts Gnocchi with the same code);
this module re-exports what the tests use and adds:

* :class:`GnocchiTestCase`: one Gnocchi per test process, started by the
  first class that needs it and stopped when the process exits (classes
  keep their data apart by host and resource names);
* :func:`publish`: resources and samples as Ceilometer (and an
  operator's host pollster) publish them on a real cloud: polled every
  ``poll`` seconds under an archive policy of another granularity, polls
  missed, stopped VMs without samples, guests without balloon
  statistics, interfaces that drop packets, host meters on some hosts
  only.
"""

import atexit
import dataclasses
import datetime
import typing
import unittest

from secmig.demo.gnocchi import GnocchiServer  # noqa: F401
from secmig.demo.gnocchi import load_cluster  # noqa: F401
from secmig.demo.gnocchi import SimVm  # noqa: F401

_SHARED = {}


def shared_gnocchi():
    """The Gnocchi of this test process (started on first use)."""
    server = _SHARED.get('server')
    if server is None:
        server = GnocchiServer().start()
        _SHARED['server'] = server
        atexit.register(server.stop)
    return server


class GnocchiTestCase(unittest.TestCase):
    """Gives each test class the process's Gnocchi (``cls.gnocchi``)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gnocchi = shared_gnocchi()
        # A class that stopped the API must not leave it stopped.
        cls.addClassCleanup(cls.gnocchi.start_api)

    def restart_api_at_end(self):
        """For tests that stop the API: start it again afterwards."""
        self.addCleanup(self.gnocchi.start_api)


#: Metric names as Ceilometer and an operator's host pollster publish them.
HOST_METERS = {'cpu_pct': 'compute.node.cpu.percent',
               'net_in': 'host.network.incoming.bytes',
               'net_out': 'host.network.outgoing.bytes',
               'swap_out': 'host.memory.swap.out',
               'mem_free': 'host.memory.available'}
#: Host meters that are cumulative counters (the others are gauges).
HOST_COUNTERS = ('net_in', 'net_out', 'swap_out')
#: Resources whose samples are posted together (bounds the memory held).
_FLUSH = 2000


@dataclasses.dataclass
class Guest:
    """A VM as Ceilometer sees it; rates are constant.

    ``cpu`` in cores, ``net_*`` in bytes/s and ``drop_*`` in packets/s
    (summed over ``interfaces``), ``resident`` in MiB (``memory.
    resident``: the host's view, always published), ``guest_swap`` in
    MiB/s (``memory.swap.out``: the guest's own swap, from the balloon
    driver), ``dirty`` in MiB/s (an operator's ``memory.dirty.rate``; None:
    not published). ``running`` False: resources and metrics exist but no
    sample (Ceilometer polls no stopped VM); ``balloon`` False: no
    ``memory.usage`` nor ``memory.swap.out`` sample. ``missed`` holds the
    indices of the polls that sent nothing. ``memory_mb``, ``state``,
    ``metadata`` and ``vcpus`` are read by the Watcher model builder.
    """

    id: str
    host: str
    cpu: float = 0.1
    net_in: float = 0.0
    net_out: float = 0.0
    drop_in: float = 0.0
    drop_out: float = 0.0
    resident: float = 900.0
    guest_swap: float = 0.0
    dirty: typing.Optional[float] = None
    running: bool = True
    balloon: bool = True
    interfaces: int = 1
    missed: frozenset = frozenset()
    memory_mb: int = 1024
    vcpus: int = 1
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def state(self):
        return 'active' if self.running else 'stopped'


@dataclasses.dataclass
class Host:
    """A compute host and its host meters (None: not published)."""

    name: str
    cpu_pct: typing.Optional[float] = None
    net_in: typing.Optional[float] = None
    net_out: typing.Optional[float] = None
    swap_out: typing.Optional[float] = None
    mem_free: typing.Optional[float] = None
    missed: frozenset = frozenset()


def _policies(server, granularity):
    """Ceilometer's two archive policy shapes at ``granularity``."""
    rate = 'ceilometer-rate-%d' % granularity
    low = 'ceilometer-low-%d' % granularity
    server.create_archive_policy(rate, granularity)
    server.create_archive_policy(low, granularity, methods=('mean',))
    return ({'archive_policy_name': rate}, {'archive_policy_name': low})


def publish(server, hosts, guests, now, span, poll=60, granularity=300,
            wait_timeout=300):
    """Publish ``hosts`` and ``guests`` as a cloud would, up to ``now``.

    One sample every ``poll`` seconds over the ``span`` seconds before
    ``now`` (not aligned to periods: the current period is partial, as
    on a live cloud), into archive policies of ``granularity`` seconds
    with Ceilometer's aggregation methods (``mean`` and ``rate:mean`` for
    counters, ``mean`` for gauges and for ``memory.swap.out``).
    Counters start at 0 and grow at the given rates, so a missed poll
    leaves a longer interval, not a different total. Waits up to
    ``wait_timeout`` seconds for metricd.
    """
    rate, low = _policies(server, granularity)
    server.create_resource_types()
    stamps = [now - span + poll * k for k in range(span // poll + 1)]
    measures = {}
    host_resources = []
    for host in hosts:
        metrics, samples = {}, {}
        for kind, name in HOST_METERS.items():
            value = getattr(host, kind)
            if value is None:
                continue
            counter = kind in HOST_COUNTERS
            metrics[name] = rate if counter else low
            samples[name] = _samples(stamps, host.missed, value, counter)
        resource = server.add_host(host.name, metrics)
        host_resources.append(resource)
        if samples:
            measures[resource['id']] = samples
    server.insert_resources('nova_compute', host_resources)
    instances, nics = [], []
    for g in guests:
        metrics = {'cpu': rate, 'memory.resident': low, 'memory.usage': low,
                   'memory.swap.out': low}
        if g.dirty is not None:
            metrics['memory.dirty.rate'] = low
        instances.append({'id': g.id, 'display_name': 'vm-%s' % g.id[:8],
                          'host': g.host, 'flavor_id': 'm1',
                          'metrics': metrics})
        for n in range(g.interfaces):
            nics.append({'id': 'instance-%s-tap%d' % (g.id, n),
                         'name': 'tap%d' % n, 'instance_id': g.id,
                         'metrics': dict.fromkeys(
                             ('network.incoming.bytes',
                              'network.outgoing.bytes',
                              'network.incoming.packets.drop',
                              'network.outgoing.packets.drop'), rate)})
    server.insert_resources('instance', instances)
    created = server.insert_resources('instance_network_interface', nics)
    nic_ids = {(r['instance_id'], r['name']): r['id'] for r in created}
    for g in guests:
        if len(measures) >= _FLUSH:
            server.post_measures(measures)
            measures = {}
        if not g.running:
            continue
        measures[g.id] = _guest_samples(g, stamps)
        share = 1.0 / g.interfaces
        for n in range(g.interfaces):
            measures[nic_ids[(g.id, 'tap%d' % n)]] = {
                name: _samples(stamps, g.missed, value * share, True)
                for name, value in (
                    ('network.incoming.bytes', g.net_in),
                    ('network.outgoing.bytes', g.net_out),
                    ('network.incoming.packets.drop', g.drop_in),
                    ('network.outgoing.packets.drop', g.drop_out))}
    server.post_measures(measures)
    server.wait_processed(timeout=wait_timeout)


def _guest_samples(g, stamps):
    samples = {'cpu': _samples(stamps, g.missed, g.cpu * 1e9, True),
               'memory.resident': _samples(stamps, g.missed, g.resident,
                                           False)}
    if g.balloon:
        samples['memory.usage'] = _samples(stamps, g.missed,
                                           g.resident * 0.8, False)
        samples['memory.swap.out'] = _samples(stamps, g.missed,
                                              g.guest_swap, True)
    if g.dirty is not None:
        samples['memory.dirty.rate'] = _samples(stamps, g.missed, g.dirty,
                                                False)
    return samples


def _samples(stamps, missed, value, counter):
    """A gauge at ``value``, or a counter growing ``value`` per second."""
    return [(_utc(t), value * (t - stamps[0]) if counter else value)
            for k, t in enumerate(stamps) if k not in missed]


def _utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
