"""Compute-side enforcement of live migrations, free of Nova.

Each compute host runs one :class:`HostGuard`. The Nova adapter
(:mod:`secmig.nova.driver`) calls it at each phase of a live migration
and turns its refusals into Nova errors; the guards of the source and the
destination talk to each other through a :class:`PeerChannel` (RPC in
Nova, direct calls in unit tests). The order of one migration::

    destination  authorise_incoming   policy, TLS settings, the name
                                      QEMU will verify (inbound address,
                                      else libvirt hostname), then the
                                      handshake as initiator:
    source         answer_hello       (auth1 -> auth2)
    source         answer_confirm     (auth3 -> authenticated)
    destination                       policy with the source's proven
                                      identity -> authorised
    source       authorise_outgoing   needs the completed handshake;
                                      policy again from the source's view;
                                      the flags and control URI Nova will
                                      use (encrypted, post-copy)
    source       start_outgoing       at the libvirt call: the same
                                      checks again, the names QEMU will
                                      verify; per-migration tuning
    both         record_phase         copied, activated, rolled back,
                                      source cleaned up, failed

Every step is written to the audit trail before the migration proceeds;
if the record cannot be written the step is refused. Every method
returns a :class:`~secmig.decision.Decision` and never raises for a
condition of the cloud (a missing certificate, a broken policy, a
hostile peer): those refuse, with the reason.
"""

import dataclasses
import datetime
import logging
import time
import urllib.parse

from secmig.auth import answering
from secmig.auth import binding as binding_mod
from secmig.auth import credentials
from secmig.auth import handshake
from secmig.auth import sessions
from secmig.decision import Decision
from secmig import exception
from secmig.pki import verify
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts
from secmig.policy import loader
from secmig import tls

LOG = logging.getLogger(__name__)

#: How long an authorisation stays usable: the longest a migration may
#: take from its checks to its last phase.
AUTHORISATION_TTL = 24 * 3600


