"""The compute-side guard: two hosts, real certificates, real journals.

The two guards talk through :class:`DirectChannel`, which calls the
other guard's methods in-process; the Nova adapter carries the same
bytes over RPC. A tampering channel plays the hostile broker.
"""

import os
import shutil
import tempfile
import unittest
import uuid

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from secmig.audit import verify as audit_verify
from secmig import conf as secmig_conf
from secmig import guard
from secmig.policy import facts
from secmig import tls
from tests import auditutil
from tests import pkiutil
from tests.unit import authutil

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(HERE), 'etc', 'migration-policy.yaml')
BITS = {'VIR_MIGRATE_TLS': 65536, 'VIR_MIGRATE_TUNNELLED': 4,
        'VIR_MIGRATE_POSTCOPY': 32768, 'VIR_MIGRATE_AUTO_CONVERGE': 8192,
        'VIR_MIGRATE_PARALLEL': 131072}
LIVE = 1  # VIR_MIGRATE_LIVE
TLS_SETTINGS = tls.check_settings(tls.LibvirtSettings(True, False, 'tls'))
ADMIN = facts.Request('api', {'user_id': 'alice', 'project_id': 'ops',
                              'roles': ['admin']})


class DirectChannel(guard.PeerChannel):
    """Delivers handshake messages to the peer guard in-process.

    ``tamper`` may rewrite each message on the way (a hostile broker).
    """

    def __init__(self, guards, tamper=None):
        self.guards = guards
        self.tamper = tamper or (lambda kind, data: data)
        self.sent = []
        self.reports = []
        self.host = None

    def hello(self, peer_host, migration_id, instance_uuid, auth1):
        auth1 = self.tamper('auth1', auth1)
        self.sent.append(auth1)
        auth2, decision = self.guards[peer_host].answer_hello(
            migration_id, instance_uuid, auth1)
        return (self.tamper('auth2', auth2) if auth2 else None), decision

    def confirm(self, peer_host, instance_uuid, auth3):
        return self.guards[peer_host].answer_confirm(
            instance_uuid, self.tamper('auth3', auth3))

    def report(self, peer_host, instance_uuid, decision):
        self.reports.append((peer_host, decision.code))
        self.guards[peer_host].answer_report('unknown', instance_uuid,
                                             self.host, decision)


class GuardTestBase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        for name, level in (('src', 1), ('dst', 1), ('low', 0),
                            ('gone', 3)):
            cls.pki.enroll(name, clearance=level)
        cls.pki.revoke('gone')
        for name in ('src', 'dst', 'low', 'gone'):
            # Every host gets the CRL that lists the revocation.
            with open(os.path.join(cls.tmp.name, name, 'ca-crl.pem'),
                      'wb') as f:
                f.write(cls.pki.crl_pem)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.work = tempfile.mkdtemp(dir=self.tmp.name)
        self.addCleanup(shutil.rmtree, self.work)
        self.guards = {name: self.make_guard(name)
                       for name in ('src', 'dst', 'low', 'gone')}
        self.channel = DirectChannel(self.guards)
        self.migration = str(uuid.uuid4())
        self.instance = facts.InstanceFacts(str(uuid.uuid4()), 'demo')

    def make_guard(self, host, policy=POLICY):
        conf = secmig_conf.new_conf()
        conf.set_override('cert_dir', os.path.join(self.tmp.name, host),
                          group='pki')
        conf.set_override('policy_file', policy, group='policy')
        conf.set_override('journal_path',
                          os.path.join(self.work, host + '.jsonl'),
                          group='audit')
        conf.set_override('deliver', False, group='audit')
        g = guard.HostGuard.from_conf(conf, host)
        self.addCleanup(lambda: g.audit and g.audit.close())
        return g

    def incoming(self, dest='dst', source='src', instance=None,
                 request=ADMIN, settings=TLS_SETTINGS, channel=None,
                 inbound_addr=None, libvirt_hostname=None):
        channel = channel or self.channel
        channel.host = dest  # the reporting host, as in RPCPeerChannel
        return self.guards[dest].authorise_incoming(
            self.migration, request, instance or self.instance, source,
            settings, channel, inbound_addr=inbound_addr,
            libvirt_hostname=libvirt_hostname)

    def outgoing(self, source='src', request=ADMIN, transport=None):
        return self.guards[source].authorise_outgoing(
            request, self.instance, TLS_SETTINGS, transport=transport)

    def steps(self, host):
        """``[(step, outcome, decision code)]`` of ``host``'s journal."""
        return auditutil.journal_steps(
            os.path.join(self.work, host + '.jsonl'))

    def assertRefused(self, code, decision):
        self.assertFalse(decision.allowed, decision)
        self.assertEqual(code, decision.code, decision)


