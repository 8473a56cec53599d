"""Certificate verdicts kept per certificate and CA.

Real certificates from secmig's CA and real revocation lists; the only
stand-ins are spies (``mock.patch.object(..., wraps=...)``) that count
calls of the real verification, and a settable clock. Most tests run the
queue on the test's thread (``background=False``, then
:meth:`verify_queued`); the worker thread has tests of its own.
"""

import datetime
import os
import tempfile
import threading
import unittest
from unittest import mock

from cryptography import x509

from secmig.pki import ca as ca_mod
from secmig.pki import keys
from secmig.pki import verify
from secmig import verdicts as verdicts_mod
from tests import pkiutil


class Clock:
    """A settable clock, starting at the real time."""

    def __init__(self):
        self.now = ca_mod.utcnow().timestamp()

    def __call__(self):
        return self.now


class VerdictsTestBase(unittest.TestCase):

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
        self.store = self.pki.trust()

    def load_trust(self):
        self.loads += 1
        return self.store

    def verdicts(self, load_trust=None, background=False, **kwargs):
        kwargs.setdefault('margin', 3600)
        return verdicts_mod.CertificateVerdicts(
            load_trust or self.load_trust, refresh_interval=60,
            clock=self.clock, background=background, **kwargs)

    def spy_verify(self):
        return mock.patch.object(verify, 'verify_certificate',
                                 wraps=verify.verify_certificate)

    def pem(self, name):
        return self.pki.hosts[name].cert_pem.decode()

    def code(self, verdicts, host, pem=None, inline=0):
        """The code of ``host``'s verdict in a request at the clock."""
        pem = self.pem(host) if pem is None else pem
        return self.lookup(verdicts, host, pem, inline)[0].code

    def lookup(self, verdicts, host, pem, inline=0):
        """``(verdict, key)`` of ``host`` in a request at the clock."""
        with verdicts.reader(inline=inline) as reader:
            return reader.lookup(host, pem)

    def new_crl(self, revoke=None):
        """The CA revokes ``revoke`` (or only re-issues its CRL)."""
        if revoke:
            self.pki.revoke(revoke)
        else:
            self.pki.ca.publish_crl()
        self.store = self.pki.trust()
        self.clock.now += 60


class CacheTest(VerdictsTestBase):

    def test_verdict_is_cached(self):
        # Given a cache that has verified alpha's certificate once
        verdicts = self.verdicts()
        with self.spy_verify() as spy:
            first = verdicts.verdict('alpha', self.pem('alpha'))
            # When the same host publishes the same certificate again
            second = verdicts.verdict('alpha', self.pem('alpha'))
        # Then it was verified and the trust store read only once
        self.assertEqual('ok', first.code)
        self.assertEqual(1, first.details['clearance'])
        self.assertIs(first, second)
        self.assertEqual(1, spy.call_count)
        self.assertEqual(1, self.loads)

    def test_same_certificate_reported_again_keeps_its_verdict(self):
        # Given alpha's verdict kept
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        # When alpha reports again: the same text, in a new string
        again = (self.pem('alpha') + '\n')[:-1]
        self.assertIsNot(again, self.pem('alpha'))
        with self.spy_verify() as spy:
            self.assertEqual('ok', self.code(verdicts, 'alpha', again))
        # Then the verdict stands, nothing verified
        self.assertEqual(0, spy.call_count)

    def test_alike_verdicts_share_a_key(self):
        reader = self.verdicts().reader(inline=4)  # nothing left pending
        _, key_a = reader.lookup('alpha', self.pem('alpha'))
        _, key_b = reader.lookup('beta', self.pem('beta'))
        _, key_none = reader.lookup('gamma', None)
        _, key_none2 = reader.lookup('delta', None)
        self.assertEqual((True, 'ok', 1), key_a)
        self.assertEqual((True, 'ok', 3), key_b)
        self.assertEqual((False, 'not_enrolled', 0), key_none)
        self.assertIs(key_none, key_none2)

    def test_host_publishing_nothing_refuses_without_verification(self):
        verdicts = self.verdicts()
        for pem in (None, ''):
            # No inline verification left: none is needed to say this
            decision, _ = self.lookup(verdicts, 'silent', pem)
            self.assertFalse(decision)
            self.assertEqual('not_enrolled', decision.code)
            self.assertIn('silent publishes no certificate',
                          decision.reason)
        self.assertEqual(0, verdicts.pending())