class PeerChannel:
    """How a guard reaches the guard of the other host (the interface).

    Implementations carry bytes and decisions only; they need not be
    trusted: the handshake's signatures are the security.
    """

    def hello(self, peer_host, migration_id, instance_uuid, auth1):
        """Deliver ``auth1``; return ``(auth2 or None, Decision)``."""
        raise NotImplementedError

    def confirm(self, peer_host, instance_uuid, auth3):
        """Deliver ``auth3``; return the peer's final Decision."""
        raise NotImplementedError

    def report(self, peer_host, instance_uuid, decision):
        """Tell the source that this destination refused (best effort)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Authorisation:
    """What a host remembers of an authorised migration."""

    migration_id: str
    instance_uuid: str
    source_host: str
    dest_host: str
    policy_digest: str
    constraints: dict
    evidence: dict
    #: The names the destination's certificate holds (source side only:
    #: the libvirt call must go to one of them).
    dest_names: tuple = ()


class HostGuard:
    """Enforcement on one compute host.

    :param host: this host's name, as in its certificate
    :param conf: a ``ConfigOpts`` with secmig's groups
    :param audit: an :class:`~secmig.audit.trail.AuditTrail`, or None when
        it could not be opened (then every migration is refused)
    :param audit_error: why the trail could not be opened
    """

    def __init__(self, host, conf, audit, audit_error=None,
                 clock=time.time):
        self.host = host
        self.conf = conf
        self.audit = audit
        self.audit_error = audit_error
        self.clock = clock
        self.policy_source = loader.PolicySource(conf.policy.policy_file)
        self._answering = answering.AnsweringHost(host, conf, clock)
        self._authenticated = sessions.SessionTable.from_conf(conf, clock)
        self._authorised = sessions.SessionTable(
            conf.auth.max_pending_handshakes, AUTHORISATION_TTL, clock)

    @classmethod
    def from_conf(cls, conf, host, clock=time.time):
        """Build the guard; an audit trail that cannot open is remembered.

        The compute service must start even when secmig is misconfigured
        (its running guests do not depend on it), so errors here do not
        raise: they make every migration refuse with the reason.
        """
        from secmig.audit import trail  # oslo.messaging: only when needed

        try:
            audit = trail.AuditTrail.from_conf(conf, host=host)
        except exception.SecmigError as e:
            LOG.error("secmig: audit trail unavailable, every live "
                      "migration will be refused: %s", e)
            return cls(host, conf, None, audit_error=str(e), clock=clock)
        return cls(host, conf, audit, clock=clock)

    # Shared steps -------------------------------------------------------

    def _policy(self):
        try:
            return self.policy_source.get(), None
        except loader.PolicyError as e:
            return None, loader.unavailable(e)

    def _identity(self):
        """This host's credentials, trust store and certificate verdict.

        Read on each migration, so renewed certificates and fresh CRLs
        apply without a restart.
        """
        cert_dir = self.conf.pki.cert_dir
        try:
            creds = credentials.load(cert_dir, self.host)
            trust = credentials.load_trust(cert_dir)
        except exception.SecmigError as e:
            return None, None, Decision.refuse(
                'host_identity_unavailable', 'this host (%s) has no usable '
                'certificate in %s: %s' % (self.host, cert_dir, e),
                error_code=e.code)
        verdict = verify.verify_certificate(
            creds.cert, trust, host=self.host, now=self._now(),
            margin=self.conf.pki.expiry_margin,
            min_rsa_bits=self.conf.pki.min_rsa_bits,
            require_crl=self.conf.pki.require_crl)
        return creds, trust, verdict

    def _now(self):
        return datetime.datetime.fromtimestamp(self.clock(),
                                               datetime.timezone.utc)

    def record(self, step, migration_id, instance_uuid, outcome,
               decision=None, **evidence):
        """Write one audit record; a refusal if it cannot be written."""
        if self.audit is None:
            return Decision.refuse(
                'audit_unavailable', 'the audit trail cannot be written (%s);'
                ' no migration may proceed unrecorded' % self.audit_error)
        try:
            self.audit.record(step, migration_id, instance_uuid, outcome,
                              decision=decision, **evidence)
        except exception.SecmigError as e:
            LOG.error("secmig: audit record %s of migration %s failed: %s",
                      step, migration_id, e)
            return Decision.refuse(
                'audit_unavailable', 'the audit record could not be written '
                '(%s); no migration may proceed unrecorded' % e)
        return Decision.allow('recorded')

    def _conclude(self, step, decision, migration_id, instance_uuid,
                  **evidence):
        """Audit ``decision`` (as ``step`` or ``refused``); return it.

        A failed audit write turns an allowing decision into a refusal.
        """
        if decision:
            written = self.record(step, migration_id, instance_uuid,
                                  'success', decision=decision, **evidence)
            return decision if written else written
        LOG.warning("secmig refused migration %s of instance %s on %s: %s",
                    migration_id, instance_uuid, self.host, decision)
        self.record('refused', migration_id, instance_uuid, 'failure',
                    decision=decision, **evidence)
        return decision

    # Destination ------------------------------------------------------

    def authorise_incoming(self, migration_id, request, instance,
                           source_host, settings, peer, aggregates=(),
                           availability_zone=None, inbound_addr=None,
                           libvirt_hostname=None):
        """Decide, on the destination, whether to accept a migration.

        :param request: :class:`~secmig.policy.facts.Request`
        :param instance: :class:`~secmig.policy.facts.InstanceFacts`
        :param settings: the Decision of :func:`secmig.tls.check_settings`
            for this host's libvirt settings
        :param peer: a :class:`PeerChannel` to the source
        :param inbound_addr: the address the source will be told to
            migrate to (Nova's ``[libvirt] live_migration_inbound_addr``),
            the name QEMU on the source will verify this host's
            certificate against; it must be one of the certificate's names
        :param libvirt_hostname: this host's hostname as its libvirtd
            reports it (``virConnectGetHostname``). Without an inbound
            address Nova gives libvirt no migrate URI: this host's libvirtd
            then hands the source ``tcp://HOSTNAME:PORT`` and QEMU on the
            source verifies the certificate against that hostname, which
            must then be one of its names (unless qemu.conf
            ``migration_host`` replaces it, which secmig cannot see: set
            the inbound address instead). None: not checked.
        """
        evidence = {'requester': request.credentials.get('user_id'),
                    'source_host': source_host,
                    'destination_host': self.host}
        self.record('requested', migration_id, instance.uuid, 'pending',
                    **evidence)
        decision, proof = self._incoming(migration_id, request, instance,
                                         source_host, settings, peer,
                                         aggregates, availability_zone,
                                         inbound_addr, libvirt_hostname)
        evidence.update(proof)
        decision = self._conclude('authorised', decision, migration_id,
                                  instance.uuid, **evidence)
        if not decision and decision.details.get('refused_by') is None:
            # The source records the refusal too: this host may be unable
            # to (no key to sign its journal with).
            peer.report(source_host, instance.uuid, decision)
        if decision:
            self._authorised.put(instance.uuid, Authorisation(
                migration_id, instance.uuid, source_host, self.host,
                decision.details.get('policy_digest'),
                dict(decision.details.get('constraints', {})), evidence))
        return decision

    def _incoming(self, migration_id, request, instance, source_host,
                  settings, peer, aggregates, availability_zone,
                  inbound_addr, libvirt_hostname):
        """The decision and the evidence gathered on the way."""
        policy, refusal = self._policy()
        if refusal is not None:
            return refusal, {}
        if not settings:
            return settings, {}
        creds, trust, own = self._identity()
        if not own:
            return own, {}
        named = _check_inbound_name(
            tuple(own.details.get('names') or ()), settings, inbound_addr,
            libvirt_hostname)
        if not named:
            return named, {}
        try:
            binding = binding_mod.Binding(migration_id, instance.uuid,
                                          source_host, self.host,
                                          policy.digest)
        except exception.SecmigError as e:
            return Decision.refuse(e.code, str(e)), {}
        initiator = handshake.Initiator(creds, trust, binding, self.conf,
                                        self.clock)
        auth2, remote = peer.hello(source_host, migration_id,
                                   instance.uuid, initiator.start())
        if auth2 is None:
            return _from_peer(remote, source_host), {}
        auth3, mine = initiator.finish(auth2)
        if auth3 is None:
            return mine, {}
        final = peer.confirm(source_host, instance.uuid, auth3)
        if not final:
            return _from_peer(final, source_host), {}
        proof = {'source_fingerprint': mine.details['responder_fingerprint'],
                 'destination_fingerprint':
                     mine.details['initiator_fingerprint'],
                 'transcript_hash': mine.details['transcript_hash'],
                 'policy_digest': policy.digest}
        self.record('authenticated', migration_id, instance.uuid, 'success',
                    decision=mine, source_host=source_host,
                    destination_host=self.host, **proof)
        source = facts.HostFacts(
            source_host, int(mine.details['peer_clearance']), True, 'ok',
            # The source enforces its own TLS settings before it sends.
            tls_ready=True)
        destination = facts.HostFacts.from_verdict(
            self.host, own, bool(settings), aggregates, availability_zone)
        return evaluate_mod.evaluate(request, instance, source, destination,
                                     policy, self.clock()), proof

    # Source -----------------------------------------------------------

    def answer_hello(self, migration_id, instance_uuid, auth1,
                     dest_host=None):
        """Answer a destination's ``auth1`` for an instance on this host.

        ``migration_id`` and ``instance_uuid`` come from this host's own
        knowledge (the adapter checks the instance is here and looks up
        its migration), and so does ``dest_host`` when the adapter knows
        it; otherwise the destination's name is taken from the message
        and proven by its certificate. Every refusal is recorded.
        """
        auth2, decision = self._hello(migration_id, instance_uuid, auth1,
                                      dest_host)
        if auth2 is None:
            self._conclude('authenticated', decision, migration_id,
                           instance_uuid, source_host=self.host,
                           destination_host=decision.details.get(
                               'peer_host', dest_host))
        return auth2, decision

    def _hello(self, migration_id, instance_uuid, auth1, dest_host):
        policy, refusal = self._policy()
        if refusal is not None:
            return None, refusal
        creds, trust, own = self._identity()
        if not own:
            return None, own
        return self._answering.hello(creds, trust, migration_id,
                                     instance_uuid, policy.digest, auth1,
                                     dest_host=dest_host)

    def answer_confirm(self, instance_uuid, auth3):
        """Finish the handshake a destination started; return the verdict.

        The first destination to authenticate itself for an instance is
        the one this host will send it to, until the migration is
        authorised or the proof expires: a later handshake by another
        enrolled host for the same instance is refused
        (``handshake_in_progress``) and cannot displace it.
        """
        decision = self._answering.confirm(instance_uuid, auth3)
        held = self._authenticated.get(instance_uuid)
        if decision and held is not None and (
                held.details['peer_host'] != decision.details['peer_host']):
            decision = Decision.refuse(
                'handshake_in_progress', '%s authenticated itself for '
                'instance %s while %s, which authenticated first, holds '
                'the migration' % (decision.details['peer_host'],
                                   instance_uuid,
                                   held.details['peer_host']),
                **decision.details)
        details = decision.details
        migration_id = details.get('migration_id', 'unknown')
        evidence = {'source_host': self.host,
                    'destination_host': details.get('peer_host')}
        if decision:
            evidence.update(
                source_fingerprint=details['responder_fingerprint'],
                destination_fingerprint=details['initiator_fingerprint'],
                transcript_hash=details['transcript_hash'])
        decision = self._conclude('authenticated', decision, migration_id,
                                  instance_uuid, **evidence)
        if decision:
            self._authenticated.put(instance_uuid, decision)
        return decision

    def answer_report(self, migration_id, instance_uuid, reporter,
                      decision):
        """Record a destination's report that it refused a migration.

        The report is not authenticated (the destination may have no
        key), so it is written down and acted upon only to release the
        reporter's own proof for the instance, if this host holds one, so
        that another destination may authenticate (a forged report can
        only make the migration fail, as dropping messages can).
        """
        held = self._authenticated.get(instance_uuid)
        if held is not None and held.details['peer_host'] == reporter:
            self._authenticated.pop(instance_uuid)
        return self.record('refused', migration_id, instance_uuid, 'failure',
                           decision=decision, source_host=self.host,
                           destination_host=reporter, reported_by=reporter,
                           report_authenticated=False)

    def authorise_outgoing(self, request, instance, settings,
                           placement=lambda host: ((), None),
                           transport=None):
        """Decide, on the source, whether to send an instance away.

        Needs the handshake the destination completed with this host for
        this instance; the destination is the host that proved itself.
        ``placement(host)`` returns ``(aggregate names, availability
        zone)`` of that host. ``transport(host)`` returns ``(flags,
        control URI, bits)``: what Nova will hand libvirt to migrate to
        that host (see :func:`secmig.tls.check_migration`); they are
        checked with the policy's constraints before anything moves.
        """
        proof = self._authenticated.pop(instance.uuid)
        if proof is None:
            decision = Decision.refuse(
                'not_authenticated', 'no destination has authenticated '
                'itself to %s for instance %s: every live migration needs '
                'the secmig handshake' % (self.host, instance.uuid))
            return self._conclude('authorised', decision, 'unknown',
                                  instance.uuid, source_host=self.host)
        details = proof.details
        migration_id = details['migration_id']
        dest_host = details['peer_host']
        evidence = {'requester': request.credentials.get('user_id'),
                    'source_host': self.host, 'destination_host': dest_host,
                    'source_fingerprint': details['responder_fingerprint'],
                    'destination_fingerprint':
                        details['initiator_fingerprint']}
        decision = self._outgoing(request, instance, settings, details,
                                  dest_host, *placement(dest_host))
        if decision and transport is not None:
            flags, uri, bits = transport(dest_host)
            checked = tls.check_migration(
                flags, uri, decision.details.get('constraints', {}), bits)
            if not checked:
                decision = checked
            evidence['tls_flags'] = checked.details.get('flags', [])
        decision = self._conclude('authorised', decision, migration_id,
                                  instance.uuid, **evidence)
        if decision:
            self._authorised.put(instance.uuid, Authorisation(
                migration_id, instance.uuid, self.host, dest_host,
                decision.details.get('policy_digest'),
                dict(decision.details.get('constraints', {})), evidence,
                tuple(details.get('peer_names') or (dest_host,))))
        return decision

    def _outgoing(self, request, instance, settings, proof, dest_host,
                  dest_aggregates, dest_availability_zone):
        policy, refusal = self._policy()
        if refusal is not None:
            return refusal
        if proof['policy_digest'] != policy.digest:
            return Decision.refuse(
                'policy_changed', 'the migration policy changed since the '
                'handshake (%s, now %s)' % (proof['policy_digest'],
                                            policy.digest))
        if not settings:
            return settings
        _, _, own = self._identity()
        if not own:
            return own
        source = facts.HostFacts.from_verdict(self.host, own, True)
        destination = facts.HostFacts(
            dest_host, int(proof['peer_clearance']), True, 'ok',
            # The destination checked its own TLS settings before the
            # handshake; the flags check at the libvirt call is final.
            tls_ready=bool(settings), aggregates=frozenset(dest_aggregates),
            availability_zone=dest_availability_zone)
        return evaluate_mod.evaluate(request, instance, source, destination,
                                     policy, self.clock())

    def start_outgoing(self, instance_uuid, destination_uri, flags,
                       bandwidth_mib, parallel, bits, migrate_uri=None):
        """At the libvirt call: ``(Decision, Tuning or None)``.

        The host of the control URI and the host of ``migrate_uri`` (the
        ``tls-hostname`` libvirt gives QEMU) must both be names of the
        certificate the destination authenticated with. Without a
        ``migrate_uri`` the destination's libvirtd chooses the address
        (qemu.conf ``migration_host``, else its hostname): secmig cannot
        see it here; the destination checked its hostname against its
        own certificate in :meth:`authorise_incoming`.

        :param bits: ``{flag name: bit}`` for :data:`secmig.tls.FLAG_NAMES`
        """
        auth = self._authorised.get(instance_uuid)
        if auth is None:
            decision = Decision.refuse(
                'not_authorised', 'instance %s has no secmig authorisation '
                'on %s; refusing to start its migration'
                % (instance_uuid, self.host))
            return self._conclude('started', decision, 'unknown',
                                  instance_uuid), None
        decision = tls.check_migration(flags, destination_uri,
                                       auth.constraints, bits)
        target = urllib.parse.urlsplit(destination_uri or '').hostname
        if decision and not verify.name_in(target, auth.dest_names):
            decision = Decision.refuse(
                'destination_mismatch', 'libvirt was asked to migrate to %s, '
                'but the host authenticated for this migration is %s (%s)'
                % (target, auth.dest_host, ', '.join(auth.dest_names)))
        if decision and migrate_uri:
            decision = _check_migrate_uri(migrate_uri, flags, bits, auth)
        tuning = None
        if decision:
            tuning = tls.tune(flags, bandwidth_mib, parallel,
                              auth.constraints, bits)
            decision = Decision.allow(
                'migration of %s to %s starts encrypted'
                % (instance_uuid, auth.dest_host),
                flags=tls.flag_names(tuning.flags, bits),
                bandwidth_mib=tuning.bandwidth_mib,
                parallel=tuning.parallel)
        decision = self._conclude(
            'started', decision, auth.migration_id, instance_uuid,
            tls_flags=decision.details.get('flags', []),
            policy_digest=auth.policy_digest, **_ends(auth))
        return decision, (tuning if decision else None)

    # Later phases -----------------------------------------------------

    def is_authorised(self, instance_uuid):
        """The :class:`Authorisation` of an instance, or None."""
        return self._authorised.get(instance_uuid)

    def record_phase(self, step, instance_uuid, outcome='success',
                     reason=None, forget=False):
        """Audit a later phase of an authorised (or refused) migration.

        ``forget`` drops the authorisation (the migration is over).
        Returns the Decision of the audit write.
        """
        auth = (self._authorised.pop(instance_uuid) if forget
                else self._authorised.get(instance_uuid))
        migration_id = auth.migration_id if auth else 'unknown'
        evidence = _ends(auth) if auth else {}
        if reason:
            evidence['reason'] = reason
        return self.record(step, migration_id, instance_uuid, outcome,
                           **evidence)


def _check_migrate_uri(migrate_uri, flags, bits, auth):
    """The migrate URI's host is the ``tls-hostname`` QEMU verifies."""
    name = urllib.parse.urlsplit(migrate_uri).hostname
    if flags & bits['VIR_MIGRATE_TUNNELLED'] or verify.name_in(
            name, auth.dest_names):
        return Decision.allow('QEMU will verify %s' % name)
    return Decision.refuse(
        'tls_hostname_mismatch', 'QEMU would verify the destination\'s '
        'certificate against %s (the host of the migrate URI %s, from '
        '[libvirt] live_migration_inbound_addr on %s), which is not among '
        'the names of the certificate %s authenticated with (%s)'
        % (name, migrate_uri, auth.dest_host, auth.dest_host,
           ', '.join(auth.dest_names)), tls_hostname=name,
        names=list(auth.dest_names))


def _check_inbound_name(names, settings, inbound_addr, libvirt_hostname):
    """The name QEMU on the source will verify is one of ``names``.

    That name is the inbound address when set, else this host's libvirt
    hostname (libvirtd's choice when Nova passes no migrate URI). A
    tunnelled migration goes through libvirtd, and QEMU verifies no
    name: only the inbound address, if set, must still be named.
    """
    if inbound_addr:
        if verify.name_in(inbound_addr, names):
            return Decision.allow('QEMU will verify %s' % inbound_addr)
        return Decision.refuse(
            'inbound_addr_not_in_certificate', 'QEMU on the source will '
            'verify this host\'s certificate against %s ([libvirt] '
            'live_migration_inbound_addr), which is not among its names '
            '(%s): enroll the host with that address, or set the option '
            'to one of them' % (inbound_addr, ', '.join(names)),
            inbound_addr=inbound_addr, names=list(names))
    if (not libvirt_hostname
            or settings.details.get('mode') == 'tunnelled_over_tls'
            or verify.name_in(libvirt_hostname, names)):
        return Decision.allow('QEMU will verify %s' % libvirt_hostname)
    return Decision.refuse(
        'inbound_addr_not_in_certificate', 'QEMU on the source will verify '
        'this host\'s certificate against %s, its hostname as libvirt '
        'reports it ([libvirt] live_migration_inbound_addr is not set, so '
        'libvirtd gives the source its hostname), which is not among its '
        'names (%s): set [libvirt] live_migration_inbound_addr to one of '
        'them, or enroll the host with that hostname'
        % (libvirt_hostname, ', '.join(names)),
        libvirt_hostname=libvirt_hostname, names=list(names))


def _ends(auth):
    return {'source_host': auth.source_host,
            'destination_host': auth.dest_host}


def _from_peer(decision, peer_host):
    """A peer's refusal, relabelled so that the log says who refused.

    The refusal crossed the bus unsigned: it is recorded as what the
    peer (or anyone on the bus) said, never as proof of the peer's state.
    """
    details = dict(decision.details, refused_by=peer_host,
                   report_authenticated=False)
    return Decision.refuse(
        decision.code, '%s refused: %s' % (peer_host, decision.reason),
        **details)
