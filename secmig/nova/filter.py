"""SecureMigrationFilter: only eligible destinations for a moving instance.

Enable it in nova.conf on the scheduler hosts::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = secmig.nova.filter.SecureMigrationFilter
    enabled_filters = ...,SecureMigrationFilter

and give the scheduler a secmig.conf (``[secmig] config_file``) whose
``[pki] cert_dir`` holds the CA certificate and CRL, and whose
``[policy] policy_file`` is the cloud's migration policy.
"""

import logging
import os
import time

from oslo_log import log as oslo_logging

import nova.conf
from nova import context as nova_context
from nova import exception
from nova.scheduler import filters

from secmig import eligibility
from secmig import exception as secmig_exception
from secmig.nova import config
from secmig.nova import startup
from secmig.nova import stats as secmig_stats
from secmig.pki import host as host_files
from secmig.pki import verify
from secmig.policy import facts
from secmig.policy import loader
from secmig import verdicts as verdicts_mod

LOG = oslo_logging.getLogger(__name__)
CONF = nova.conf.CONF
config.register_opts(CONF)


class SecureMigrationFilter(filters.BaseHostFilter):
    """Pass only hosts that may receive this instance under secmig.

    Contract of :meth:`filter_all` (and of :meth:`host_passes`, the same
    for one host):

    * A request that places an instance (a new one, or a shelved one
      unshelved) passes every host: secmig governs moves of existing
      instances from their host. A request is a move when Nova names
      the host to leave in ``ignore_hosts`` (live migration, evacuation,
      resize or cold migration to another host), or when its
      ``requested_destination`` carries ``allow_cross_cell_move``, which
      Nova's API sets for every resize and cold migration, also when
      ``allow_resize_to_same_host`` leaves ``ignore_hosts`` empty. In
      that case the host that holds the instance (``HostState.instances``)
      passes (a resize in place moves nothing) and every other host is
      judged as a destination.
    * For a move, a host passes only if its published certificate is
      valid for its name (CA path, validity with margin, revocation),
      its TLS settings are safe, and the migration policy allows this
      requester to move this instance there (MAC clearance, aggregates,
      zones, RBAC, cooldown). Anything unknown refuses: a host that
      publishes no certificate, a policy file that does not load.
    * A host passes only on a certificate already verified: one this
      scheduler has not judged yet (at its start, or since the host
      published it) is verified in the background, and the host refused
      with ``certificate_pending`` until it has been. No request waits
      for that: a request verifies at most
      :data:`secmig.verdicts.INLINE` certificates itself, and none while
      more than that wait for the background.
    * Cost: no cryptography and no I/O per host. A verdict is kept per
      certificate and CA, with the certificate's validity window, which
      every request checks against the clock. Every
      ``[pki] verdict_refresh_interval`` seconds the first request reads
      the CA bundle and CRL anew; a new CRL is checked against the kept
      verdicts by serial number, so a revocation takes effect within
      that interval. In one request, hosts alike in certificate
      verdict, TLS readiness and aggregates share one policy decision.
    * A refusal that no destination can change (RBAC, automatic
      opt-out, cooldown, an unusable policy file, a secmig.conf that did
      not load when the filter was built) raises ``NoValidHost``
      with secmig's reason at once, instead of removing every host in
      silence: the requester then reads "No valid host was found.
      secmig refused ..." in the instance action, and the conductor does
      not retry host after host.

    Each request's state lives in its own call: nova-scheduler serves
    requests concurrently, with one filter object.

    Refusals are logged at DEBUG per host. When the scheduler host has a
    certificate and key of its own in ``[pki] cert_dir``, each move
    request also leaves one ``scheduled`` audit record in its journal,
    with the hosts refused grouped by reason. The compute hosts check
    again (a forced host skips this filter), so this filter is an early,
    cheap refusal, not the only one.
    """

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def __init__(self):
        """Never raises: a broken secmig must not stop nova-scheduler.

        If secmig.conf does not load (or anything else fails here), an
        ERROR log says why and every move is refused with that reason.
        """
        super().__init__()
        self._unavailable = None
        try:
            self._setup()
        except Exception as e:
            if not isinstance(e, secmig_exception.SecmigError):
                LOG.exception("secmig: the scheduler filter could not be "
                              "set up from %s", CONF.secmig.config_file)
            self._unavailable = startup.refusal(
                CONF.host, e if isinstance(e, secmig_exception.SecmigError)
                else 'the scheduler filter could not be set up from %s: '
                '%s: %s' % (CONF.secmig.config_file, type(e).__name__, e),
                getattr(e, 'code', 'setup_failed'))

    def _setup(self):
        self._conf = config.load(CONF)
        cert_dir = self._conf.pki.cert_dir
        crl = os.path.join(cert_dir, host_files.CA_CRL)
        self._verdicts = verdicts_mod.CertificateVerdicts(
            lambda: verify.TrustStore.from_files(
                os.path.join(cert_dir, host_files.CA_CERT),
                crl if os.path.exists(crl) else None),
            refresh_interval=self._conf.pki.verdict_refresh_interval,
            margin=self._conf.pki.expiry_margin,
            min_rsa_bits=self._conf.pki.min_rsa_bits,
            require_crl=self._conf.pki.require_crl)
        self._policy = loader.PolicySource(self._conf.policy.policy_file)
        try:
            self._policy.get()
        except loader.PolicyError:
            pass  # each move is refused with the reason until it loads
        self._audit = _scheduler_trail(self._conf)
        self._verify_published()

    def _verify_published(self):
        """Queue what the compute nodes publish, to verify in background."""
        try:
            published = secmig_stats.published_certificates(
                nova_context.get_admin_context())
        except Exception as e:
            # Requests then have them verified as they name their hosts.
            LOG.warning("secmig: the certificates compute nodes publish "
                        "could not be read at start: %s", e)
            return
        self._verdicts.submit(published)
        if self._verdicts.pending():
            LOG.info("secmig: verifying %d host certificates in the "
                     "background; until a host's is verified, moves to it "
                     "are refused (certificate_pending)",
                     self._verdicts.pending())

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        source = _move_source(spec_obj, hosts)
        if source is None:
            return hosts
        if self._unavailable is not None:
            _refuse_request(spec_obj, self._unavailable)
        if self._verdicts.refresh_due():
            count = self._verdicts.refresh()
            LOG.debug("secmig: CA and CRL read; %d host certificate "
                      "verdicts to renew", count)
        decisions = self._new_decisions(spec_obj, source.name)
        with self._verdicts.reader(decisions.now) as verdicts:
            current = _RequestPass(source, decisions, verdicts)
            passed = [host for host in hosts
                      if self._passes(current, host, spec_obj)]
        if self._audit is not None:
            self._record(spec_obj, source.name, passed, current.refused)
        if not passed and current.last_refusal is not None and [
                h.host for h in hosts] == [_requested_host(spec_obj)]:
            # The requester chose this host: say why it may not go there,
            # not only that no host was found.
            _refuse_request(spec_obj, current.last_refusal)
        return passed

    def host_passes(self, host_state, spec_obj):
        """:meth:`filter_all` for one host (the scheduler calls that)."""
        return bool(self.filter_all([host_state], spec_obj))

    def _record(self, spec_obj, source_host, passed, refused):
        """One audit record of this request's choice, refusals grouped."""
        context = getattr(spec_obj, '_context', None)
        try:
            request_id = getattr(context, 'request_id', 'unknown')
            self._audit.record(
                'scheduled', 'request-%s' % request_id,
                spec_obj.instance_uuid, 'success' if passed else 'failure',
                source_host=source_host,
                eligible_hosts=sorted(h.host for h in passed),
                refused_hosts=refused)
        except secmig_exception.SecmigError as e:
            # The compute hosts audit the migration itself; a scheduler
            # that cannot write its journal still schedules.
            LOG.error("secmig: the scheduling record of instance %s was "
                      "not written: %s", spec_obj.instance_uuid, e)

    def _new_decisions(self, spec_obj, source_host):
        try:
            policy = self._policy.get()
        except loader.PolicyError as e:
            _refuse_request(spec_obj, loader.unavailable(e))
        context = getattr(spec_obj, '_context', None)
        request = (facts.Request.from_context(context) if context
                   else facts.Request('api', {}))
        flavor = spec_obj.flavor
        image = spec_obj.image
        props = (image.properties.obj_to_primitive()
                 .get('nova_object.data', {})
                 if image is not None and 'properties' in image else {})
        instance = facts.InstanceFacts(
            spec_obj.instance_uuid, spec_obj.project_id or '',
            user_id=spec_obj.user_id or '', flavor_name=flavor.name or '',
            flavor_extra_specs=dict(flavor.extra_specs or {}),
            image_properties={k: str(v) for k, v in props.items()})
        return eligibility.RequestDecisions(
            request, instance, source_host, policy, time.time())

    def _passes(self, current, host_state, spec_obj):
        if current.source.holds(host_state):
            return True
        stats = host_state.stats or {}
        verdict, verdict_key = current.verdicts.lookup(
            host_state.host, stats.get(secmig_stats.CERT))
        tls = stats.get(secmig_stats.TLS)
        aggregates = host_state.aggregates
        # Hosts alike in verdict, TLS readiness and aggregate objects
        # share one decision; the entry holds the aggregates, so their
        # ids stay theirs while the request lasts.
        key = (verdict_key, tls, *map(id, aggregates))
        if current.decisions.per_host:
            key += (host_state.host,)
        entry = current.by_host_facts.get(key)
        if entry is None:
            decision = current.decisions.decide(
                _destination(host_state.host, verdict, tls, aggregates))
            if current.decisions.is_request_level(decision):
                _refuse_request(spec_obj, decision)
            entry = current.by_host_facts[key] = (decision, tuple(aggregates))
        decision = entry[0]
        if decision.allowed:
            return True
        if current.debug:
            LOG.debug("secmig: host %s refused for instance %s: %s (%s)",
                      host_state.host, spec_obj.instance_uuid,
                      decision.code, decision.reason)
        # A certificate refusal is recorded with the certificate's own code
        # (revoked, not_enrolled, expired...), which says more.
        code = decision.details.get('certificate_code', decision.code)
        current.refused.setdefault(code, []).append(host_state.host)
        current.last_refusal = decision
        return False


