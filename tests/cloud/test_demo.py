"""The README's main command on this cloud: ``tools/cloud/demo.py``.

``tools/demo.sh`` installs what the demo needs and runs it; the demo
uses the running cloud and leaves it running. Every step must behave
as the demo shows it, and say so.
"""

import os
import subprocess
import sys
import unittest

from tests.cloud import base

DEMO = os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'cloud',
                    'demo.py')
STEPS = ('1. a guest on cmp1',
         '2. an admin moves it (the scheduler chooses)',
         '3. forced to the unenrolled and the revoked host',
         '4. a project manager and a member ask',
         '5. the audit trail, verified')


class CloudDemoTest(unittest.TestCase):

    def test_every_step_behaves_as_shown(self):
        base.driver.describe()  # a clear error when no cloud runs
        run = subprocess.run([sys.executable, DEMO], capture_output=True,
                             text=True, timeout=900)
        out = run.stdout + run.stderr[-3000:]
        self.assertEqual(0, run.returncode, out)
        self.assertEqual(dict.fromkeys(STEPS, 'ok'), outcomes(run.stdout),
                         out)
        self.assertIn('secmig demo: every step behaved as shown', run.stdout)


def outcomes(stdout):
    """``{step title: its last line}`` of the demo's output."""
    found = {}
    for block in stdout.split('\n== ')[1:]:
        lines = [line.strip() for line in block.splitlines()
                 if line.strip()]
        if lines and lines[-1].startswith('secmig demo:'):
            lines.pop()
        found[lines[0]] = lines[-1] if len(lines) > 1 else ''
    return found
