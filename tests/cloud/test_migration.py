"""Live migrations between real libvirt hosts, requested through Nova's API.

Given the running cloud (two enrolled hosts, an unenrolled one, a revoked
one), when an admin or a tenant asks Nova for a live migration, then it
either completes over QEMU native TLS with both hosts' audit trails
intact, or it is refused before anything moves, with secmig's reason in
Nova's answer and in the journals, and the guest keeps running where it
was.
"""

import json

from tests.cloud import base

wire = base.wire


class AdminMigrationTest(base.CloudTestCase):

    def test_scheduled_migration_travels_over_tls_and_is_audited(self):
        server = self.boot('tls-move', 'cmp1', cleanup=self.addCleanup)
        before = len(self.migrations(server['id']))
        sniffer = wire.FirstBytes(self.hosts['cmp2'].address,
                                  wire.MIGRATION_PORTS)
        sniffer.start()
        self.addCleanup(sniffer.stop)

        self.live_migrate(server['id'])
        # QEMU's migration parameters on the source, while it sends.
        params = base.wait(
            lambda: self.tls_parameters('cmp1', server),
            'the source QEMU to be given its TLS parameters', 120,
            interval=0.2)
        ticks_before = self.ticks(server['id'])
        migration = self.wait_migration(server['id'], before)
        first_bytes = sniffer.stop()

        self.assertEqual('completed', migration['status'], migration)
        self.assertEqual(('cmp1', 'cmp2'), (migration['source_compute'],
                                            migration['dest_compute']))
        self.assertEqual('cmp2', self.host_of(server['id']))
        self.assertEqual('running', self.domain_state('cmp2', server))
        self.assertIsNone(self.domain_state('cmp1', server))
        # The guest went on counting: it moved, it did not reboot.
        ticks_after = base.wait(
            lambda: base.TICK.findall(self.console(server['id'])),
            'heartbeats on cmp2', 60)
        self.assertGreaterEqual(int(ticks_after[0]), ticks_before)

        # The stream was TLS, verified against the destination's name.
        self.assertTrue(params['tls-creds'], params)
        self.assertEqual('cmp2', params['tls-hostname'])
        self.assertTrue(first_bytes, 'no migration connection to cmp2 seen')
        streams = [p for p in first_bytes.values()
                   if p[0].startswith(wire.TLS_HANDSHAKE)]
        self.assertTrue(streams, 'no TLS stream to cmp2: %r' % first_bytes)
        for (sport, dport), payloads in first_bytes.items():
            self.assertFalse(payloads[0].startswith(wire.QEMU_PLAINTEXT),
                             'plaintext stream to port %d' % dport)
            self.assertTrue(wire.encrypted(payloads),
                            'port %d: %r' % (dport, payloads))

        # Both hosts recorded it, and both journals verify.
        source_steps = [r['step'] for r in
                        self.journal('cmp1', migration['uuid'])]
        dest_steps = [r['step'] for r in
                      self.journal('cmp2', migration['uuid'])]
        for step in ('authenticated', 'authorised', 'started', 'copied',
                     'source_cleaned_up'):
            self.assertIn(step, source_steps)
        for step in ('requested', 'authenticated', 'authorised',
                     'activated'):
            self.assertIn(step, dest_steps)
        for host in ('cmp1', 'cmp2'):
            status, out = self.secmig(host, 'audit', 'verify',
                                      base.JOURNAL)
            self.assertEqual(0, status, '%s: %s' % (host, out))


class RefusedMigrationTest(base.CloudTestCase):
    """Forced moves (microversion 2.30) skip the scheduler: the hosts refuse.

    One guest on cmp1 serves every test: none of them may move it.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.guest = cls.boot('refusals', 'cmp1')

    def assertRefused(self, dest, code, reason_part):
        server_id = self.guest['id']
        before = len(self.migrations(server_id))
        ticks = self.ticks(server_id)
        with self.assertRaises(base.api.ApiError) as cm:
            self.live_migrate(server_id, host=dest, force=True)
        self.assertEqual(400, cm.exception.status)
        message = json.loads(cm.exception.text)['badRequest']['message']
        self.assertIn('secmig refused the migration (%s)' % code, message)
        self.assertIn(reason_part, message)
        migration = self.wait_migration(server_id, before)
        self.assertEqual('error', migration['status'])
        # Nothing moved: the guest runs on, on the source.
        self.wait_active(server_id)
        self.assertEqual('cmp1', self.host_of(server_id))
        self.assertEqual('running', self.domain_state('cmp1', self.guest))
        base.wait(lambda: self.ticks(server_id) > ticks,
                  'the guest to keep counting on cmp1', 60)
        # The source's journal holds the refusal, with the reason.
        refusals = [r for r in self.journal('cmp1', migration['uuid'])
                    if r['outcome'] == 'failure']
        self.assertTrue(refusals, 'no refusal in cmp1\'s journal')
        return message, refusals

    def test_forced_to_an_unenrolled_host(self):
        self.assertRefused('cmp3', 'host_identity_unavailable',
                           'this host (cmp3) has no usable certificate')

    def test_forced_to_a_revoked_host(self):
        # cmp4 never installed the CRL that revokes it; the source has.
        message, _ = self.assertRefused(
            'cmp4', 'peer_certificate_invalid',
            'the certificate presented for cmp4, whose key signed the '
            'message, is refused')
        self.assertIn('revoked', message)
        self.assertIn('keyCompromise', message)
