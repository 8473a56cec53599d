"""Which hosts may receive a VM, for a planner that cannot see Nova.

:class:`Destinations` answers the planner's ``eligible(vm_id, source,
destination)`` question with the core checks the Nova scheduler filter
uses (:mod:`secmig.eligibility`): the destination's certificate must
verify against the CA and its revocation list, and the migration policy
must allow this requester (the Watcher service) to move this instance
there, clearance included.

Host certificates are read from a directory of ``<host>.pem`` files
(``[watcher] host_cert_dir``): the certificate is read once per audit,
verified once per distinct certificate, and a certificate present there
stands for the host's TLS readiness (the compute host checks its own TLS
settings again before anything moves). Hosts alike in their facts share
one policy evaluation per instance.
"""

import os

from secmig.decision import Decision
from secmig import eligibility
from secmig.pki import host as host_files
from secmig.pki import verify
from secmig.policy import facts


def trust_loader(cert_dir):
    """A ``load_trust`` callable for ``[pki] cert_dir`` (CA and CRL)."""
    ca = os.path.join(cert_dir, host_files.CA_CERT)
    crl = os.path.join(cert_dir, host_files.CA_CRL)
    return lambda: verify.TrustStore.from_files(
        ca, crl if os.path.exists(crl) else None)


def read_certificate(cert_dir, host):
    """The PEM text of ``<cert_dir>/<host>.pem``, or None if unreadable."""
    if not host or os.sep in host or host.startswith('.'):
        return None
    try:
        with open(os.path.join(cert_dir, host + '.pem')) as f:
            return f.read()
    except (OSError, UnicodeError):
        return None


class Destinations(object):
    """``eligible(vm_id, source, destination) -> Decision`` for one audit.

    :param verdicts: a :class:`~secmig.verdicts.CertificateVerdicts`
        (kept across audits: certificates are verified once)
    :param host_cert_dir: directory of ``<host>.pem`` certificates
    :param policy: the loaded :class:`~secmig.policy.model.Policy`
    :param request: the :class:`~secmig.policy.facts.Request` of the
        Watcher service
    :param instances: ``{vm_id: InstanceFacts}``
    :param now: POSIX time of the audit
    """

    def __init__(self, verdicts, host_cert_dir, policy, request, instances,
                 now):
        self.verdicts = verdicts
        self.host_cert_dir = host_cert_dir
        self.policy = policy
        self.request = request
        self.instances = instances
        self.now = now
        self._hosts = {}
        self._decisions = {}

    def host_facts(self, name):
        facts_ = self._hosts.get(name)
        if facts_ is None:
            pem = read_certificate(self.host_cert_dir, name)
            verdict = self.verdicts.verdict(name, pem)
            facts_ = facts.HostFacts.from_verdict(name, verdict,
                                                  tls_ready=bool(verdict))
            self._hosts[name] = facts_
        return facts_

    def __call__(self, vm_id, source, destination):
        instance = self.instances.get(vm_id)
        if instance is None:
            return Decision.refuse('unknown_instance',
                                   'instance %s is not in the model' % vm_id)
        key = (vm_id, source)
        decisions = self._decisions.get(key)
        if decisions is None:
            decisions = eligibility.RequestDecisions(
                self.request, instance, source, self.policy, self.now)
            self._decisions[key] = decisions
        return decisions.decide(self.host_facts(destination))
