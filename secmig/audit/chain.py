"""The rules a journal's lines obey, checked one line at a time.

A :class:`Chain` is fed a journal's lines in order: by the verifier from
the first line, by the writer from the last point it verified. At the
first line that breaks a rule it raises :class:`Broken`, whose
``decision`` names the rule (the codes of :mod:`secmig.audit.verify`)
and the record where it shows. The rules:

- Records are numbered from 1 without gaps, each matches its own hash
  and is chained to the one before it.
- A ``key`` record holds a certificate whose fingerprint it names. The
  certificate names the journal's host, was issued no earlier than the
  certificate it replaces, and was never introduced before: an earlier
  key can never take over again (``superseded_signer``).
- A ``checkpoint`` covers the records up to the one before it and is
  signed by the newest key, over the chain head. Every checkpoint's
  signature is checked.
- The :class:`Anchor` decides which certificates to trust.

Time. A key record's date and a checkpoint's date are written by
whoever holds the key, so they prove nothing about when a signature was
made. The dates a verifier can trust are its own clock and the
certificates' dates, which the CA signed. So, against a CA:

- the newest key (the one that signs the journal's last records) must be
  valid at the verifier's time (``Anchor.now``, default the current
  time): had it expired, anyone holding it could have written those
  records since;
- a key that a later key replaced must have been valid at the time the
  replacing key record gives. That date is trustworthy because the
  replacing key is itself checked, by this same rule, at the next
  replacement or at the verifier's time. A replaced key that was revoked
  on or after the date its successor was issued was retired, not
  compromised: its earlier signatures stand.

What this cannot tell: a key that is still valid (neither expired nor
revoked) signs as well today as when it was the host's key, so someone
holding it can cut the journal back to that key's time and append.
Revoke replaced keys (``secmig pki renew --revoke-old``) and keep the
delivered copy; see doc/audit.rst.
"""

import datetime

from secmig.audit import lines
from secmig.audit import signing
from secmig.decision import Decision
from secmig import exception
from secmig.pki import keys
from secmig.pki import verify as pki_verify


class Broken(Exception):
    """A line breaks a rule; ``decision`` is the refusal."""

    def __init__(self, code, reason, record=None, **details):
        self.decision = Decision.refuse(code, reason, record=record,
                                        **details)
        super().__init__(reason)


class Anchor:
    """What the certificates of a journal's key records are checked against.

    :param trust: a :class:`~secmig.pki.verify.TrustStore`, or a callable
        returning one (or None) when first needed. A certificate that is
        not pinned must chain to it, name the journal's host and satisfy
        the time rule.
    :param pinned: fingerprints accepted as they are (no CA, no dates).
        With ``pinned`` but no ``trust``, no other certificate is.
    :param host: the host the journal belongs to; None takes the name
        (CN) of the journal's first certificate, which binds nothing.
    :param now: the verifier's time (an aware datetime); None is the
        current time when it is needed.

    With neither ``trust`` nor ``pinned`` any certificate is accepted: the
    journal is checked against itself only.
    """

    def __init__(self, trust=None, pinned=None, host=None, now=None):
        self._trust = trust
        self.pinned = set(pinned) if pinned is not None else None
        self.host = host
        self.now = now

    @property
    def trust(self):
        if callable(self._trust):
            self._trust = self._trust()
        return self._trust

    @property
    def anchored(self):
        return self._trust is not None or self.pinned is not None

    def is_pinned(self, key):
        return self.pinned is not None and key.fingerprint in self.pinned

    def time(self):
        return self.now or datetime.datetime.now(datetime.timezone.utc)


class Key:
    """A signing certificate the journal introduced (``seq``: its record)."""

    __slots__ = ('fingerprint', 'cert', 'seq', 'time')

    def __init__(self, fingerprint, cert, seq=None, time=None):
        self.fingerprint = fingerprint
        self.cert = cert
        self.seq = seq
        self.time = time

    @property
    def name(self):
        return signing.common_name(self.cert) or self.fingerprint[:16]

    def where(self):
        return 'key record %d' % self.seq if self.seq else 'a key record'