class PermittedMigrationTest(GuardTestBase):

    def test_full_migration_is_authorised_tuned_and_audited(self):
        dst = self.incoming()
        self.assertTrue(dst.allowed, dst)
        src = self.outgoing()
        self.assertTrue(src.allowed, src)
        flags = LIVE | BITS['VIR_MIGRATE_TLS']
        started, tuning = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system', flags, 0, 1, BITS,
            migrate_uri='tcp://dst')
        self.assertTrue(started.allowed, started)
        # Nova's flags unchanged (no auto-converge the operator did not
        # permit); the policy caps the bandwidth.
        self.assertEqual(flags, tuning.flags)
        self.assertEqual(500, tuning.bandwidth_mib)
        self.assertIn('VIR_MIGRATE_TLS', started.details['flags'])
        for step in ('copied', 'source_cleaned_up'):
            self.assertTrue(self.guards['src'].record_phase(
                step, self.instance.uuid))
        self.assertTrue(self.guards['dst'].record_phase(
            'activated', self.instance.uuid, forget=True))
        for host in ('src', 'dst'):
            report = audit_verify.verify_journal(
                os.path.join(self.work, host + '.jsonl'))
            self.assertTrue(report.allowed, report)
        self.assertEqual(
            ['requested', 'authenticated', 'authorised', 'activated'],
            [step for step, _, _ in self.steps('dst')])
        self.assertEqual(
            ['authenticated', 'authorised', 'started', 'copied',
             'source_cleaned_up'],
            [step for step, _, _ in self.steps('src')])

    def test_the_handshake_proves_both_certificates(self):
        self.incoming()
        auth = self.guards['dst'].is_authorised(self.instance.uuid)
        fingerprints = {auth.evidence['source_fingerprint'],
                        auth.evidence['destination_fingerprint']}
        expected = {self.guards[h]._identity()[0].fingerprint
                    for h in ('src', 'dst')}
        self.assertEqual(expected, fingerprints)


