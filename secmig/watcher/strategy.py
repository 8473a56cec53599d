"""SecureHotspot: a Watcher strategy that relieves hotspots safely.

Enable it in the decision engine's Python environment through the entry
point ``watcher_strategies``: ``secmig_hotspot =
secmig.watcher.strategy:SecureHotspot``; then create an audit template
with goal ``workload_balancing`` and strategy ``secmig_hotspot``.
"""

import contextlib
import gc
import json
import logging
import os
import time

from oslo_config import cfg
from watcher.common import exception as wexc
from watcher.common import nova_helper
from watcher import conf as watcher_conf
from watcher.decision_engine.strategy.strategies import base
from watcher import objects

from secmig import conf as secmig_conf
from secmig import exception
from secmig.hotspot import detect
from secmig.hotspot import eligible as eligible_mod
from secmig.hotspot import gnocchi_query
from secmig.hotspot import plan as plan_mod
from secmig.policy import facts
from secmig.policy import loader
from secmig import verdicts as verdicts_mod
from secmig.watcher import history as history_mod
from secmig.watcher import model as model_mod
from secmig.watcher import placement as placement_mod

LOG = logging.getLogger(__name__)
GBIT = 1e9 / 8
#: Entries of each list kept in the report action's message.
REPORT_LIMIT = 50

#: Certificate verdicts survive audits (the decision engine is long
#: running); they are re-verified with a fresh CRL every minute.
_VERDICTS = {}


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Hold Python's cyclic garbage collector off for one audit.

    An audit allocates hundreds of thousands of small containers (the
    parsed Gnocchi answers, the inventory) and few reference cycles;
    each allocation burst sets off full collections that walk the whole
    heap, Watcher's cluster model included: 0.2 to 0.4 s of a 2.5 s
    audit at 10,000 instances. Reference counting still frees memory
    meanwhile. The collector is re-enabled by whoever disabled it, so
    overlapping audits leave it as they found it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class HotspotAuditError(wexc.WatcherException):
    """The audit cannot judge the cluster; ``reason`` says why."""

    msg_fmt = 'secmig hotspot audit failed (%(secmig_code)s): %(reason)s'


def _continuous(audit):
    return audit is not None and (
        audit.audit_type == objects.audit.AuditType.CONTINUOUS.value)


def _schema_number(description, default, minimum=0, kind='number',
                   maximum=None):
    entry = {'description': description, 'type': kind, 'default': default,
             'minimum': minimum}
    if maximum is not None:
        entry['maximum'] = maximum
    return entry


def _schema_meter(description, default):
    return {'description': description + ' Empty: not read.',
            'type': 'string', 'default': default or ''}


