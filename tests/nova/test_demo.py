"""``secmig demo`` end to end, as a user runs it (fast flags).

The demo runs in a child process (it starts its own Nova services, and
its Watcher step its own child): embedded metric store, no QEMU. The
test asserts the exit status and the lines that show each behaviour.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest


class DemoTest(unittest.TestCase):

    def test_demo_runs_every_step(self):
        workdir = tempfile.mkdtemp(prefix='secmig-demo-test-')
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, '-m', 'secmig.cmd.main', 'demo', '--workdir',
             workdir, '--metrics', 'embedded', '--skip-qemu'],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=300)
        out = proc.stdout
        self.assertEqual(0, proc.returncode, out + proc.stderr[-3000:])
        for line in (
                'secmig pki verify revoked: invalid (revoked)',
                'rogue: never enrolled, no certificate',
                'compute1 (SecureLibvirtDriver)',
                'store: embedded, not Gnocchi',
                'hotspot: host_cpu on compute1',
                'secmig refused the migration (rbac_denied)',
                'secmig refused the migration (host_identity_unavailable)',
                'secmig refused the migration (revoked)',
                '6. SKIPPED A real QEMU migration over TLS',
                'secmig demo: every step behaved as shown'):
            self.assertIn(line, out)
        self.assertRegex(out, r'proposed: vm\d compute1 -> compute[23]')
        self.assertRegex(out, r'migration completed; vm\d now on '
                              r'compute[23]')
        self.assertRegex(out, r'compute[23] +\d+ \S+ +activated +success')
        self.assertNotIn('FAILED', out)
        self.assertNotIn('NOT INTACT', out)
        self.assertTrue(os.path.exists(os.path.join(
            workdir, 'watcher-actions.json')))
