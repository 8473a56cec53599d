"""Audit delivery through a real RabbitMQ that goes down and comes back.

The test class starts its own RabbitMQ node (``RabbitNode``): its own
node name, free loopback ports, data, logs and Erlang cookie (``HOME``)
in a temporary directory, so that stopping it never touches the shared
broker on 127.0.0.1:5672. It starts in a few seconds here; stopping and
restarting our own node is a true broker outage (connections refused,
queues gone), which a TCP relay in front of the shared broker would only
imitate. Only the node this class started is stopped, by its node name
(``rabbitmqctl -n``), and its process by its own PID if that fails.

Scenario: the broker stops; the audit records of several migrations are
written (each returns durable while delivery fails in the background);
the broker comes back; the background worker delivers; a real
oslo.messaging notification listener receives every record exactly
once, in journal order, with the ids the journal holds.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import oslo_messaging

from secmig.audit import delivery
from secmig.audit import journal
from secmig.audit import signing
from secmig.audit import trail
from secmig.audit import verify
from secmig import conf as secmig_conf
from tests import pkiutil

RABBIT_BIN = '/usr/lib/rabbitmq/bin'
START_TIMEOUT = 90
TOPIC = 'secmig_audit_systest'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class RabbitNode:
    """One RabbitMQ node of our own, in ``base_dir``."""

    def __init__(self, base_dir):
        self.base_dir = base_dir
        self.name = 'secmig-audit-%d@localhost' % os.getpid()
        self.port = _free_port()
        dist_port = _free_port()
        with open(os.path.join(base_dir, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')
        open(os.path.join(base_dir, 'rabbitmq-env.conf'), 'w').close()
        self.env = dict(
            os.environ, HOME=base_dir, RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(base_dir, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(base_dir, 'log'),
            RABBITMQ_PID_FILE=os.path.join(base_dir, 'rabbit.pid'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base_dir,
                                                       'enabled_plugins'),
            RABBITMQ_CONFIG_FILE=os.path.join(base_dir, 'rabbitmq'),
            RABBITMQ_CONF_ENV_FILE=os.path.join(base_dir,
                                                'rabbitmq-env.conf'),
            ERL_EPMD_ADDRESS='127.0.0.1')
        self.process = None

    @property
    def url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.port

    def ctl(self, *args, timeout=START_TIMEOUT):
        return subprocess.run(
            [os.path.join(RABBIT_BIN, 'rabbitmqctl'), '-n', self.name]
            + list(args), env=self.env, capture_output=True, text=True,
            timeout=timeout)

    def start(self):
        log = open(os.path.join(self.base_dir, 'server.out'), 'ab')
        # A session of its own: the server script forks the Erlang VM,
        # and the whole group is ours to end if the node will not stop.
        self.process = subprocess.Popen(
            [os.path.join(RABBIT_BIN, 'rabbitmq-server')], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            # await_startup needs the node registered with epmd first.
            result = self.ctl('await_startup', timeout=START_TIMEOUT)
            if result.returncode == 0:
                return
            if (time.monotonic() > deadline
                    or self.process.poll() is not None):
                self.kill()
                raise RuntimeError('RabbitMQ node %s did not start: %s'
                                   % (self.name, result.stderr[-2000:]))
            time.sleep(0.5)

    def stop(self):
        """Stop our node by name; kill our process only if that fails."""
        if self.process is None:
            return
        result = self.ctl('stop', timeout=60)
        try:
            self.process.wait(timeout=60 if result.returncode == 0 else 1)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self):
        """SIGKILL the process group this node was started in."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self.process = None


