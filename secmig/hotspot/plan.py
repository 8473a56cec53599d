"""Which VMs to move where: relieve hotspots without making new ones.

:func:`plan` turns a :class:`~secmig.hotspot.detect.Report` into a
:class:`Plan` of moves. Pure: the caller supplies the inventory, the
free resources of each host, what each VM needs, the migration history
and an ``eligible(vm_id, source, destination)`` callable that returns a
:class:`~secmig.decision.Decision` (the same core eligibility the Nova
filter uses: certificate, clearance, policy).

Rules, in the order they apply:

* Hotspots are handled worst first (``Hotspot.severity``), several per
  audit, until ``Limits.max_migrations`` moves are planned; a host is the
  source of at most ``max_per_source`` and the destination of at most
  ``max_per_destination`` moves per audit.
* A VM moved recently is left alone: ``cooldown`` seconds after its last
  move, doubled for every other move inside ``backoff_window``; after
  ``backoff_max`` moves in that window it is not moved at all (reported
  as ``backoff``), so a tenant that engineers load spikes cannot make the
  cloud migrate its VMs continuously.
* Moving a VM costs the time a pre-copy live migration takes: its
  resident memory over what the migration sends faster than the VM
  dirties memory (``resident / (migration_mibps - dirty rate)``). A VM
  that dirties memory as fast as that is never moved
  (``would_not_converge``).
* ``host_cpu`` and ``host_network`` move VMs off the host until its
  projected figure is under the threshold less ``headroom_pct``; each
  time, the VM giving the most relief (its share of the load, up to the
  excess) per second of migration goes first. ``host_swap`` moves
  resident memory off the host, the same way, until its real free
  memory reaches ``headroom_pct`` per cent of its memory (one VM at
  least). A ``vm_bandwidth_shortfall`` moves the starved VM itself, to
  a host whose link has room for its expected bandwidth.
* A destination must be eligible for that VM, have the free vCPUs,
  memory and disk Nova counts, have real free memory for the VM's
  resident memory with ``headroom_pct`` per cent of its memory to spare,
  have no gap of its own and no hotspot, and stay under every threshold
  less ``headroom_pct`` once the VM's load is added (CPU, and each
  direction of its link where the host's link is measured). Among
  those, the least loaded wins.
* A host's real free memory is its available-memory meter (the lowest
  point of the window), else its memory less what the flavors of its
  running VMs give them (a VM holds no more).
* A VM's load is the mean of its window. A kind not read
  (``Observations.unread``: its host was screened for other kinds) or
  without data is bounded: CPU by its host's figure and its vCPUs, the
  network by its host's figure, resident memory by its flavor. A bound
  is added to a destination and nothing is taken off the source, so a
  move on bounds never makes a hotspot the real figures would not; the
  network bound assumes the host meter counts the VM's traffic. An
  unknown dirty rate counts as none, and the move's evidence says so.

Every :class:`Move` carries its evidence (the hotspot's condition,
metrics and values, the VM's load and migration cost, the projected
figures of both hosts, the policy decision); every hotspot that cannot
be fully relieved is an :class:`Unresolved` entry with a code and the
refusals counted by reason; every VM set aside is a :class:`Skipped`
entry.
"""

import bisect
import collections
import dataclasses
import heapq
import math
import typing

from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import model

#: Kinds of load a move carries, in threshold units per host; they rank
#: destinations by their projected share of their limit.
_SCORED = ('cpu_pct', 'net_in', 'net_out')
_NET = {'in': 'net_in', 'out': 'net_out'}
#: The VM kinds of a load (see :meth:`_Planner.vm_load`).
_LOAD = ('cpu', 'net_in', 'net_out', 'resident', 'dirty')


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds of one audit's plan; times in seconds."""

    max_migrations: int = 10
    max_per_source: int = 3
    max_per_destination: int = 2
    cooldown: int = 3600
    backoff_window: int = 86400
    backoff_max: int = 3
    headroom_pct: float = 10.0
    migration_mibps: float = 128.0

    def __post_init__(self):
        for name in ('max_migrations', 'max_per_source',
                     'max_per_destination', 'backoff_max'):
            if getattr(self, name) < 0:
                raise exception.SecmigError('%s must not be negative' % name,
                                            code='invalid_limit')
        if self.cooldown < 0 or self.backoff_window < 0:
            raise exception.SecmigError('times must not be negative',
                                        code='invalid_limit')
        if not self.migration_mibps > 0:
            raise exception.SecmigError('migration_mibps must be positive',
                                        code='invalid_limit')


