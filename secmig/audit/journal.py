"""The durable, append-only, hash-chained and signed audit journal.

Contract of :meth:`Journal.append`: when it returns, the records are on
disk (``fdatasync``), chained to every record before them and covered by
a checkpoint signed with the host key. A failure raises ``SecmigError``
and leaves the journal as it was.

Group commit: callers that append while a write is in progress queue up;
the first of them (the leader) then writes all queued records in one
``write``, one checkpoint signature and one ``fdatasync``, and wakes the
others. With ``fsync = record`` every record is its own batch. No
background thread is involved, so it works the same under eventlet
(where ``fdatasync`` blocks the hub for its duration) and with threads.

Several processes of a host may append to one journal: an exclusive
``fcntl.flock`` on ``<journal>.lock`` is held from reading the chain head
to writing the batch, so the chain stays linear.

After each batch the last checkpoint line is also written to
``<journal>.head`` (atomically, by rename, without fsync): the signed
head, which lets the verifier detect a truncated journal. A head that
lags after a power loss is harmless: every record past it is covered by
signed checkpoints in the journal itself.

Crash recovery: a writer killed mid-batch leaves lines that no signed
checkpoint covers and that no caller was told were written. The next
writer moves them aside to ``<journal>.unsigned-<time>-<pid>`` and
appends a ``recovered`` record (sizes, SHA-256, file name) before its
own batch. Anything else it does not expect at the end of the journal
(a checkpoint this host did not sign, a line whose hash is wrong) is
tampering: it refuses to append (``journal_tampered``) rather than sign
over it.
"""

import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import threading
import time
import uuid

from secmig.audit import lines
from secmig.audit import signing
from secmig import exception
from secmig.pki import fileio

LOG = logging.getLogger(__name__)

FSYNC_POLICIES = ('batch', 'record')
HEAD_SUFFIX = '.head'
LOCK_SUFFIX = '.lock'
CURSOR_SUFFIX = '.cursor'
UNSIGNED_SUFFIX = '.unsigned-'


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class _Entry:
    __slots__ = ('kind', 'body', 'seq', 'error', 'done')

    def __init__(self, kind, body):
        self.kind = kind
        self.body = body
        self.seq = None
        self.error = None
        self.done = False