class Consumer:
    """A notification listener that keeps every message it gets."""

    def __init__(self):
        self.messages = []
        self.changed = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.messages.append((metadata['message_id'], payload))
        self.changed.set()

    def wait_for(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            self.changed.wait(0.5)
            self.changed.clear()


@unittest.skipUnless(os.path.exists(os.path.join(RABBIT_BIN,
                                                 'rabbitmq-server')),
                     'rabbitmq-server is not installed')
class TestDeliveryAcrossBrokerOutage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-audit-rmq-')
        cls.node = RabbitNode(cls.base)
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        pki = pkiutil.TestPKI(os.path.join(self.base, 'pki'))
        self.pki = pki
        host = pki.enroll('cmp1')
        self.path = os.path.join(self.base, 'audit', 'journal.jsonl')
        self.conf = secmig_conf.new_conf()
        self.transport = oslo_messaging.get_notification_transport(
            self.conf, url=self.node.url)
        self.addCleanup(self.transport.cleanup)
        outbox = delivery.Outbox(self.path, delivery.NotificationSender(
            self.transport, 'secmig-audit.cmp1', [TOPIC]))
        self.worker = delivery.DeliveryWorker(outbox, interval=0.5)
        self.addCleanup(self.worker.stop, 10)
        self.journal = journal.Journal(
            self.path, signing.HostSigner.from_cert_dir(host.cert_dir))
        self.addCleanup(self.journal.close)
        self.trail = trail.AuditTrail(self.journal, worker=self.worker)
        self.outbox = outbox

    def listen(self):
        consumer = Consumer()
        listener = oslo_messaging.get_notification_listener(
            self.transport, [oslo_messaging.Target(topic=TOPIC)],
            [consumer], executor='threading')
        listener.start()
        stopped = []

        def stop():
            if not stopped:
                stopped.append(True)
                listener.stop()
                listener.wait()
        self.addCleanup(stop)
        return consumer, stop

    def migrate(self, steps=('requested', 'authorised', 'started',
                             'copied', 'activated', 'source_cleaned_up')):
        migration, instance = str(uuid.uuid4()), str(uuid.uuid4())
        return [self.trail.record(step, migration, instance, 'success',
                                  requester={'user_id': uuid.uuid4().hex},
                                  tls_flags=['VIR_MIGRATE_TLS'])
                for step in steps]

    def test_records_written_during_an_outage_arrive_once_in_order(self):
        # Given a consumer and a first migration delivered normally
        consumer, stop_listening = self.listen()
        written = self.migrate()
        consumer.wait_for(len(written))
        self.assertEqual([r.id for r in written],
                         [m[0] for m in consumer.messages])
        stop_listening()

        # When the broker stops and three migrations are recorded
        self.node.stop()
        during = []
        for _ in range(3):
            during += self.migrate()
        during += self.migrate(steps=('requested', 'refused'))
        # then every record is durable and signed although none left
        verdict = verify.verify_journal(self.path, trust=self.pki.trust())
        self.assertTrue(verdict, verdict)
        self.assertEqual(len(written) + len(during),
                         verdict.details['events'])
        self.assertEqual(len(during), self.outbox.pending())

        # When the broker comes back, the background worker delivers
        self.node.start()
        consumer_after, _stop = self.listen()
        expected = written + during
        # A record written after the outage comes after every record
        # before it in the queue: once it is in, any duplicate would be.
        sentinel = self.migrate(steps=('requested',))
        consumer_after.wait_for(len(during) + 1)
        self.assertEqual(sentinel[0].id, consumer_after.messages[-1][0])
        del consumer_after.messages[-1]

        # then the consumer got each record once, in journal order
        ids = [m[0] for m in consumer_after.messages]
        self.assertEqual([r.id for r in during], ids)
        self.assertEqual([r.seq for r in during],
                         [m[1]['seq'] for m in consumer_after.messages])
        self.assertEqual(len(set(ids)), len(ids))
        # The worker moves its cursor once the broker has confirmed, which
        # may be after the consumer already holds the message.
        deadline = time.monotonic() + 30
        while self.outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(0, self.outbox.pending())
        self.assertEqual([r.id for r in expected],
                         [m[0] for m in consumer.messages]
                         + [m[0] for m in consumer_after.messages])