@dataclasses.dataclass(frozen=True)
class Resources:
    """vCPUs, memory (MB) and disk (GB): needed by a VM, free on a host."""

    vcpus: float = 0
    memory_mb: float = 0
    disk_gb: float = 0

    def fits(self, need):
        return (need.vcpus <= self.vcpus and need.memory_mb <= self.memory_mb
                and need.disk_gb <= self.disk_gb)

    def minus(self, other, sign=1):
        return Resources(self.vcpus - sign * other.vcpus,
                         self.memory_mb - sign * other.memory_mb,
                         self.disk_gb - sign * other.disk_gb)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A VM as the planner sees it: needs, and whether it may move at all.

    ``blocked`` is None or ``(code, reason)`` for a VM the cloud's own
    state rules out (not active, excluded by the audit scope, ...).
    """

    id: str
    needs: Resources = Resources()
    blocked: typing.Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class Move:
    instance: str
    source: str
    destination: str
    condition: str
    evidence: typing.Mapping

    def as_dict(self):
        return {'instance': self.instance, 'source': self.source,
                'destination': self.destination,
                'condition': self.condition, 'evidence': self.evidence}


@dataclasses.dataclass(frozen=True)
class Unresolved:
    """A hotspot the plan does not (fully) relieve, and why."""

    condition: str
    host: str
    instance: typing.Optional[str]
    code: str
    reason: str
    details: typing.Mapping = dataclasses.field(default_factory=dict)

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A VM on a hot host that was not considered for a move, and why."""

    instance: str
    host: str
    code: str
    reason: str

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Plan:
    moves: tuple
    unresolved: tuple
    skipped: tuple

    @property
    def complete(self):
        """True when every hotspot is relieved by the moves."""
        return not self.unresolved


def apply(vms, moves):
    """The VMs of ``vms`` (VmInfo) placed as they are after ``moves``."""
    where = {m.instance: m.destination for m in moves}
    return [dataclasses.replace(vm, host=where[vm.id]) if vm.id in where
            else vm for vm in vms]


def backoff(history, now, limits):
    """``None`` if a VM moved at ``history`` times may move, else a reason.

    Returns ``(code, reason)``: ``backoff`` when it moved
    ``limits.backoff_max`` times within ``limits.backoff_window``,
    ``cooldown`` when its last move is more recent than the cooldown
    (doubled for each other move in the window).
    """
    window = limits.backoff_window
    recent = sorted(t for t in history or () if now - t < window)
    if not recent:
        return None
    if limits.backoff_max and len(recent) >= limits.backoff_max:
        return ('backoff', 'moved %d times in the last %d s (limit %d): left '
                'alone and reported' % (len(recent), limits.backoff_window,
                                        limits.backoff_max))
    wait = limits.cooldown * 2 ** (len(recent) - 1)
    elapsed = now - recent[-1]
    if elapsed < wait:
        return ('cooldown', 'last moved %d s ago; cooldown %d s after %d '
                'recent move(s)' % (elapsed, wait, len(recent)))
    return None


@dataclasses.dataclass(frozen=True)
class _Load:
    """A VM's load per VM kind (cores, bytes/s, MiB, MiB/s).

    ``bounded``: kinds holding a bound, not a reading; ``missing``: kinds
    read without data; ``unknown``: kinds with neither (counted as 0).
    """

    values: typing.Mapping
    bounded: frozenset = frozenset()
    missing: frozenset = frozenset()
    unknown: frozenset = frozenset()

    def __getitem__(self, kind):
        return self.values[kind]


