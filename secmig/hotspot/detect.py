"""Find hotspots in measured series; pure functions over plain data.

:func:`detect` evaluates every host of the inventory and every VM placed
on it against :class:`Thresholds` and returns a :class:`Report`:

* ``hotspots``: one :class:`Hotspot` per condition that holds, each with
  the evidence an audit trail needs (condition, metric names, values in
  the window, threshold, points over the threshold, window, source of the
  figure);
* ``gaps``: one :class:`DataGap` per figure that could not be evaluated
  (``missing``, ``stale``, ``too_few_points``, ``unknown_capacity``,
  ``unknown_host``, ``incomplete``). A gap of a host (``instance``
  None) means the host cannot be judged on that figure: it is neither
  declared free of that hotspot nor used as a destination. A gap of a
  VM means its own figure is unknown: it is not moved on that figure,
  and its host is judged on the rest, the VM's share bounded by its
  vCPUs; a VM that does not run has no load and is never a gap;
* ``unevaluated``: the conditions a host cannot be judged on because it
  publishes no host meter for them (:class:`Unevaluated`);
* ``figures``: the host figures used, for callers that weigh moves.

The conditions, and what each reads:

* ``host_cpu``: the host's CPU meter (per cent), else the sum of its
  running VMs' CPU;
* ``host_network``: the host's own link meters, per direction. The sum
  of its VMs' traffic is not the load of its link (traffic between VMs
  of the host never crosses it; storage, overlay and migration traffic
  do), so without them the condition is not evaluated;
* ``host_swap``: the host's own swap-out meter. A VM's ``memory.swap.
  out`` is the guest's own swap, not the host's, so without it the
  condition is not evaluated;
* ``vm_bandwidth_shortfall``: a VM that expects bandwidth gets less than
  ``vm_bandwidth_pct`` of it while its host's link (host meter) is
  saturated, and wants more: its interfaces drop packets, or its
  throughput is held at a ceiling (within :data:`HELD_SHARE` of its peak
  in the window and at least :data:`IDLE_SHARE` of its expected
  bandwidth). An idle VM is never short of bandwidth.

A condition is *sustained* when at least ``max(min_points,
ceil(sustained_fraction * points))`` of the points in the window are over
its threshold, and the window holds at least ``min_points`` points.

A hotspot's ``severity``, in (0, 1], is the share of its figure beyond
the line, alike for every condition: ``1 - threshold / mean`` of the
points over a host threshold, ``1 - observed / floor`` of the points
where a VM was short.
"""

import collections
import dataclasses
import math
import types
import typing

from secmig import exception

HOST_CPU = 'host_cpu'
HOST_NETWORK = 'host_network'
HOST_SWAP = 'host_swap'
VM_BANDWIDTH = 'vm_bandwidth_shortfall'

#: A VM moving less than this share of its expected bandwidth without
#: dropping packets is idle, not starved.
IDLE_SHARE = 0.02
#: A VM's throughput at this share of its peak in the window or more is
#: held at a ceiling.
HELD_SHARE = 0.8

