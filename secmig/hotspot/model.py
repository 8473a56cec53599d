"""Plain data for hotspot analysis: the inventory and the measurements.

A *series* is a tuple of ``(timestamp, value)`` pairs sorted by
timestamp, where ``timestamp`` is the start of an aggregation period in
seconds since the epoch (UTC) and ``value`` is in the unit of its kind:

============ ============================================ ================
kind         meaning                                      unit
============ ============================================ ================
cpu          CPU time used by a VM                        cores (CPU s/s)
cpu_pct      CPU use of a host                            per cent
net_in       bytes received (by the VM, or by the host)   bytes per second
net_out      bytes sent                                   bytes per second
drop_in      packets a VM's interfaces dropped inbound    packets/second
drop_out     packets a VM's interfaces dropped outbound   packets/second
resident     memory a VM holds on its host                MiB
dirty        memory a VM dirties                          MiB per second
swap_out     memory a host swaps out                      MiB per second
mem_free     memory a host has available                  MiB
============ ============================================ ================
"""

import dataclasses
import types
import typing

from secmig import exception

VM_KINDS = ('cpu', 'net_in', 'net_out', 'drop_in', 'drop_out', 'resident',
            'dirty')
HOST_KINDS = ('cpu_pct', 'net_in', 'net_out', 'swap_out', 'mem_free')
#: VM kinds read with every VM that is read at all: its dirty rate, which
#: decides whether moving it converges. Its resident memory, the rest of
#: the cost, is read where it is also the relief (on a swapping host);
#: elsewhere the flavor's memory bounds it.
COST_KINDS = ('dirty',)

KIB = 1024
QUOTA_IN = 'quota:vif_inbound_average'
QUOTA_OUT = 'quota:vif_outbound_average'
EXPECTED_BANDWIDTH = 'secmig:expected_bandwidth'

_VM_KINDS_OF_HOST = {'cpu_pct': ('cpu',), 'net_in': ('net_in',),
                     'net_out': ('net_out',)}


def vm_kinds(kind):
    """The VM kinds a host of kind ``kind`` adds up from its VMs.

    ``cpu_pct``: the VMs' ``cpu``; a direction of the link: the VMs'
    bytes that way; other kinds: none.
    """
    return _VM_KINDS_OF_HOST.get(kind, ())


def host_kind(kind):
    """The host kind VM kind ``kind`` adds up to, or None."""
    return {'cpu': 'cpu_pct', 'net_in': 'net_in',
            'net_out': 'net_out'}.get(kind)


@dataclasses.dataclass(frozen=True)
class HostInfo:
    """A compute host, its CPUs, link and memory.

    ``link_bps`` is bytes/s each way; ``memory_mb`` the physical memory
    left to instances (total less reserved). ``None`` means unknown;
    conditions that need the figure are then reported as gaps rather
    than evaluated.
    """

    name: str
    cpus: typing.Optional[int] = None
    link_bps: typing.Optional[float] = None
    memory_mb: typing.Optional[float] = None


@dataclasses.dataclass(frozen=True)
class VmInfo:
    """A VM, its host, its vCPUs and its expected bandwidth (bytes/s).

    ``running`` False (a stopped or shelved VM) means no load and no
    samples: Ceilometer polls no VM that does not run. ``memory_mb`` is
    the memory (MB) its flavor gives it, which bounds what it holds on its
    host; ``None``: unknown.
    """

    id: str
    host: str
    vcpus: int = 1
    expected_in: typing.Optional[float] = None
    expected_out: typing.Optional[float] = None
    memory_mb: typing.Optional[float] = None
    running: bool = True


@dataclasses.dataclass(frozen=True)
class Observations:
    """Series measured over ``[now - window, now]`` at ``granularity``.

    ``vm`` maps an instance id to ``{kind: series}``, ``host`` maps a host
    name to ``{kind: series}`` (host-level meters only: empty when the
    cloud has none). ``meters`` maps ``('vm'|'host', kind)`` to the name of
    the metric the series came from, for evidence. ``requests`` is the
    number of HTTP requests spent to collect it (retries included).

    ``mode`` says how the VMs were read: ``instances`` (every running VM)
    or ``host_meters`` (host meters first, then the VMs on the hosts of
    ``screened`` only, a mapping of host name to the reasons it was read;
    see :func:`secmig.hotspot.detect.screen`).

    ``unread`` maps an instance id to the kinds of its load deliberately
    not read (those its host was not screened for): detection needs none
    of them, and the planner bounds them.
    """

    now: float
    window: int
    granularity: int
    vm: typing.Mapping = dataclasses.field(default_factory=dict)
    host: typing.Mapping = dataclasses.field(default_factory=dict)
    meters: typing.Mapping = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    requests: int = 0
    mode: str = 'instances'
    screened: typing.Mapping = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    unread: typing.Mapping = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))

    def summary(self):
        """How the data was read, for an audit's evidence and report."""
        return {'mode': self.mode, 'requests': self.requests,
                'vms_read': len(self.vm),
                'vms_read_in_part': len(self.unread),
                'hosts_with_host_meters': len(self.host),
                'hosts_read_per_vm': (None if self.mode == 'instances'
                                      else len(self.screened))}


def _kbps(value, key):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise exception.SecmigError(
            '%s must be a positive number of KB/s, not %r' % (key, value),
            code='invalid_expected_bandwidth')
    return number * KIB


def expected_bandwidth(extra_specs=None, properties=None):
    """Return ``(expected_in, expected_out)`` in bytes/s (``None``: unset).

    ``secmig:expected_bandwidth`` (KB/s, both directions), looked up in
    ``properties`` (image or instance metadata) then in ``extra_specs``,
    wins over the flavor's ``quota:vif_inbound_average`` and
    ``quota:vif_outbound_average``, which are KB/s as libvirt reads them
    (1 KB = 1024 bytes). Raises SecmigError on a value that is not a
    positive number.
    """
    extra_specs = extra_specs or {}
    for source in (properties or {}, extra_specs):
        if EXPECTED_BANDWIDTH in source:
            both = _kbps(source[EXPECTED_BANDWIDTH], EXPECTED_BANDWIDTH)
            return both, both
    inbound = outbound = None
    if QUOTA_IN in extra_specs:
        inbound = _kbps(extra_specs[QUOTA_IN], QUOTA_IN)
    if QUOTA_OUT in extra_specs:
        outbound = _kbps(extra_specs[QUOTA_OUT], QUOTA_OUT)
    return inbound, outbound
