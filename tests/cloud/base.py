"""The cloud tier's test case: the cloud driver, as a TestCase.

The cloud is started by ``tools/cloud/cloud.py up`` (``tools/run-tests.sh
cloud`` does it before this tier). :class:`CloudTestCase` drives it
through :class:`driver.CloudDriver`, as an operator or a tenant does.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.abspath(os.path.join(
    os.path.dirname(__file__), '..', '..', 'tools', 'cloud')))

import driver  # noqa: E402
from driver import api  # noqa: E402,F401
from driver import hosts_mod  # noqa: E402,F401
from driver import JOURNAL  # noqa: E402,F401
from driver import TICK  # noqa: E402,F401
from driver import wait  # noqa: E402,F401
import wire  # noqa: E402,F401


class CloudTestCase(driver.CloudDriver, unittest.TestCase):
    """Guests booted in ``setUpClass`` are deleted after the class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.connect()

    @classmethod
    def cleanup_later(cls, func, *args):
        cls.addClassCleanup(func, *args)
