"""The journal verifier: intact, or the first record that is not.

:func:`verify_journal` reads a journal once, front to back, and returns a
:class:`~secmig.decision.Decision`. When it refuses, ``code`` names what
happened and ``details['record']`` the record number where it shows:

====================  ===================================================
``malformed``         a line is not a journal line at all
``truncated``         the journal ends inside a line, or before the record
                      its signed head (or its delivery cursor) names
``deleted``           record numbers jump: records were removed
``reordered``         a record appears later than its number says
``inserted``          a record number appears twice: a line was added
``edited``            a record's content does not match its own hash
``broken_chain``      a record is not chained to the one before it
``unsigned_tail``     records after the last signed checkpoint
``bad_signature``     a checkpoint's signature does not verify: the
                      records it covers were re-chained without the key
``untrusted_signer``  the signing certificate fails the trust anchor
``unknown_signer``    a checkpoint names a key no ``key`` record holds
``head_missing``      the signed head file is gone
``bad_head``          the signed head file is not a valid checkpoint
``head_mismatch``     the journal's record differs from the signed head
====================  ===================================================

Cost: one SHA-256 per line and one signature check for the whole
journal. The last checkpoint's signature covers the chain head, and the
chain covers every line before it (checkpoints included), so one valid
signature authenticates everything. The other checkpoints' signatures
are checked only to locate a failure, or all of them on request
(``all_signatures``).
"""

import array
import datetime
import json

from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import signing
from secmig.decision import Decision
from secmig import exception
from secmig.pki import keys
from secmig.pki import verify as pki_verify


class _Refusal(Exception):
    def __init__(self, decision):
        super().__init__(decision.reason)
        self.decision = decision


def _refuse(code, reason, record=None, **details):
    raise _Refusal(Decision.refuse(code, reason, record=record, **details))


class _Scan:
    """What one pass over the journal learned."""

    def __init__(self, path, trust, pinned, all_signatures):
        self.path = path
        self.trust = trust
        self.pinned = pinned
        self.all_signatures = all_signatures
        self.signers = {}  # fingerprint -> certificate
        self.subject = None
        self.checkpoints = array.array('q')  # offsets of checkpoint lines
        self.last_checkpoint = None
        self.last_seq = 0
        self.events = 0
        self.unsigned_from = None
        self.head = None
        self.head_line = None  # the journal's line at the head's number

    def key(self, frame):
        body = _body(frame)
        try:
            cert = keys.load_certificate(body.get('cert', '').encode(),
                                         'key record %d' % frame.seq)
        except exception.PKIError as e:
            _refuse('malformed', str(e), frame.seq)
        fingerprint = keys.fingerprint(cert)
        if body.get('fingerprint') != fingerprint:
            _refuse('malformed', 'key record %d names fingerprint %s but '
                    'holds a certificate with fingerprint %s'
                    % (frame.seq, body.get('fingerprint'), fingerprint),
                    frame.seq)
        subject = cert.subject.rfc4514_string()
        if self.subject is not None and subject != self.subject:
            _refuse('untrusted_signer', 'key record %d introduces a '
                    'certificate for %s in the journal of %s'
                    % (frame.seq, subject, self.subject), frame.seq)
        self._anchor(cert, frame.seq, body.get('time'))
        self.subject = subject
        self.signers[fingerprint] = cert

    def _anchor(self, cert, seq, when):
        if self.pinned is not None:
            if keys.fingerprint(cert) not in self.pinned:
                _refuse('untrusted_signer', 'record %d: the journal is '
                        'signed by %s, which is not the expected '
                        'certificate' % (seq, keys.fingerprint(cert)), seq)
            return
        if self.trust is None:
            return
        now = _parse_time(when)
        verdict = pki_verify.verify_certificate(
            cert, self.trust, purpose='both', now=now, margin=0,
            require_crl=False)
        if not verdict:
            _refuse('untrusted_signer', 'record %d: the signing certificate '
                    'is not trusted: %s' % (seq, verdict.reason), seq,
                    cause=verdict.code)

    def checkpoint(self, frame, offset):
        if not self.signers:
            _refuse('unknown_signer', 'checkpoint %d comes before any key '
                    'record' % frame.seq, frame.seq)
        self.checkpoints.append(offset)
        self.last_checkpoint = frame
        self.unsigned_from = None
        if self.all_signatures:
            problem = self.signature_problem(frame)
            if problem:
                self.refuse_signature(frame, problem)

    def signature_problem(self, frame):
        """None if ``frame`` is a well-signed checkpoint, else why not."""
        body = _body(frame)
        cert = self.signers.get(body.get('signer'))
        if cert is None:
            return 'unknown_signer'
        if body.get('last') != frame.seq - 1:
            return 'bad_signature'
        message = lines.signed_message(frame.seq, frame.prev, body)
        if not signing.signature_valid(cert, message, body.get('sig', '')):
            return 'bad_signature'
        return None

    def refuse_signature(self, frame, code):
        body = _body(frame)
        first = body.get('first') if isinstance(body.get('first'),
                                                int) else frame.seq
        if code == 'unknown_signer':
            _refuse(code, 'checkpoint %d is signed by %s, which no key '
                    'record of the journal holds'
                    % (frame.seq, body.get('signer')), first,
                    checkpoint=frame.seq)
        _refuse(code, 'checkpoint %d does not carry a valid host signature '
                'over records %d to %d: they, or records before them, were '
                'altered and re-chained without the host key'
                % (frame.seq, first, frame.seq - 1), first,
                checkpoint=frame.seq)


