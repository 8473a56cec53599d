"""Which hosts may receive an instance: the scheduler's cheap answer.

The scheduler filter asks, for every candidate host of every move, the
question :func:`secmig.policy.evaluate.evaluate` answers, and must answer
it in microseconds. Two caches make that possible without weakening it:

* :class:`CertificateVerdicts` keeps the verification verdict of each
  host's certificate. Verifying costs signature checks, so it happens
  when a certificate is first seen and then again for every host at most
  every ``refresh_interval`` seconds (with the CRL read anew), on the
  caller's schedule: a revocation takes effect within that interval.
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

from secmig.decision import Decision
from secmig import exception
from secmig.pki import keys
from secmig.pki import verify
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts


class CertificateVerdicts:
    """Verdicts of host certificates, by host name.

    :param load_trust: returns the current
        :class:`~secmig.pki.verify.TrustStore` (read anew on refresh)
    :param verify_kwargs: passed to :func:`~secmig.pki.verify.
        verify_certificate` (margin, min_rsa_bits, require_crl)
    """

    def __init__(self, load_trust, refresh_interval=60, clock=time.time,
                 **verify_kwargs):
        self._load_trust = load_trust
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._verify_kwargs = verify_kwargs
        self._entries = {}
        self._trust = None
        self._trust_error = None
        self._refreshed_at = None
        self._lock = threading.Lock()

    def _current_trust(self):
        try:
            self._trust, self._trust_error = self._load_trust(), None
        except exception.SecmigError as e:
            self._trust, self._trust_error = None, e

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

    def refresh_due(self):
        return (self._refreshed_at is None or self._clock()
                - self._refreshed_at >= self.refresh_interval)

    def refresh(self):
        """Re-verify every known certificate against a fresh trust store."""
        with self._lock:
            self._current_trust()
            entries = dict(self._entries)
            self._refreshed_at = self._clock()
        fresh = {host: (pem, self._verify(host, pem))
                 for host, (pem, _) in entries.items()}
        with self._lock:
            for host, entry in fresh.items():
                if self._entries.get(host, (None,))[0] == entry[0]:
                    self._entries[host] = entry

    def verdict(self, host, pem):
        """The verdict for ``host`` publishing certificate ``pem``.

        A dictionary lookup, except the first time a host or a new
        certificate of it is seen.
        """
        entry = self._entries.get(host)
        if entry is not None and entry[0] == pem:
            return entry[1]
        with self._lock:
            if self._refreshed_at is None:
                self._current_trust()
                self._refreshed_at = self._clock()
            decision = self._verify(host, pem)
            self._entries[host] = (pem, decision)
        return decision


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


class RequestDecisions:
    """Decisions for one scheduling request, shared by alike hosts."""

    def __init__(self, request, instance, source_host, policy, now):
        self.request = request
        self.instance = instance
        self.source = source_facts(source_host)
        self.policy = policy
        self.now = now
        self._by_facts = {}

    def decide(self, destination):
        """The decision for :class:`~secmig.policy.facts.HostFacts`."""
        key = (destination.clearance, destination.certificate_valid,
               destination.certificate_code, destination.tls_ready,
               destination.aggregates, destination.availability_zone)
        decision = self._by_facts.get(key)
        if decision is None:
            decision = evaluate_mod.evaluate(
                self.request, self.instance, self.source, destination,
                self.policy, self.now)
            self._by_facts[key] = decision
        return decision
