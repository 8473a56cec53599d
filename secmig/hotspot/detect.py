"""Find hotspots in measured series; pure functions over plain data.

:func:`detect` evaluates every host of the inventory and every VM placed
on it against :class:`Thresholds` and returns a :class:`Report`:

* ``hotspots``: one :class:`Hotspot` per condition that holds, each with
  the evidence an audit trail needs (condition, metric names, values in
  the window, threshold, points over the threshold, window, source of the
  figure);
* ``gaps``: one :class:`DataGap` per figure that could not be evaluated
  (``missing``, ``stale``, ``too_few_points``, ``unknown_capacity``,
  ``unknown_host``, ``incomplete``). A host with gaps is never declared
  free of hotspots by omission: callers check :attr:`Report.complete`;
* ``figures``: the host figures used, for callers that weigh moves.

A condition is *sustained* when at least ``max(min_points,
ceil(sustained_fraction * points))`` of the points in the window are over
its threshold, and the window holds at least ``min_points`` points.
"""

import collections
import dataclasses
import math
import types
import typing

from secmig import exception
from secmig.hotspot import model

HOST_CPU = 'host_cpu'
HOST_NETWORK = 'host_network'
HOST_SWAP = 'host_swap'
VM_BANDWIDTH = 'vm_bandwidth_shortfall'

_DIRECTIONS = (('net_in', 'expected_in', 'in'),
               ('net_out', 'expected_out', 'out'))


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Every threshold and window of the analysis, with defaults.

    Times are seconds. ``host_cpu_pct`` and ``host_net_pct`` are per cent
    of the host's CPUs and of its link (per direction); ``link_saturated_
    pct`` is the link use from which a VM's shortfall counts;
    ``vm_bandwidth_pct`` is the share of its expected bandwidth under
    which a VM is short; ``swap_out_mibps`` is MiB/s swapped out by a
    host. The defaults match Ceilometer's five-minute polling.
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
    """A condition that holds; ``severity`` orders hotspots (>1 is worse)."""

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
class HostFigure:
    """One host series in the window, where it came from, and its stats.

    ``source`` is ``host_meter`` or ``instances`` (sum over the VMs on the
    host); ``incomplete`` names the VMs whose data was missing or stale,
    so the figure is a lower bound.
    """

    kind: str
    source: str
    metric: str
    series: tuple
    members: tuple = ()
    incomplete: tuple = ()

    @property
    def idle(self):
        """True for a host with no VMs and no host meter: nothing runs."""
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
    def peak(self):
        return max(self.values, default=None)


@dataclasses.dataclass(frozen=True)
class Report:
    hotspots: tuple
    gaps: tuple
    figures: typing.Mapping

    @property
    def complete(self):
        """True when every figure the analysis needed was there."""
        return not self.gaps

    @property
    def hot_hosts(self):
        return sorted({h.host for h in self.hotspots})

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
    return Report(tuple(hotspots), tuple(ctx.gaps),
                  types.MappingProxyType(figures))


def screen(hosts, vms, observations, thresholds=None, margin_pct=10.0):
    """Which hosts need their VMs' meters read, and why: ``{host: why}``.

    ``observations`` holds host-level meters only (the first stage of a
    two-stage read). ``why`` is a tuple of ``kind:reason`` strings:

    * ``no_host_meter``: the host meter of that kind is missing or stale,
      so :func:`detect` will sum the VMs' figures, as without host meters;
    * ``near_threshold``: the host's peak in the window is above the
      threshold less ``margin_pct`` per cent of it: the host may be a
      hotspot, and relieving it needs the load of each of its VMs;
    * ``link_saturated``: the link in that direction reached the
      saturation level (less the margin) on ``min_points`` points and a
      VM on the host has an expected bandwidth that way: only the VM's
      own figures can show a shortfall.

    A host absent from the answer can be judged from its host meters
    alone: :func:`detect` needs no figure of its VMs (its hotspots need
    at least ``min_points`` points over a threshold, hence a peak over
    it, and a shortfall needs a saturated link). Hosts without VMs are
    left out: there is nothing to read.
    """
    th = thresholds or Thresholds()
    ctx = _Context(observations, th)
    factor = 1.0 - margin_pct / 100.0
    by_host = collections.defaultdict(list)
    for vm in vms:
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
    levels = {'cpu_pct': (ctx.th.host_cpu_pct, 1.0),
              'swap_out': (ctx.th.swap_out_mibps, 1.0)}
    if host.link_bps:
        for kind, _, _ in _DIRECTIONS:
            levels[kind] = (ctx.th.host_net_pct, 100.0 / host.link_bps)
    for kind in model.HOST_KINDS:
        clipped = ctx.usable(meters.get(kind), host.name, None, kind,
                             report=False)
        if clipped is None:
            why.append('%s:no_host_meter' % kind)
            continue
        if kind not in levels:
            continue
        threshold, scale = levels[kind]
        values = [v for _, v in clipped]
        if values and max(values) * scale > threshold * factor:
            why.append('%s:near_threshold' % kind)
        attr = dict((k, a) for k, a, _ in _DIRECTIONS).get(kind)
        if (attr and any(getattr(vm, attr) for vm in vms)
                and _may_saturate(ctx, values, scale, factor)):
            why.append('%s:link_saturated' % kind)
    return why


