"""The scheduler's caches: certificate verdicts and per-request decisions.

Real certificates from secmig's CA; the only stand-ins are spies
(``mock.patch.object(..., wraps=...)``) that count calls of the real
functions, and a settable clock.
"""

import os
import tempfile
import unittest
from unittest import mock

from secmig import eligibility
from secmig.pki import ca as ca_mod
from secmig.pki import verify
from secmig.policy import evaluate as evaluate_mod
from secmig.policy import facts
from secmig.policy import loader
from tests import pkiutil

POLICY = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'etc', 'migration-policy.yaml')


class Clock:
    """A settable clock, starting at the real time."""

    def __init__(self):
        self.now = ca_mod.utcnow().timestamp()

    def __call__(self):
        return self.now


class CertificateVerdictsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls._tmp.name)
        cls.alpha = cls.pki.enroll('alpha', clearance=1)
        cls.beta = cls.pki.enroll('beta', clearance=3)
        cls.short = cls.pki.enroll('short', days=1)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def setUp(self):
        self.clock = Clock()
        self.loads = 0

    def load_trust(self):
        self.loads += 1
        ca_dir = self.pki.ca_dir
        return verify.TrustStore.from_files(
            os.path.join(ca_dir, ca_mod.CA_CERT),
            os.path.join(ca_dir, ca_mod.CA_CRL))

    def verdicts(self, load_trust=None, interval=60):
        return eligibility.CertificateVerdicts(
            load_trust or self.load_trust, refresh_interval=interval,
            clock=self.clock, margin=3600)

    def spy_verify(self):
        return mock.patch.object(verify, 'verify_certificate',
                                 wraps=verify.verify_certificate)

    def test_verdict_is_cached(self):
        # Given a cache that has verified alpha's certificate once
        verdicts = self.verdicts()
        with self.spy_verify() as spy:
            first = verdicts.verdict('alpha', self.alpha.cert_pem.decode())
            # When the same host publishes the same certificate again
            second = verdicts.verdict('alpha',
                                      self.alpha.cert_pem.decode())
        # Then it was verified and the trust store read only once
        self.assertEqual('ok', first.code)
        self.assertEqual(1, first.details['clearance'])
        self.assertIs(first, second)
        self.assertEqual(1, spy.call_count)
        self.assertEqual(1, self.loads)

    def test_alike_verdicts_share_a_key(self):
        verdicts = self.verdicts()
        _, key_a = verdicts.lookup('alpha', self.alpha.cert_pem.decode())
        _, key_b = verdicts.lookup('beta', self.beta.cert_pem.decode())
        _, key_none = verdicts.lookup('gamma', None)
        _, key_none2 = verdicts.lookup('delta', None)
        self.assertEqual((True, 'ok', 1), key_a)
        self.assertEqual((True, 'ok', 3), key_b)
        self.assertEqual((False, 'not_enrolled', 0), key_none)
        self.assertIs(key_none, key_none2)

    def test_new_certificate_is_verified(self):
        # Given a host's current certificate is cached
        first = self.pki.enroll('renewing', clearance=1)
        verdicts = self.verdicts()
        old = verdicts.verdict('renewing', first.cert_pem.decode())
        # When the host publishes a certificate issued later (re-enrolled)
        renewed = self.pki.enroll('renewing', clearance=1)
        with self.spy_verify() as spy:
            new = verdicts.verdict('renewing', renewed.cert_pem.decode())
        # Then it is verified, and the verdict names the new serial
        self.assertEqual(1, spy.call_count)
        self.assertEqual('ok', new.code)
        self.assertNotEqual(old.details['serial'], new.details['serial'])
        self.assertEqual('%x' % renewed.cert.serial_number,
                         new.details['serial'])

    def test_refresh_picks_up_a_revocation(self):
        # Given a host's certificate is cached as valid
        host = self.pki.enroll('revokee')
        pem = host.cert_pem.decode()
        verdicts = self.verdicts(interval=60)
        self.assertEqual('ok', verdicts.verdict('revokee', pem).code)
        # When the CA revokes it and publishes a new CRL
        self.pki.revoke('revokee')
        # Then the cached verdict stands until the refresh interval ends
        self.assertFalse(verdicts.refresh_due())
        self.assertEqual('ok', verdicts.verdict('revokee', pem).code)
        self.clock.now += 60
        self.assertTrue(verdicts.refresh_due())
        # and the refresh reads the new CRL and refuses the certificate
        verdicts.refresh()
        decision = verdicts.verdict('revokee', pem)
        self.assertFalse(decision)
        self.assertEqual('revoked', decision.code)
        self.assertEqual(2, self.loads)

    def test_refresh_with_unchanged_trust_reverifies_only_what_time_changes(
            self):
        # Given a valid certificate and a refused one are cached
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.alpha.cert_pem.decode())
        verdicts.verdict('impostor', self.beta.cert_pem.decode())
        # When a refresh finds the same CA and CRL
        self.clock.now += 60
        with self.spy_verify() as spy:
            count = verdicts.refresh()
        # Then only the refusal is verified again
        self.assertEqual(1, count)
        self.assertEqual(1, spy.call_count)
        self.assertEqual('impostor', spy.call_args.kwargs['host'])
        self.assertEqual('wrong_host', verdicts.verdict(
            'impostor', self.beta.cert_pem.decode()).code)

    def test_refresh_reverifies_a_certificate_entering_its_margin(self):
        # Given a certificate valid for one day is cached as valid
        pem = self.short.cert_pem.decode()
        verdicts = self.verdicts()
        self.assertEqual('ok', verdicts.verdict('short', pem).code)
        # When the clock reaches its expiry less the margin
        not_after = self.short.cert.not_valid_after_utc.timestamp()
        self.clock.now = not_after - 1800
        verdicts.refresh()
        # Then the refresh refuses it, although the CA and CRL are the same
        self.assertEqual('expires_soon', verdicts.verdict('short', pem).code)

    def test_unreadable_trust_store_refuses(self):
        # Given the CA bundle cannot be read
        missing = os.path.join(self._tmp.name, 'nowhere', 'ca-cert.pem')
        verdicts = self.verdicts(
            load_trust=lambda: verify.TrustStore.from_files(missing))
        # When a host with a valid certificate is looked up
        decision = verdicts.verdict('alpha', self.alpha.cert_pem.decode())
        # Then it is refused, naming the trust store
        self.assertFalse(decision)
        self.assertEqual('trust_unavailable', decision.code)
        self.assertIn('cannot be read', decision.reason)

    def test_trust_store_recovers_on_refresh(self):
        broken = [True]

        def load_trust():
            if broken[0]:
                return verify.TrustStore.from_files(
                    os.path.join(self._tmp.name, 'missing.pem'))
            return self.load_trust()

        verdicts = self.verdicts(load_trust=load_trust)
        pem = self.alpha.cert_pem.decode()
        self.assertEqual('trust_unavailable',
                         verdicts.verdict('alpha', pem).code)
        broken[0] = False
        self.clock.now += 60
        verdicts.refresh()
        self.assertEqual('ok', verdicts.verdict('alpha', pem).code)

    def test_host_publishing_nothing_refuses(self):
        verdicts = self.verdicts()
        for pem in (None, ''):
            decision = verdicts.verdict('silent', pem)
            self.assertFalse(decision)
            self.assertEqual('not_enrolled', decision.code)

    def test_garbage_certificate_refuses(self):
        decision = self.verdicts().verdict('garbage', 'not a certificate')
        self.assertFalse(decision)
        self.assertNotEqual('ok', decision.code)

    def test_expired_certificate_refuses(self):
        # Given the clock is past the end of a certificate's validity
        self.clock.now = self.short.cert.not_valid_after_utc.timestamp() + 1
        # When the certificate is first seen
        decision = self.verdicts().verdict('short',
                                           self.short.cert_pem.decode())
        # Then it is refused as expired
        self.assertFalse(decision)
        self.assertEqual('expired', decision.code)