def verify_journal(path, trust=None, pinned=None, all_signatures=False):
    """Verify the journal at ``path``; return a Decision.

    ``trust`` (a :class:`~secmig.pki.verify.TrustStore`) checks every
    signing certificate the journal carries, as of the time it was
    introduced; ``pinned`` (fingerprints) accepts exactly those
    certificates instead. With neither, the journal is checked against
    itself only (``details['anchored']`` is false): whoever rewrites the
    whole journal with a key of their own goes unnoticed. Raises
    ``SecmigError`` when the journal cannot be read.
    """
    scan = _Scan(path, trust, pinned, all_signatures)
    try:
        scan.head = _read_head(path)
        with open(path, 'rb') as f:
            _read_all(scan, f)
            _check_end(scan, f)
    except OSError as e:
        raise exception.SecmigError('cannot read the audit journal %s: %s'
                                    % (path, e.strerror or e),
                                    code='unreadable_file') from e
    except _Refusal as refusal:
        return refusal.decision
    return Decision.allow(
        'the journal is intact: %d records, %d audit events, signed by %s'
        % (scan.last_seq, scan.events, scan.subject or 'nobody'),
        code='intact', records=scan.last_seq, events=scan.events,
        checkpoints=len(scan.checkpoints), signer=scan.subject,
        anchored=trust is not None or pinned is not None,
        head=scan.head.seq if scan.head else 0)


def _read_all(scan, f):
    expected, prev, offset = 1, lines.GENESIS, 0
    for raw in f:
        try:
            frame = lines.Frame(raw)
        except lines.LineError as e:
            if not raw.endswith(b'\n'):
                _refuse('truncated', 'record %d is cut short: the journal '
                        'ends in the middle of a line' % expected, expected)
            _refuse('malformed', 'line %d is not a journal record: %s'
                    % (expected, e), expected)
        if frame.seq != expected:
            _misplaced(f, frame, expected)
        if not frame.hash_ok:
            _refuse('edited', 'record %d was changed after it was written: '
                    'its content does not match its hash' % expected,
                    expected)
        if frame.prev != prev:
            _refuse('broken_chain', 'record %d is not chained to record %d: '
                    'record %d was replaced, or records between them were '
                    'removed' % (expected, expected - 1, expected - 1),
                    expected)
        _classify(scan, frame, offset)
        if scan.head is not None and frame.seq == scan.head.seq:
            scan.head_line = raw
        prev = frame.h
        offset += len(raw)
        expected += 1
    scan.last_seq = expected - 1


def _classify(scan, frame, offset):
    if frame.kind == 'checkpoint':
        scan.checkpoint(frame, offset)
    elif frame.kind == 'key':
        scan.key(frame)
    elif frame.kind in lines.RECORD_KINDS:
        scan.events += 1
        if scan.unsigned_from is None:
            scan.unsigned_from = frame.seq
    else:
        _refuse('malformed', 'record %d has the unknown kind %r'
                % (frame.seq, frame.kind), frame.seq)


