"""File helpers for keys and certificates: atomic, durable, never silent.

Every failure becomes a :class:`~secmig.exception.PKIError` naming the
file, so that the command line can print one actionable line.
"""

import contextlib
import fcntl
import json
import os
import tempfile

from secmig import exception


def read_bytes(path, what):
    """Return the content of ``path``; ``what`` names it in errors."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise exception.PKIError(
            'cannot read %s %s: %s' % (what, path, e.strerror),
            code='unreadable_file') from e


def write_atomic(path, data, mode=0o644, overwrite=False, uid=-1,
                 gid=-1):
    """Write ``data`` to ``path`` so that readers see all or nothing.

    The file is written beside its destination with ``mode``, ``uid``
    and ``gid`` (-1: unchanged) from the start (a key is never readable
    by the wrong user, not even briefly), flushed to disk, then renamed
    into place. An existing file is kept unless ``overwrite`` is true.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not overwrite and os.path.lexists(path):
        raise exception.PKIError(
            '%s already exists; refusing to overwrite it (use --force to '
            'replace it)' % path, code='file_exists')
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
    try:
        os.fchmod(fd, mode)
        if uid != -1 or gid != -1:
            _fchown(fd, path, uid, gid)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the destination appeared meanwhile.
            os.link(tmp, path)
            os.unlink(tmp)
    except FileExistsError as e:
        os.unlink(tmp)
        raise exception.PKIError(
            '%s already exists; refusing to overwrite it' % path,
            code='file_exists') from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def json_bytes(mapping):
    """``mapping`` as JSON with sorted keys and no indentation.

    No ``indent``: it makes the json module use its pure-Python encoder,
    several times slower, and a CA's stores are rewritten whole on each
    enrollment.
    """
    return json.dumps(mapping, sort_keys=True).encode()


def _fchown(fd, path, uid, gid):
    try:
        os.fchown(fd, uid, gid)
    except OSError as e:
        raise exception.PKIError(
            'cannot give %s to user %d, group %d: %s (run as root)'
            % (path, uid, gid, e.strerror), code='chown_failed') from e


def fsync_dir(directory):
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(directory):
    """Hold an exclusive lock on ``directory`` (a ``.lock`` file in it)."""
    fd = os.open(os.path.join(directory, '.lock'),
                 os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