def _evaluate_host(ctx, host, vms):
    figures = {}
    for kind in model.HOST_KINDS:
        figure = _host_figure(ctx, host, vms, kind)
        if figure is not None:
            figures[kind] = figure
    if 'cpu_pct' in figures:
        _check_level(ctx, host, figures['cpu_pct'], HOST_CPU,
                     ctx.th.host_cpu_pct, '%', 1.0)
    if 'swap_out' in figures:
        _check_level(ctx, host, figures['swap_out'], HOST_SWAP,
                     ctx.th.swap_out_mibps, 'MiB/s', 1.0)
    net = [k for k, _, _ in _DIRECTIONS if k in figures]
    if net and not host.link_bps:
        ctx.gap('unknown_capacity', host.name, None, 'link_bps',
                'link capacity of host %s unknown: its network use and '
                'its VMs\' bandwidth cannot be judged' % host.name)
        net = []
    for kind, attr, direction in _DIRECTIONS:
        if kind not in net:
            continue
        scale = 100.0 / host.link_bps
        _check_level(ctx, host, figures[kind], HOST_NETWORK,
                     ctx.th.host_net_pct, '%', scale, direction=direction)
        for vm in vms:
            expected = getattr(vm, attr)
            if expected:
                _check_shortfall(ctx, host, vm, figures[kind], kind,
                                 expected, scale, direction)
    return types.MappingProxyType(figures)


def _host_figure(ctx, host, vms, kind):
    """The host series for ``kind``: host meter first, else VM sums."""
    meter = ctx.obs.host.get(host.name, {}).get(kind)
    if meter:
        clipped = ctx.usable(meter, host.name, None, kind)
        if clipped is not None:
            return HostFigure(kind, 'host_meter', ctx.meter('host', kind),
                              clipped)
    vm_kind = model.vm_kind(kind)
    if kind == 'cpu_pct' and not host.cpus:
        ctx.gap('unknown_capacity', host.name, None, 'cpus',
                'CPU count of host %s unknown and no host CPU meter'
                % host.name)
        return None
    totals = collections.defaultdict(float)
    incomplete = []
    members = []
    for vm in vms:
        series = ctx.obs.vm.get(vm.id, {}).get(vm_kind)
        clipped = ctx.usable(series, host.name, vm.id, vm_kind)
        if clipped is None:
            incomplete.append(vm.id)
            continue
        members.append(vm.id)
        for t, v in clipped:
            totals[t] += v
    if vms and len(incomplete) == len(vms):
        ctx.gap('missing', host.name, None, kind,
                'no usable %s data for any VM on host %s'
                % (ctx.meter('vm', vm_kind), host.name))
        return None
    if kind == 'cpu_pct':
        totals = {t: v * 100.0 / host.cpus for t, v in totals.items()}
    return HostFigure(kind, 'instances', ctx.meter('vm', vm_kind),
                      tuple(sorted(totals.items())), tuple(members),
                      tuple(incomplete))


def _check_level(ctx, host, figure, condition, threshold, unit, scale,
                 direction=None):
    """Record a hotspot if ``figure * scale`` stays above ``threshold``."""
    values = [v * scale for v in figure.values]
    held, over, points = ctx.sustained([v > threshold for v in values])
    if figure.idle:
        return
    if points < ctx.th.min_points:
        ctx.gap('too_few_points', host.name, None, figure.kind,
                '%d %s points in the window, %d needed'
                % (points, figure.metric, ctx.th.min_points))
        return
    if not held:
        if figure.incomplete:
            ctx.gap('incomplete', host.name, None, figure.kind,
                    '%s of host %s is below %s %s but lacks data from %s'
                    % (figure.kind, host.name, threshold, unit,
                       ', '.join(figure.incomplete)))
        return
    evidence = _evidence(ctx, condition, figure, values, threshold, unit,
                         over, points)
    if direction:
        evidence['direction'] = direction
        evidence['link_bps'] = host.link_bps
    mean = sum(values) / len(values)
    ctx.hotspots.append(Hotspot(condition, host.name, None,
                                mean / threshold if threshold else math.inf,
                                types.MappingProxyType(evidence)))


def _check_shortfall(ctx, host, vm, host_figure, kind, expected, scale,
                     direction):
    """Record a hotspot if ``vm`` gets too little while the link is full."""
    series = ctx.obs.vm.get(vm.id, {}).get(kind)
    link = dict(host_figure.series)
    if not _may_saturate(ctx, link.values(), scale):
        # No VM figure can make a shortfall on a link that never reached
        # saturation often enough, so none is needed (nor read).
        return
    clipped = ctx.usable(series, host.name, vm.id, kind,
                         report=host_figure.source == 'host_meter')
    if clipped is None:
        return
    floor = expected * ctx.th.vm_bandwidth_pct / 100.0
    joint = [(t, v, link[t] * scale) for t, v in clipped if t in link]
    flags = [pct >= ctx.th.link_saturated_pct and v < floor
             for _, v, pct in joint]
    held, over, points = ctx.sustained(flags)
    if not held:
        return
    observed = [v for _, v, _ in joint]
    mean = sum(observed) / len(observed)
    evidence = {
        'condition': VM_BANDWIDTH, 'direction': direction,
        'metrics': [ctx.meter('vm', kind), host_figure.metric],
        'host_source': host_figure.source,
        'expected_bps': expected, 'floor_bps': floor,
        'observed_bps': [(t, _round(v)) for t, v, _ in joint],
        'link_pct': [(t, _round(p)) for t, _, p in joint],
        'link_saturated_pct': ctx.th.link_saturated_pct,
        'link_bps': host.link_bps, 'points': points, 'points_over': over,
        'window': ctx.th.window, 'granularity': ctx.obs.granularity,
    }
    severity = expected / mean if mean > 0 else math.inf
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