class _Planner(object):
    """State of one planning run (projected loads, counters, results)."""

    def __init__(self, report, hosts, vms, observations, thresholds, free,
                 candidates, eligible, history, now, limits):
        self.th = thresholds
        self.limits = limits
        self.hosts = {h.name: h for h in hosts}
        self.vms = {v.id: v for v in vms}
        self.obs = observations
        self.free = dict(free)
        self.candidates = candidates
        self.eligible = eligible
        self.history = history
        self.now = now
        self.level = {
            name: {k: (f.upper if k == 'cpu_pct' else f.mean or 0.0)
                   for k, f in figs.items() if k in _SCORED}
            for name, figs in report.figures.items()}
        self._measured = {name: dict(level)
                          for name, level in self.level.items()}
        self.placed = collections.defaultdict(list)
        for vm in vms:
            self.placed[vm.host].append(vm.id)
        self.mem_free, self._mem_meter = self._free_memory(report, vms)
        self.unusable = report.unjudged_hosts
        self.hot = set(report.hot_hosts)
        self.moved = {}
        self.out = collections.Counter()
        self.into = collections.Counter()
        self.moves, self.unresolved, self.skipped = [], [], []
        self._skipped_ids = set()
        self._load_cache = {}
        self._limits = {name: tuple(self.limit(name, k) for k in _SCORED)
                        for name in self.hosts}
        self._current = {name: self._shares(name) for name in self.hosts}
        #: hosts that are never a destination in this plan, and why
        self._barred = {name: code for name in self.hosts
                        if (code := self._barring(name))}
        self._barred_counts = collections.Counter(self._barred.values())
        #: hosts without loads or limits, last in every order
        self._blind = {name for name, shares in self._current.items()
                       if shares[0] == math.inf and name not in self._barred}
        self._orders = {
            kind: sorted((shares[i], name)
                         for name, shares in self._current.items()
                         if name not in self._barred)
            for i, kind in enumerate(_SCORED)}
        # One host per (vCPUs, link) shape: what a VM adds depends on
        # nothing else. Hosts without vCPUs never fit.
        self._shapes = list({(h.cpus, h.link_bps): name
                             for name, h in self.hosts.items()
                             if h.cpus}.values())

    def _free_memory(self, report, vms):
        """Real free memory (MiB) per host, and the hosts it is read for."""
        held = collections.Counter()
        for vm in vms:
            if vm.running:
                held[vm.host] += vm.memory_mb or 0
        free, meter = {}, set()
        for name, host in self.hosts.items():
            figure = report.figures.get(name, {}).get('mem_free')
            if figure is not None and figure.values:
                free[name] = min(figure.values)
                meter.add(name)
            elif host.memory_mb is not None:
                free[name] = host.memory_mb - held[name]
        return free, meter

    # -- loads -------------------------------------------------------------

    def vm_load(self, vm_id):
        """A VM's :class:`_Load` over the window (see the module)."""
        load = self._load_cache.get(vm_id)
        if load is not None:
            return load
        series = self.obs.vm.get(vm_id, {})
        start = self.obs.now - self.th.window
        unread = self.obs.unread.get(vm_id, ())
        values, bounded, missing, unknown = {}, set(), set(), set()
        for kind in _LOAD:
            points = [] if kind in unread else [
                v for t, v in series.get(kind, ()) if t >= start]
            if points:
                values[kind] = sum(points) / len(points)
                continue
            if kind not in unread:
                missing.add(kind)
            bound = self._bound(vm_id, kind)
            if bound is None:
                values[kind] = 0.0
                unknown.add(kind)
            else:
                values[kind] = bound
                bounded.add(kind)
        load = _Load(values, frozenset(bounded), frozenset(missing),
                     frozenset(unknown))
        self._load_cache[vm_id] = load
        return load

    def _bound(self, vm_id, kind):
        """Upper bound of an unread or unknown kind of a VM's load."""
        vm = self.vms.get(vm_id)
        if vm is None:
            return None
        if kind == 'resident':
            return vm.memory_mb
        if kind == 'dirty':
            return None
        measured = self._measured.get(vm.host, {})
        if kind != 'cpu':
            return measured.get(kind)
        host = self.hosts.get(vm.host)
        if 'cpu_pct' in measured and host and host.cpus:
            return min(measured['cpu_pct'] * host.cpus / 100.0, vm.vcpus)
        return vm.vcpus

    def cost(self, load):
        """Seconds a pre-copy migration of ``load`` takes (inf: never)."""
        rate = self.limits.migration_mibps - load['dirty']
        return load['resident'] / rate if rate > 0 else math.inf

    def as_host(self, load, host):
        """A VM's load in the host's threshold units."""
        cpus = self.hosts[host].cpus
        return {'cpu_pct': load['cpu'] * 100.0 / cpus if cpus else math.inf,
                'net_in': load['net_in'], 'net_out': load['net_out']}

    def added(self, load, host, extra=None):
        """What a VM adds to ``host``; ``extra`` overrides some kinds."""
        return dict(self.as_host(load, host), **(extra or {}))

    def limit(self, host, kind):
        """The highest acceptable level of ``kind`` on a host after a move."""
        head = self.limits.headroom_pct
        if kind == 'cpu_pct':
            return self.th.host_cpu_pct - head
        link = self.hosts[host].link_bps
        if not link:
            return math.inf
        return link * (self.th.host_net_pct - head) / 100.0

    def reserve(self, host):
        """Memory (MiB) a host keeps free after a move."""
        return (self.hosts[host].memory_mb or 0.0) * (
            self.limits.headroom_pct / 100.0)

    # -- destinations --------------------------------------------------------

    def destination_for(self, vm_id, source, load, extra=None):
        """Best destination for a VM, or ``(None, None, refusal counts)``.

        ``extra`` overrides the VM's load of some kinds at the
        destination (a starved VM brings its expected bandwidth). A host
        fits if :meth:`_fit` finds nothing against it; its score is its
        highest projected share of a limit (:data:`_SCORED` kinds). The
        fit hosts are asked for eligibility from the lowest score up
        (ties by name), and the first eligible one wins. When none is,
        the refusal counts cover every other host, by reason (they are
        partial when a host is found).

        The hosts are not all scored: they are walked in the three
        orders of their current share of each limit at once (Fagin's
        threshold algorithm). A host not reached yet has, in every kind,
        at least the share last reached in that kind's order, and the VM
        adds at least its smallest share on any host; a fit host scoring
        below that bound comes before every host not reached, so the
        walk usually ends after a few hosts. While no host fits, the
        orders are walked in turns; then only the order nearest to
        passing the best fit host's score. Once the bound reaches a
        limit no host not reached can fit, and the walk ends there too:
        the hosts it did not reach are counted as ``would_overload``, or
        ``destination_data_incomplete`` for hosts without loads. Hot
        hosts and hosts without data are never walked: they are counted
        up front.
        """
        cand = self.candidates.get(vm_id) or Candidate(vm_id)
        refusals = collections.Counter(self._barred_counts)
        if source in self._barred:
            refusals[self._barred[source]] -= 1
            refusals = +refusals  # without the reasons counted 0 times
        least = self._least_shares(load, extra)
        orders = [self._orders[k] for k in _SCORED]
        walks = [iter(order) for order in orders]
        reached, last = [0.0] * len(walks), [''] * len(walks)
        taken = [0] * len(walks)
        seen, fit = set(), []
        steps, aimed = range(len(walks)), None
        while True:
            done = False
            for i in steps:
                share, name = next(walks[i], (math.inf, None))
                reached[i], last[i] = share, name
                taken[i] += 1
                if name is None:
                    # every order holds every host: all were reached
                    done = True
                    continue
                if name in seen:
                    continue
                seen.add(name)
                if name == source:
                    continue
                code, score = self._fit(name, cand, load, extra)
                if code:
                    refusals[code] += 1
                    continue
                heapq.heappush(fit, (score, name))
            bound = self._walk_bound(done, reached, last, least)
            while fit and fit[0] < bound:
                name = heapq.heappop(fit)[1]
                decision = self.eligible(vm_id, source, name)
                if decision:
                    return name, decision, refusals
                refusals[decision.code] += 1
            if done:
                return None, None, refusals
            if bound[0] >= 1.0:
                self._count_unreached(seen, source, refusals)
                return None, None, refusals
            if not fit:
                steps = range(len(walks))
            elif fit[0] != aimed:
                aimed = fit[0]
                steps = (self._nearest_order(orders, taken, least, aimed[0]),)

    @staticmethod
    def _walk_bound(done, reached, last, least):
        """``(score, name)`` below which a fit host beats every unreached.

        A host not reached scores at least ``reached + least`` in each
        kind; when it scores exactly the highest of those, its share in
        that kind is the one reached, and its name comes after the last
        name reached in that kind's order.
        """
        if done:
            return (math.inf, '')
        sums = [r + a for r, a in zip(reached, least)]
        bound = max(sums)
        return (bound, max(name for name, s in zip(last, sums)
                           if s == bound))

    @staticmethod
    def _nearest_order(orders, taken, least, score):
        """The order fewest hosts away from a bound of ``score``.

        ``score`` is the best fit host's: the walk ends as soon as any
        one order gets there. Returns the order's index.
        """
        return min(range(len(orders)), key=lambda i: bisect.bisect_left(
            orders[i], (score - least[i], '')) - taken[i])

    def _count_unreached(self, seen, source, refusals):
        """Count the hosts a walk did not reach, by their refusal."""
        others = len(self.hosts) - (source in self.hosts)
        unreached = (others - len(seen - {source})
                     - len(self._barred.keys() - {source}))
        blind = len(self._blind - seen - {source})
        if blind:
            refusals['destination_data_incomplete'] += blind
        if unreached > blind:
            refusals['would_overload'] += unreached - blind

    def _least_shares(self, load, extra):
        """Per scored kind, the smallest share of a limit the VM adds."""
        least = [math.inf] * len(_SCORED)
        for name in self._shapes:
            add = self.added(load, name, extra)
            for i, kind in enumerate(_SCORED):
                limit = self.limit(name, kind)
                if limit > 0:
                    least[i] = min(least[i], add[kind] / limit)
        return least

    def _shares(self, name):
        """A host's current share of each scored limit (inf: unusable)."""
        level = self.level.get(name)
        limits = self._limits[name]
        if level is None or min(limits) <= 0:
            return (math.inf,) * len(_SCORED)
        return tuple(level.get(k, 0.0) / lim
                     for k, lim in zip(_SCORED, limits))

    def _reorder(self, *names):
        """Keep the orders of shares sorted after ``names``' loads changed."""
        for name in names:
            if name in self._barred:
                continue
            new = self._shares(name)
            for kind, old, share in zip(_SCORED, self._current[name], new):
                order = self._orders[kind]
                del order[bisect.bisect_left(order, (old, name))]
                bisect.insort(order, (share, name))
            self._current[name] = new

    def _barring(self, name):
        """Why ``name`` can take no VM in this plan, or None."""
        if name in self.hot:
            return 'destination_hot'
        if name in self.unusable or name not in self.level:
            return 'destination_data_incomplete'
        return None

    def _fit(self, name, cand, load, extra):
        """``(None, score)`` if ``name`` may take the VM, else a refusal.

        A refusal is ``(code, None)``. The score is the highest share of a
        limit the host reaches with the VM.
        """
        code = self._barring(name)
        if code:
            return code, None
        if self.into[name] >= self.limits.max_per_destination:
            return 'destination_cap', None
        free = self.free.get(name)
        if free is None or not free.fits(cand.needs):
            return 'no_capacity', None
        level = self.level[name]
        if not self.hosts[name].cpus or not all(k in level
                                                for k in extra or ()):
            return 'destination_data_incomplete', None
        memory = self.mem_free.get(name)
        if (memory is not None
                and memory - load['resident'] < self.reserve(name)):
            return 'no_free_memory', None
        add = self.added(load, name, extra)
        score = 0.0
        for kind, limit in zip(_SCORED, self._limits[name]):
            projected = level.get(kind, 0.0) + add[kind]
            if projected >= limit:
                return 'would_overload', None
            score = max(score, projected / limit)
        return None, score

    # -- moves -------------------------------------------------------------

    def movable(self, vm_id, host):
        """True if a VM may be considered; records a Skipped otherwise."""
        if vm_id in self.moved:
            return False
        cand = self.candidates.get(vm_id)
        blocked = cand.blocked if cand else ('unknown_instance',
                                             'not in the cluster model')
        if blocked is None:
            blocked = backoff(self.history.get(vm_id), self.now, self.limits)
        if blocked is None:
            load = self.vm_load(vm_id)
            if math.isinf(self.cost(load)):
                blocked = ('would_not_converge', 'dirties %.0f MiB/s: a '
                           'migration at %.0f MiB/s would never finish'
                           % (load['dirty'], self.limits.migration_mibps))
        if blocked is None:
            return True
        self._skip(vm_id, host, blocked)
        return False

    def _skip(self, vm_id, host, blocked):
        if vm_id not in self._skipped_ids:
            self._skipped_ids.add(vm_id)
            self.skipped.append(Skipped(vm_id, host, blocked[0], blocked[1]))

    def commit(self, vm_id, source, destination, hotspot, decision, load,
               extra=None):
        at_src = self.as_host(load, source)
        at_dst = self.added(load, destination, extra)
        bounded = {model.host_kind(k) for k in load.bounded}
        before = {'source': self._state(source),
                  'destination': self._state(destination)}
        for kind in _SCORED:
            if kind not in bounded and kind in self.level[source]:
                self.level[source][kind] -= at_src[kind]
            if kind in self.level[destination]:
                self.level[destination][kind] += at_dst[kind]
        if source in self.mem_free and (
                'resident' not in load.bounded
                or source not in self._mem_meter):
            self.mem_free[source] += load['resident']
        if destination in self.mem_free:
            self.mem_free[destination] -= load['resident']
        needs = (self.candidates.get(vm_id) or Candidate(vm_id)).needs
        self.free[source] = self.free.get(source, Resources()).minus(
            needs, -1)
        self.free[destination] = self.free[destination].minus(needs)
        self._reorder(source, destination)
        self.out[source] += 1
        self.into[destination] += 1
        self.moved[vm_id] = destination
        evidence = {
            'condition': hotspot.condition,
            'hotspot': dict(hotspot.evidence, host=hotspot.host,
                            instance=hotspot.instance,
                            severity=_round(hotspot.severity)),
            'instance_load': {k: _round(v) for k, v in at_src.items()},
            'instance_load_bounded': sorted(load.bounded),
            'instance_load_unknown': sorted(load.unknown),
            'migration': {'resident_mib': _round(load['resident']),
                          'dirty_mibps': _round(load['dirty']),
                          'migration_mibps': self.limits.migration_mibps,
                          'estimated_seconds': _round(self.cost(load))},
            'source': {'host': source, 'before': before['source'],
                       'after': self._state(source)},
            'destination': {'host': destination,
                            'before': before['destination'],
                            'after': self._state(destination)},
            'policy': {'code': decision.code,
                       'rule': decision.details.get('rule'),
                       'policy_digest': decision.details.get('policy_digest'),
                       'constraints': decision.details.get('constraints')},
        }
        self.moves.append(Move(vm_id, source, destination, hotspot.condition,
                               evidence))

    def _state(self, host):
        """A host's projected figures, for evidence."""
        state = _rounded(self.level[host])
        if host in self.mem_free:
            state['mem_free'] = _round(self.mem_free[host])
        return state

    def room(self):
        return len(self.moves) < self.limits.max_migrations

    def leave(self, hotspot, code, reason, **details):
        self.unresolved.append(Unresolved(hotspot.condition, hotspot.host,
                                          hotspot.instance, code, reason,
                                          details))

    def capped(self, hotspot, host):
        """Leave ``hotspot`` if the audit or ``host`` is at its cap."""
        if not self.room():
            self.leave(hotspot, 'audit_cap', 'the audit reached its limit '
                       'of %d migrations' % self.limits.max_migrations)
            return True
        if self.out[host] >= self.limits.max_per_source:
            self.leave(hotspot, 'source_cap', '%s is already the source of '
                       '%d migrations in this audit' % (host, self.out[host]))
            return True
        return False

    # -- hotspots ------------------------------------------------------------

    def relieve(self, hotspot):
        if hotspot.condition == detect.VM_BANDWIDTH:
            return self._relieve_vm(hotspot)
        if hotspot.condition == detect.HOST_SWAP:
            return self._relieve_swap(hotspot)
        kind = ('cpu_pct' if hotspot.condition == detect.HOST_CPU
                else _NET[hotspot.evidence['direction']])
        host = hotspot.host
        target = self.limit(host, kind)
        refusals = collections.Counter()
        while self.level[host].get(kind, 0.0) >= target:
            if self.capped(hotspot, host):
                return None
            excess = self.level[host][kind] - target
            chosen = self._pick(host, kind, excess, refusals)
            if chosen is None:
                return self._stuck(hotspot, host, refusals)
            vm_id, destination, decision, load = chosen
            self.commit(vm_id, host, destination, hotspot, decision, load)

    def _relieve_swap(self, hotspot):
        host = hotspot.host
        refusals = collections.Counter()
        moved = 0
        while True:
            free = self.mem_free.get(host)
            missing = None if free is None else self.reserve(host) - free
            if moved and (missing is None or missing <= 0):
                return None
            if self.capped(hotspot, host):
                return None
            chosen = self._pick(host, 'resident', max(missing or 0.0, 0.0),
                                refusals)
            if chosen is None:
                return self._stuck(hotspot, host, refusals)
            vm_id, destination, decision, load = chosen
            self.commit(vm_id, host, destination, hotspot, decision, load)
            moved += 1

    def _pick(self, host, kind, excess, refusals):
        """``(vm, destination, decision, load)`` to move off ``host``.

        ``kind`` is the host kind relieved, or ``resident`` for memory;
        ``excess`` what is over the line (0: any relief counts). None if
        no VM can go anywhere.
        """
        options = []
        vm_kind = 'resident' if kind == 'resident' else {
            'cpu_pct': 'cpu'}.get(kind, kind)
        for vm_id in self.placed[host]:
            if not self.movable(vm_id, host):
                continue
            load = self.vm_load(vm_id)
            # A share that is a bound would be a guess (resident memory
            # excepted: what moves is at most the VM's flavor).
            if vm_kind != 'resident' and (
                    vm_kind in load.bounded | load.unknown):
                self._skip(vm_id, host, (
                    'missing_data', 'its %s over the window is unknown'
                    % vm_kind) if vm_kind in load.missing else (
                    'unread_load', 'its %s load was not read' % vm_kind))
                continue
            share = (load['resident'] if kind == 'resident'
                     else self.as_host(load, host)[kind])
            if share <= 0:
                continue
            relief = min(share, excess) if excess > 0 else share
            cost = self.cost(load)
            # Alike in relief per second, the cheaper move, then the
            # smaller load (it burdens its destination less) goes first.
            options.append((-relief / max(cost, 1e-9), cost, share, vm_id))
        for *_, vm_id in sorted(options):
            load = self.vm_load(vm_id)
            destination, decision, why = self.destination_for(vm_id, host,
                                                              load)
            if destination:
                return vm_id, destination, decision, load
            refusals.update(why)
        return None

    def _stuck(self, hotspot, host, refusals):
        movable = [v for v in self.placed[host] if v not in self.moved
                   and v not in self._skipped_ids]
        if not movable:
            return self.leave(hotspot, 'no_movable_instance',
                              'no VM on %s may be moved now' % host)
        return self.leave(hotspot, 'no_eligible_destination',
                          'no eligible host can take a VM from %s without '
                          'becoming a hotspot' % host,
                          refusals=dict(refusals))

    def _relieve_vm(self, hotspot):
        vm_id, host = hotspot.instance, hotspot.host
        if vm_id in self.moved:
            return None
        if not self.movable(vm_id, host):
            skipped = [s for s in self.skipped if s.instance == vm_id]
            code = skipped[0].code if skipped else 'not_movable'
            return self.leave(hotspot, code, 'the starved VM may not be '
                              'moved now')
        if self.capped(hotspot, host):
            return None
        kind = _NET[hotspot.evidence['direction']]
        load = self.vm_load(vm_id)
        extra = {kind: hotspot.evidence['expected_bps']}
        destination, decision, refusals = self.destination_for(
            vm_id, host, load, extra)
        if destination is None:
            return self.leave(hotspot, 'no_eligible_destination',
                              'no eligible host has room for the expected '
                              'bandwidth of %s' % vm_id,
                              refusals=dict(refusals))
        self.commit(vm_id, host, destination, hotspot, decision, load, extra)