class PendingTest(VerdictsTestBase):
    """A certificate not verified yet never lets its host pass."""

    def test_unverified_host_refused_as_pending_then_accepted(self):
        # Given a request that may verify no certificate itself
        verdicts = self.verdicts()
        with self.spy_verify() as spy:
            decision, key = self.lookup(verdicts, 'alpha',
                                        self.pem('alpha'))
        # Then alpha, never seen, is refused with that reason, unverified
        self.assertFalse(decision)
        self.assertEqual('certificate_pending', decision.code)
        self.assertIn('has not been verified yet', decision.reason)
        self.assertEqual((False, 'certificate_pending', 0), key)
        self.assertEqual(0, spy.call_count)
        self.assertEqual(1, verdicts.pending())
        # When the queue is worked off
        self.assertEqual(1, verdicts.verify_queued())
        # Then the next request accepts alpha, from the kept verdict
        self.assertEqual(0, verdicts.pending())
        self.assertEqual('ok', self.code(verdicts, 'alpha'))

    def test_request_verifies_only_its_inline_share(self):
        # Given three hosts not seen before, and a request that may verify
        # two certificates itself
        verdicts = self.verdicts()
        with self.spy_verify() as spy, verdicts.reader(inline=2) as reader:
            codes = [reader.lookup(h, self.pem(h))[0].code
                     for h in ('alpha', 'beta', 'short')]
            # and queues nothing while it runs
            self.assertEqual(0, verdicts.pending())
        # Then it verifies two and leaves the third to the worker
        self.assertEqual(['ok', 'ok', 'certificate_pending'], codes)
        self.assertEqual(2, spy.call_count)
        self.assertEqual(1, verdicts.pending())

    def test_request_verifies_nothing_while_the_worker_has_a_backlog(self):
        # Given more certificates waiting for the worker than a request
        # may verify (a scheduler just started)
        verdicts = self.verdicts()
        backlog = {'host%d' % i: self.pem('alpha')
                   for i in range(verdicts_mod.INLINE + 1)}
        verdicts.submit(backlog)
        # When a request that may verify certificates meets beta, unseen
        with self.spy_verify() as spy:
            code = self.code(verdicts, 'beta', inline=verdicts_mod.INLINE)
        # Then beta joins the queue: bulk verification stays off requests
        self.assertEqual('certificate_pending', code)
        self.assertEqual(0, spy.call_count)
        self.assertEqual(len(backlog) + 1, verdicts.pending())
        # A caller with no request waiting has it verified there and then
        self.assertEqual('ok', verdicts.verdict('beta', self.pem('beta')).code)

    def test_broken_certificate_refused_with_its_reason(self):
        verdicts = self.verdicts()
        cases = {'garbage': ('not a certificate', 'malformed_pem',
                             'is not a PEM certificate'),
                 'cut': (self.pem('alpha')[:200], 'truncated_pem',
                         'is truncated')}
        for host, (pem, _, _) in cases.items():
            self.assertEqual('certificate_pending',
                             self.code(verdicts, host, pem))
        verdicts.verify_queued()
        for host, (pem, code, reason) in cases.items():
            decision = self.lookup(verdicts, host, pem)[0]
            self.assertEqual(code, decision.code)
            self.assertIn(reason, decision.reason)

    def test_renewed_certificate_is_verified_before_it_counts(self):
        # Given a host's current certificate is kept as valid
        first = self.pki.enroll('renewing', clearance=1)
        verdicts = self.verdicts()
        old = verdicts.verdict('renewing', first.cert_pem.decode())
        # When the host publishes a certificate issued later
        renewed = self.pki.enroll('renewing', clearance=1).cert_pem.decode()
        # Then the old verdict does not stand for it: pending
        self.assertEqual('certificate_pending',
                         self.code(verdicts, 'renewing', renewed))
        # and once verified, the verdict names the new serial
        with self.spy_verify() as spy:
            verdicts.verify_queued()
        self.assertEqual(1, spy.call_count)
        new = self.lookup(verdicts, 'renewing', renewed)[0]
        self.assertEqual('ok', new.code)
        self.assertNotEqual(old.details['serial'], new.details['serial'])

    def test_worker_thread_verifies_what_requests_queue(self):
        # Given a cache with its worker, and two hosts not seen before
        verdicts = self.verdicts(background=True)
        with self.assertLogs('secmig.verdicts', 'INFO') as logs:
            for host in ('alpha', 'beta'):
                self.assertEqual('certificate_pending',
                                 self.code(verdicts, host))
            # When the worker has finished
            self.assertTrue(verdicts.wait(timeout=60))
        # Then both are accepted, and the log says verification finished
        self.assertEqual(['ok', 'ok'], [self.code(verdicts, h)
                                        for h in ('alpha', 'beta')])
        self.assertIn('certificate verification finished: 2 host '
                      'certificates verified in', logs.output[-1])
        self.assertIn('none pending', logs.output[-1])

    def test_submitted_certificates_are_verified_in_the_background(self):
        verdicts = self.verdicts(background=True)
        verdicts.submit({h: self.pem(h) for h in ('alpha', 'beta')})
        self.assertTrue(verdicts.wait(timeout=60))
        with self.spy_verify() as spy:
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
            self.assertEqual('ok', self.code(verdicts, 'beta'))
        self.assertEqual(0, spy.call_count)

    def test_forked_child_verifies_what_the_parent_had_under_way(self):
        # Given the parent's worker in the middle of alpha's certificate,
        # and the cache's lock held by another thread of the parent when
        # it forks (nova-scheduler forks its workers after building its
        # filters)
        parent = os.getpid()
        started, gate = threading.Event(), threading.Event()
        real = verify.verify_certificate

        def slow_in_parent(*args, **kwargs):
            if os.getpid() == parent:
                started.set()
                gate.wait(30)
            return real(*args, **kwargs)

        verdicts = self.verdicts(background=True)
        with mock.patch.object(verify, 'verify_certificate',
                               side_effect=slow_in_parent):
            self.code(verdicts, 'alpha')
            self.assertTrue(started.wait(30))
            with verdicts._lock:
                pid = os.fork()
                if pid == 0:
                    # When the child serves: its own worker verifies alpha
                    ok = (verdicts.wait(timeout=30)
                          and self.code(verdicts, 'alpha') == 'ok')
                    os._exit(0 if ok else 1)
            gate.set()
            _, status = os.waitpid(pid, 0)
        # Then the child accepted alpha
        self.assertEqual(0, os.waitstatus_to_exitcode(status))
        self.assertTrue(verdicts.wait(timeout=30))