class Chain:
    """The state of a journal after the lines fed so far.

    ``seq`` and ``h`` are the last line's number and hash; ``committed``
    is the number of the last checkpoint; ``unsigned_from`` the first
    record after it (None when there is none); ``keys`` the certificates
    introduced, oldest first, the last one signing.
    """

    def __init__(self, anchor):
        self.anchor = anchor
        self.host = anchor.host
        self.seq = 0
        self.h = lines.GENESIS
        self.committed = 0
        self.unsigned_from = None
        self.events = 0
        self.checkpoints = 0
        self.keys = []

    @classmethod
    def resumed(cls, anchor, checkpoint, key):
        """The state at ``checkpoint`` (a Frame), signed by ``key``.

        For a writer that has verified ``checkpoint``'s signature with its
        own key: the records before it are what that key signed over.
        """
        chain = cls(anchor)
        chain.seq = chain.committed = checkpoint.seq
        chain.h = checkpoint.h
        chain.keys = [key]
        return chain

    def copy(self):
        twin = Chain.__new__(Chain)
        twin.__dict__.update(self.__dict__)
        twin.keys = list(self.keys)
        return twin

    @property
    def signer(self):
        """The newest key (the one that must sign), or None."""
        return self.keys[-1] if self.keys else None

    def feed(self, frame):
        """Check ``frame`` (the next line) and take it into the state.

        Raises :class:`Broken`. A caller that can read the lines after
        ``frame`` calls :func:`misplaced` first when the number is not
        the next one, to name the tampering precisely.
        """
        expected = self.seq + 1
        if frame.seq != expected:
            misplaced(frame, expected, ())
        if not frame.hash_ok:
            raise Broken('edited', 'record %d was changed after it was '
                         'written: its content does not match its hash'
                         % expected, expected)
        if frame.prev != self.h:
            raise Broken('broken_chain', 'record %d is not chained to '
                         'record %d: record %d was replaced, or records '
                         'between them were removed'
                         % (expected, self.seq, self.seq), expected)
        key = None
        if frame.kind == 'checkpoint':
            self._checkpoint(frame)
        elif frame.kind == 'key':
            key = self._key(frame)
        elif frame.kind not in lines.RECORD_KINDS:
            raise Broken('malformed', 'record %d has the unknown kind %r'
                         % (frame.seq, frame.kind), frame.seq)
        self.own(frame.seq, frame.h, frame.kind, key)

    def own(self, seq, h, kind, key=None):
        """Take in a line the caller itself wrote and signed (unchecked).

        ``key`` is the :class:`Key` a ``key`` line introduces.
        """
        if kind == 'checkpoint':
            self.committed = seq
            self.unsigned_from = None
            self.checkpoints += 1
        elif kind == 'key':
            self.keys.append(key)
        else:
            self.events += 1
            if self.unsigned_from is None:
                self.unsigned_from = seq
        self.seq = seq
        self.h = h

    def finish(self):
        """Check the newest key at the verifier's time; raise Broken."""
        if self.signer is not None:
            self._trusted(self.signer, self.anchor.time(), None)

    # Key records -------------------------------------------------------

    def _key(self, frame):
        body = _body(frame)
        key = Key(*_certificate(frame.seq, body), seq=frame.seq,
                  time=_time(frame.seq, body.get('time')))
        previous = self.signer
        known = [k for k in self.keys if k.fingerprint == key.fingerprint]
        if known:
            raise Broken('superseded_signer', 'key record %d introduces '
                         'again the certificate %s (%s): an earlier key '
                         'cannot take over from the key that replaced it'
                         % (frame.seq, key.fingerprint, known[0].where()),
                         frame.seq)
        if self.host is None:
            self.host = key.name  # the journal's first certificate
        else:
            self._bind_host(key)
        if previous is not None and (key.cert.not_valid_before_utc
                                     < previous.cert.not_valid_before_utc):
            raise Broken('superseded_signer', 'key record %d introduces a '
                         'certificate issued on %s, before the one it '
                         'replaces (issued on %s, %s): an earlier key '
                         'cannot take over again'
                         % (frame.seq, _date(key.cert.not_valid_before_utc),
                            _date(previous.cert.not_valid_before_utc),
                            previous.where()), frame.seq)
        self._admit(key)
        if previous is not None:
            if key.time is None:
                raise Broken('malformed', 'key record %d has no valid time'
                             % frame.seq, frame.seq)
            self._trusted(previous, key.time, key)
        return key

    def _bind_host(self, key):
        try:
            if pki_verify.names_host(key.cert, self.host):
                return
        except ValueError as e:
            raise Broken('malformed', 'key record %d: %s' % (key.seq, e),
                         key.seq) from e
        raise Broken('wrong_host', 'key record %d holds the certificate of '
                     '%s, but the journal belongs to %s: another host\'s '
                     'key cannot sign it' % (key.seq, key.name, self.host),
                     key.seq, host=self.host, signer_host=key.name)

    def _admit(self, key):
        anchor = self.anchor
        if anchor.is_pinned(key) or not anchor.anchored:
            return
        if anchor.trust is None:
            raise Broken('untrusted_signer', 'key record %d: the certificate '
                         '%s is not the expected one, and there is no CA '
                         'to check it against' % (key.seq, key.fingerprint),
                         key.seq, cause='not_pinned')

    def _trusted(self, key, when, successor):
        """Raise unless ``key`` was valid at ``when`` (CA anchors only)."""
        anchor = self.anchor
        if anchor.is_pinned(key) or anchor.trust is None:
            return
        verdict = _verify(key.cert, anchor.trust, self.host, when)
        if (not verdict and verdict.code == 'revoked'
                and successor is not None):
            revoked = _revoked_on(key.cert, anchor.trust)
            if (revoked is not None and revoked
                    >= successor.cert.not_valid_before_utc):
                verdict = _verify(key.cert, pki_verify.TrustStore(
                    anchor.trust.ca_certs), self.host, when)
        if verdict:
            return
        if successor is None:
            reason = ('%s: the certificate of %s that signs the journal\'s '
                      'newest records is not valid on %s (%s): they could '
                      'have been written since by anyone holding its key'
                      % (key.where(), key.name, _date(when), verdict.reason))
        else:
            reason = ('%s: the certificate of %s was not valid on %s, when '
                      'key record %d replaced it (%s): records it signed '
                      'could have been written after it ceased to be valid'
                      % (key.where(), key.name, _date(when), successor.seq,
                         verdict.reason))
        raise Broken('untrusted_signer', reason, key.seq,
                     cause=verdict.code, at=when.isoformat())

    # Checkpoints -------------------------------------------------------

    def _checkpoint(self, frame):
        body = _body(frame)
        first = body.get('first')
        if (not isinstance(first, int) or isinstance(first, bool)
                or not 0 < first < frame.seq):
            first = frame.seq
        signer = body.get('signer')
        current = self.signer
        if current is None or signer != current.fingerprint:
            older = [k for k in self.keys if k.fingerprint == signer]
            if older:
                raise Broken('superseded_signer', 'checkpoint %d is signed '
                             'by %s, which %s introduced and key record %d '
                             'replaced' % (frame.seq, signer,
                                           older[0].where(), current.seq),
                             first, checkpoint=frame.seq)
            raise Broken('unknown_signer', 'checkpoint %d is signed by %r, '
                         'which is not the journal\'s key%s: records %d to %d '
                         'are not authenticated'
                         % (frame.seq, signer,
                            ' (%s)' % current.fingerprint if current else '',
                            first, frame.seq - 1), first,
                         checkpoint=frame.seq)
        if body.get('last') != frame.seq - 1 or not signing.signature_valid(
                current.cert, lines.signed_message(frame.seq, frame.prev,
                                                   body), body.get('sig')):
            raise Broken('bad_signature', 'checkpoint %d does not carry a '
                         'valid signature of the journal\'s key over '
                         'records %d to %d: they, or records before them, '
                         'were altered and re-chained without the key'
                         % (frame.seq, first, frame.seq - 1), first,
                         checkpoint=frame.seq)


