"""The journal verifier: intact, or the first record that is not.

:func:`verify_journal` reads a journal once, front to back, applying the
rules of :mod:`secmig.audit.chain`, and returns a
:class:`~secmig.decision.Decision`. When it refuses, ``code`` names what
happened and ``details['record']`` the record number where it shows:

=====================  ==================================================
``malformed``          a line is not a journal line at all
``truncated``          the journal ends inside a line, or before the
                       record its signed head (or its delivery cursor)
                       names
``deleted``            record numbers jump: records were removed
``reordered``          a record appears later than its number says
``inserted``           a record number appears twice: a line was added
``edited``             a record's content does not match its own hash
``broken_chain``       a record is not chained to the one before it
``unsigned_tail``      records after the last signed checkpoint
``bad_signature``      a checkpoint's signature does not verify: the
                       records it covers were re-chained without the key
``unknown_signer``     a checkpoint names a key that is not the journal's
``superseded_signer``  a replaced key signs again, or an earlier
                       certificate takes over from a later one
``wrong_host``         a key record holds another host's certificate
``untrusted_signer``   a signing certificate fails the trust anchor, or
                       was not valid at the time the rule of
                       :mod:`~secmig.audit.chain` checks it at
                       (``details['cause']`` gives the certificate check)
``head_missing``       the signed head file is gone
``bad_head``           the signed head file is not a valid checkpoint of
                       the journal's key
``head_mismatch``      the journal's record differs from the signed head
``bad_cursor``         the delivery cursor is unreadable, or names a
                       record the journal does not hold
=====================  ==================================================

Cost: one SHA-256 per line, one signature check per checkpoint and one
certificate check per key record.
"""

from secmig.audit import chain as chain_mod
from secmig.audit import lines
from secmig.audit import sidefiles
from secmig.audit import signing
from secmig.decision import Decision
from secmig import exception


def verify_journal(path, trust=None, pinned=None, host=None, now=None):
    """Verify the journal at ``path``; return a Decision.

    ``trust`` (a :class:`~secmig.pki.verify.TrustStore`) checks every
    signing certificate the journal carries by the rules of
    :mod:`~secmig.audit.chain`; ``pinned`` (fingerprints) accepts exactly
    those certificates instead. ``host`` is the host the journal belongs
    to: every certificate must name it. Without ``host`` the journal's
    first certificate names it (``details['bound']`` is false), which
    lets another host's journal pass as this one's. With neither
    ``trust`` nor ``pinned`` the journal is checked against itself only
    (``details['anchored']`` is false): whoever rewrites the whole
    journal with a key of their own goes unnoticed. ``now`` (an aware
    datetime) is the time the newest signing certificate must be valid
    at, by default the current time.

    Raises ``SecmigError`` (``unreadable_file``) only when the journal or
    a file beside it cannot be read; any content yields a Decision.
    """
    anchor = chain_mod.Anchor(trust=trust, pinned=pinned, host=host,
                              now=now)
    scan = _Scan(chain_mod.Chain(anchor))
    try:
        scan.head = _side_file(sidefiles.read_head, path, 'bad_head')
        scan.cursor = _side_file(sidefiles.read_cursor, path, 'bad_cursor')
        with open(path, 'rb') as f:
            _read_all(scan, f)
        _check_end(scan, path)
        scan.chain.finish()
    except OSError as e:
        raise exception.SecmigError('cannot read the audit journal %s: %s'
                                    % (path, e.strerror or e),
                                    code='unreadable_file') from e
    except chain_mod.Broken as broken:
        return broken.decision
    chain = scan.chain
    subject = (chain.signer.cert.subject.rfc4514_string()
               if chain.signer else None)
    return Decision.allow(
        'the journal is intact: %d records, %d audit events, signed by %s '
        '(host %s)' % (chain.seq, chain.events, subject or 'nobody',
                       chain.host or 'unknown'),
        code='intact', records=chain.seq, events=chain.events,
        checkpoints=chain.checkpoints, signer=subject, host=chain.host,
        bound=host is not None, anchored=anchor.anchored,
        head=scan.head.seq if scan.head else 0)