class TimeTest(VerdictsTestBase):
    """A kept verdict holds only within its window, refresh or not."""

    def test_expiry_honoured_without_refresh(self):
        # Given a certificate valid for one day is kept as valid
        verdicts = self.verdicts()
        self.assertEqual('ok',
                         verdicts.verdict('short', self.pem('short')).code)
        not_after = self.short.cert.not_valid_after_utc.timestamp()
        # When the clock reaches its expiry less the margin, and no
        # refresh has read the CA and CRL since
        self.clock.now = not_after - 1800
        # Then the kept verdict no longer lets it pass: it is judged again
        with self.spy_verify() as spy:
            self.assertEqual('certificate_pending',
                             self.code(verdicts, 'short'))
            verdicts.verify_queued()
        self.assertEqual(1, spy.call_count)
        self.assertEqual('expires_soon', self.code(verdicts, 'short'))
        # And past its end, a request that may verify says expired
        self.clock.now = not_after + 1
        verdicts = self.verdicts()
        self.assertEqual('expired', self.code(verdicts, 'short', inline=1))

    def test_verdict_before_its_certificate_starts_is_not_used(self):
        # Given alpha's verdict is kept, and the clock then steps back
        # before the certificate's start
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        self.clock.now = (
            self.alpha.cert.not_valid_before_utc.timestamp() - 10)
        # Then a request does not take alpha as valid
        self.assertEqual('not_yet_valid',
                         self.code(verdicts, 'alpha', inline=1))

    def test_not_yet_valid_refusal_is_lifted_at_refresh(self):
        verdicts = self.verdicts()
        start = self.alpha.cert.not_valid_before_utc.timestamp()
        self.clock.now = start - 120
        self.assertEqual('not_yet_valid',
                         verdicts.verdict('alpha', self.pem('alpha')).code)
        self.clock.now = start + 1
        self.assertEqual(1, verdicts.refresh())
        verdicts.verify_queued()
        self.assertEqual('ok', self.code(verdicts, 'alpha'))

    def test_stale_crl_refuses_every_host_without_refresh(self):
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        next_update = min(c.next_update_utc for c in self.store.crls)
        self.clock.now = next_update.timestamp() + 1
        decision = self.lookup(verdicts, 'alpha', self.pem('alpha'))[0]
        self.assertEqual('crl_stale', decision.code)
        self.assertIn('secmig pki crl', decision.reason)
        # A fresh CRL brings the kept verdict back, nothing verified
        self.pki.ca.publish_crl(now=datetime.datetime.fromtimestamp(
            self.clock.now, datetime.timezone.utc))
        self.store = self.pki.trust()
        self.clock.now += 60
        with self.spy_verify() as spy:
            verdicts.refresh()
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
        self.assertEqual(0, spy.call_count)


