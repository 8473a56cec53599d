"""A bounded memory of the handshake nonces a host has accepted.

A responder records the nonce of every ``auth1`` message it accepts and
refuses a nonce it has seen. Memory is bounded in two ways:

- entries whose timestamp is older than the clock-skew window are
  dropped: the timestamp check refuses such messages anyway;
- when the cache is full, the oldest entry is evicted.

The cache never forgets silently: whenever an entry leaves it, for
either reason, a *horizon* rises to that entry's timestamp, and every
message stamped at or before the horizon is refused as a possible
replay. So a flood can make the cache refuse fresh messages (it fails
closed) but can never make it accept a replayed one, even if the clock
steps back.
"""

import collections
import threading


class ReplayCache:
    """Nonces seen within the window, at most ``max_entries`` of them.

    Thread-safe. Timestamps and ``now`` are integer milliseconds.

    :param max_entries: the bound on memory
    :param window_ms: how long an entry must be kept (the skew bound)
    """

    def __init__(self, max_entries, window_ms):
        if max_entries < 1 or window_ms < 0:
            raise ValueError('max_entries must be >= 1 and window_ms >= 0')
        self.max_entries = max_entries
        self.window_ms = window_ms
        self.horizon = 0
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_conf(cls, conf):
        """A cache sized by ``[auth] replay_cache_size`` and the skew."""
        return cls(conf.auth.replay_cache_size,
                   conf.auth.max_clock_skew * 1000)

    def __len__(self):
        return len(self._entries)

    def _why_refused(self, nonce, ts):
        if nonce in self._entries:
            return 'this nonce was already used'
        if ts <= self.horizon:
            return ('the message is older than the replay cache horizon, '
                    'so it cannot be told apart from a replay')
        return None

    def check(self, nonce, ts):
        """Why (nonce, ts) must be refused as a replay, or None."""
        with self._lock:
            return self._why_refused(nonce, ts)

    def add(self, nonce, ts, now):
        """Record (nonce, ts) unless it must be refused; say why if so.

        Checking and recording are one atomic step, so two concurrent
        deliveries of one message cannot both be accepted.
        """
        with self._lock:
            self._expire(now)
            why = self._why_refused(nonce, ts)
            if why:
                return why
            while len(self._entries) >= self.max_entries:
                self._drop_oldest()
            self._entries[nonce] = ts
            return None

    def _drop_oldest(self):
        _, ts = self._entries.popitem(last=False)
        self.horizon = max(self.horizon, ts)

    def _expire(self, now):
        # Insertion order is close to timestamp order; an expired entry
        # behind a younger one goes at a later call.
        limit = now - self.window_ms
        while self._entries:
            ts = next(iter(self._entries.values()))
            if ts >= limit:
                break
            self._drop_oldest()
