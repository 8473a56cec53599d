"""A real Gnocchi 4.7 per test class.

The server launcher and the cluster loader live in
:mod:`secmig.demo.gnocchi` (the demo starts Gnocchi with the same code);
this module re-exports what the tests use and adds the TestCase.
"""

import unittest

from secmig.demo.gnocchi import GnocchiServer  # noqa: F401
from secmig.demo.gnocchi import load_cluster  # noqa: F401
from secmig.demo.gnocchi import SimVm  # noqa: F401


class GnocchiTestCase(unittest.TestCase):
    """Starts one Gnocchi per test class (``cls.gnocchi``)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gnocchi = GnocchiServer().start()
        cls.addClassCleanup(cls.gnocchi.stop)

    def restart_api_at_end(self):
        """For tests that stop the API: start it again afterwards."""
        self.addCleanup(self.gnocchi.start_api)
