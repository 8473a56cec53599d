"""May a given user read or write a file? Decided from modes and owners.

The answer comes from ``os.stat`` of the file and of every directory
above it, the user's ``pwd`` entry and the groups that list it in
``grp``: no process switches user, so the answer is the same whether the
caller is root or not. POSIX access rules apply: root may do anything;
otherwise the owner's bits apply to the owner, the group's bits to a
member of the file's group, the others' bits to everyone else; every
directory on the way must be searchable. ACLs and capabilities are not
considered.
"""

import dataclasses
import grp
import os
import pwd
import stat

READ = 4
WRITE = 2
SEARCH = 1
_WHAT = {READ: 'read', WRITE: 'write', READ | WRITE: 'read and write',
         WRITE | SEARCH: 'create files in', SEARCH: 'enter'}


@dataclasses.dataclass(frozen=True)
class User:
    """A user as the kernel sees it for file access."""

    name: str
    uid: int
    gids: frozenset
    #: The name of the user's primary group, when known.
    group: str = None

    @classmethod
    def named(cls, name):
        """The user ``name``; ``KeyError`` when there is none."""
        entry = pwd.getpwnam(name)
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                 if name in g.gr_mem}
        return cls(name, entry.pw_uid, frozenset(gids),
                   _name(grp.getgrgid, entry.pw_gid, 'gr_name'))


@dataclasses.dataclass(frozen=True)
class Denial:
    """Why ``user`` cannot use ``path`` as it needs: the blocking file."""

    user: str
    path: str
    need: str
    mode: int
    owner: str
    group: str

    def __str__(self):
        return ('%s cannot %s %s (mode %04o, owner %s, group %s)'
                % (self.user, self.need, self.path, self.mode, self.owner,
                   self.group))


def _allowed(st, user, want):
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        bits = st.st_mode >> 6
    elif st.st_gid in user.gids:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def _denial(user, path, st, want):
    return Denial(user.name, path, _WHAT[want], stat.S_IMODE(st.st_mode),
                  _name(pwd.getpwuid, st.st_uid, 'pw_name'),
                  _name(grp.getgrgid, st.st_gid, 'gr_name'))


def _name(lookup, number, attr):
    try:
        return getattr(lookup(number), attr)
    except KeyError:
        return str(number)


def check(user, path, want):
    """None when ``user`` may ``want`` (bits) ``path``, else a Denial.

    ``path`` must exist; the directories above it must be searchable.
    """
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    for depth in range(1, len(parts)):
        directory = os.sep.join(parts[:depth]) or os.sep
        st = os.stat(directory)
        if not _allowed(st, user, SEARCH):
            return _denial(user, directory, st, SEARCH)
    st = os.stat(path)
    if not _allowed(st, user, want):
        return _denial(user, path, st, want)
    return None


def nearest_existing(path):
    """``path`` or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path