class ForgetTest(VerdictsTestBase):
    """Verdicts on hosts no request asks about any more are dropped."""

    def test_host_no_request_reads_is_forgotten_at_refresh(self):
        # Given verdicts on alpha and beta, and requests that go on
        # reading beta only (alpha left the cloud)
        verdicts = self.verdicts(forget_after=3600)
        for host in ('alpha', 'beta'):
            verdicts.verdict(host, self.pem(host))
        self.clock.now += 3600
        self.assertEqual('ok', self.code(verdicts, 'beta'))
        # When a refresh comes after a request forget_after past alpha's
        # last read
        self.clock.now += 60
        verdicts.refresh()
        # Then beta's verdict still holds, and alpha's is gone: a host of
        # that name is judged again, as a host not seen before
        with self.spy_verify() as spy:
            self.assertEqual('ok', self.code(verdicts, 'beta'))
        self.assertEqual(0, spy.call_count)
        self.assertEqual('certificate_pending', self.code(verdicts, 'alpha'))

    def test_a_cloud_without_requests_keeps_every_verdict(self):
        # Given verdicts read by a request, then no request for longer
        # than forget_after (no move in a quiet cloud)
        verdicts = self.verdicts(forget_after=3600)
        for host in ('alpha', 'beta'):
            verdicts.verdict(host, self.pem(host))
        self.clock.now += 7200
        # When the next request refreshes first
        verdicts.refresh()
        # Then both verdicts still hold: nothing is verified again
        with self.spy_verify() as spy:
            self.assertEqual(['ok', 'ok'], [self.code(verdicts, h)
                                            for h in ('alpha', 'beta')])
        self.assertEqual(0, spy.call_count)

    def test_nothing_is_forgotten_between_refreshes(self):
        verdicts = self.verdicts(forget_after=3600)
        verdicts.verdict('alpha', self.pem('alpha'))
        verdicts.refresh()
        self.clock.now += 7200
        with self.spy_verify() as spy:
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
        self.assertEqual(0, spy.call_count)


