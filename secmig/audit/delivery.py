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

The cursor and the head may have been written by someone else: a cursor
that is not a record of the journal (or lies beyond the head), a head
that is not a checkpoint, or a damaged record stops delivery with the
reason, and the records wait; nothing is skipped. The deliverer does not
check signatures: it sends what the head covers (see doc/audit.rst).

Delivery never touches the durable write: it runs after it, from a
background thread (:class:`DeliveryWorker`) or from
``secmig audit deliver``. One deliverer per journal at a time
(``fcntl.flock`` on ``<journal>.cursor.lock``, not waited for).
"""

import contextlib
import datetime
import fcntl
import logging
import os
import threading

import oslo_messaging

from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import sidefiles
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
        """Send every pending record; raise at the first failure.

        Raises ``DeliveryError`` when the broker refuses, and
        ``SecmigError`` (``bad_cursor``, ``bad_head``,
        ``journal_tampered``) when the cursor, the head or a line to send
        is not what the writer and the deliverer write: the records then
        wait in the journal.
        """
        self.delivered = 0
        with self._exclusive() as mine:
            if not mine:
                return 0, None
            head = self._head_seq()
            cursor = self._read_cursor()
            for frame, body, end in self._records_after(cursor, head):
                self.sender.send(body['id'], event_type_of(frame, body),
                                 payload_of(frame, body))
                sidefiles.write_cursor(self.path, sidefiles.Cursor(
                    frame.seq, end, body['id']))
                self.delivered += 1
        return self.delivered, 0

    def pending(self):
        """Records written and signed but not yet delivered."""
        return self._pending_count()

    def _pending_count(self):
        head = self._head_seq()
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

    def _head_seq(self):
        try:
            head = sidefiles.read_head(self.path)
        except sidefiles.SideFileError as e:
            raise exception.SecmigError(
                'cannot deliver from %s: %s; records wait in the journal '
                '(run "secmig audit verify")' % (self.path, e),
                code='bad_head') from e
        return head.seq if head else 0

    def _read_cursor(self):
        try:
            return sidefiles.read_cursor(self.path) or sidefiles.Cursor(
                0, 0, '')
        except sidefiles.SideFileError as e:
            raise self._bad_cursor(str(e)) from e

    def _bad_cursor(self, what):
        return exception.SecmigError(
            'cannot deliver from %s: %s; records wait in the journal. Check '
            'it ("secmig audit verify"); removing %s%s delivers the whole '
            'journal again (consumers drop repeats by record id)'
            % (self.path, what, self.path, journal.CURSOR_SUFFIX),
            code='bad_cursor')

    def _records_after(self, cursor, head, parse=True):
        """Yield ``(frame, body, end_offset)`` of records to deliver."""
        try:
            f = open(self.path, 'rb')
        except FileNotFoundError:
            return
        with f:
            offset = self._start(f, cursor, head)
            f.seek(offset)
            for raw in f:
                offset += len(raw)
                frame = self._frame(raw, cursor.seq)
                if frame.seq > head:
                    return
                if (frame.seq <= cursor.seq
                        or frame.kind not in lines.RECORD_KINDS):
                    continue
                body = self._body(frame) if parse else None
                yield frame, body, offset

    def _start(self, f, cursor, head):
        """The offset just after the cursor's record, checked."""
        if not cursor.seq:
            return 0
        if cursor.seq > head:
            raise self._bad_cursor(
                'the delivery cursor names record %d, beyond the signed '
                'head (record %d)' % (cursor.seq, head))
        if _is_cursor_record(_line_before(f, cursor.offset), cursor):
            return cursor.offset
        f.seek(0)  # an offset from before a repair: look the record up
        offset = 0
        for raw in f:
            offset += len(raw)
            if _is_cursor_record(raw, cursor):
                return offset
        raise self._bad_cursor(
            'the delivery cursor names record %d with id %r, which is not '
            'a record of this journal' % (cursor.seq, cursor.id))

    def _frame(self, raw, after):
        try:
            return lines.Frame(raw)
        except lines.LineError as e:
            raise exception.SecmigError(
                'cannot deliver from %s: a line after record %d is '
                'damaged (%s); run "secmig audit verify"'
                % (self.path, after, e), code='journal_tampered') from e

    def _body(self, frame):
        body = _body_or_none(frame)
        if body is None or not isinstance(body.get('id'), str):
            raise exception.SecmigError(
                'cannot deliver record %d of %s: it is damaged or has no '
                'record id; run "secmig audit verify"'
                % (frame.seq, self.path), code='journal_tampered')
        return body


def _line_before(f, offset):
    """The line of ``f`` that ends at ``offset`` (within 64 KiB), or b''."""
    back = min(offset, 65536)
    f.seek(offset - back)
    data = f.read(back)
    if not data.endswith(b'\n'):
        return b''
    return data[data.rfind(b'\n', 0, -1) + 1:]


def _is_cursor_record(raw, cursor):
    try:
        frame = lines.Frame(raw)
    except lines.LineError:
        return False
    body = _body_or_none(frame) if frame.seq == cursor.seq else None
    return (frame.kind in lines.RECORD_KINDS and body is not None
            and body.get('id') == cursor.id)


def _body_or_none(frame):
    try:
        return frame.body()
    except lines.LineError:
        return None


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
