"""A bounded table of what a host keeps between two calls.

For example a guard's authenticated and authorised migrations, keyed by
instance. The table is bounded in size and age: when it is full the
oldest entry is dropped, and an entry older than the ttl is dropped when
looked up. A dropped entry means the migration is refused (fail
closed); nothing is ever accepted because of a drop.

Handshakes waiting for confirmation are not kept here but in
:class:`~secmig.auth.answering.AnsweringHost`, which keys them by
instance *and* proven peer, so that a third host cannot displace them.
"""

import collections
import threading
import time


class SessionTable:
    """At most ``max_entries`` values, each kept at most ``ttl`` seconds.

    Thread-safe. ``clock`` returns seconds (``time.time`` by default).
    """

    def __init__(self, max_entries, ttl, clock=time.time):
        if max_entries < 1 or ttl <= 0:
            raise ValueError('max_entries must be >= 1 and ttl > 0')
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_conf(cls, conf, clock=time.time):
        return cls(conf.auth.max_pending_handshakes,
                   conf.auth.handshake_timeout, clock)

    def __len__(self):
        return len(self._entries)

    def put(self, key, value):
        """Store ``value`` under ``key``, replacing any previous one."""
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
            self._entries[key] = (self._clock(), value)

    def pop(self, key):
        """Remove and return ``key``'s value (None: absent or expired)."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return None
        stored, value = entry
        if self._clock() - stored > self.ttl:
            return None
        return value

    def get(self, key):
        """``key``'s value, left in place (None: absent or expired)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] > self.ttl:
            return None
        return entry[1]
