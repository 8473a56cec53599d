"""Watcher finds the strategy through its own plugin loader."""

import unittest

from tests.watcher import strategy_util  # noqa: F401,I100 (watcher first)

from watcher.decision_engine.loading import default as loading

from secmig.watcher import strategy as strategy_mod


class PluginTest(unittest.TestCase):

    def test_entry_point_name_matches_get_name(self):
        loader = loading.DefaultStrategyLoader()
        self.assertIn('secmig_hotspot', loader.list_available())
        cls = loader.list_available()['secmig_hotspot']
        self.assertIs(strategy_mod.SecureHotspot, cls)
        self.assertEqual('secmig_hotspot', cls.get_name())
        self.assertEqual('workload_balancing', cls.get_goal_name())
