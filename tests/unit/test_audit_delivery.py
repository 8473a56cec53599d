"""Outbox delivery: in order, once per cursor, nothing lost on failure.

Notifications go through oslo.messaging's own in-memory ``fake://``
transport (a real oslo.messaging driver, no broker needed) and are read
back with a real notification listener. An unreachable broker is a
``rabbit://`` URL on a loopback port nobody listens on.
"""

import socket
import threading
import uuid

import oslo_messaging

from secmig.audit import delivery
from secmig.audit import journal
from secmig import conf as secmig_conf
from tests.unit import test_audit_journal as base


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Collector:
    def __init__(self):
        self.messages = []
        self.done = threading.Event()
        self.expected = 0

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.messages.append((metadata['message_id'], event_type, payload))
        if len(self.messages) >= self.expected:
            self.done.set()


class TestOutbox(base.AuditTestCase):

    def setUp(self):
        super().setUp()
        self.conf = secmig_conf.new_conf()
        self.audit = self.make_trail()
        # fake:// exchanges live as long as the process: a topic per test.
        self.topic = 'secmig_audit_%s' % uuid.uuid4().hex

    def transport(self, url):
        transport = oslo_messaging.get_notification_transport(self.conf,
                                                              url=url)
        self.addCleanup(transport.cleanup)
        return transport

    def outbox(self, transport):
        return delivery.Outbox(self.path, delivery.NotificationSender(
            transport, 'secmig-audit.cmp1', [self.topic]))

    def collect(self, transport, expected):
        collector = Collector()
        collector.expected = expected
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=self.topic)],
            [collector], executor='threading')
        listener.start()
        collector.done.wait(10)
        listener.stop()
        listener.wait()
        return collector.messages

    def test_records_written_while_broker_is_down_are_delivered_later(self):
        migration = 'b5b7a7a4-3d35-4a55-9a55-0e7c5f3e1c11'
        written = [self.record(self.audit, step, migration)
                   for step in ('requested', 'authorised', 'started')]
        down = self.outbox(self.transport(
            'rabbit://guest:guest@127.0.0.1:%d/' % _closed_port()))
        self.assertEqual((0, 3), down.deliver())
        with self.assertRaises(delivery.DeliveryError) as ctx:
            down.deliver_or_raise()
        self.assertIn(written[0].id, str(ctx.exception))
        written += [self.record(self.audit, 'activated', migration)]

        fake = self.transport('fake://')
        up = self.outbox(fake)
        self.assertEqual((4, 0), up.deliver())
        self.assertEqual((0, 0), up.deliver())  # the cursor persisted
        messages = self.collect(fake, 4)
        self.assertEqual([r.id for r in written], [m[0] for m in messages])
        self.assertEqual(['secmig.audit.requested', 'secmig.audit.authorised',
                          'secmig.audit.started', 'secmig.audit.activated'],
                         [m[1] for m in messages])
        payload = messages[1][2]
        self.assertEqual(written[1].id, payload['record_id'])
        self.assertEqual(written[1].seq, payload['seq'])
        self.assertEqual(migration, payload['migration_id'])
        self.assertEqual('allow', payload['event']['action'])
        self.assertEqual(0, up.pending())

    def test_cursor_survives_a_new_outbox_and_a_repaired_journal(self):
        self.record(self.audit)
        fake = self.transport('fake://')
        self.assertEqual((1, 0), self.outbox(fake).deliver())
        self.record(self.audit)
        # A cursor whose offset is stale is found again by number.
        with open(self.path + journal.CURSOR_SUFFIX, 'r+') as f:
            text = f.read().replace('"offset": ', '"offset": 1')
            f.seek(0)
            f.write(text)
        self.assertEqual((1, 0), self.outbox(fake).deliver())
        self.assertEqual(2, len(self.collect(fake, 2)))

    def test_only_one_deliverer_at_a_time(self):
        self.record(self.audit)
        outbox = self.outbox(self.transport('fake://'))
        with outbox._exclusive() as mine:
            self.assertTrue(mine)
            self.assertEqual((0, None), outbox.deliver())
        self.assertEqual((1, 0), outbox.deliver())

    def test_worker_delivers_in_the_background(self):
        fake = self.transport('fake://')
        worker = delivery.DeliveryWorker(self.outbox(fake), interval=0.1)
        self.addCleanup(worker.stop, 5)
        self.audit.worker = worker
        ids = [self.record(self.audit).id for _ in range(3)]
        self.assertEqual(ids, [m[0] for m in self.collect(fake, 3)])