class RequestDecisionsTest(unittest.TestCase):

    ADMIN = facts.Request('api', {'user_id': 'u1', 'project_id': 'p1',
                                  'roles': ['admin']})
    MEMBER = facts.Request('api', {'user_id': 'u2', 'project_id': 'p1',
                                   'roles': ['member']})

    def setUp(self):
        self.policy = loader.load(POLICY)
        self.instance = facts.InstanceFacts(
            'inst-1', 'p1', flavor_name='m1',
            flavor_extra_specs={'secmig:level': 'internal'})

    def decisions(self, request):
        return eligibility.RequestDecisions(
            request, self.instance, 'source', self.policy, 1.7e9)

    def host(self, name, clearance=1, aggregates=('rack1',)):
        return facts.HostFacts(name, clearance, True, 'ok', True,
                               frozenset(aggregates), 'az1')

    def test_alike_hosts_share_one_evaluation(self):
        # Given one request and three hosts alike but for their names
        decisions = self.decisions(self.ADMIN)
        with mock.patch.object(evaluate_mod, 'evaluate',
                               wraps=evaluate_mod.evaluate) as spy:
            results = [decisions.decide(self.host(n))
                       for n in ('h1', 'h2', 'h3')]
            # When a host differing in clearance is decided too
            low = decisions.decide(self.host('h4', clearance=0))
        # Then the alike hosts share one evaluation, the other has its own
        self.assertEqual(2, spy.call_count)
        self.assertTrue(all(r.allowed for r in results))
        self.assertIs(results[0], results[2])
        self.assertEqual('insufficient_clearance', low.code)
        self.assertFalse(eligibility.is_request_level(low))

    def test_a_rule_on_the_destination_name_is_judged_per_host(self):
        # Given a policy whose RBAC rule names the one allowed destination
        path = os.path.join(self.tmp(), 'policy.yaml')
        with open(POLICY) as f:
            text = f.read()
        rule = 'api: "rule:admin or rule:project_manager"'
        self.assertIn(rule, text)
        with open(path, 'w') as f:
            f.write(text.replace(
                rule, 'api: "rule:admin and \'h2\':%(target.destination)s"'))
        self.policy = loader.load(path)
        decisions = self.decisions(self.ADMIN)
        # When hosts alike but for their names are decided
        h1, h2 = (decisions.decide(self.host(n)) for n in ('h1', 'h2'))
        # Then each is judged on its own name, and the refusal of h1 is
        # not taken for the whole request
        self.assertTrue(decisions.per_host)
        self.assertEqual('rbac_denied', h1.code)
        self.assertFalse(decisions.is_request_level(h1))
        self.assertTrue(h2.allowed, h2)

    def test_rules_that_ignore_the_destination_share_decisions(self):
        self.assertFalse(self.decisions(self.ADMIN).per_host)

    def tmp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def test_rbac_refusal_is_request_level(self):
        decision = self.decisions(self.MEMBER).decide(self.host('h1'))
        self.assertEqual('rbac_denied', decision.code)
        self.assertTrue(eligibility.is_request_level(decision))

    def test_allowed_is_not_request_level(self):
        decision = self.decisions(self.ADMIN).decide(self.host('h1'))
        self.assertTrue(decision)
        self.assertFalse(eligibility.is_request_level(decision))

    def test_request_level_codes(self):
        for code in ('rbac_denied', 'policy_unavailable', 'cooldown',
                     'automatic_disabled', 'bad_instance_level'):
            self.assertIn(code, eligibility.REQUEST_LEVEL)
        for code in ('insufficient_clearance', 'aggregate_not_allowed',
                     'destination_certificate_invalid',
                     'destination_not_tls_ready'):
            self.assertNotIn(code, eligibility.REQUEST_LEVEL)
