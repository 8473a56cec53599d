"""Watcher finds the strategy; its guide names what the strategy reads."""

import io
import os
import unittest

from tests.watcher import strategy_util  # noqa: F401,I100 (watcher first)

from docutils import core
from watcher.decision_engine.loading import default as loading

from secmig.hotspot import gnocchi_query
from secmig.watcher import strategy as strategy_mod

GUIDE = os.path.join(strategy_util.ROOT, 'doc', 'watcher.rst')


class PluginTest(unittest.TestCase):

    def test_entry_point_name_matches_get_name(self):
        loader = loading.DefaultStrategyLoader()
        self.assertIn('secmig_hotspot', loader.list_available())
        cls = loader.list_available()['secmig_hotspot']
        self.assertIs(strategy_mod.SecureHotspot, cls)
        self.assertEqual('secmig_hotspot', cls.get_name())
        self.assertEqual('workload_balancing', cls.get_goal_name())


class GuideTest(unittest.TestCase):

    def setUp(self):
        with open(GUIDE) as f:
            self.guide = f.read()

    def test_guide_is_valid_restructuredtext(self):
        errors = io.StringIO()
        core.publish_doctree(self.guide, settings_overrides={
            'warning_stream': errors, 'report_level': 2, 'halt_level': 5})
        self.assertEqual('', errors.getvalue())

    def test_guide_names_every_parameter_and_meter(self):
        schema = strategy_mod.SecureHotspot.get_schema()['properties']
        missing = [name for name in schema
                   if '``%s``' % name not in self.guide]
        self.assertEqual([], missing)
        meters = sorted(set(gnocchi_query.Meters().names().values()))
        self.assertEqual([], [m for m in meters
                              if '``%s``' % m not in self.guide])