class TrustChangeTest(VerdictsTestBase):
    """A new CRL or CA bundle is checked by serial and issuer."""

    def test_new_crl_revoking_a_host_refuses_it(self):
        # Given two valid certificates kept
        revokee = self.pki.enroll('revokee')
        verdicts = self.verdicts()
        verdicts.verdict('revokee', self.pem('revokee'))
        verdicts.verdict('alpha', self.pem('alpha'))
        # When the CA revokes one, the kept verdict stands until a refresh
        self.new_crl(revoke='revokee')
        self.assertEqual('ok', self.code(verdicts, 'revokee'))
        # and the refresh drops that one verdict only, verifying nothing
        with self.spy_verify() as spy:
            self.assertTrue(verdicts.refresh_due())
            self.assertEqual(1, verdicts.refresh())
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
            self.assertEqual('certificate_pending',
                             self.code(verdicts, 'revokee'))
        self.assertEqual(0, spy.call_count)
        # Then its host, judged again, is refused as revoked
        decision = verdicts.verdict('revokee', self.pem('revokee'))
        self.assertEqual('revoked', decision.code)
        self.assertIn('%x was revoked' % revokee.cert.serial_number,
                      decision.reason)

    def test_new_crl_revoking_nothing_kept_verifies_nothing(self):
        verdicts = self.verdicts()
        kept = verdicts.verdict('alpha', self.pem('alpha'))
        self.new_crl()
        with self.spy_verify() as spy:
            self.assertEqual(0, verdicts.refresh())
            self.assertIs(kept, verdicts.verdict('alpha', self.pem('alpha')))
        self.assertEqual(0, spy.call_count)
        self.assertEqual(2, self.loads)

    def test_refresh_with_unchanged_trust_verifies_nothing(self):
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        verdicts.verdict('impostor', self.pem('beta'))
        self.clock.now += 60
        self.assertEqual(0, verdicts.refresh())
        self.assertEqual(0, verdicts.pending())
        self.assertEqual('wrong_host',
                         self.code(verdicts, 'impostor', self.pem('beta')))

    def test_refusals_are_judged_again_after_the_ca_bundle_changes(self):
        # Given a refusal kept (a certificate signed by a CA not trusted)
        other = pkiutil.TestPKI(os.path.join(self._tmp.name, 'other'),
                                ca_name='other CA')
        stranger = other.enroll('stranger').cert_pem.decode()
        verdicts = self.verdicts()
        self.assertEqual('foreign_ca',
                         verdicts.verdict('stranger', stranger).code)
        # When the operator adds that CA to the bundle and a refresh reads it
        self.store = verify.TrustStore(
            self.store.ca_certs + other.trust().ca_certs,
            self.store.crls + other.trust().crls)
        self.clock.now += 60
        self.assertEqual(1, verdicts.refresh())
        # Then the refusal stands until the queue is worked off, then goes
        self.assertEqual('foreign_ca',
                         self.code(verdicts, 'stranger', stranger))
        verdicts.verify_queued()
        self.assertEqual('ok', self.code(verdicts, 'stranger', stranger))

    def test_ca_added_keeps_verdicts_ca_removed_drops_them(self):
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        other = pkiutil.TestPKI(os.path.join(self._tmp.name, 'added'),
                                ca_name='added CA').trust()
        ours = self.store
        # A second CA in the bundle: alpha's verdict stands, unverified
        self.store = verify.TrustStore(ours.ca_certs + other.ca_certs,
                                       ours.crls + other.crls)
        self.clock.now += 60
        with self.spy_verify() as spy:
            self.assertEqual(0, verdicts.refresh())
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
        self.assertEqual(0, spy.call_count)
        # Alpha's CA gone from the bundle: its verdict is dropped
        self.store = other
        self.clock.now += 60
        self.assertEqual(1, verdicts.refresh())
        self.assertEqual('foreign_ca', self.code(verdicts, 'alpha', inline=1))

    def test_crl_not_signed_by_the_ca_drops_its_verdicts(self):
        # Given alpha's verdict kept
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        # When a CRL in the CA's name, signed by another key, replaces
        # the real one
        forger = keys.generate_key()
        now = ca_mod.utcnow()
        forged = (x509.CertificateRevocationListBuilder()
                  .issuer_name(self.store.ca_certs[0].subject)
                  .last_update(now)
                  .next_update(now + datetime.timedelta(days=1))
                  .sign(forger, keys.signature_hash(forger)))
        self.store = verify.TrustStore(self.store.ca_certs, [forged])
        self.clock.now += 60
        self.assertEqual(1, verdicts.refresh())
        # Then alpha is refused, naming the invalid list
        self.assertEqual('crl_invalid', self.code(verdicts, 'alpha',
                                                  inline=1))

    def test_crl_required_and_gone_drops_verdicts(self):
        verdicts = self.verdicts()
        verdicts.verdict('alpha', self.pem('alpha'))
        self.store = verify.TrustStore(self.store.ca_certs, [])
        self.clock.now += 60
        self.assertEqual(1, verdicts.refresh())
        self.assertEqual('crl_missing', self.code(verdicts, 'alpha',
                                                  inline=1))

    def test_verdict_reached_under_a_replaced_crl_is_not_kept(self):
        # Given beta queued, and the CA revoking it while the worker
        # verifies it under the CRL read before
        beta = self.pki.enroll('beta-2', clearance=3)
        pem = beta.cert_pem.decode()
        verdicts = self.verdicts()
        verdicts.refresh()
        self.code(verdicts, 'beta-2', pem)
        real = verify.verify_certificate

        def revoke_meanwhile(*args, **kwargs):
            decision = real(*args, **kwargs)
            if spy.call_count == 1:
                self.new_crl(revoke='beta-2')
                verdicts.refresh()
            return decision

        with mock.patch.object(verify, 'verify_certificate',
                               side_effect=revoke_meanwhile) as spy:
            verdicts.verify_queued()
        # Then the verdict reached under the old CRL was not kept: beta-2
        # was verified again, under the new one, and is refused
        self.assertEqual(2, spy.call_count)
        self.assertEqual('revoked', self.code(verdicts, 'beta-2', pem))