class _Scan:
    """What one pass over the journal learned."""

    def __init__(self, chain):
        self.chain = chain
        self.head = None
        self.cursor = None
        self.head_line = None  # the journal's line at the head's number
        self.cursor_frame = None  # the journal's record at the cursor


def _side_file(read, path, code):
    try:
        return read(path)
    except sidefiles.SideFileError as e:
        raise chain_mod.Broken(code, str(e)) from e


def _read_all(scan, f):
    chain, head, cursor = scan.chain, scan.head, scan.cursor
    for raw in f:
        expected = chain.seq + 1
        try:
            frame = lines.Frame(raw)
        except lines.LineError as e:
            if not raw.endswith(b'\n'):
                raise chain_mod.Broken(
                    'truncated', 'record %d is cut short: the journal ends '
                    'in the middle of a line' % expected, expected) from e
            raise chain_mod.Broken('malformed', 'line %d is not a journal '
                                   'record: %s' % (expected, e),
                                   expected) from e
        if frame.seq != expected:
            _misplaced(f, frame, expected)
        chain.feed(frame)
        if head is not None and frame.seq == head.seq:
            scan.head_line = raw
        if cursor is not None and frame.seq == cursor.seq:
            scan.cursor_frame = frame


def _misplaced(f, frame, expected):
    later = () if frame.seq < expected else {
        seq for seq in map(chain_mod.seq_of, f) if seq is not None}
    chain_mod.misplaced(frame, expected, later)


def _check_end(scan, path):
    chain, head, cursor = scan.chain, scan.head, scan.cursor
    last = chain.seq
    if head is not None and head.seq > last:
        if _forged(chain, head):
            raise chain_mod.Broken(
                'bad_head', 'the signed head (record %d) does not carry a '
                'valid signature of the journal\'s key' % head.seq,
                head.seq)
        raise chain_mod.Broken(
            'truncated', 'the journal ends at record %d but its signed head '
            'is record %d: records %d to %d were removed'
            % (last, head.seq, last + 1, head.seq), last + 1)
    if cursor is not None and cursor.seq > last:
        raise chain_mod.Broken(
            'truncated', 'the journal ends at record %d but record %d was '
            'already delivered (its delivery cursor says so): records %d to '
            '%d were removed, or the cursor was altered'
            % (last, cursor.seq, last + 1, cursor.seq), last + 1)
    if cursor is not None and cursor.seq and not _delivered(scan):
        raise chain_mod.Broken(
            'bad_cursor', 'the delivery cursor names record %d with id %r, '
            'which is not that record of this journal: the cursor belongs '
            'to another journal or was altered' % (cursor.seq, cursor.id),
            cursor.seq)
    if chain.unsigned_from is not None:
        raise chain_mod.Broken(
            'unsigned_tail', 'records %d to %d are not covered by a signed '
            'checkpoint' % (chain.unsigned_from, last), chain.unsigned_from)
    if not chain.committed:
        return  # an empty journal, and no head that says otherwise
    if head is None:
        raise chain_mod.Broken(
            'head_missing', 'the signed head %s%s is missing: a truncated '
            'journal could not be told from a whole one'
            % (path, sidefiles.HEAD_SUFFIX), last)
    if scan.head_line != head.raw:
        raise chain_mod.Broken(
            'head_mismatch', 'record %d differs from the signed head kept '
            'beside the journal' % head.seq, head.seq)


def _forged(chain, head):
    """True when ``head`` names a key of the journal that did not sign it."""
    try:
        body = head.body()
    except lines.LineError:
        return True
    keys = [k for k in chain.keys if k.fingerprint == body.get('signer')]
    return bool(keys) and not signing.signature_valid(
        keys[0].cert, lines.signed_message(head.seq, head.prev, body),
        body.get('sig'))


def _delivered(scan):
    frame = scan.cursor_frame
    if frame is None or frame.kind not in lines.RECORD_KINDS:
        return False
    try:
        return frame.body().get('id') == scan.cursor.id
    except lines.LineError:
        return False
