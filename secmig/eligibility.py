"""Which hosts may receive an instance: the scheduler's cheap answer.

The scheduler filter asks, for every candidate host of every move, the
question :func:`secmig.policy.evaluate.evaluate` answers, and must answer
it in microseconds. Two caches make that possible without weakening it:

* :class:`CertificateVerdicts` keeps the verification verdict of each
  host's certificate. Verifying costs signature checks, so it happens
  when a certificate is first seen and then on refresh, every
  ``refresh_interval`` seconds on the caller's schedule, with the CA
  bundle and CRL read anew: a revocation takes effect within that
  interval. A refresh that finds the CA bundle and CRL unchanged
  re-verifies only the verdicts time can change.
* :class:`RequestDecisions` keeps, for one scheduling request, the
  decision for each distinct set of destination facts: hosts alike in
  clearance, certificate verdict, TLS readiness, aggregates and zone
  share one evaluation.

Both are pure: the filter in :mod:`secmig.nova.filter` feeds them Nova's
host states.
"""

import datetime
import threading
import time

from cryptography.hazmat.primitives import serialization

from secmig.decision import Decision
from secmig import exception
from secmig.pki import keys
from secmig.pki import verify
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts


class CertificateVerdicts:
    """Verdicts of host certificates, by host name.

    :param load_trust: returns the current
        :class:`~secmig.pki.verify.TrustStore` (read anew on refresh);
        may raise :class:`~secmig.exception.SecmigError`, which refuses
        every host (``trust_unavailable``) until a refresh succeeds
    :param refresh_interval: seconds between two refreshes
        (:meth:`refresh_due`)
    :param clock: returns the current POSIX time
    :param verify_kwargs: passed to :func:`~secmig.pki.verify.
        verify_certificate` (margin, min_rsa_bits, require_crl)

    A refresh re-verifies every known certificate when the CA bundle or
    a revocation list changed. When they did not, only the verdicts that
    time can change are re-verified: refusals, and acceptances whose
    window has closed (the certificate's expiry less the margin, the
    next update of a revocation list, the CA's own expiry). Both give
    the verdict a full verification would give.
    """

    def __init__(self, load_trust, refresh_interval=60, clock=time.time,
                 **verify_kwargs):
        self._load_trust = load_trust
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._verify_kwargs = verify_kwargs
        self._margin = verify_kwargs.get('margin', _DEFAULT_MARGIN)
        # host -> (pem, Decision, key, valid until)
        self._entries = {}
        self._keys = {}
        self._trust = None
        self._trust_error = None
        self._trust_identity = None
        self._trust_until = 0.0
        self._refreshed_at = None
        self._lock = threading.Lock()

    def _current_trust(self):
        """Load the trust store; True when it differs from the last one."""
        try:
            trust, error = self._load_trust(), None
        except exception.SecmigError as e:
            trust, error = None, e
        identity = _trust_identity(trust)
        changed = identity is None or identity != self._trust_identity
        self._trust, self._trust_error = trust, error
        self._trust_identity = identity
        self._trust_until = _trust_until(trust)
        return changed

    def _verify(self, host, pem):
        if self._trust is None:
            return Decision.refuse(
                'trust_unavailable', 'the CA certificate or revocation list '
                'cannot be read: %s' % self._trust_error)
        if not pem:
            return Decision.refuse(
                'not_enrolled', '%s publishes no certificate' % host)
        try:
            cert = keys.load_certificate(pem.encode('ascii'), host)
        except (exception.SecmigError, UnicodeError) as e:
            return Decision.refuse(getattr(e, 'code', 'malformed_pem'),
                                   str(e))
        now = datetime.datetime.fromtimestamp(self._clock(),
                                              datetime.timezone.utc)
        return verify.verify_certificate(cert, self._trust, host=host,
                                         now=now, **self._verify_kwargs)

    def _entry(self, host, pem):
        decision = self._verify(host, pem)
        key = (decision.allowed, decision.code,
               int(decision.details.get('clearance', 0))
               if decision.allowed else 0)
        key = self._keys.setdefault(key, key)
        until = 0.0
        if decision.allowed:
            not_after = datetime.datetime.fromisoformat(
                decision.details['not_after']).timestamp()
            until = min(not_after - self._margin, self._trust_until)
        return (pem, decision, key, until)

    def refresh_due(self):
        return (self._refreshed_at is None or self._clock()
                - self._refreshed_at >= self.refresh_interval)

    def refresh(self):
        """Bring every known verdict up to date with a fresh trust store.

        Returns the number of certificates re-verified.
        """
        with self._lock:
            changed = self._current_trust()
            entries = dict(self._entries)
            self._refreshed_at = now = self._clock()
        stale = {host: entry for host, entry in entries.items()
                 if changed or entry[3] <= now}
        fresh = {host: self._entry(host, entry[0])
                 for host, entry in stale.items()}
        with self._lock:
            for host, entry in fresh.items():
                if self._entries.get(host, (None,))[0] == entry[0]:
                    self._entries[host] = entry
        return len(fresh)

    def lookup(self, host, pem):
        """``(verdict, key)`` for ``host`` publishing certificate ``pem``.

        ``verdict`` is the verification Decision; ``key`` is a hashable
        summary of it (validity, code, clearance), the same object for
        alike verdicts. A dictionary lookup, except the first time a
        host or a new certificate of it is seen.
        """
        entry = self._entries.get(host)
        if entry is None or entry[0] != pem:
            with self._lock:
                if self._refreshed_at is None:
                    self._current_trust()
                    self._refreshed_at = self._clock()
                entry = self._entry(host, pem)
                self._entries[host] = entry
        return entry[1], entry[2]

    def verdict(self, host, pem):
        """The verification Decision for ``host`` publishing ``pem``."""
        return self.lookup(host, pem)[0]