class UnreadableTrustTest(VerdictsTestBase):

    def broken_then(self, broken):
        def load_trust():
            if broken[0]:
                return verify.TrustStore.from_files(
                    os.path.join(self._tmp.name, 'missing.pem'))
            return self.load_trust()
        return load_trust

    def test_unreadable_trust_store_refuses(self):
        verdicts = self.verdicts(load_trust=self.broken_then([True]))
        decision = verdicts.verdict('alpha', self.pem('alpha'))
        self.assertFalse(decision)
        self.assertEqual('trust_unavailable', decision.code)
        self.assertIn('cannot be read', decision.reason)

    def test_kept_verdicts_stand_again_when_the_store_is_back(self):
        broken = [False]
        verdicts = self.verdicts(load_trust=self.broken_then(broken),
                                 background=True)
        self.assertEqual('ok', verdicts.verdict('alpha', self.pem('alpha'))
                         .code)
        broken[0] = True
        self.clock.now += 60
        verdicts.refresh()
        self.assertEqual('trust_unavailable', self.code(verdicts, 'alpha'))
        self.assertEqual('trust_unavailable', self.code(verdicts, 'beta'))
        broken[0] = False
        self.clock.now += 60
        with self.spy_verify() as spy:
            verdicts.refresh()
            self.assertEqual('ok', self.code(verdicts, 'alpha'))
        self.assertEqual(0, spy.call_count)

    def test_queue_waits_for_the_store_and_resumes_with_it(self):
        broken = [False]
        verdicts = self.verdicts(load_trust=self.broken_then(broken),
                                 background=True)
        verdicts.refresh()
        entered, gate = threading.Event(), threading.Event()
        real = verify.verify_certificate

        def slow(*args, **kwargs):
            entered.set()
            gate.wait(30)
            return real(*args, **kwargs)

        with mock.patch.object(verify, 'verify_certificate',
                               side_effect=slow):
            self.code(verdicts, 'alpha')
            self.code(verdicts, 'beta')
            # The worker is verifying when the store breaks (had it not
            # started yet, it would stop before the logs are watched).
            self.assertTrue(entered.wait(30))
            broken[0] = True
            self.clock.now += 60
            verdicts.refresh()
            with self.assertLogs('secmig.verdicts', 'WARNING') as logs:
                gate.set()
                self.assertTrue(verdicts.wait(timeout=60))
        self.assertIn('stopped with 2 host certificates pending',
                      logs.output[0])
        broken[0] = False
        self.clock.now += 60
        verdicts.refresh()
        self.assertTrue(verdicts.wait(timeout=60))
        self.assertEqual(['ok', 'ok'], [self.code(verdicts, h)
                                        for h in ('alpha', 'beta')])