def _misplaced(f, frame, expected):
    """Name what put record ``frame.seq`` where ``expected`` belongs."""
    if frame.seq < expected:
        _refuse('inserted', 'record number %d appears a second time, at '
                'line %d: a record was inserted or duplicated'
                % (frame.seq, expected), frame.seq, line=expected)
    later = set()
    for raw in f:
        with_number = _seq_of(raw)
        if with_number is not None:
            later.add(with_number)
    if expected in later and frame.seq not in later:
        _refuse('reordered', 'record %d appears after record %d: records '
                'were reordered' % (expected, frame.seq), expected,
                line=expected)
    if frame.seq in later:
        _refuse('inserted', 'line %d carries record number %d, which '
                'appears again later: a record was inserted'
                % (expected, frame.seq), expected, line=expected)
    _refuse('deleted', 'records %d to %d are missing: the journal jumps '
            'from record %d to record %d'
            % (expected, frame.seq - 1, expected - 1, frame.seq),
            expected)


def _seq_of(raw):
    try:
        return lines.Frame(raw).seq
    except lines.LineError:
        return None


def _check_end(scan, f):
    head = scan.head
    if head is not None:
        _check_head(scan, head)
        if head.seq > scan.last_seq:
            _refuse('truncated', 'the journal ends at record %d but its '
                    'signed head is record %d: records %d to %d were removed'
                    % (scan.last_seq, head.seq, scan.last_seq + 1, head.seq),
                    scan.last_seq + 1)
    cursor = _read_cursor(scan.path)
    if cursor > scan.last_seq:
        _refuse('truncated', 'the journal ends at record %d but record %d '
                'was already delivered: records %d to %d were removed'
                % (scan.last_seq, cursor, scan.last_seq + 1, cursor),
                scan.last_seq + 1)
    if scan.unsigned_from is not None:
        _refuse('unsigned_tail', 'records %d to %d are not covered by a '
                'signed checkpoint' % (scan.unsigned_from, scan.last_seq),
                scan.unsigned_from)
    if scan.last_checkpoint is None:
        if head is not None:
            _refuse('truncated', 'the journal is empty but its signed head '
                    'is record %d' % head.seq, 1)
        return
    if head is None:
        _refuse('head_missing', 'the signed head %s%s is missing: a '
                'truncated journal could not be told from a whole one'
                % (scan.path, journal.HEAD_SUFFIX), scan.last_seq)
    last = scan.last_checkpoint
    problem = scan.signature_problem(last)
    if problem:
        _locate_bad_checkpoint(scan, f)
        scan.refuse_signature(last, problem)
    if scan.head_line != head.raw:
        _refuse('head_mismatch', 'record %d differs from the signed head '
                'kept beside the journal' % head.seq, head.seq)


def _check_head(scan, head):
    if not head.hash_ok or head.kind != 'checkpoint':
        _refuse('bad_head', 'the signed head is not an intact checkpoint',
                head.seq)
    if scan.signers and scan.signature_problem(head):
        _refuse('bad_head', 'the signed head (record %d) does not carry a '
                'valid signature of the journal\'s key' % head.seq, head.seq)


def _locate_bad_checkpoint(scan, f):
    for offset in scan.checkpoints:
        f.seek(offset)
        frame = lines.Frame(f.readline())
        problem = scan.signature_problem(frame)
        if problem:
            scan.refuse_signature(frame, problem)


def _body(frame):
    try:
        return frame.body()
    except lines.LineError as e:
        _refuse('malformed', 'record %d: %s' % (frame.seq, e), frame.seq)


def _read_head(path):
    try:
        with open(path + journal.HEAD_SUFFIX, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        return lines.Frame(raw)
    except lines.LineError as e:
        _refuse('bad_head', 'the signed head is not a journal record: %s'
                % e)


def _read_cursor(path):
    try:
        with open(path + journal.CURSOR_SUFFIX, 'rb') as f:
            return int(json.load(f).get('seq', 0))
    except FileNotFoundError:
        return 0
    except (ValueError, TypeError, AttributeError):
        _refuse('malformed', 'the delivery cursor %s%s is unreadable'
                % (path, journal.CURSOR_SUFFIX))


def _parse_time(text):
    try:
        return datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