def misplaced(frame, expected, later):
    """Raise what put record ``frame.seq`` where ``expected`` belongs.

    ``later`` holds the record numbers of the lines after ``frame``.
    """
    if frame.seq < expected:
        raise Broken('inserted', 'record number %d appears a second time, '
                     'at line %d: a record was inserted or duplicated'
                     % (frame.seq, expected), frame.seq, line=expected)
    if expected in later and frame.seq not in later:
        raise Broken('reordered', 'record %d appears after record %d: '
                     'records were reordered' % (expected, frame.seq),
                     expected, line=expected)
    if frame.seq in later:
        raise Broken('inserted', 'line %d carries record number %d, which '
                     'appears again later: a record was inserted'
                     % (expected, frame.seq), expected, line=expected)
    raise Broken('deleted', 'records %d to %d are missing: the journal '
                 'jumps from record %d to record %d'
                 % (expected, frame.seq - 1, expected - 1, frame.seq),
                 expected)


def seq_of(raw):
    """The record number of line ``raw``, or None when it has none."""
    try:
        return lines.Frame(raw).seq
    except lines.LineError:
        return None


def _body(frame):
    try:
        return frame.body()
    except lines.LineError as e:
        raise Broken('malformed', 'record %d: %s' % (frame.seq, e),
                     frame.seq) from e


def _certificate(seq, body):
    pem = body.get('cert')
    if not isinstance(pem, str):
        raise Broken('malformed', 'key record %d holds no certificate'
                     % seq, seq)
    try:
        cert = keys.load_certificate(pem.encode('utf-8', 'replace'),
                                     'key record %d' % seq)
        fingerprint = keys.fingerprint(cert)
    except (exception.SecmigError, ValueError) as e:
        raise Broken('malformed', str(e), seq) from e
    if body.get('fingerprint') != fingerprint:
        raise Broken('malformed', 'key record %d names fingerprint %s but '
                     'holds a certificate with fingerprint %s'
                     % (seq, body.get('fingerprint'), fingerprint), seq)
    return fingerprint, cert


def _time(seq, text):
    """An aware datetime from a record's ISO 8601 ``text``, or None."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _verify(cert, trust, host, when):
    try:
        return pki_verify.verify_certificate(
            cert, trust, host=host, purpose='both', now=when, margin=0,
            require_crl=False)
    except (ValueError, TypeError, OverflowError) as e:
        return Decision.refuse('path_invalid', 'the certificate cannot be '
                               'checked on %s: %s' % (when, e))


def _revoked_on(cert, trust):
    for crl in trust.crls:
        if crl.issuer != cert.issuer:
            continue
        entry = crl.get_revoked_certificate_by_serial_number(
            cert.serial_number)
        if entry is not None:
            return entry.revocation_date_utc
    return None


def _date(when):
    return when.isoformat(timespec='seconds')
