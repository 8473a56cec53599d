"""The files kept beside a journal: its signed head and delivery cursor.

``<journal>.head`` holds a copy of the last checkpoint line the writer
committed; ``<journal>.cursor`` is JSON naming the last record delivered
(``{"seq": N, "offset": BYTES, "id": "<record id>"}``). Both may have
been written by someone else: the readers here take any bytes and raise
only :class:`SideFileError` (the content is not what the writer writes)
or ``OSError`` (the file cannot be read). A missing file reads as None.
"""

import dataclasses
import json
import os

from secmig.audit import lines

HEAD_SUFFIX = '.head'
CURSOR_SUFFIX = '.cursor'
#: Larger than any head or cursor the writers write.
MAX_SIZE = 65536


class SideFileError(ValueError):
    """A head or cursor file is not what the writer writes (``args[0]``)."""


@dataclasses.dataclass(frozen=True)
class Cursor:
    """The last record delivered: its number, end offset and record id."""

    seq: int
    offset: int
    id: str


def head_bytes(path):
    """The bytes of the head of the journal at ``path``, or None.

    :raises SideFileError: larger than any head
    :raises OSError: the file cannot be read
    """
    return _read(path + HEAD_SUFFIX)


def read_head(path, data=None):
    """The checkpoint (a :class:`~secmig.audit.lines.Frame`) in the head.

    ``data``: the head's bytes, already read with :func:`head_bytes`.

    :raises SideFileError: not an intact checkpoint line
    :raises OSError: the file cannot be read
    """
    if data is None:
        data = head_bytes(path)
    if data is None:
        return None
    try:
        frame = lines.Frame(data)
    except lines.LineError as e:
        raise SideFileError('the signed head is not a journal record: %s'
                            % e) from e
    if frame.kind != 'checkpoint' or not frame.hash_ok:
        raise SideFileError('the signed head is not an intact checkpoint')
    return frame


def read_cursor(path):
    """The delivery cursor of the journal at ``path`` (a :class:`Cursor`).

    :raises SideFileError: not a cursor the deliverer writes
    :raises OSError: the file cannot be read
    """
    data = _read(path + CURSOR_SUFFIX)
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise SideFileError('the delivery cursor is not JSON: %s' % e) from e
    if not isinstance(obj, dict):
        raise SideFileError('the delivery cursor is not a JSON object')
    seq, offset, record_id = obj.get('seq'), obj.get('offset'), obj.get('id')
    if not (_count(seq) and _count(offset) and isinstance(record_id, str)):
        raise SideFileError('the delivery cursor does not hold a record '
                            'number, an offset and a record id')
    return Cursor(seq, offset, record_id)


def write_cursor(path, cursor):
    """Replace the cursor (by rename; not fsynced: a lost cursor resends)."""
    target = path + CURSOR_SUFFIX
    tmp = '%s.tmp-%d' % (target, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(dataclasses.asdict(cursor), f)
    os.replace(tmp, target)


def _count(value):
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value < 2 ** 63)


def _read(path):
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_SIZE:
        raise SideFileError('%s is larger than %d bytes' % (path, MAX_SIZE))
    return data
