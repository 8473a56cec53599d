"""The bounded state of a responding host: replay cache, sessions."""

import threading
import unittest

from secmig.auth import replay
from secmig.auth import sessions
from tests.unit import authutil

WINDOW = 30000


class ReplayCacheTest(unittest.TestCase):

    def test_second_use_of_a_nonce_is_refused(self):
        cache = replay.ReplayCache(10, WINDOW)
        self.assertIsNone(cache.check(b'a', 1000))
        self.assertIsNone(cache.add(b'a', 1000, now=1000))
        self.assertIn('already used', cache.check(b'a', 1000))
        self.assertIn('already used', cache.add(b'a', 1000, now=1000))
        self.assertIsNone(cache.add(b'b', 1000, now=1000))

    def test_size_is_bounded_and_eviction_raises_the_horizon(self):
        cache = replay.ReplayCache(3, WINDOW)
        for i in range(10):
            self.assertIsNone(cache.add(bytes([i]), 1000 + i, now=1000))
        self.assertEqual(3, len(cache))
        self.assertEqual(1006, cache.horizon)
        # An evicted nonce is still refused: its time is past the horizon.
        self.assertIn('horizon', cache.check(bytes([0]), 1000))
        self.assertIn('horizon', cache.add(b'new', 1006, now=1000))
        self.assertIsNone(cache.add(b'new', 1007, now=1000))

    def test_entries_older_than_the_window_are_dropped(self):
        cache = replay.ReplayCache(100, WINDOW)
        cache.add(b'old', 1000, now=1000)
        cache.add(b'young', 20000, now=20000)
        cache.add(b'now', 40000, now=40000)
        self.assertEqual(2, len(cache))
        self.assertEqual(1000, cache.horizon)
        self.assertIn('horizon', cache.check(b'old', 1000))

    def test_clock_stepping_back_does_not_readmit(self):
        cache = replay.ReplayCache(100, WINDOW)
        cache.add(b'x', 1000, now=1000)
        cache.add(b'y', 100000, now=100000)
        # The clock steps back to when x was fresh: x is still refused.
        self.assertIsNotNone(cache.add(b'x', 1000, now=1000))

    def test_concurrent_adds_of_one_nonce_accept_one(self):
        cache = replay.ReplayCache(1000, WINDOW)
        results = []
        threads = [threading.Thread(
            target=lambda: results.append(cache.add(b'n', 5, now=5)))
            for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, results.count(None))

    def test_from_conf(self):
        conf = authutil.make_conf(replay_cache_size=50, max_clock_skew=7)
        cache = replay.ReplayCache.from_conf(conf)
        self.assertEqual((50, 7000), (cache.max_entries, cache.window_ms))


class SessionTableTest(unittest.TestCase):

    def setUp(self):
        self.clock = authutil.ManualClock(1000.0)
        self.table = sessions.SessionTable(2, 60, self.clock)

    def test_put_and_pop_once(self):
        self.table.put('m1', 'state')
        self.assertEqual('state', self.table.pop('m1'))
        self.assertIsNone(self.table.pop('m1'))

    def test_oldest_is_dropped_when_full(self):
        for key in ('a', 'b', 'c'):
            self.table.put(key, key)
        self.assertEqual(2, len(self.table))
        self.assertIsNone(self.table.pop('a'))
        self.assertEqual('c', self.table.pop('c'))

    def test_expired_entry_is_not_returned(self):
        self.table.put('m1', 'state')
        self.clock.advance(61)
        self.assertIsNone(self.table.pop('m1'))

    def test_responder_survives_between_calls(self):
        world = authutil.World()
        self.addCleanup(world.cleanup)
        initiator, responder = world.initiator(), world.responder()
        msg2, _ = responder.respond(initiator.start(),
                                    authutil.make_binding())
        table = sessions.SessionTable.from_conf(authutil.make_conf())
        table.put('42', responder)
        msg3, _ = initiator.finish(msg2)
        self.assertEqual('authenticated', table.pop('42').confirm(msg3).code)


if __name__ == '__main__':
    unittest.main()
