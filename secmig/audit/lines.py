"""The journal's line format: one JSON object per line, hash-chained.

Every line has the same frame, written in this field order::

    {"seq":N,"prev":"<64 hex>","kind":"<kind>","body":{...},"h":"<64 hex>"}

``seq`` numbers the lines from 1 without gaps; ``prev`` is the ``h`` of
line ``seq - 1`` (64 zeros for line 1); ``body`` is canonical JSON (sorted
keys, no spaces, UTF-8). ``h`` is the SHA-256 of the line's bytes up to,
not including, ``,"h":"``. Because the frame is fixed, a verifier checks a
line's hash and chain without parsing its JSON, which keeps verification
of millions of lines fast; only key and checkpoint lines are parsed.

Kinds: ``key`` (the signer's certificate), ``event`` (a CADF audit
event), ``recovered`` (the writer set aside an unsigned tail after a
crash, or an operator set aside a whole journal) and ``checkpoint`` (the
host's signature over the chain head).

Lines come from a file that others may write: :class:`Frame` and
:meth:`Frame.body` raise only :class:`LineError`, whatever the bytes.
"""

import hashlib
import json
import re

GENESIS = '0' * 64
KINDS = ('key', 'event', 'recovered', 'checkpoint')
#: Kinds that are audit records delivered as notifications.
RECORD_KINDS = ('event', 'recovered')

_HASH_TAG = b',"h":"'
_SUFFIX = b'"}\n'
#: ``,"h":"`` + 64 hex digits + ``"}`` + newline.
_TRAILER = len(_HASH_TAG) + 64 + len(_SUFFIX)
_SEQ_TAG = b'{"seq":'
_PREV_TAG = b',"prev":"'
_KIND_TAG = b'","kind":"'
_BODY_TAG = b'","body":'
_SIGNED_PREFIX = b'secmig-audit-checkpoint-v1\n'
#: Record numbers as the writer writes them: no sign, no leading zero.
_MAX_SEQ_DIGITS = 18
_HEX64 = re.compile(rb'[0-9a-f]{64}')
_KIND = re.compile(rb'[a-z_]{1,32}')


class LineError(ValueError):
    """A line does not have the journal's frame; ``args[0]`` says why."""


def canonical(obj):
    """Canonical JSON bytes: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=False, allow_nan=False).encode('utf-8')


def encode(seq, prev, kind, body):
    """Return ``(line, h)`` for a new line; ``body`` is a JSON dict."""
    prefix = b'%s%d%s%s%s%s%s%s' % (
        _SEQ_TAG, seq, _PREV_TAG, prev.encode('ascii'), _KIND_TAG,
        kind.encode('ascii'), _BODY_TAG, canonical(body))
    h = hashlib.sha256(prefix).hexdigest()
    return prefix + _HASH_TAG + h.encode('ascii') + _SUFFIX, h


class Frame:
    """The frame of one line, read without parsing its body."""

    __slots__ = ('seq', 'prev', 'kind', 'h', 'hash_ok', 'raw', '_body_at')

    def __init__(self, raw):
        """Split ``raw`` (one line with its newline) or raise LineError.

        ``raw`` is bytes; nothing but :class:`LineError` is raised.
        """
        if not raw.endswith(b'\n'):
            raise LineError('the line is cut short (no newline)')
        if (len(raw) < _TRAILER + 80 or not raw.endswith(_SUFFIX)
                or raw[-_TRAILER:-_TRAILER + len(_HASH_TAG)] != _HASH_TAG
                or not raw.startswith(_SEQ_TAG)):
            raise LineError('the line is not a journal line')
        prefix = raw[:-_TRAILER]
        comma = prefix.find(b',', len(_SEQ_TAG))
        digits = prefix[len(_SEQ_TAG):comma]
        if (comma < 0 or not digits.isdigit() or digits.startswith(b'0')
                or len(digits) > _MAX_SEQ_DIGITS):
            raise LineError('the line has no record number')
        pos = comma + len(_PREV_TAG)
        kind_end = prefix.find(b'"', pos + 64 + len(_KIND_TAG))
        if (prefix[comma:pos] != _PREV_TAG
                or not _HEX64.fullmatch(prefix, pos, pos + 64)
                or prefix[pos + 64:pos + 64 + len(_KIND_TAG)] != _KIND_TAG
                or kind_end < 0
                or not _KIND.fullmatch(prefix, pos + 64 + len(_KIND_TAG),
                                       kind_end)
                or prefix[kind_end:kind_end + len(_BODY_TAG)] != _BODY_TAG):
            raise LineError('the line has no previous hash or kind')
        self.raw = raw
        self.seq = int(digits)
        self.prev = prefix[pos:pos + 64].decode('ascii')
        self.kind = prefix[pos + 64 + len(_KIND_TAG):kind_end].decode(
            'ascii')
        self.h = raw[-_TRAILER + len(_HASH_TAG):-len(_SUFFIX)].decode(
            'ascii', 'replace')
        self.hash_ok = hashlib.sha256(prefix).hexdigest() == self.h
        self._body_at = kind_end + len(_BODY_TAG)

    def body(self):
        """The parsed body (a dict), or raise LineError.

        The body must be canonical JSON (as :func:`canonical` writes it),
        so that its bytes, which the hash covers, have one reading.
        """
        text = self.raw[self._body_at:-_TRAILER]
        try:
            body = json.loads(text)
            exact = isinstance(body, dict) and canonical(body) == text
        except (ValueError, RecursionError) as e:
            raise LineError('the line\'s body is not valid JSON: %s'
                            % e) from e
        if not isinstance(body, dict):
            raise LineError('the line\'s body is not an object')
        if not exact:
            raise LineError('the line\'s body is not canonical JSON')
        return body


def signed_message(seq, prev, body):
    """The bytes a checkpoint's signature covers (``sig`` left out)."""
    unsigned = {k: v for k, v in body.items() if k != 'sig'}
    return b'%s%d\n%s\n%s' % (_SIGNED_PREFIX, seq, prev.encode('ascii'),
                              canonical(unsigned))