_DIRECTIONS = (('net_in', 'expected_in', 'in', 'drop_in'),
               ('net_out', 'expected_out', 'out', 'drop_out'))


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Every threshold and window of the analysis, with defaults.

    Times are seconds. ``host_cpu_pct`` and ``host_net_pct`` are per cent
    of the host's CPUs and of its link (per direction); ``link_saturated_
    pct`` is the link use from which a VM's shortfall counts;
    ``vm_bandwidth_pct`` is the share of its expected bandwidth under
    which a VM is short; ``swap_out_mibps`` is MiB/s swapped out by a
    host. The defaults match Ceilometer's five-minute archives.
    """

    window: int = 1800
    granularity: int = 300
    stale_after: int = 900
    min_points: int = 3
    sustained_fraction: float = 1.0
    host_cpu_pct: float = 80.0
    host_net_pct: float = 80.0
    link_saturated_pct: float = 90.0
    vm_bandwidth_pct: float = 80.0
    swap_out_mibps: float = 1.0

    def __post_init__(self):
        if not 0 < self.sustained_fraction <= 1:
            raise exception.SecmigError(
                'sustained_fraction must be in (0, 1], not %r'
                % self.sustained_fraction, code='invalid_threshold')
        for name in ('window', 'granularity', 'min_points'):
            if getattr(self, name) < 1:
                raise exception.SecmigError(
                    '%s must be at least 1' % name, code='invalid_threshold')
        if self.stale_after < 0:
            raise exception.SecmigError(
                'stale_after must not be negative', code='invalid_threshold')


@dataclasses.dataclass(frozen=True)
class Hotspot:
    """A condition that holds; ``severity`` in (0, 1] orders hotspots."""

    condition: str
    host: str
    instance: typing.Optional[str]
    severity: float
    evidence: typing.Mapping

    def as_dict(self):
        return {'condition': self.condition, 'host': self.host,
                'instance': self.instance, 'severity': self.severity,
                'evidence': dict(self.evidence)}


@dataclasses.dataclass(frozen=True)
class DataGap:
    """A figure that could not be evaluated, and why."""

    code: str
    host: typing.Optional[str]
    instance: typing.Optional[str]
    kind: str
    reason: str

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Unevaluated:
    """A condition ``hosts`` are not judged on: ``meter`` is not there."""

    condition: str
    kind: str
    meter: str
    hosts: tuple

    def as_dict(self, limit=None):
        return {'condition': self.condition, 'kind': self.kind,
                'meter': self.meter, 'hosts': list(self.hosts[:limit]),
                'hosts_total': len(self.hosts)}


@dataclasses.dataclass(frozen=True)
class HostFigure:
    """One host series in the window, where it came from, and its stats.

    ``source`` is ``host_meter`` or ``instances`` (sum over the running
    VMs on the host); ``incomplete`` names the running VMs whose figure
    is unknown, so the series is a lower bound, and ``bound`` is the most
    they can add to each point (their vCPUs, in the figure's unit).
    """

    kind: str
    source: str
    metric: str
    series: tuple
    members: tuple = ()
    incomplete: tuple = ()
    bound: float = 0.0

    @property
    def idle(self):
        """True for a host with no running VM and no host meter."""
        return (self.source == 'instances' and not self.members
                and not self.incomplete)

    @property
    def values(self):
        return [v for _, v in self.series]

    @property
    def mean(self):
        values = self.values
        return sum(values) / len(values) if values else None

    @property
    def upper(self):
        """The mean with the unknown VMs at their bound (0 if no point)."""
        return (self.mean or 0.0) + self.bound

    @property
    def peak(self):
        return max(self.values, default=None)


@dataclasses.dataclass(frozen=True)
class Report:
    hotspots: tuple
    gaps: tuple
    figures: typing.Mapping
    unevaluated: tuple = ()

    @property
    def complete(self):
        """True when every figure the analysis needed was there."""
        return not self.gaps

    @property
    def hot_hosts(self):
        return sorted({h.host for h in self.hotspots})

    @property
    def unjudged_hosts(self):
        """Hosts with a gap of their own (not only gaps of their VMs)."""
        return {g.host for g in self.gaps if g.host and g.instance is None}

    def gaps_for(self, host):
        return [g for g in self.gaps if g.host == host]


class _Context(object):
    """Per-call state: thresholds, observations and the growing report."""

    def __init__(self, observations, thresholds):
        self.obs = observations
        self.th = thresholds
        self.start = observations.now - thresholds.window
        self.hotspots = []
        self.gaps = []
        self.unevaluated = collections.defaultdict(list)

    def gap(self, code, host, instance, kind, reason):
        self.gaps.append(DataGap(code, host, instance, kind, reason))

    def meter(self, scope, kind):
        return self.obs.meters.get((scope, kind), kind)

    def usable(self, series, host, instance, kind, report=True):
        """Clip ``series`` to the window; None (and a gap) if unusable."""
        if not series:
            if report:
                self.gap('missing', host, instance, kind,
                         'no %s data' % self._meter_name(instance, kind))
            return None
        last = series[-1][0]
        age = self.obs.now - (last + self.obs.granularity)
        if age > self.th.stale_after:
            if report:
                self.gap('stale', host, instance, kind,
                         'latest %s point is %d s old (limit %d s)'
                         % (self._meter_name(instance, kind), age,
                            self.th.stale_after))
            return None
        return tuple((t, v) for t, v in series if t >= self.start)

    def _meter_name(self, instance, kind):
        return self.meter('host' if instance is None else 'vm', kind)

    def sustained(self, flags):
        """(held, points over, points) for a list of booleans."""
        points = len(flags)
        over = sum(1 for f in flags if f)
        need = max(self.th.min_points,
                   math.ceil(self.th.sustained_fraction * points - 1e-9))
        return points >= self.th.min_points and over >= need, over, points


def detect(hosts, vms, observations, thresholds=None):
    """Return the :class:`Report` for ``hosts`` and ``vms``.

    ``hosts`` and ``vms`` are iterables of :class:`~secmig.hotspot.model.
    HostInfo` and :class:`~secmig.hotspot.model.VmInfo`; ``observations``
    an :class:`~secmig.hotspot.model.Observations`.
    """
    th = thresholds or Thresholds()
    ctx = _Context(observations, th)
    hosts = {h.name: h for h in hosts}
    by_host = collections.defaultdict(list)
    for vm in vms:
        if vm.host in hosts:
            by_host[vm.host].append(vm)
        else:
            ctx.gap('unknown_host', vm.host, vm.id, 'placement',
                    'VM %s is on host %s, which is not in the inventory'
                    % (vm.id, vm.host))
    figures = {}
    for name in sorted(hosts):
        figures[name] = _evaluate_host(ctx, hosts[name], by_host[name])
    hotspots = sorted(ctx.hotspots,
                      key=lambda h: (-h.severity, h.host, h.instance or ''))
    unevaluated = tuple(
        Unevaluated(condition, kind, ctx.meter('host', kind), tuple(names))
        for (condition, kind), names in sorted(ctx.unevaluated.items()))
    return Report(tuple(hotspots), tuple(ctx.gaps),
                  types.MappingProxyType(figures), unevaluated)


def screen(hosts, vms, observations, thresholds=None, margin_pct=10.0):
    """Which hosts need their VMs' meters read, and why: ``{host: why}``.

    ``observations`` holds host-level meters only (the first stage of a
    two-stage read). ``why`` is a tuple of ``kind:reason`` strings:

    * ``cpu_pct:no_host_meter``: the host CPU meter is missing or stale,
      so :func:`detect` will sum the VMs' CPU;
    * ``near_threshold``: the host's peak in the window is above the
      threshold less ``margin_pct`` per cent of it: the host may be a
      hotspot, and relieving it needs the load of each of its VMs;
    * ``link_saturated``: the link in that direction reached the
      saturation level (less the margin) on ``min_points`` points and a
      running VM on the host has an expected bandwidth that way: only
      the VM's own figures can show a shortfall.

    A host absent from the answer can be judged from its host meters
    alone: :func:`detect` needs no figure of its VMs (its hotspots need
    at least ``min_points`` points over a threshold, hence a peak over
    it, and a shortfall needs a saturated link). A missing link or swap
    meter needs no VM figure either: those conditions are then not
    evaluated. Hosts without running VMs are left out: there is nothing
    to read.
    """
    th = thresholds or Thresholds()
    ctx = _Context(observations, th)
    factor = 1.0 - margin_pct / 100.0
    by_host = collections.defaultdict(list)
    for vm in vms:
        if vm.running:
            by_host[vm.host].append(vm)
    wanted = {}
    for host in sorted(hosts, key=lambda h: h.name):
        if not by_host[host.name]:
            continue
        why = _screen_host(ctx, host, by_host[host.name], factor)
        if why:
            wanted[host.name] = tuple(why)
    return wanted


def _screen_host(ctx, host, vms, factor):
    why = []
    meters = ctx.obs.host.get(host.name, {})

    def peak(kind):
        clipped = ctx.usable(meters.get(kind), host.name, None, kind,
                             report=False)
        return None if clipped is None else [v for _, v in clipped]

    cpu = peak('cpu_pct')
    if cpu is None:
        why.append('cpu_pct:no_host_meter')
    elif cpu and max(cpu) > ctx.th.host_cpu_pct * factor:
        why.append('cpu_pct:near_threshold')
    if host.link_bps:
        scale = 100.0 / host.link_bps
        for kind, attr, _, _ in _DIRECTIONS:
            values = peak(kind)
            if not values:
                continue
            if max(values) * scale > ctx.th.host_net_pct * factor:
                why.append('%s:near_threshold' % kind)
            if (any(getattr(vm, attr) for vm in vms)
                    and _may_saturate(ctx, values, scale, factor)):
                why.append('%s:link_saturated' % kind)
    swap = peak('swap_out')
    if swap and max(swap) > ctx.th.swap_out_mibps * factor:
        why.append('swap_out:near_threshold')
    return why


def _evaluate_host(ctx, host, vms):
    running = [vm for vm in vms if vm.running]
    figures = {}
    cpu = _cpu_figure(ctx, host, running)
    if cpu is not None:
        figures['cpu_pct'] = cpu
        _check_level(ctx, host, cpu, HOST_CPU, ctx.th.host_cpu_pct, '%',
                     1.0)
    swap = _meter_figure(ctx, host, 'swap_out', HOST_SWAP)
    if swap is not None:
        figures['swap_out'] = swap
        _check_level(ctx, host, swap, HOST_SWAP, ctx.th.swap_out_mibps,
                     'MiB/s', 1.0)
    free = _meter_figure(ctx, host, 'mem_free', None)
    if free is not None:
        figures['mem_free'] = free
    net = {}
    for kind, attr, _, _ in _DIRECTIONS:
        figure = _meter_figure(ctx, host, kind, HOST_NETWORK)
        if figure is None:
            if any(getattr(vm, attr) for vm in running):
                ctx.unevaluated[(VM_BANDWIDTH, kind)].append(host.name)
        else:
            net[kind] = figure
    if net and not host.link_bps:
        ctx.gap('unknown_capacity', host.name, None, 'link_bps',
                'link capacity of host %s unknown: its network use and '
                'its VMs\' bandwidth cannot be judged' % host.name)
        net = {}
    figures.update(net)
    for kind, attr, direction, drops in _DIRECTIONS:
        if kind not in net:
            continue
        scale = 100.0 / host.link_bps
        _check_level(ctx, host, net[kind], HOST_NETWORK,
                     ctx.th.host_net_pct, '%', scale, direction=direction)
        for vm in running:
            expected = getattr(vm, attr)
            if expected:
                _check_shortfall(ctx, host, vm, net[kind], kind, drops,
                                 expected, scale, direction)
    return types.MappingProxyType(figures)


def _meter_figure(ctx, host, kind, condition):
    """A host meter's figure, or None.

    A meter the host does not publish makes ``condition`` unevaluated on
    it; one that stopped (stale) is a gap of the host.
    """
    series = ctx.obs.host.get(host.name, {}).get(kind)
    if not series:
        if condition:
            ctx.unevaluated[(condition, kind)].append(host.name)
        return None
    clipped = ctx.usable(series, host.name, None, kind,
                         report=condition is not None)
    if clipped is None:
        return None
    return HostFigure(kind, 'host_meter', ctx.meter('host', kind), clipped)


def _cpu_figure(ctx, host, running):
    """The host's CPU meter, else the sum of its running VMs' CPU."""
    meter = ctx.usable(ctx.obs.host.get(host.name, {}).get('cpu_pct'),
                       host.name, None, 'cpu_pct', report=False)
    if meter is not None:
        return HostFigure('cpu_pct', 'host_meter',
                          ctx.meter('host', 'cpu_pct'), meter)
    if not host.cpus:
        ctx.gap('unknown_capacity', host.name, None, 'cpus',
                'CPU count of host %s unknown and no host CPU meter'
                % host.name)
        return None
    totals = collections.defaultdict(float)
    members, unknown = [], []
    for vm in running:
        clipped = ctx.usable(ctx.obs.vm.get(vm.id, {}).get('cpu'),
                             host.name, vm.id, 'cpu')
        if clipped is None:
            unknown.append(vm)
            continue
        members.append(vm.id)
        for t, v in clipped:
            totals[t] += v
    scale = 100.0 / host.cpus
    return HostFigure('cpu_pct', 'instances', ctx.meter('vm', 'cpu'),
                      tuple(sorted((t, v * scale)
                                   for t, v in totals.items())),
                      tuple(members), tuple(vm.id for vm in unknown),
                      sum(vm.vcpus for vm in unknown) * scale)


def _check_level(ctx, host, figure, condition, threshold, unit, scale,
                 direction=None):
    """Record a hotspot if ``figure * scale`` stays above ``threshold``.

    Running VMs of unknown load (``figure.incomplete``) count at their
    bound: a host whose known load holds the condition is a hotspot; one
    that only their bound could push over it is a gap (``incomplete``);
    any other is clean.
    """
    if figure.idle:
        return
    values = [v * scale for v in figure.values]
    bound = figure.bound * scale
    if not values and figure.incomplete:
        if bound > threshold:
            _incomplete(ctx, host, figure, threshold, unit)
        return
    held, over, points = ctx.sustained([v > threshold for v in values])
    if points < ctx.th.min_points:
        ctx.gap('too_few_points', host.name, None, figure.kind,
                '%d %s points in the window, %d needed'
                % (points, figure.metric, ctx.th.min_points))
        return
    if not held:
        if bound and ctx.sustained([v + bound > threshold
                                    for v in values])[0]:
            _incomplete(ctx, host, figure, threshold, unit)
        return
    evidence = _evidence(ctx, condition, figure, values, threshold, unit,
                         over, points)
    if direction:
        evidence['direction'] = direction
        evidence['link_bps'] = host.link_bps
    above = [v for v in values if v > threshold]
    severity = 1.0 - threshold / (sum(above) / len(above))
    ctx.hotspots.append(Hotspot(condition, host.name, None, severity,
                                types.MappingProxyType(evidence)))


def _incomplete(ctx, host, figure, threshold, unit):
    ctx.gap('incomplete', host.name, None, figure.kind,
            '%s of host %s is below %s %s without %s, whose load is '
            'unknown and could take it over' % (
                figure.kind, host.name, threshold, unit,
                ', '.join(figure.incomplete)))


def _check_shortfall(ctx, host, vm, host_figure, kind, drop_kind, expected,
                     scale, direction):
    """Record a hotspot if ``vm`` wants more than it gets on a full link."""
    link = dict(host_figure.series)
    if not _may_saturate(ctx, link.values(), scale):
        # No VM figure can make a shortfall on a link that never reached
        # saturation often enough, so none is needed (nor read).
        return
    series = ctx.obs.vm.get(vm.id, {})
    clipped = ctx.usable(series.get(kind), host.name, vm.id, kind)
    if clipped is None:
        return
    drops = dict(series.get(drop_kind) or ())
    floor = expected * ctx.th.vm_bandwidth_pct / 100.0
    joint = [(t, v, link[t] * scale) for t, v in clipped if t in link]
    peak = max((v for _, v, _ in joint), default=0.0)
    flags, demand = [], set()
    for t, v, pct in joint:
        dropping = drops.get(t, 0.0) > 0
        held = v >= IDLE_SHARE * expected and v >= HELD_SHARE * peak
        flag = (pct >= ctx.th.link_saturated_pct and v < floor
                and (dropping or held))
        if flag:
            demand.update(('drops',) if dropping else ())
            demand.update(('held',) if held else ())
        flags.append(flag)
    held, over, points = ctx.sustained(flags)
    if not held:
        return
    short = [v for (_, v, _), flag in zip(joint, flags) if flag]
    evidence = {
        'condition': VM_BANDWIDTH, 'direction': direction,
        'metrics': [ctx.meter('vm', kind), ctx.meter('vm', drop_kind),
                    host_figure.metric],
        'host_source': host_figure.source,
        'expected_bps': expected, 'floor_bps': floor,
        'observed_bps': [(t, _round(v)) for t, v, _ in joint],
        'drops_pps': [(t, _round(drops.get(t, 0.0))) for t, _, _ in joint],
        'demand': sorted(demand),
        'link_pct': [(t, _round(p)) for t, _, p in joint],
        'link_saturated_pct': ctx.th.link_saturated_pct,
        'link_bps': host.link_bps, 'points': points, 'points_over': over,
        'window': ctx.th.window, 'granularity': ctx.obs.granularity,
    }
    severity = 1.0 - (sum(short) / len(short)) / floor
    ctx.hotspots.append(Hotspot(VM_BANDWIDTH, host.name, vm.id, severity,
                                types.MappingProxyType(evidence)))


def _may_saturate(ctx, link_values, scale, factor=1.0):
    """True if the link is saturated at ``min_points`` points or more.

    A necessary condition of a shortfall: its flags need the link at or
    above ``link_saturated_pct`` on at least ``min_points`` points.
    ``factor`` (< 1) lowers the bar, for screening with a margin.
    """
    bar = ctx.th.link_saturated_pct * factor
    saturated = sum(1 for v in link_values if v * scale >= bar)
    return saturated >= ctx.th.min_points


def _evidence(ctx, condition, figure, values, threshold, unit, over,
              points):
    return {
        'condition': condition, 'metrics': [figure.metric],
        'source': figure.source, 'unit': unit, 'threshold': threshold,
        'values': [(t, _round(v))
                   for (t, _), v in zip(figure.series, values)],
        'mean': _round(sum(values) / len(values)),
        'peak': _round(max(values)),
        'points': points, 'points_over': over,
        'window': ctx.th.window, 'granularity': ctx.obs.granularity,
        'incomplete': list(figure.incomplete),
    }


def _round(value):
    return round(value, 3)