_DEFAULT_MARGIN = 3600


def _trust_identity(trust):
    """What a verdict depends on in ``trust``: its CAs' and CRLs' bytes."""
    if trust is None:
        return None
    der = serialization.Encoding.DER
    return (tuple(ca.public_bytes(der) for ca in trust.ca_certs),
            tuple(crl.public_bytes(der) for crl in trust.crls))


def _trust_until(trust):
    """When ``trust`` stops vouching: a CA expires or a CRL goes stale."""
    if trust is None:
        return 0.0
    times = [ca.not_valid_after_utc for ca in trust.ca_certs]
    times += [crl.next_update_utc for crl in trust.crls
              if crl.next_update_utc is not None]
    return min(times).timestamp()


def source_facts(name):
    """The source as the scheduler sees it.

    The scheduler chooses destinations; the source's own compute host
    checks the source (certificate, TLS settings, handshake) before
    anything moves.
    """
    return facts.HostFacts(name, certificate_valid=True,
                           certificate_code='ok', tls_ready=True)


#: Refusals that depend on the request, not on the destination: no host
#: can change them (who asks, automatic opt-outs, cooldown, the policy
#: itself).
REQUEST_LEVEL = frozenset((
    'rbac_denied', 'rbac_error', 'unknown_trigger', 'automatic_disabled',
    'opted_out_project', 'opted_out_flavor', 'opted_out_instance',
    'cooldown', 'bad_instance_level', 'policy_unavailable',
    'evaluation_error'))


def is_request_level(decision):
    """True for a refusal that every destination would get alike."""
    return not decision and decision.code in REQUEST_LEVEL


def reads_destination_name(policy):
    """Whether a rule of ``policy`` may read the destination's name.

    Its decisions may then differ between hosts alike in every other
    fact. Read from the rules' texts, so it errs on the side of yes.
    """
    rules = [*policy.rules.values(), *policy.rbac.values(),
             policy.automatic.identify, policy.cooldown.exempt]
    return any(rule is not None and 'destination' in rule.text
               for rule in rules)


class RequestDecisions:
    """Decisions for one scheduling request, shared by alike hosts.

    Hosts are alike when they share every fact the policy reads: the
    destination's name too when :attr:`per_host`.
    """

    def __init__(self, request, instance, source_host, policy, now):
        self.request = request
        self.instance = instance
        self.source = source_facts(source_host)
        self.policy = policy
        self.now = now
        #: True when a rule reads the destination's name: no decision is
        #: shared between hosts, and none is request-level.
        self.per_host = reads_destination_name(policy)
        self._by_facts = {}

    def is_request_level(self, decision):
        """:func:`is_request_level`, unless decisions are per host."""
        return not self.per_host and is_request_level(decision)

    def decide(self, destination):
        """The decision for :class:`~secmig.policy.facts.HostFacts`."""
        key = (destination.clearance, destination.certificate_valid,
               destination.certificate_code, destination.tls_ready,
               destination.aggregates, destination.availability_zone,
               destination.name if self.per_host else None)
        decision = self._by_facts.get(key)
        if decision is None:
            decision = evaluate_mod.evaluate(
                self.request, self.instance, self.source, destination,
                self.policy, self.now)
            self._by_facts[key] = decision
        return decision
