"""Which hosts may receive an instance: the scheduler's cheap answer.

The scheduler filter asks, for every candidate host of every move, the
question :func:`secmig.policy.evaluate.evaluate` answers, and must answer
it in microseconds. Two caches make that possible without weakening it:

* :class:`~secmig.verdicts.CertificateVerdicts` keeps the verification
  verdict of each host's certificate, per certificate and CA.
* :class:`RequestDecisions` keeps, for one scheduling request, the
  decision for each distinct set of destination facts: hosts alike in
  clearance, certificate verdict, TLS readiness, aggregates and zone
  share one evaluation.

Neither knows Nova: the filter in :mod:`secmig.nova.filter` feeds them
Nova's host states.
"""

from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts


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
