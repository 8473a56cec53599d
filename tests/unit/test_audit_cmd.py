"""``secmig audit verify`` and ``secmig audit show``."""

import contextlib
import io
import json
import os
import socket
import uuid

from secmig.cmd import main
from secmig.decision import Decision
from tests.unit import test_audit_journal as base


class TestAuditCommand(base.AuditTestCase):

    def setUp(self):
        super().setUp()
        self.ca = os.path.join(self.host.cert_dir, 'ca-cert.pem')
        audit = self.make_trail()
        self.migration = '8f2c1d0e-6f7a-4b8e-9d3c-2a1b0c9d8e7f'
        other = '11111111-2222-4333-8444-555555555555'
        self.recorded = []
        for step, migration in (('requested', self.migration),
                                ('requested', other),
                                ('authorised', self.migration),
                                ('refused', other),
                                ('activated', self.migration)):
            decision = (Decision.refuse('no_tls', 'plaintext migration')
                        if step == 'refused' else None)
            self.recorded.append(audit.record(
                step, migration, 'a8098c1a-f86e-11da-bd1a-00112444be1e',
                'success', decision=decision))

    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main.main(list(argv))
        return status, out.getvalue(), err.getvalue()

    def test_verify_intact_exits_zero(self):
        status, out, _err = self.run_cli('audit', 'verify', self.path,
                                         '--ca', self.ca)
        self.assertEqual(0, status)
        self.assertIn('intact', out)

    def test_verify_tampered_exits_one_with_code_and_record(self):
        with open(self.path, 'rb') as f:
            raw = f.readlines()
        del raw[2]
        with open(self.path, 'wb') as f:
            f.write(b''.join(raw))
        status, out, _err = self.run_cli('audit', 'verify', self.path,
                                         '--ca', self.ca)
        self.assertEqual(1, status)
        self.assertIn('NOT INTACT (deleted) at record 3', out)
        status, out, _err = self.run_cli('audit', 'verify', self.path,
                                         '--ca', self.ca, '--json')
        verdict = json.loads(out)
        self.assertEqual(('deleted', 3),
                         (verdict['code'], verdict['details']['record']))

    def test_verify_needs_a_trust_anchor(self):
        status, _out, err = self.run_cli(
            'audit', 'verify', self.path, '--ca',
            os.path.join(self.dir, 'missing.pem'))
        self.assertEqual(1, status)
        self.assertIn('no trust anchor', err)

    def test_verify_with_pinned_certificate(self):
        cert = os.path.join(self.host.cert_dir, 'server-cert.pem')
        status, _out, _err = self.run_cli('audit', 'verify', self.path,
                                          '--cert', cert)
        self.assertEqual(0, status)

    def test_show_lists_one_migration_in_order(self):
        status, out, _err = self.run_cli('audit', 'show', self.path,
                                         '--migration', self.migration)
        self.assertEqual(0, status)
        rows = out.splitlines()
        self.assertEqual(3, len(rows))
        self.assertEqual(['requested', 'authorised', 'activated'],
                         [row.split()[2] for row in rows])
        self.assertEqual([r.id for r in self.recorded[0::2]],
                         [row.rsplit('id=', 1)[1] for row in rows])

    def test_show_json_and_decision(self):
        status, out, _err = self.run_cli('audit', 'show', self.path,
                                         '--json')
        self.assertEqual(0, status)
        records = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([r.seq for r in self.recorded],
                         [r['seq'] for r in records])
        status, out, _err = self.run_cli('audit', 'show', self.path)
        self.assertIn('decision=no_tls: plaintext migration', out)

    def deliver(self, url):
        conf = os.path.join(self.dir, 'secmig.conf')
        with open(conf, 'w') as f:
            f.write('[audit]\ntransport_url = %s\njournal_path = %s\n'
                    'notification_topics = secmig_audit_%s\n'
                    '[pki]\ncert_dir = %s\n'
                    % (url, self.path, uuid.uuid4().hex, self.host.cert_dir))
        return self.run_cli('--config-file', conf, 'audit', 'deliver')

    def test_deliver(self):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            closed = s.getsockname()[1]
        status, _out, err = self.deliver('rabbit://guest:guest@127.0.0.1:%d/'
                                         % closed)
        self.assertEqual(1, status)
        self.assertIn('delivered 0 records; stopped: cannot deliver audit '
                      'record %s' % self.recorded[0].id, err)
        status, out, _err = self.deliver('fake://')
        self.assertEqual(0, status)
        self.assertIn('delivered 5 records; none pending', out)
        status, out, _err = self.deliver('fake://')
        self.assertIn('delivered 0 records; none pending', out)

    def test_show_unknown_migration(self):
        status, _out, err = self.run_cli('audit', 'show', self.path,
                                         '--migration', 'nope')
        self.assertEqual(1, status)
        self.assertIn('no record of migration nope', err)