class SecureHotspot(base.WorkloadStabilizationBaseStrategy):
    """Relieve hotspots with live migrations to eligible hosts only

    *Description*

        Reads Gnocchi in a few aggregates requests (at most four per host
        request, ``gnocchi_concurrency`` host requests of at most
        ``gnocchi_page_hosts`` hosts, plus two), whatever the cluster's
        size: host meters first where the cloud publishes them, then
        per-instance meters only for the running VMs on hosts whose host
        figures are near a threshold, whose link is saturated or whose
        host CPU meter is missing, and only of the kinds concerned; an
        unread kind of a VM's load is bounded (read after all if that
        bound leaves a hotspot without a destination).
        It finds every hotspot of three kinds: a VM that does not get
        its expected network bandwidth while its host's link is
        saturated and it wants more (its interfaces drop packets, or its
        throughput is held at a ceiling); a host whose CPU or link use
        stays above a threshold over the observation window; a host
        that swaps memory out faster than a threshold. It then plans
        several live migrations in one audit, worst hotspot first: each
        time the VM that gives the most relief per second of migration
        (resident memory and dirty rate) goes to a host that secmig
        would accept (valid certificate, clearance and migration policy
        with the host's aggregates and availability zone read from Nova,
        the checks of the Nova scheduler filter), that has the free
        vCPUs, memory and disk, real free memory for it, and that stays
        under every threshold once the VM's load is added. A swapping
        host sends resident memory to hosts with real free memory. The
        number of migrations is bounded per audit and per host; a VM moved
        recently waits out a cooldown that doubles with each move, and a
        VM moved too often is left alone and reported. Every migration
        is preceded by a ``nop`` action whose message is the evidence
        (condition, metrics, values, projected loads, migration cost,
        policy decision), and Watcher's weight planner runs every
        ``nop`` before any migration and at most ``[watcher_planners.
        weight] parallelization`` migrations at once (2 by default). A
        CONTINUOUS audit that cannot judge the cluster (Gnocchi down, no
        data, the policy unusable) proposes nothing, says why in a
        ``nop`` action and runs again next period.

    *Requirements*

        * Ceilometer publishing ``cpu`` and ``memory.resident``
          (instance) and ``network.incoming.bytes``,
          ``network.outgoing.bytes`` and their ``packets.drop`` meters
          (``instance_network_interface``) to Gnocchi, with an archive
          policy offering ``mean``.
        * Host meters on ``nova_compute`` resources (attribute
          ``host_name``): ``compute.node.cpu.percent`` (Nova's
          ``compute_monitors``), and from the operator's own pollster
          the host's link and swap-out counters and available memory,
          named by the ``host_*_meter`` parameters. Without a host's
          link meters its link and its VMs' bandwidth are not judged;
          without its swap meter its swapping is not judged; the
          report action lists what was not evaluated.
        * Watcher's ``[gnocchi_client]`` and ``[watcher_datasources]``
          configuration (retries).
        * secmig's configuration (``[watcher_strategies.secmig_hotspot]
          config_file``): the CA certificate and CRL in ``[pki]
          cert_dir``, host certificates in ``[watcher] host_cert_dir``,
          and the migration policy in ``[policy] policy_file``, which must
          let the Watcher service user migrate automatically.
        * At least two compute nodes.

    *Limitations*

        * Network capacity is not in Watcher's model: ``link_gbps`` (and
          ``link_gbps_by_host``) give each host's link speed.
        * Loads are window means; a VM's load on its new host is assumed
          to equal its load on the old one (its expected bandwidth for a
          starved VM). Swap-out is assumed to stop on a host with real
          free memory.
        * The source host's facts carry no aggregate nor zone, as in
          the Nova scheduler filter: a policy with
          ``same_availability_zone`` refuses destinations in a zone.
        * Nova's scheduler filter and the compute hosts check every
          migration again.
    """

    def __init__(self, config, osc=None):
        super().__init__(config, osc)
        # Watcher's weight planner: every nop (the evidence) before every
        # migration, and at most [watcher_planners.weight]
        # parallelization['migrate'] migrations at once.
        self.planner = 'weight'
        self.instance_migrations_count = 0
        #: Set by tests and tools; otherwise built from the configuration.
        self.secmig_conf = None
        self.gnocchi_client = None
        self.history_source = None
        self.placement_source = None
        self.credentials = None
        self.clock = time.time
        self.report = None
        self.plan = None
        self.observations = None
        self.requests = 0

    @classmethod
    def get_name(cls):
        return 'secmig_hotspot'

    @classmethod
    def get_display_name(cls):
        return 'secmig secure hotspot relief'

    @classmethod
    def get_translatable_display_name(cls):
        return 'secmig secure hotspot relief'

    @classmethod
    def get_config_opts(cls):
        return super().get_config_opts() + [
            cfg.StrOpt('config_file', default='/etc/secmig/secmig.conf',
                       help='secmig\'s configuration file ([pki], '
                            '[policy], [watcher]).'),
        ]

    @classmethod
    def get_schema(cls):
        n = _schema_number
        return {
            'properties': {
                'window': n('Observation window (s).', 1800, 60, 'integer'),
                'granularity': n('Granularity of the Gnocchi series (s).',
                                 300, 1, 'integer'),
                'stale_after': n('Age (s) after which a series\' latest '
                                 'point counts as stale.', 900, 0,
                                 'integer'),
                'min_points': n('Points a window must hold to be judged.',
                                3, 1, 'integer'),
                'sustained_fraction': n('Share of the points that must be '
                                        'over a threshold.', 1.0, 0.01,
                                        maximum=1.0),
                'host_cpu_threshold': n('Host CPU use (%) that makes a '
                                        'hotspot.', 80.0, 1, maximum=100),
                'host_net_threshold': n('Host link use (% per direction) '
                                        'that makes a hotspot.', 80.0, 1,
                                        maximum=100),
                'link_saturated_threshold': n(
                    'Link use (%) from which a VM\'s bandwidth shortfall '
                    'counts.', 90.0, 1, maximum=100),
                'vm_bandwidth_threshold': n(
                    'Share (%) of its expected bandwidth under which a VM '
                    'is starved.', 80.0, 1, maximum=100),
                'swap_out_threshold': n('Host swap-out rate (MiB/s) that '
                                        'makes a hotspot.', 1.0, 0),
                'link_gbps': n('Link speed of every host (Gbit/s).', 10.0,
                               0.001),
                'link_gbps_by_host': {
                    'description': 'Link speed (Gbit/s) of given hosts.',
                    'type': 'object', 'default': {},
                    'additionalProperties': {'type': 'number',
                                             'exclusiveMinimum': 0}},
                'max_migrations': n('Migrations per audit.', 10, 0,
                                    'integer'),
                'max_migrations_per_source': n(
                    'Migrations off one host per audit.', 3, 0, 'integer'),
                'max_migrations_per_destination': n(
                    'Migrations onto one host per audit.', 2, 0, 'integer'),
                'cooldown': n('Seconds a VM stays put after a move; '
                              'doubled for each other recent move.', 3600,
                              0, 'integer'),
                'backoff_window': n('Window (s) in which moves of a VM are '
                                    'counted.', 86400, 0, 'integer'),
                'backoff_max_moves': n('Moves within the window after which '
                                       'a VM is left alone.', 3, 0,
                                       'integer'),
                'headroom': n('Points (%) under each threshold a host must '
                              'stay after a move, and share (%) of its '
                              'memory it keeps free.', 10.0, 0,
                              maximum=99),
                'gnocchi_concurrency': n(
                    'Gnocchi requests in flight at once; the host meters '
                    'are read in this many requests, each followed by up '
                    'to three for the VMs of its hosts that need them.', 2,
                    1,
                    'integer', maximum=3),
                'gnocchi_page_hosts': n(
                    'Hosts read in one Gnocchi request at most: bounds '
                    'the size of every answer.', 1000, 1, 'integer'),
                'host_meter_margin': n(
                    'Hosts whose host-meter peak is within this share (%) '
                    'of a threshold get their VMs\' meters read too.',
                    10.0, 0, maximum=100),
                'host_cpu_meter': _schema_meter(
                    'Host CPU use (%) gauge on nova_compute resources.',
                    gnocchi_query.Meters.host_cpu_pct),
                'host_net_in_meter': _schema_meter(
                    'Cumulative bytes received by a host.',
                    gnocchi_query.Meters.host_net_in),
                'host_net_out_meter': _schema_meter(
                    'Cumulative bytes sent by a host.',
                    gnocchi_query.Meters.host_net_out),
                'host_swap_out_meter': _schema_meter(
                    'Cumulative MiB swapped out by a host.',
                    gnocchi_query.Meters.host_swap_out),
                'host_mem_free_meter': _schema_meter(
                    'Memory (MiB) a host has available.',
                    gnocchi_query.Meters.host_mem_free),
                'dirty_rate_meter': _schema_meter(
                    'Memory (MiB/s) an instance dirties, on instance '
                    'resources.', gnocchi_query.Meters.dirty),
                'migration_bandwidth': n(
                    'MiB/s a live migration sends, to weigh what moving '
                    'a VM costs.', 128.0, 1),
                'on_missing_data': {
                    'description': 'fail: the audit fails when any figure '
                                   'is missing or stale; report: plan for '
                                   'the hosts that can be judged and list '
                                   'the missing data in a report action. '
                                   'The audit always fails when Gnocchi '
                                   'cannot be read or no host can be '
                                   'judged.',
                    'type': 'string', 'enum': ['fail', 'report'],
                    'default': 'report'},
            },
        }

    # -- configuration ----------------------------------------------------

    def _param(self, name):
        value = self.input_parameters.get(name)
        if value is None:
            value = self.get_schema()['properties'][name]['default']
        return value

    def _conf(self):
        if self.secmig_conf is None:
            path = getattr(self.config, 'config_file', None)
            files = [path] if path and os.path.exists(path) else []
            self.secmig_conf = secmig_conf.new_conf(
                default_config_files=files)
        return self.secmig_conf

    def thresholds(self):
        p = self._param
        return detect.Thresholds(
            window=p('window'), granularity=p('granularity'),
            stale_after=p('stale_after'), min_points=p('min_points'),
            sustained_fraction=p('sustained_fraction'),
            host_cpu_pct=p('host_cpu_threshold'),
            host_net_pct=p('host_net_threshold'),
            link_saturated_pct=p('link_saturated_threshold'),
            vm_bandwidth_pct=p('vm_bandwidth_threshold'),
            swap_out_mibps=p('swap_out_threshold'))

    def limits(self):
        p = self._param
        return plan_mod.Limits(
            max_migrations=p('max_migrations'),
            max_per_source=p('max_migrations_per_source'),
            max_per_destination=p('max_migrations_per_destination'),
            cooldown=p('cooldown'), backoff_window=p('backoff_window'),
            backoff_max=p('backoff_max_moves'), headroom_pct=p('headroom'),
            migration_mibps=p('migration_bandwidth'))

    def meters(self):
        p = self._param
        return gnocchi_query.Meters(
            host_cpu_pct=p('host_cpu_meter') or None,
            host_net_in=p('host_net_in_meter') or None,
            host_net_out=p('host_net_out_meter') or None,
            host_swap_out=p('host_swap_out_meter') or None,
            host_mem_free=p('host_mem_free_meter') or None,
            dirty=p('dirty_rate_meter') or None)

    def _verdicts(self, conf):
        key = (conf.pki.cert_dir, conf.pki.expiry_margin,
               conf.pki.min_rsa_bits, conf.pki.require_crl)
        verdicts = _VERDICTS.get(key)
        if verdicts is None:
            verdicts = verdicts_mod.CertificateVerdicts(
                eligible_mod.trust_loader(conf.pki.cert_dir),
                refresh_interval=60, margin=conf.pki.expiry_margin,
                min_rsa_bits=conf.pki.min_rsa_bits,
                require_crl=conf.pki.require_crl)
            _VERDICTS[key] = verdicts
        if verdicts.refresh_due():
            verdicts.refresh()
        return verdicts

    def _credentials(self):
        """The Watcher service's credentials, from its keystone session."""
        if self.credentials is not None:
            return self.credentials
        session = self.osc.session
        access = session.auth.get_access(session)
        return {'user_id': access.user_id, 'user_name': access.username,
                'user_domain_id': access.user_domain_id,
                'project_id': access.project_id,
                'project_domain_id': access.project_domain_id,
                'project_name': access.project_name,
                'roles': list(access.role_names)}

    def _history(self, since):
        if self.history_source is not None:
            return self.history_source(since)
        return history_mod.from_watcher_db(self.ctx, since)

    # -- the audit --------------------------------------------------------

    def pre_execute(self):
        # Watcher's _pre_execute renders the whole model as XML for a
        # debug message even when debug logging is off (0.6 s at 10,000
        # instances); do its checks, and render only when it is logged.
        LOG.info("Initializing %s", self.get_display_name())
        if not self.compute_model:
            raise wexc.ClusterStateNotDefined()
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug(self.compute_model.to_string())

    def do_execute(self, audit=None):
        """Plan the audit's moves; see the class docstring.

        An audit that cannot judge the cluster (Gnocchi unreachable, no
        host with data, the policy unusable, Nova's aggregates unread)
        raises :class:`HotspotAuditError`, which fails a one-shot audit.
        A CONTINUOUS audit instead proposes nothing and reports why in a
        ``nop`` action (``"secmig": "audit_failed"``): Watcher drops a
        CONTINUOUS audit that fails, and the next period may well succeed.
        """
        with _cyclic_gc_paused():
            try:
                inv, report, plan = self._decide()
            except HotspotAuditError as e:
                if not _continuous(audit):
                    raise
                self._report_failure(e)
                return self.solution
            for move in plan.moves:
                self._migrate(inv, move)
            self._report_action(report, plan)
            return self.solution

    def _decide(self):
        """``(inventory, report, plan)``; raises HotspotAuditError."""
        try:
            return self._audit()
        except exception.SecmigError as e:
            raise HotspotAuditError(secmig_code=e.code, reason=str(e))

    def _audit(self):
        now = self.clock()
        conf = self._conf()
        th, limits = self.thresholds(), self.limits()
        client = self.gnocchi_client or self.osc.gnocchi()
        retries = watcher_conf.CONF.watcher_datasources
        reader = gnocchi_query.AggregatesReader(
            client, self.meters(), self._param('gnocchi_concurrency'),
            self._param('gnocchi_page_hosts'),
            attempts=retries.query_max_retries,
            retry_interval=retries.query_interval)
        names = [n.hostname for n in
                 self.compute_model.get_all_compute_nodes().values()]
        try:
            # Stage 1 of the read is in flight while the rest is built.
            with reader.begin(names, th, now) as read:
                policy, history, inv = self._prepare(conf, now, limits)
                obs = read.observe(inv.hosts, inv.vms,
                                   self._param('host_meter_margin'))
        finally:
            self.requests = reader.requests
        self._observed(obs)
        report = detect.detect(inv.hosts, inv.vms, obs, th)
        self.report = report
        self._check_data(report, inv)
        destinations = placement_mod.PlacedDestinations(
            self._verdicts(conf), conf.watcher.host_cert_dir, policy,
            facts.Request('watcher', self._credentials()), inv.instances,
            now, placement=self._placement())

        def make_plan(obs):
            return plan_mod.plan(report, inv.hosts, inv.vms, obs, th,
                                 inv.free, inv.candidates, destinations,
                                 history, now, limits)
        self.plan = make_plan(obs)
        partly_read = self._partly_read(self.plan, obs, inv)
        if partly_read:
            # Bounds on unread loads may have ruled out a destination:
            # read those VMs fully, then plan again.
            try:
                obs = reader.complete(obs, partly_read)
            finally:
                self.requests = reader.requests
            self._observed(obs)
            self.plan = make_plan(obs)
        return inv, report, self.plan

    def _placement(self):
        """``{host: (aggregate names, availability zone)}`` from Nova."""
        if self.placement_source is not None:
            return self.placement_source()
        try:
            aggregates = nova_helper.NovaHelper().get_aggregate_list()
        except Exception as e:
            # Any failure (Nova, keystone, the SDK) leaves the policy's
            # aggregate and zone rules without their facts.
            raise HotspotAuditError(
                secmig_code='nova_unavailable',
                reason='host aggregates unread from Nova: %s: %s'
                       % (type(e).__name__, e))
        return placement_mod.placement(aggregates)

    def _report_failure(self, error):
        """The one action of a CONTINUOUS audit that could not judge."""
        LOG.error("secmig: the audit proposes nothing this period: %s",
                  error)
        message = {'secmig': 'audit_failed',
                   'code': error.kwargs['secmig_code'],
                   'reason': error.kwargs['reason'],
                   'requests': self.requests}
        self.solution.add_action(
            action_type='nop',
            input_parameters={'message': json.dumps(message,
                                                    sort_keys=True)})

    @staticmethod
    def _partly_read(plan, obs, inv):
        """VMs with unread loads on the hosts of hotspots left stuck."""
        stuck = {u.host for u in plan.unresolved
                 if u.code == 'no_eligible_destination'}
        return sorted(v.id for v in inv.vms
                      if v.host in stuck and obs.unread.get(v.id))

    def _prepare(self, conf, now, limits):
        """The policy, the migration history and the inventory."""
        policy = loader.PolicySource(conf.policy.policy_file).get()
        history = self._history(now - limits.backoff_window)
        inv = model_mod.inventory(
            self.compute_model, self._param('link_gbps') * GBIT,
            {h: g * GBIT for h, g in
             self._param('link_gbps_by_host').items()}, history)
        for error in inv.errors:
            LOG.warning("secmig: %s", error)
        return policy, history, inv

    def _observed(self, obs):
        self.observations = obs
        LOG.info("secmig: Gnocchi read in %s mode: %d requests, %d "
                 "instances read, %s", obs.mode, obs.requests, len(obs.vm),
                 'every host' if obs.mode == 'instances' else
                 '%d host(s) read per VM' % len(obs.screened))

    def _check_data(self, report, inv):
        for item in report.unevaluated:
            LOG.warning("secmig: %s not evaluated on %d host(s): no %s "
                        "data", item.condition, len(item.hosts), item.meter)
        if not report.gaps:
            return
        gaps = [g.as_dict() for g in report.gaps]
        unjudged = report.unjudged_hosts
        LOG.warning("secmig: data missing or stale for %d host(s) and "
                    "%d VM(s): %s", len(unjudged),
                    len({g.instance for g in report.gaps if g.instance}),
                    json.dumps(gaps[:REPORT_LIMIT]))
        if (self._param('on_missing_data') == 'fail'
                or unjudged >= {h.name for h in inv.hosts}):
            raise HotspotAuditError(
                secmig_code='metrics_missing',
                reason='%d figure(s) missing or stale, %d of %d host(s) '
                       'cannot be judged, so hotspots cannot be ruled out: '
                       '%s' % (len(gaps), len(unjudged), len(inv.hosts),
                               '; '.join(g.reason for g in
                                         report.gaps[:REPORT_LIMIT])))

    def _migrate(self, inv, move):
        instance = inv.objects[move.instance]
        source = inv.nodes[move.source]
        destination = inv.nodes[move.destination]
        if not self.compute_model.migrate_instance(instance, source,
                                                   destination):
            raise exception.SecmigError(
                'the model refused to move %s from %s to %s'
                % (move.instance, move.source, move.destination),
                code='model_error')
        LOG.info("secmig: migrate %s from %s to %s (%s)", move.instance,
                 move.source, move.destination, move.condition)
        obs = self.observations
        data = {'mode': obs.mode, 'requests': obs.requests}
        if obs.mode != 'instances':
            data['source_read_because'] = list(
                obs.screened.get(move.source, ()))
        self.solution.add_action(
            action_type='nop', input_parameters={'message': json.dumps(
                dict(move.as_dict(), secmig='evidence', data=data),
                sort_keys=True)})
        self.add_action_migrate(instance, 'live', source, destination)
        self.instance_migrations_count += 1

    def _report_action(self, report, plan):
        """One ``nop`` action listing what the plan leaves undone."""
        left_alone = [s for s in plan.skipped if s.code == 'backoff']
        for skipped in left_alone:
            LOG.warning("secmig: instance %s left alone: %s",
                        skipped.instance, skipped.reason)
        for item in plan.unresolved:
            LOG.warning("secmig: %s on %s not relieved: %s (%s)",
                        item.condition, item.host, item.reason, item.code)
        if not (plan.unresolved or plan.skipped or report.gaps
                or report.unevaluated):
            return
        message = {
            'secmig': 'report',
            'unevaluated': [u.as_dict(REPORT_LIMIT)
                            for u in report.unevaluated],
            'unresolved': [u.as_dict() for u in plan.unresolved],
            'skipped': [s.as_dict() for s in plan.skipped[:REPORT_LIMIT]],
            'skipped_total': len(plan.skipped),
            'gaps': [g.as_dict() for g in report.gaps[:REPORT_LIMIT]],
            'gaps_total': len(report.gaps),
            'data': self.observations.summary(),
        }
        self.solution.add_action(
            action_type='nop',
            input_parameters={'message': json.dumps(message,
                                                    sort_keys=True)})

    def post_execute(self):
        self.solution.model = self.compute_model
        self.solution.set_efficacy_indicators(
            instance_migrations_count=self.instance_migrations_count,
            instances_count=len(self.compute_model.get_all_instances()))


def plain_actions(solution):
    """A solution's actions as plain dicts, ``nop`` evidence decoded."""
    plain = []
    for action in solution.actions:
        params = dict(action['input_parameters'])
        if action['action_type'] == 'nop':
            params['message'] = json.loads(params['message'])
        plain.append({'action_type': action['action_type'],
                      'input_parameters': params})
    return plain
