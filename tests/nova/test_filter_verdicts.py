"""The filter and certificates it has not verified yet.

A host passes only on a certificate the scheduler has verified: one it
meets for the first time is verified in the request while few are new,
else in the background, and the host is refused meanwhile with
``certificate_pending``. Nova's own HostState and RequestSpec objects,
real certificates; the start-up test reads compute nodes from Nova's
database.
"""

import os

import fixtures

from nova import context as nova_context
from nova import exception
from nova import objects
from nova import test

from secmig.nova import filter as secmig_filter
from secmig.nova import stats as secmig_stats
from secmig.pki import host as host_files
from secmig import verdicts
from tests.nova import test_filter

#: More hosts than a request verifies itself.
NEW_HOSTS = ['new%02d' % i for i in range(verdicts.INLINE + 2)]


class NewHostsMixin:

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pems.update({name: cls.pki.enroll(name, clearance=1)
                         .cert_pem.decode() for name in NEW_HOSTS})

    def new_hosts(self, names=NEW_HOSTS):
        return [test_filter.host_state(name, self.pems[name])
                for name in names]

    def write_crl(self):
        """The CA's current CRL, installed on the scheduler host."""
        with open(os.path.join(self.cert_dir, host_files.CA_CRL), 'wb') as f:
            f.write(self.pki.crl_pem)

    def logs(self, name, level='DEBUG'):
        return self.useFixture(fixtures.FakeLogger(name=name, level=level))


class PendingHostsTest(NewHostsMixin, test_filter.FilterTestCase):

    def test_unverified_hosts_refused_as_pending_then_passed(self):
        # Given a scheduler meeting more hosts it has never verified than
        # a request verifies itself
        flt = self.filter()
        hosts = self.new_hosts()
        logs = self.logs(secmig_filter.__name__)
        # When an instance moves
        passed = [h.host for h in flt.filter_all(hosts, self.spec())]
        # Then the request verified its share and passed those hosts, and
        # refused the others as pending, saying so
        self.assertEqual(NEW_HOSTS[:verdicts.INLINE], passed)
        refusals = {line.split()[2]: line for line in
                    logs.output.splitlines() if ' refused for ' in line}
        self.assertEqual(NEW_HOSTS[verdicts.INLINE:], sorted(refusals))
        for line in refusals.values():
            self.assertIn(': destination_certificate_invalid (', line)
            self.assertTrue(line.endswith(
                'has no valid certificate (certificate_pending))'), line)
        # When the background verification has finished
        self.assertTrue(flt._verdicts.wait(timeout=60))
        # Then the next request passes every host
        passed = [h.host for h in flt.filter_all(hosts, self.spec())]
        self.assertEqual(NEW_HOSTS, passed)

    def test_named_host_pending_gets_that_reason(self):
        # Given a scheduler whose background verification has a backlog
        # far larger than a request may verify itself
        flt = self.filter()
        flt._verdicts.submit({'backlog%03d' % i: self.pems['low']
                              for i in range(20 * verdicts.INLINE)})
        spec = self.spec(requested_destination=objects.Destination(
            host='good', node='good'))
        # When an admin moves an instance to a host it has not verified
        error = self.assertRaises(
            exception.NoValidHost, flt.filter_all,
            [test_filter.host_state('good', self.pems['good'])], spec)
        # Then the answer says the certificate is still being verified
        self.assertIn('secmig refused the migration '
                      '(destination_certificate_invalid)', str(error))
        self.assertIn('(certificate_pending)', str(error))
        # and once it is, the move may go there
        self.assertTrue(flt._verdicts.wait(timeout=60))
        self.assertEqual(['good'], [h.host for h in flt.filter_all(
            [test_filter.host_state('good', self.pems['good'])],
            self.spec(requested_destination=objects.Destination(
                host='good', node='good')))])

    def test_renewed_certificate_is_judged_anew(self):
        # Given a host whose certificate of clearance 0 was verified, so
        # that a secret instance may not move there
        flt = self.filter()
        low = self.pki.enroll('renewed', clearance=0).cert_pem.decode()
        logs = self.logs(secmig_filter.__name__)
        self.assertEqual([], [h.host for h in flt.filter_all(
            [test_filter.host_state('renewed', low)],
            self.spec(level='secret'))])
        self.assertIn('insufficient_clearance', logs.output)
        # When it publishes a renewed certificate of clearance 3
        secret = self.pki.enroll('renewed', clearance=3).cert_pem.decode()
        passed = [h.host for h in flt.filter_all(
            [test_filter.host_state('renewed', secret)],
            self.spec(level='secret'))]
        # Then the new certificate is verified and counts
        self.assertEqual(['renewed'], passed)

    def test_revocation_reaches_kept_verdicts_at_refresh(self):
        # Given a host passed on a kept verdict, refreshed at every request
        pem = self.pki.enroll('revokee', clearance=1).cert_pem.decode()
        flt = self.filter('[pki]\nverdict_refresh_interval = 0\n')
        hosts = [test_filter.host_state('revokee', pem)]
        self.assertEqual(['revokee'], [h.host for h in flt.filter_all(
            hosts, self.spec())])
        # When the CA revokes it and the controller gets the new CRL
        self.pki.revoke('revokee')
        self.write_crl()
        logs = self.logs(secmig_filter.__name__)
        # Then the next request refuses it as revoked
        self.assertEqual([], [h.host for h in flt.filter_all(
            hosts, self.spec())])
        self.assertIn('(revoked)', logs.output)


class SchedulerStartTest(NewHostsMixin, test_filter.FilterFixtures,
                         test.TestCase):
    """At start the filter verifies what compute nodes publish."""

    def setUp(self):
        super().setUp()
        context = nova_context.get_admin_context()
        for name in NEW_HOSTS:
            objects.ComputeNode(
                context=context, host=name, hypervisor_hostname=name,
                vcpus=8, memory_mb=8192, local_gb=100, vcpus_used=0,
                memory_mb_used=0, local_gb_used=0, hypervisor_type='QEMU',
                hypervisor_version=7002000, cpu_info='{}',
                stats={secmig_stats.CERT: self.pems[name],
                       secmig_stats.TLS: 'ready'}).create()

    def test_first_request_after_start_finds_hosts_verified(self):
        # Given compute nodes that published their certificates
        filter_logs = self.logs(secmig_filter.__name__, 'INFO')
        verdict_logs = self.logs(verdicts.__name__, 'INFO')
        # When the scheduler starts, and its background verification ends
        flt = self.filter()
        self.assertTrue(flt._verdicts.wait(timeout=60))
        # Then the first request passes them all, none verified in it
        passed = [h.host for h in flt.filter_all(self.new_hosts(),
                                                 self.spec())]
        self.assertEqual(NEW_HOSTS, passed)
        # and the log said what was going on
        self.assertIn('verifying %d host certificates in the background'
                      % len(NEW_HOSTS), filter_logs.output)
        self.assertIn('certificate verification finished: %d host '
                      'certificates verified' % len(NEW_HOSTS),
                      verdict_logs.output)