def plan(report, hosts, vms, observations, thresholds, free, candidates,
         eligible, history=None, now=None, limits=None):
    """Return the :class:`Plan` relieving ``report``'s hotspots.

    :param report: :class:`~secmig.hotspot.detect.Report` of ``detect``
    :param hosts: HostInfo iterable; ``vms``: VmInfo iterable
    :param observations: the Observations the report was made from
    :param thresholds: the :class:`~secmig.hotspot.detect.Thresholds` used
    :param free: ``{host: Resources}`` free on each host now
    :param candidates: ``{vm_id: Candidate}``
    :param eligible: ``eligible(vm_id, source, destination) -> Decision``
    :param history: ``{vm_id: [POSIX times of its recent migrations]}``
    :param now: the current POSIX time (default ``observations.now``)
    :param limits: :class:`Limits`
    """
    planner = _Planner(report, list(hosts), list(vms), observations,
                       thresholds, free, candidates, eligible, history or {},
                       observations.now if now is None else now,
                       limits or Limits())
    for hotspot in report.hotspots:
        planner.relieve(hotspot)
    return Plan(tuple(planner.moves), tuple(planner.unresolved),
                tuple(planner.skipped))


def _round(value):
    return round(value, 3) if math.isfinite(value) else value


def _rounded(levels):
    return {k: _round(v) for k, v in levels.items()}
