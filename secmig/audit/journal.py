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
``<journal>.head`` (a new file renamed over the old one): the signed
head, which lets a reader detect a truncated journal. The first head is
fdatasync'ed with its directory; later ones are not, which would double
the cost of a record: after a power loss a head may lag behind the
journal, never run ahead of it (every record past it is covered by
signed checkpoints in the journal). That a renamed head is never found
empty rests on the file system ordering a rename after the data of the
file renamed, as ext4 does by default (``auto_da_alloc``); an empty head
is refused like any bad head.

What a writer signs over. Before each batch a writer checks, by the rules
of :mod:`secmig.audit.chain`, every line after the last checkpoint it
verified itself (a process that has not written yet starts at the signed
head when its own key signed it, else at the first line), and compares
the head and the delivery cursor with the journal. Then:

- Lines a crashed writer left after the last verified checkpoint (whole
  records that no checkpoint covers, and a last line cut short) were
  never acknowledged to anyone: they are moved to
  ``<journal>.unsigned-<time>-<pid>`` and a ``recovered`` record says so.
- Anything else is tampering, and the writer raises
  :class:`JournalTampered` (``journal_tampered``, with the verifier's
  code and record) rather than sign over it: a line that breaks a rule
  (a checkpoint by an unknown signer, a bad signature, a broken chain, a
  malformed line before the end), a journal shorter than its head or its
  cursor says, a head the journal does not hold, a missing head. It
  keeps refusing until an operator sets the journal aside
  (:meth:`Journal.start_over`, ``secmig audit recover``). The only
  lines a writer ever removes are a crash tail, and it keeps those.
- When the journal has moved on to a newer certificate of the host than
  this process signs with (``secmig pki renew`` and another process
  restarted), the writer loads the host's certificate again; if that is
  still not the journal's key it raises ``stale_host_key``.
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

from secmig.audit import chain as chain_mod
from secmig.audit import lines
from secmig.audit import sidefiles
from secmig.audit import signing
from secmig import exception
from secmig.pki import fileio

LOG = logging.getLogger(__name__)

FSYNC_POLICIES = ('batch', 'record')
HEAD_SUFFIX = sidefiles.HEAD_SUFFIX
CURSOR_SUFFIX = sidefiles.CURSOR_SUFFIX
LOCK_SUFFIX = '.lock'
UNSIGNED_SUFFIX = '.unsigned-'
SET_ASIDE_SUFFIX = '.set-aside-'


def clock():
    """The writer's time: its records' dates, and when it checks keys."""
    return datetime.datetime.now(datetime.timezone.utc)


def utcnow():
    return clock().isoformat()