class Journal:
    """Appends records to the journal at ``path``, signed by ``signer``.

    ``signer`` is a :class:`~secmig.audit.signing.HostSigner`. ``fsync``
    is ``batch`` (group commit, one fdatasync per batch of at most
    ``max_batch`` records) or ``record`` (one record, one signature and
    one fdatasync at a time). ``window`` (seconds, batch policy only)
    lets a leader wait that long for more records before it writes.
    """

    def __init__(self, path, signer, fsync='batch', max_batch=256,
                 window=0.0):
        if fsync not in FSYNC_POLICIES:
            raise exception.SecmigError(
                'unknown fsync policy %r; choose one of %s'
                % (fsync, ', '.join(FSYNC_POLICIES)), code='bad_config')
        self.path = os.path.abspath(path)
        self.signer = signer
        self.fsync = fsync
        self._max_batch = 1 if fsync == 'record' else max(1, max_batch)
        #: How a batch is forced to disk (benchmarks that only need a
        #: journal's content may replace it).
        self.sync = os.fdatasync
        self._window = window if fsync == 'batch' else 0.0
        self._reset()

    def _reset(self):
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._pending = []
        self._leader = False
        self._fd = None
        self._lock_fd = None
        self._end = -1  # journal size after this process's last batch
        self._state = (0, lines.GENESIS, None)  # seq, head hash, signer

    def append(self, kind, body):
        """Append one line; return its record number once durable."""
        return self.append_many([(kind, body)])[0]

    def append_many(self, items):
        """Append ``(kind, body)`` pairs in order; return their numbers.

        The pairs may be split over several batches (``max_batch``) but
        keep their order.
        """
        for kind, _body in items:
            if kind not in lines.RECORD_KINDS:
                raise exception.SecmigError(
                    'cannot append a %r line' % kind, code='bad_audit_event')
        if os.getpid() != self._pid:
            self._reset()  # forked: fds and locks belong to the parent
        entries = [_Entry(kind, body) for kind, body in items]
        with self._cond:
            self._pending.extend(entries)
            while self._leader and not entries[-1].done:
                self._cond.wait()
            if not entries[-1].done:
                self._leader = True
        if not entries[-1].done:
            self._lead(entries[-1])
        for entry in entries:
            if entry.error is not None:
                raise entry.error
        return [entry.seq for entry in entries]

    def _lead(self, own):
        try:
            while not own.done:
                if self._window:
                    time.sleep(self._window)
                with self._cond:
                    batch = self._pending[:self._max_batch]
                    del self._pending[:self._max_batch]
                try:
                    self._commit(batch)
                except exception.SecmigError as e:
                    for entry in batch:
                        entry.error = e
                except Exception as e:
                    # Every waiter must wake up with an error, whatever
                    # went wrong.
                    error = exception.SecmigError(
                        'cannot write the audit journal %s: %s'
                        % (self.path, e), code='journal_write_failed')
                    error.__cause__ = e
                    for entry in batch:
                        entry.error = error
                with self._cond:
                    for entry in batch:
                        entry.done = True
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leader = False
                self._cond.notify_all()

    def _open(self):
        if self._fd is not None:
            return
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        created = not os.path.exists(self.path)
        self._lock_fd = os.open(self.path + LOCK_SUFFIX,
                                os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                           0o640)
        if created:
            fileio.fsync_dir(directory)

    def _commit(self, batch):
        self._open()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            end = os.fstat(self._fd).st_size
            recovered = None
            if end != self._end:
                end, recovered = self._load_tail(end)
            self._write_batch(end, batch, recovered)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write_batch(self, end, batch, recovered):
        seq, prev, signer_fp = self._state
        first = seq + 1
        out = []

        def add(kind, body):
            nonlocal seq, prev
            seq += 1
            line, prev = lines.encode(seq, prev, kind, body)
            out.append(line)
            return seq

        if recovered is not None:
            add('recovered', recovered)
        if signer_fp != self.signer.fingerprint:
            add('key', {'time': utcnow(), 'cert': self.signer.cert_pem,
                        'fingerprint': self.signer.fingerprint,
                        'subject': self.signer.subject})
        seqs = [add(entry.kind, entry.body) for entry in batch]
        checkpoint = {'first': first, 'last': seq, 'time': utcnow(),
                      'signer': self.signer.fingerprint}
        checkpoint['sig'] = self.signer.sign(
            lines.signed_message(seq + 1, prev, checkpoint))
        add('checkpoint', checkpoint)
        data = b''.join(out)
        try:
            _write_all(self._fd, data)
            self.sync(self._fd)
        except OSError:
            self._end = -1
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)
            raise
        for entry, number in zip(batch, seqs):
            entry.seq = number
        self._end = end + len(data)
        self._state = (seq, prev, self.signer.fingerprint)
        self._write_head(out[-1])

    def _write_head(self, line):
        tmp = '%s%s.tmp-%d' % (self.path, HEAD_SUFFIX, os.getpid())
        with open(tmp, 'wb') as f:
            f.write(line)
        os.replace(tmp, self.path + HEAD_SUFFIX)

    def _load_tail(self, end):
        """Read the chain head; set aside an unsigned crash tail.

        Returns ``(end, recovered)``: the journal size to append at and
        the body of a ``recovered`` record, or None.
        """
        keep = 0
        self._state = (0, lines.GENESIS, None)
        previous_frame = None
        for offset, raw in _lines_backwards(self._fd, end):
            try:
                frame = lines.Frame(raw)
            except lines.LineError:
                if offset + len(raw) != end:
                    self._refuse(None, 'a line before its end is malformed')
                continue  # the torn last line of a crashed batch
            if not frame.hash_ok:
                self._refuse(frame.seq, 'a line does not match its hash')
            if previous_frame and previous_frame.prev != frame.h:
                self._refuse(previous_frame.seq, 'the chain is broken')
            previous_frame = frame
            if frame.kind == 'checkpoint':
                self._accept_checkpoint(frame)
                keep = offset + len(raw)
                break
        if keep == end:
            return end, None
        return keep, self._set_aside(keep, end)

    def _accept_checkpoint(self, frame):
        try:
            body = frame.body()
        except lines.LineError as e:
            self._refuse(frame.seq, 'its last checkpoint is damaged (%s)' % e)
        if body.get('signer') == self.signer.fingerprint:
            message = lines.signed_message(frame.seq, frame.prev, body)
            if not signing.signature_valid(self.signer.cert, message,
                                           body.get('sig', '')):
                self._refuse(frame.seq, 'its last checkpoint does not '
                             'carry this host\'s signature')
        self._state = (frame.seq, frame.h, body.get('signer'))

    def _refuse(self, seq, what):
        where = ' (record %d)' % seq if seq else ''
        raise exception.SecmigError(
            'refusing to append to the audit journal %s: %s%s; run '
            '"secmig audit verify %s"' % (self.path, what, where, self.path),
            code='journal_tampered')

    def _set_aside(self, keep, end):
        data = os.pread(self._fd, end - keep, keep)
        saved = '%s%s%d-%d' % (self.path, UNSIGNED_SUFFIX, time.time(),
                               os.getpid())
        with open(saved, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)
        LOG.warning("audit journal %s: %d bytes after record %d were not "
                    "covered by a signed checkpoint (a writer stopped "
                    "mid-batch); moved them to %s", self.path, len(data),
                    self._state[0], saved)
        return {'id': str(uuid.uuid4()), 'time': utcnow(),
                'after_record': self._state[0], 'dropped_bytes': len(data),
                'dropped_sha256': hashlib.sha256(data).hexdigest(),
                'saved_as': os.path.basename(saved)}

    def close(self):
        for fd in (self._fd, self._lock_fd):
            if fd is not None and os.getpid() == self._pid:
                os.close(fd)
        self._fd = self._lock_fd = None
        self._end = -1


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _lines_backwards(fd, end, block=65536):
    """Yield ``(offset, raw)`` for the lines before ``end``, last first.

    A trailing fragment without a newline is yielded as a line.
    """
    pos = end
    tail = b''  # the bytes from pos to the end of the unread region
    while pos + len(tail) > 0:
        cut = tail.rfind(b'\n', 0, len(tail) - 1)
        while cut < 0 and pos > 0:
            size = min(block, pos)
            pos -= size
            tail = os.pread(fd, size, pos) + tail
            cut = tail.rfind(b'\n', 0, len(tail) - 1)
        start = cut + 1
        yield pos + start, tail[start:]
        tail = tail[:start]