class RefusalTest(GuardTestBase):

    def test_plaintext_settings_refuse_on_the_destination(self):
        settings = tls.check_settings(tls.LibvirtSettings(True, False,
                                                          'tcp'))
        self.assertRefused('plaintext_control',
                           self.incoming(settings=settings))
        self.assertIn(('refused', 'failure', 'plaintext_control'),
                      self.steps('dst'))
        # The source is told, and records it.
        self.assertEqual([('src', 'plaintext_control')],
                         self.channel.reports)
        self.assertIn(('refused', 'failure', 'plaintext_control'),
                      self.steps('src'))
        self.assertIsNone(self.guards['dst'].is_authorised(
            self.instance.uuid))

    def test_plaintext_flags_refused_at_the_libvirt_call(self):
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing())
        decision, tuning = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system', LIVE, 0, 1, BITS)
        self.assertRefused('plaintext_migration', decision)
        self.assertIsNone(tuning)
        decision, _ = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tcp://dst/system',
            LIVE | BITS['VIR_MIGRATE_TLS'], 0, 1, BITS)
        self.assertRefused('plaintext_control', decision)

    def test_libvirt_call_to_another_host_than_the_authenticated_one(self):
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing())
        flags = LIVE | BITS['VIR_MIGRATE_TLS']
        decision, _ = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://low/system', flags, 0, 1, BITS)
        self.assertRefused('destination_mismatch', decision)
        # An address from the destination's certificate is the same host.
        decision, _ = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://127.0.0.1/system', flags, 0, 1,
            BITS)
        self.assertTrue(decision.allowed, decision)

    def test_plaintext_flags_refused_at_the_checks(self):
        """The source checks the flags and URI Nova will use, up front."""
        seen = []

        def transport(flags, uri):
            return lambda host: seen.append(host) or (flags, uri % host,
                                                      BITS)

        self.assertTrue(self.incoming())
        decision = self.outgoing(
            transport=transport(LIVE, 'qemu+tls://%s/system'))
        self.assertRefused('plaintext_migration', decision)
        self.assertEqual(['dst'], seen)
        self.assertIsNone(self.guards['src'].is_authorised(
            self.instance.uuid))
        self.assertIn(('refused', 'failure', 'plaintext_migration'),
                      self.steps('src'))
        for uri, code in (('qemu+tcp://%s/system', 'plaintext_control'),
                          ('qemu+tls://%s/system?no_verify=1',
                           'weak_tls_uri'),
                          ('qemu+tls://%s/system?pkipath=/tmp/x',
                           'weak_tls_uri')):
            self.assertTrue(self.incoming())
            decision = self.outgoing(transport=transport(
                LIVE | BITS['VIR_MIGRATE_TLS'], uri))
            self.assertRefused(code, decision)
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing(transport=transport(
            LIVE | BITS['VIR_MIGRATE_TLS'], 'qemu+tls://%s/system')))

    def test_forbidden_post_copy_refused_at_the_checks(self):
        self.assertTrue(self.incoming())
        flags = LIVE | BITS['VIR_MIGRATE_TLS'] | BITS['VIR_MIGRATE_POSTCOPY']
        decision = self.outgoing(transport=lambda host: (
            flags, 'qemu+tls://%s/system' % host, BITS))
        self.assertRefused('post_copy_forbidden', decision)
        self.assertIn('live_migration_permit_post_copy = false',
                      decision.reason)
        self.assertIsNone(self.guards['src'].is_authorised(
            self.instance.uuid))

    def test_forbidden_post_copy_refused_at_the_libvirt_call(self):
        """Not removed behind Nova's back: Nova may switch to post-copy."""
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing())
        flags = LIVE | BITS['VIR_MIGRATE_TLS'] | BITS['VIR_MIGRATE_POSTCOPY']
        decision, tuning = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system', flags, 0, 1, BITS)
        self.assertRefused('post_copy_forbidden', decision)
        self.assertIsNone(tuning)

    def test_post_copy_under_a_bandwidth_cap(self):
        path = os.path.join(self.work, 'post-copy-policy.yaml')
        with open(POLICY) as f, open(path, 'w') as g:
            g.write(f.read().replace('post_copy: forbidden',
                                     'post_copy: allowed'))
        for name in ('src', 'dst'):
            self.guards[name] = self.make_guard(name, policy=path)
        flags = LIVE | BITS['VIR_MIGRATE_TLS'] | BITS['VIR_MIGRATE_POSTCOPY']

        def transport(host):
            return flags, 'qemu+tls://%s/system' % host, BITS

        self.assertTrue(self.incoming())
        decision = self.outgoing(transport=transport)
        self.assertRefused('post_copy_uncapped', decision)
        self.assertIn('500 MiB/s', decision.reason)
        # Without a cap, post-copy is Nova's to use: the flag stays.
        with open(path) as f:
            text = f.read().replace('max_bandwidth_mib: 500', '')
        with open(path, 'w') as f:
            f.write(text)
        for name in ('src', 'dst'):
            self.guards[name] = self.make_guard(name, policy=path)
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing(transport=transport))
        decision, tuning = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system', flags, 0, 1, BITS)
        self.assertTrue(decision.allowed, decision)
        self.assertEqual(flags, tuning.flags)

    def test_migrate_uri_host_must_be_named_in_the_certificate(self):
        """The migrate URI's host is the tls-hostname QEMU verifies."""
        self.assertTrue(self.incoming())
        self.assertTrue(self.outgoing())
        flags = LIVE | BITS['VIR_MIGRATE_TLS']
        decision, tuning = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system', flags, 0, 1, BITS,
            migrate_uri='tcp://192.0.2.7')
        self.assertRefused('tls_hostname_mismatch', decision)
        self.assertEqual('192.0.2.7', decision.details['tls_hostname'])
        self.assertIn('192.0.2.7', decision.reason)
        self.assertIsNone(tuning)
        for uri in ('tcp://127.0.0.1', 'tcp://dst', 'tcp://dst:49152'):
            decision, _ = self.guards['src'].start_outgoing(
                self.instance.uuid, 'qemu+tls://dst/system', flags, 0, 1,
                BITS, migrate_uri=uri)
            self.assertTrue(decision.allowed, (uri, decision))

    def test_inbound_addr_must_be_named_in_the_certificate(self):
        decision = self.incoming(inbound_addr='192.0.2.7')
        self.assertRefused('inbound_addr_not_in_certificate', decision)
        self.assertIn('192.0.2.7', decision.reason)
        self.assertIn('live_migration_inbound_addr', decision.reason)
        self.assertIsNone(self.guards['dst'].is_authorised(
            self.instance.uuid))
        self.assertTrue(self.incoming(inbound_addr='127.0.0.1'))

    def test_libvirt_hostname_must_be_named_without_inbound_addr(self):
        """Without an inbound address QEMU verifies the libvirt hostname."""
        decision = self.incoming(libvirt_hostname='dst.example.org')
        self.assertRefused('inbound_addr_not_in_certificate', decision)
        self.assertEqual(
            'QEMU on the source will verify this host\'s certificate '
            'against dst.example.org, its hostname as libvirt reports it '
            '([libvirt] live_migration_inbound_addr is not set, so libvirtd '
            'gives the source its hostname), which is not among its names '
            '(dst, 127.0.0.1): set [libvirt] live_migration_inbound_addr to '
            'one of them, or enroll the host with that hostname',
            decision.reason)
        self.assertEqual('dst.example.org',
                         decision.details['libvirt_hostname'])
        self.assertEqual([], self.channel.sent)  # before the handshake
        self.assertIsNone(self.guards['dst'].is_authorised(
            self.instance.uuid))
        self.assertIn(('refused', 'failure',
                       'inbound_addr_not_in_certificate'), self.steps('dst'))

    def test_libvirt_hostname_named_in_the_certificate(self):
        self.assertTrue(self.incoming(libvirt_hostname='dst'))

    def test_inbound_addr_replaces_the_libvirt_hostname(self):
        self.assertTrue(self.incoming(inbound_addr='127.0.0.1',
                                      libvirt_hostname='dst.example.org'))

    def test_tunnelled_migration_verifies_no_hostname(self):
        settings = tls.check_settings(tls.LibvirtSettings(False, True, 'tls'))
        self.assertTrue(self.incoming(settings=settings,
                                      libvirt_hostname='dst.example.org'))

    def test_source_refuses_without_a_handshake(self):
        self.assertRefused('not_authenticated', self.outgoing())

    def test_unauthorised_migration_cannot_start(self):
        decision, _ = self.guards['src'].start_outgoing(
            self.instance.uuid, 'qemu+tls://dst/system',
            LIVE | BITS['VIR_MIGRATE_TLS'], 0, 1, BITS)
        self.assertRefused('not_authorised', decision)

    def test_under_cleared_destination(self):
        secret = facts.InstanceFacts(self.instance.uuid, 'demo',
                                     metadata={'secmig:level': 'secret'})
        self.assertRefused('insufficient_clearance',
                           self.incoming(instance=secret))

    def test_revoked_destination_refuses_itself(self):
        decision = self.incoming(dest='gone')
        self.assertRefused('revoked', decision)

    def test_source_refuses_a_revoked_destination(self):
        # "gone" still holds its key and certificate; the source checks
        # the CRL during the handshake.
        g = self.guards['gone']
        g.conf.set_override('require_crl', False, group='pki')
        os.rename(os.path.join(g.conf.pki.cert_dir, 'ca-crl.pem'),
                  os.path.join(self.work, 'hidden-crl.pem'))
        self.addCleanup(os.rename, os.path.join(self.work, 'hidden-crl.pem'),
                        os.path.join(g.conf.pki.cert_dir, 'ca-crl.pem'))
        decision = self.incoming(dest='gone')
        self.assertRefused('peer_certificate_invalid', decision)
        self.assertEqual('revoked', decision.details['pki_code'])
        self.assertEqual('src', decision.details['refused_by'])
        # The source's refusal came over the bus unsigned.
        self.assertIs(False, decision.details['report_authenticated'])

    def test_tenant_outside_the_rbac_rules(self):
        member = facts.Request('api', {'user_id': 'bob', 'project_id': 'demo',
                                       'roles': ['member']})
        self.assertRefused('rbac_denied', self.incoming(request=member))

    def test_hosts_with_different_policies(self):
        other = os.path.join(self.work, 'other-policy.yaml')
        with open(POLICY) as f, open(other, 'w') as g:
            g.write(f.read().replace('max_bandwidth_mib: 500',
                                     'max_bandwidth_mib: 400'))
        self.guards['src'] = self.make_guard('src', policy=other)
        self.assertRefused('policy_mismatch', self.incoming())

    def test_broken_policy_file_refuses_everything(self):
        broken = os.path.join(self.work, 'broken.yaml')
        with open(broken, 'w') as f:
            f.write('version: 1\nrbac: [\n')
        self.guards['dst'] = self.make_guard('dst', policy=broken)
        decision = self.incoming()
        self.assertRefused('policy_unavailable', decision)
        self.assertEqual(broken, decision.details['file'])

    def test_tampered_reply(self):
        def tamper(kind, data):
            if kind != 'auth2':
                return data
            return data.replace(b'"ts":', b'"ts":1', 1)
        decision = self.incoming(channel=DirectChannel(self.guards, tamper))
        self.assertFalse(decision.allowed)
        self.assertIn(decision.code, ('bad_signature', 'future_timestamp'))

    def test_hello_rewritten_to_the_absolute_name_is_refused(self):
        # An attacker on the bus, without a key, rewrites the destination
        # named in auth1 to its absolute form ('dst.'): the same host to
        # DNS, a name cryptography's verifier raises on.
        def tamper(kind, data):
            if kind != 'auth1':
                return data
            return authutil.rewrite(data, binding_dest_host='dst.')
        decision = self.incoming(channel=DirectChannel(self.guards, tamper))
        # The source refuses (the signature no longer covers the
        # binding), and records it, instead of raising.
        self.assertIn(decision.code, ('bad_signature', 'binding_mismatch'),
                      decision)
        self.assertIn(('refused', 'failure', decision.code),
                      self.steps('src'))

    @settings(max_examples=60, deadline=None, database=None,
              derandomize=True,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.function_scoped_fixture])
    @given(st.text(max_size=300))
    def test_any_destination_name_in_hello_is_refused_and_recorded(self,
                                                                   name):
        def tamper(kind, data):
            if kind != 'auth1':
                return data
            return authutil.rewrite(data, binding_dest_host=name)
        before = len(self.steps('src'))
        decision = self.incoming(channel=DirectChannel(self.guards, tamper))
        self.assertIn(decision.code, ('bad_signature', 'malformed_message'),
                      decision)
        self.assertFalse(decision.details['signed_by_peer'])
        self.assertEqual([('refused', 'failure', decision.code)],
                         self.steps('src')[before:])

    def test_third_host_cannot_displace_the_destinations_handshake(self):
        # "low" is enrolled; it reads dst's auth1 on the bus and starts
        # its own handshake for the same instance and migration before
        # dst confirms.
        class Intruding(DirectChannel):
            def confirm(channel, peer_host, instance_uuid, auth3):
                intruder = guard.handshake.Initiator(
                    *self.guards['low']._identity()[:2],
                    authutil.make_binding(
                        migration_id=self.migration,
                        instance_uuid=instance_uuid, source_host='src',
                        dest_host='low',
                        policy_digest=self.guards['src']._policy()[0]
                        .digest),
                    self.guards['low'].conf)
                auth2, decision = self.guards['src'].answer_hello(
                    self.migration, instance_uuid, intruder.start())
                self.assertEqual('awaiting_confirmation', decision.code)
                return super().confirm(peer_host, instance_uuid, auth3)
        decision = self.incoming(channel=Intruding(self.guards))
        self.assertTrue(decision, decision)
        self.assertIn(('authenticated', 'success', 'authenticated'),
                      self.steps('src'))

    def test_next_destination_after_one_that_refused(self):
        # The scheduler's first choice authenticates, then refuses on its
        # own policy (clearance 0 for a level-1 instance) and tells the
        # source; the next host tried is not held back by its proof.
        self.instance = facts.InstanceFacts(
            self.instance.uuid, 'demo', metadata={'secmig:level': 'internal'})
        self.assertRefused('insufficient_clearance', self.incoming('low'))
        self.assertIn(('src', 'insufficient_clearance'),
                      self.channel.reports)
        self.assertTrue(self.incoming('dst'))
        self.assertTrue(self.outgoing())
        self.assertEqual('dst', self.guards['src'].is_authorised(
            self.instance.uuid).dest_host)

    def test_a_second_destination_waits_for_the_first(self):
        self.assertTrue(self.incoming('dst'))
        decision = self.incoming('low')
        self.assertRefused('handshake_in_progress', decision)
        self.assertIn('dst, which authenticated first', decision.reason)
        self.assertIn(('refused', 'failure', 'handshake_in_progress'),
                      self.steps('src'))

    def test_replayed_hello_is_refused_by_the_source(self):
        self.assertTrue(self.incoming())
        replayed = self.channel.sent[0]
        auth2, decision = self.guards['src'].answer_hello(
            self.migration, self.instance.uuid, replayed)
        self.assertIsNone(auth2)
        self.assertRefused('replayed', decision)

    def test_confirmation_without_hello(self):
        self.assertRefused('no_handshake', self.guards['src'].answer_confirm(
            self.instance.uuid, b'{}'))

    def test_audit_failure_refuses(self):
        blocker = os.path.join(self.work, 'not-a-directory')
        open(blocker, 'w').close()
        g = self.make_guard('dst')
        g.audit.close()
        g.conf.set_override('journal_path',
                            os.path.join(blocker, 'journal.jsonl'),
                            group='audit')
        self.guards['dst'] = guard.HostGuard.from_conf(g.conf, 'dst')
        decision = self.incoming()
        self.assertRefused('audit_unavailable', decision)
        self.assertIn('no migration may proceed unrecorded',
                      decision.reason)