class JournalTampered(exception.SecmigError):
    """The journal breaks a rule, so the writer will not sign over it.

    ``decision`` is the refusal in the verifier's terms: ``code`` (see
    :mod:`secmig.audit.verify`), ``reason`` and ``details['record']``.
    """

    code = 'journal_tampered'

    def __init__(self, path, decision):
        self.decision = decision
        super().__init__(
            'refusing to append to the audit journal %s: it is not intact '
            '(%s at record %s): %s. No record can be written, so no '
            'migration can proceed on this host, until an operator has '
            'examined it ("secmig audit verify %s") and set it aside '
            '("secmig audit recover")'
            % (path, decision.code, decision.details.get('record'),
               decision.reason, path))


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

    ``signer`` is a :class:`~secmig.audit.signing.HostSigner`; the CA
    bundle beside its certificate (:meth:`~.signing.HostSigner.trust`)
    checks certificates that other processes introduced. ``fsync`` is
    ``batch`` (group commit, one fdatasync per batch of at most
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
        #: How a batch and the head are forced to disk (benchmarks that
        #: only need a journal's content may replace it).
        self.sync = os.fdatasync
        self._window = window if fsync == 'batch' else 0.0
        self._anchor = chain_mod.Anchor(
            trust=signer.trust, pinned={signer.fingerprint},
            host=signer.common_name)
        self._reset()

    def _reset(self):
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._pending = []
        self._leader = False
        self._fd = None
        self._lock_fd = None
        self._forget()

    def _forget(self):
        """Drop what this process verified (a journal it must re-read)."""
        self._file = None  # (st_dev, st_ino) of the journal self._fd is
        self._chain = None  # the state at the last verified checkpoint
        self._end = -1  # the journal's size just after that checkpoint
        self._last = None  # that checkpoint's line

    def append(self, kind, body):
        """Append one line; return its record number once durable."""
        return self.append_many([(kind, body)])[0]

    def append_many(self, items):
        """Append ``(kind, body)`` pairs in order; return their numbers.

        The pairs may be split over several batches (``max_batch``) but
        keep their order. Raises ``SecmigError``: ``bad_audit_event``,
        ``journal_write_failed``, ``journal_tampered``
        (:class:`JournalTampered`) or ``stale_host_key``.
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
                    with self._locked():
                        recovered = self._prepare()
                        self._write_batch(batch, recovered)
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

    @contextlib.contextmanager
    def _locked(self):
        """Hold the journal's lock, with the journal at ``path`` open."""
        if self._lock_fd is None:
            os.makedirs(os.path.dirname(self.path), mode=0o750,
                        exist_ok=True)
            self._lock_fd = os.open(self.path + LOCK_SUFFIX,
                                    os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._open()
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _open(self):
        """Open the file at ``path``; start over if it is another file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self._file:
            return
        if st is None and self._chain is not None and self._chain.seq:
            raise JournalTampered(self.path, chain_mod.Broken(
                'truncated', 'the journal was removed while this process '
                'was writing it (its last record was %d)' % self._chain.seq,
                1).decision)
        if self._fd is not None:
            os.close(self._fd)
        # A new journal, or one set aside by an operator: read it afresh.
        self._forget()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                           0o640)
        opened = os.fstat(self._fd)
        self._file = (opened.st_dev, opened.st_ino)
        if st is None:
            fileio.fsync_dir(os.path.dirname(self.path))

    # Before a batch: verify what others wrote -------------------------

    def _prepare(self):
        """Verify the journal since the last checkpoint this process saw.

        Returns the body of a ``recovered`` record when a crash tail was
        set aside, else None. Raises :class:`JournalTampered`.
        """
        end = os.fstat(self._fd).st_size
        try:
            head = sidefiles.head_bytes(self.path)
            if (self._chain is not None and end == self._end
                    and head == self._last and self._still_there()):
                self._check_cursor(self._chain)
                return None
            return self._catch_up(end, sidefiles.read_head(self.path, head))
        except sidefiles.SideFileError as e:
            raise JournalTampered(self.path, chain_mod.Broken(
                'bad_head', str(e)).decision) from None
        except chain_mod.Broken as broken:
            raise JournalTampered(self.path, broken.decision) from None

    def _still_there(self):
        """True when the last checkpoint this process saw ends the file."""
        if self._last is None:
            return self._end == 0
        size = len(self._last)
        return (self._end >= size and os.pread(self._fd, size,
                                               self._end - size)
                == self._last)

    def _catch_up(self, end, head):
        # A key this writer takes over from must be valid at the date its
        # own key record will carry.
        self._anchor.now = clock()
        if self._chain is None:
            offset, start, start_line = self._start(head, end)
        elif end >= self._end and self._still_there():
            offset, start, start_line = self._end, self._chain, self._last
        else:
            raise chain_mod.Broken(
                'truncated' if end < self._end else 'edited',
                'record %d, the last checkpoint this process verified, is '
                'no longer where it was: the journal was cut or rewritten'
                % self._chain.seq, self._chain.seq)
        walk = _Walk(self._fd, offset, start, start_line, end, head)
        chain = walk.chain
        self._check_head(head, walk, start, offset)
        self._check_cursor(chain)
        chain.finish()
        self._adopt_signer(chain)
        recovered = None
        if walk.end < end:
            recovered = self._set_aside(chain.seq, walk.end, end)
        self._chain, self._end, self._last = chain, walk.end, walk.line
        return recovered

    def _start(self, head, end):
        """Where a process that has not written yet starts verifying."""
        if head is None:
            if end:
                raise chain_mod.Broken(
                    'head_missing', 'the signed head %s%s is missing but the '
                    'journal holds records: it may have been cut short'
                    % (self.path, HEAD_SUFFIX))
            return 0, chain_mod.Chain(self._anchor), None
        try:
            body = head.body()
        except lines.LineError as e:
            raise chain_mod.Broken('bad_head', 'the signed head: %s' % e,
                                   head.seq) from e
        signer = self.signer
        if body.get('signer') == signer.fingerprint and (
                signing.signature_valid(
                    signer.cert, lines.signed_message(head.seq, head.prev,
                                                      body),
                    body.get('sig'))):
            return self._locate(head, end), chain_mod.Chain.resumed(
                self._anchor, head,
                chain_mod.Key(signer.fingerprint, signer.cert)), head.raw
        # Signed by another key (the host's previous one): read it all.
        return 0, chain_mod.Chain(self._anchor), None

    def _locate(self, head, end):
        """The offset just after the head's line, searched from ``end``."""
        last = None
        for offset, raw in _lines_backwards(self._fd, end):
            if raw == head.raw:
                return offset + len(raw)
            try:
                seq = lines.Frame(raw).seq
            except lines.LineError:
                continue
            last = seq if last is None else last
            if seq <= head.seq:
                break
        if last is None or last < head.seq:
            raise chain_mod.Broken(
                'truncated', 'the journal ends at record %d but its signed '
                'head is record %d: records were removed'
                % (last or 0, head.seq), (last or 0) + 1)
        raise chain_mod.Broken(
            'head_mismatch', 'record %d differs from the signed head kept '
            'beside the journal' % head.seq, head.seq)

    def _check_head(self, head, walk, start, offset):
        chain = walk.chain
        if head is None:
            if chain.seq:
                raise chain_mod.Broken(
                    'head_missing', 'the signed head %s%s is missing: a '
                    'truncated journal could not be told from a whole one'
                    % (self.path, HEAD_SUFFIX), chain.seq)
            return
        if head.seq > chain.seq:
            raise chain_mod.Broken(
                'truncated', 'the journal\'s last signed checkpoint is '
                'record %d but its signed head is record %d: records %d to '
                '%d were removed' % (chain.seq, head.seq, chain.seq + 1,
                                     head.seq), chain.seq + 1)
        if head.seq == start.seq:
            line = walk.start_line
        elif head.seq > start.seq:
            line = walk.head_line
        else:
            self._locate(head, offset)
            return
        if line != head.raw:
            raise chain_mod.Broken(
                'head_mismatch', 'record %d differs from the signed head '
                'kept beside the journal' % head.seq, head.seq)

    def _check_cursor(self, chain):
        cursor = self._read_cursor()
        if cursor is not None and cursor.seq > chain.seq:
            raise chain_mod.Broken(
                'truncated', 'record %d was already delivered (the delivery '
                'cursor says so) but the journal\'s last signed checkpoint '
                'is record %d: records were removed'
                % (cursor.seq, chain.seq), chain.seq + 1)

    def _read_cursor(self):
        try:
            return sidefiles.read_cursor(self.path)
        except sidefiles.SideFileError:
            return None  # the deliverer and the verifier report it

    def _adopt_signer(self, chain):
        """Sign with the journal's key when that is this host's newer one."""
        current = chain.signer
        signer = self.signer
        if current is None or current.fingerprint == signer.fingerprint:
            return
        replaced = any(k.fingerprint == signer.fingerprint
                       for k in chain.keys)
        if not replaced and (signer.cert.not_valid_before_utc
                             >= current.cert.not_valid_before_utc):
            return  # this process brings the host's newer key
        problem = ''
        try:
            signer = signer.reloaded()
        except exception.SecmigError as e:
            problem = ' (%s)' % e
        if signer.fingerprint != current.fingerprint:
            raise exception.SecmigError(
                'refusing to append to the audit journal %s: it is signed '
                'with certificate %s (%s), which replaced the certificate '
                'this process signs with (%s), and the host\'s certificate '
                'directory does not hold it%s; restart the process'
                % (self.path, current.fingerprint, current.where(),
                   self.signer.fingerprint, problem), code='stale_host_key')
        LOG.info("audit journal %s: now signing with the host's renewed "
                 "certificate %s", self.path, signer.fingerprint)
        self.signer = signer
        self._anchor.pinned.add(signer.fingerprint)

    def _set_aside(self, after, keep, end):
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
                    after, saved)
        return {'id': str(uuid.uuid4()), 'time': utcnow(),
                'after_record': after, 'dropped_bytes': len(data),
                'dropped_sha256': hashlib.sha256(data).hexdigest(),
                'saved_as': os.path.basename(saved)}

    # The batch --------------------------------------------------------

    def _write_batch(self, batch, recovered):
        chain = self._chain.copy()
        signer = self.signer
        first = chain.seq + 1
        out = []

        def add(kind, body, key=None):
            line, h = lines.encode(chain.seq + 1, chain.h, kind, body)
            out.append(line)
            chain.own(chain.seq + 1, h, kind, key)
            return chain.seq

        if chain.signer is None or (chain.signer.fingerprint
                                    != signer.fingerprint):
            now = clock()
            add('key', {'time': now.isoformat(), 'cert': signer.cert_pem,
                        'fingerprint': signer.fingerprint,
                        'subject': signer.subject},
                chain_mod.Key(signer.fingerprint, signer.cert,
                              chain.seq + 1, now))
        if recovered is not None:
            add('recovered', recovered)
        seqs = [add(entry.kind, entry.body) for entry in batch]
        checkpoint = {'first': first, 'last': chain.seq, 'time': utcnow(),
                      'signer': signer.fingerprint}
        checkpoint['sig'] = signer.sign(
            lines.signed_message(chain.seq + 1, chain.h, checkpoint))
        add('checkpoint', checkpoint)
        data = b''.join(out)
        try:
            _write_all(self._fd, data)
            self.sync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            self._forget()
            raise
        for entry, number in zip(batch, seqs):
            entry.seq = number
        self._chain, self._last = chain, out[-1]
        self._end += len(data)
        self._write_head(out[-1])

    def _write_head(self, line):
        head = self.path + HEAD_SUFFIX
        tmp = '%s.tmp-%d' % (head, os.getpid())
        created = not os.path.exists(head)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            _write_all(fd, line)
            if created:
                self.sync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, head)
        if created:
            fileio.fsync_dir(os.path.dirname(self.path))

    # The operator's recovery ------------------------------------------

    def start_over(self, reason):
        """Set the journal aside and begin a new one; return its record.

        For an operator who has examined a journal the writer refuses
        (``secmig audit recover``). Under the journal's lock the journal,
        its head and its cursor are renamed to
        ``<journal>.set-aside-<UTC time>`` (plus ``.head``, ``.cursor``,
        so that ``secmig audit verify`` still reads them together), and a
        new journal begins with a ``recovered`` record signed with the
        host key: the name, size and SHA-256 of the journal set aside,
        its last delivered record, and ``reason``. Nothing is deleted.
        Returns ``(path set aside, record number)``.
        """
        with self._locked():
            aside = '%s%s%s' % (self.path, SET_ASIDE_SUFFIX,
                                time.strftime('%Y%m%dT%H%M%SZ',
                                              time.gmtime()))
            if os.path.exists(aside):
                aside += '-%d' % os.getpid()
            size, digest = _digest(self._fd)
            cursor = self._read_cursor()
            for suffix in ('', HEAD_SUFFIX, CURSOR_SUFFIX):
                if os.path.exists(self.path + suffix):
                    os.rename(self.path + suffix, aside + suffix)
            fileio.fsync_dir(os.path.dirname(self.path))
            self._forget()
            self._open()  # the new, empty journal
            self._chain, self._end = chain_mod.Chain(self._anchor), 0
            body = {'id': str(uuid.uuid4()), 'time': utcnow(),
                    'after_record': 0, 'dropped_bytes': size,
                    'dropped_sha256': digest,
                    'saved_as': os.path.basename(aside),
                    'delivered_through': cursor.seq if cursor else 0,
                    'reason': reason}
            self._write_batch([], body)
        return aside, self._chain.seq - 1  # the record before its checkpoint

    def close(self):
        for fd in (self._fd, self._lock_fd):
            if fd is not None and os.getpid() == self._pid:
                os.close(fd)
        self._fd = self._lock_fd = None
        self._forget()