class _Source:
    """The host a moving instance leaves, as far as the request says."""

    __slots__ = ('name', 'may_stay')

    def __init__(self, name, may_stay):
        #: the host's name ('unknown' if not among the candidates)
        self.name = name
        #: True when the instance may stay on it (resize in place)
        self.may_stay = may_stay

    def holds(self, host_state):
        """True for the source itself, when the instance may stay."""
        return self.may_stay and host_state.host == self.name


def _move_source(spec_obj, hosts):
    """The :class:`_Source` of a move, or None when placing an instance.

    Nova puts the host to leave first in ``ignore_hosts`` for a live
    migration, an evacuation and a move to another host; its API sets
    ``requested_destination.allow_cross_cell_move`` for every resize and
    cold migration, even when the instance may stay on its host and
    ``ignore_hosts`` is empty. Boots and unshelves carry neither.
    """
    if spec_obj.obj_attr_is_set('ignore_hosts') and spec_obj.ignore_hosts:
        return _Source(spec_obj.ignore_hosts[0], False)
    destination = (spec_obj.requested_destination
                   if spec_obj.obj_attr_is_set('requested_destination')
                   else None)
    if destination is None or 'allow_cross_cell_move' not in destination:
        return None
    holders = [host.host for host in hosts
               if spec_obj.instance_uuid in (host.instances or {})]
    return _Source(holders[0] if holders else 'unknown', True)


