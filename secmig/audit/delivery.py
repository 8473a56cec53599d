"""Delivery of journal records as oslo.messaging notifications.

The journal is the outbox. :class:`Outbox` reads the records after its
persisted cursor (``<journal>.cursor``), up to the signed head (so only
durable, signed records leave the host), and sends each as a
notification in the ``messagingv2`` format on the topic
``<topic>.info``. Each notification's ``message_id`` and
``payload['record_id']`` are the record's stable id (the CADF event id),
so a consumer that keeps the ids it has seen gets every record exactly
once. The cursor advances after each send the broker accepted; a crash
between the two sends the record again (at least once, never lost).

Why not ``oslo_messaging.Notifier.info()``: the Notifier and its
``messagingv2`` driver log and drop a notification they cannot send, so
a caller can never know a record was not delivered. The outbox builds
the same message (publisher id, event type, priority, payload,
timestamp, version 2.0 envelope) and hands it to the transport's
notification send, the call the ``messagingv2`` driver makes, which
raises when the broker is unreachable.

Delivery never touches the durable write: it runs after it, from a
background thread (:class:`DeliveryWorker`) or from
``secmig audit deliver``. One deliverer per journal at a time
(``fcntl.flock`` on ``<journal>.cursor.lock``, not waited for).
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import threading

import oslo_messaging

from secmig.audit import journal
from secmig.audit import lines
from secmig import exception

LOG = logging.getLogger(__name__)

EVENT_TYPE_PREFIX = 'secmig.audit.'
PRIORITY = 'INFO'


class DeliveryError(exception.SecmigError):
    """The broker did not accept a notification."""

    code = 'delivery_failed'


class NotificationSender:
    """Sends one notification per record; raises ``DeliveryError``.

    ``retry`` is oslo.messaging's: 0 gives up at the first connection
    failure (the default here: the outbox retries later), None retries
    forever.
    """

    def __init__(self, transport, publisher_id, topics, retry=0):
        self.transport = transport
        self.publisher_id = publisher_id
        self.targets = [oslo_messaging.Target(topic='%s.%s'
                                              % (t, PRIORITY.lower()))
                        for t in topics]
        self.retry = retry

    def send(self, record_id, event_type, payload):
        message = {'message_id': record_id,
                   'publisher_id': self.publisher_id,
                   'event_type': event_type, 'priority': PRIORITY,
                   'payload': payload,
                   # Naive UTC, the format oslo.messaging's Notifier uses.
                   'timestamp': str(datetime.datetime.now(
                       datetime.timezone.utc).replace(tzinfo=None))}
        for target in self.targets:
            try:
                self.transport._send_notification(
                    target, {}, message, version=2.0, retry=self.retry)
            except Exception as e:
                raise DeliveryError('cannot deliver audit record %s to %s: '
                                    '%s' % (record_id, target.topic, e)
                                    ) from e


def payload_of(frame, body):
    """The notification payload of one journal record."""
    payload = {'record_id': body['id'], 'seq': frame.seq, 'hash': frame.h,
               'prev': frame.prev, 'kind': frame.kind}
    if frame.kind == 'event':
        payload.update(step=body.get('step'),
                       migration_id=body.get('migration_id'),
                       instance_uuid=body.get('instance_uuid'),
                       event=body.get('event'))
    else:
        payload['recovered'] = body
    return payload


def event_type_of(frame, body):
    if frame.kind == 'event':
        return EVENT_TYPE_PREFIX + body.get('step', 'unknown')
    return EVENT_TYPE_PREFIX + 'journal.recovered'


class Outbox:
    """Delivers the records of the journal at ``path`` with ``sender``."""

    def __init__(self, path, sender):
        self.path = os.path.abspath(path)
        self.sender = sender
        self.delivered = 0
        self._failing = False

    def deliver(self):
        """Send every pending record, in order; stop at the first failure.

        Returns ``(delivered, pending)``: records sent in this call and
        records still waiting (0 when all went out). Returns ``(0, None)``
        when another process is delivering this journal. Raises
        ``DeliveryError`` only through :meth:`deliver_or_raise`.
        """
        try:
            result = self.deliver_or_raise()
        except DeliveryError as e:
            # One warning per outage, not one per retry.
            log = LOG.debug if self._failing else LOG.warning
            log("audit delivery paused, records wait in %s: %s",
                self.path, e)
            self._failing = True
            return self.delivered, self._pending_count()
        if self._failing and result[1] == 0:
            LOG.info("audit delivery resumed: %d records delivered",
                     result[0])
            self._failing = False
        return result

    def deliver_or_raise(self):
        self.delivered = 0
        with self._exclusive() as mine:
            if not mine:
                return 0, None
            head = _head_seq(self.path)
            cursor = self._read_cursor()
            for frame, body, end in self._records_after(cursor, head):
                self.sender.send(body['id'], event_type_of(frame, body),
                                 payload_of(frame, body))
                self._write_cursor(frame.seq, end, body['id'])
                self.delivered += 1
        return self.delivered, 0

    def pending(self):
        """Records written and signed but not yet delivered."""
        return self._pending_count()

    def _pending_count(self):
        head = _head_seq(self.path)
        cursor = self._read_cursor()
        return sum(1 for _ in self._records_after(cursor, head,
                                                  parse=False))

    @contextlib.contextmanager
    def _exclusive(self):
        fd = os.open(self.path + journal.CURSOR_SUFFIX + '.lock',
                     os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _read_cursor(self):
        try:
            with open(self.path + journal.CURSOR_SUFFIX, 'rb') as f:
                data = json.load(f)
            return int(data['seq']), int(data['offset'])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, KeyError, TypeError) as e:
            raise exception.SecmigError(
                'the audit delivery cursor %s%s is corrupt (%s); remove it '
                'to deliver the whole journal again (consumers deduplicate '
                'by record id)' % (self.path, journal.CURSOR_SUFFIX, e),
                code='bad_cursor') from e

    def _write_cursor(self, seq, offset, record_id):
        # Not fsynced: a cursor lost to a crash only resends records.
        path = self.path + journal.CURSOR_SUFFIX
        tmp = '%s.tmp-%d' % (path, os.getpid())
        with open(tmp, 'w') as f:
            json.dump({'seq': seq, 'offset': offset, 'id': record_id}, f)
        os.replace(tmp, path)

    def _records_after(self, cursor, head, parse=True):
        """Yield ``(frame, body, end_offset)`` of records to deliver."""
        seq, offset = cursor
        try:
            f = open(self.path, 'rb')
        except FileNotFoundError:
            return
        with f:
            f.seek(offset)
            first = f.readline()
            if _seq_of(first) != seq + 1:
                # The cursor's offset does not point at the next record
                # (the journal was repaired): find it from the start.
                f.seek(0)
                offset = 0
            else:
                f.seek(offset)
            for raw in f:
                offset += len(raw)
                try:
                    frame = lines.Frame(raw)
                except lines.LineError as e:
                    raise exception.SecmigError(
                        'cannot deliver from %s: a line after record %d is '
                        'damaged (%s); run "secmig audit verify"'
                        % (self.path, seq, e), code='journal_tampered')
                if frame.seq > head:
                    return
                if frame.seq <= seq or frame.kind not in lines.RECORD_KINDS:
                    continue
                yield frame, frame.body() if parse else None, offset


def _seq_of(raw):
    try:
        return lines.Frame(raw).seq
    except lines.LineError:
        return None


def _head_seq(path):
    try:
        with open(path + journal.HEAD_SUFFIX, 'rb') as f:
            return lines.Frame(f.read()).seq
    except (FileNotFoundError, lines.LineError):
        return 0


class DeliveryWorker:
    """Delivers in the background, woken after each write.

    While the broker is unreachable it retries every ``interval`` seconds
    (writes in between do not trigger more attempts).
    """

    def __init__(self, outbox, interval=10.0):
        self.outbox = outbox
        self.interval = interval
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def wake(self):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name='secmig-audit-delivery',
                    daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self):
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                _sent, pending = self.outbox.deliver()
            except Exception:
                LOG.exception("audit delivery failed")
                pending = 1
            if pending:
                self._stopped.wait(self.interval)
                self._wake.set()

    def stop(self, timeout=None):
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