class _Walk:
    """Verify the lines from ``offset`` to ``end`` after state ``start``.

    ``chain``, ``end`` and ``line`` are the state, offset and line of the
    last checkpoint verified (``start`` if there is none); what follows
    it is a crash tail. ``head_line`` is the line with the head's number.
    Raises :class:`~secmig.audit.chain.Broken`.
    """

    def __init__(self, fd, offset, start, start_line, end, head):
        self.start_line = start_line
        self.chain, self.end, self.line = start, offset, start_line
        self.head_line = None
        work = start.copy()
        pos = offset
        found = _lines_forward(fd, offset, end)
        for raw in found:
            if not raw.endswith(b'\n'):
                break  # a last line cut short: part of a crash tail
            try:
                frame = lines.Frame(raw)
            except lines.LineError as e:
                raise chain_mod.Broken(
                    'malformed', 'line %d is not a journal record: %s'
                    % (work.seq + 1, e), work.seq + 1) from e
            if frame.seq != work.seq + 1:
                chain_mod.misplaced(frame, work.seq + 1, {
                    seq for seq in map(chain_mod.seq_of, found)
                    if seq is not None})
            work.feed(frame)
            pos += len(raw)
            if head is not None and frame.seq == head.seq:
                self.head_line = raw
            if frame.kind == 'checkpoint':
                self.chain, self.end, self.line = work.copy(), pos, raw


def _digest(fd):
    digest = hashlib.sha256()
    size = 0
    while True:
        block = os.pread(fd, 1 << 20, size)
        if not block:
            return size, digest.hexdigest()
        digest.update(block)
        size += len(block)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _lines_forward(fd, start, end, block=65536):
    """Yield the lines from ``start`` to ``end``, the last maybe unended."""
    pos, rest = start, b''
    while pos < end:
        data = os.pread(fd, min(block, end - pos), pos)
        if not data:
            break
        pos += len(data)
        parts = (rest + data).split(b'\n')
        rest = parts.pop()
        for part in parts:
            yield part + b'\n'
    if rest:
        yield rest


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