class _RequestPass:
    """One scheduling request as the filter sees it."""

    __slots__ = ('source', 'decisions', 'verdicts', 'by_host_facts',
                 'refused', 'last_refusal', 'debug')

    def __init__(self, source, decisions, verdicts):
        self.source = source
        self.decisions = decisions
        #: the request's :class:`secmig.verdicts.Reader`
        self.verdicts = verdicts
        self.by_host_facts = {}
        #: refusal code -> hosts refused with it
        self.refused = {}
        #: the Decision that refused the last host refused
        self.last_refusal = None
        #: whether refusals are logged per host (asked once per request)
        self.debug = LOG.isEnabledFor(logging.DEBUG)


def _requested_host(spec_obj):
    """The destination host the requester named, or None."""
    destination = (spec_obj.requested_destination
                   if spec_obj.obj_attr_is_set('requested_destination')
                   else None)
    if destination is None or not destination.obj_attr_is_set('host'):
        return None
    return destination.host


def _destination(host, verdict, tls, aggregates):
    zones = [a.metadata.get('availability_zone') for a in aggregates
             if 'availability_zone' in a.metadata]
    return facts.HostFacts.from_verdict(
        host, verdict, tls == 'ready', frozenset(a.name for a in aggregates),
        zones[0] if zones else None)


def _refuse_request(spec_obj, decision):
    LOG.warning("secmig: refusing to move instance %s anywhere: %s (%s)",
                spec_obj.instance_uuid, decision.reason, decision.code)
    raise exception.NoValidHost(
        reason='secmig refused the migration (%s): %s'
        % (decision.code, decision.reason))


def _scheduler_trail(conf):
    """The scheduler's audit trail, if this host has a key to sign with."""
    from secmig.audit import trail  # oslo.messaging: only when needed

    cert_dir = conf.pki.cert_dir
    if not os.path.exists(os.path.join(cert_dir, host_files.SERVER_KEY)):
        LOG.info("secmig: %s holds no host key; scheduling decisions are "
                 "logged, not journaled", cert_dir)
        return None
    try:
        return trail.AuditTrail.from_conf(conf, host=CONF.host)
    except secmig_exception.SecmigError as e:
        LOG.error("secmig: scheduling decisions will not be journaled: %s",
                  e)
        return None
