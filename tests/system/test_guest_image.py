"""The cloud's test guest, booted with QEMU (TCG) from its build artefacts.

``tools/cloud/guest/build.sh`` builds the kernel, initramfs and disk into
a cache directory (``$SECMIG_GUEST_DIR``, else ``~/.cache/secmig-guest``);
it skips the work when they are up to date. Each test boots the guest the
way Nova's libvirt driver does with a UEC image (``-kernel``,
``-initrd``, ``-append`` from ``os_command_line``), reads the serial
console log, and stops its own QEMU process by its PID.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.join(REPO, 'tools', 'cloud', 'guest', 'build.sh')
QEMU = 'qemu-system-x86_64'
BOOT_TIMEOUT = 60
NO_QEMU = ('qemu-system-x86_64 is not installed (Debian: apt-get install '
           'qemu-system-x86); the guest image tests need it')
NO_APT = ('apt-get is missing: build.sh builds the guest from Debian '
          'packages only')

TICK = re.compile(r'^secmig-guest: tick (\d+) uptime=(\d+\.\d\d)$')
DIRTY = re.compile(
    r'^secmig-guest: dirty rate=(\d+\.\d) MiB/s target=(\d+) wss=(\d+)$')
BURN = re.compile(r'^secmig-guest: burn threads=(\d+) cpu=(\d+)%$')


def guest_dir():
    return os.environ.get('SECMIG_GUEST_DIR') or os.path.join(
        os.path.expanduser('~'), '.cache', 'secmig-guest')


def build(outdir):
    """Run build.sh OUTDIR; return its stdout, fail with its output."""
    result = subprocess.run(['bash', BUILD, outdir], capture_output=True,
                            text=True, timeout=600)
    if result.returncode:
        message = 'build.sh failed (%d):\n%s%s' % (
            result.returncode, result.stdout, result.stderr)
        raise AssertionError(message)
    return result.stdout


class Guest:
    """One QEMU process booting the guest; its console goes to a file."""

    def __init__(self, artefacts, log_dir, cmdline):
        self.log = os.path.join(log_dir, 'console.log')
        self.proc = subprocess.Popen(
            [QEMU, '-accel', 'tcg', '-cpu', 'qemu64', '-m', '128',
             '-smp', '1', '-nodefaults', '-display', 'none',
             '-kernel', os.path.join(artefacts, 'vmlinuz'),
             '-initrd', os.path.join(artefacts, 'initramfs.img'),
             '-append', cmdline, '-serial', 'file:' + self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)

    def lines(self):
        """The guest's complete console lines, kernel messages left out."""
        try:
            with open(self.log, errors='replace') as f:
                text = f.read()
        except FileNotFoundError:
            return []
        # The last piece has no newline yet: a line still being written.
        return [line.rstrip('\r') for line in text.split('\n')[:-1]
                if line.startswith('secmig-guest: ')]

    def wait_for(self, done, timeout=BOOT_TIMEOUT):
        """Poll until ``done(lines)`` is true; return the lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if done(lines):
                return lines
            if self.proc.poll() is not None:
                message = 'QEMU exited (%s): %s\n%s' % (
                    self.proc.returncode, self.proc.stderr.read(),
                    '\n'.join(lines))
                raise AssertionError(message)
            if time.monotonic() > deadline:
                message = 'guest console after %ss:\n%s' % (
                    timeout, '\n'.join(lines))
                raise AssertionError(message)
            time.sleep(0.25)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stderr.close()


def matches(pattern, lines):
    return [m for m in map(pattern.match, lines) if m]


@unittest.skipUnless(shutil.which(QEMU), NO_QEMU)
@unittest.skipUnless(shutil.which('apt-get'), NO_APT)
class GuestImageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.artefacts = guest_dir()
        build(cls.artefacts)

    def boot(self, cmdline):
        log_dir = tempfile.mkdtemp(prefix='secmig-guest-')
        self.addCleanup(shutil.rmtree, log_dir, ignore_errors=True)
        guest = Guest(self.artefacts, log_dir, cmdline)
        self.addCleanup(guest.stop)
        return guest

    def test_build_is_idempotent(self):
        stamp = os.path.join(self.artefacts, 'stamp')
        before = os.stat(stamp).st_mtime_ns
        out = build(self.artefacts)
        self.assertIn('guest: up to date in', out)
        self.assertEqual(before, os.stat(stamp).st_mtime_ns)

    def test_heartbeat_dirty_and_burn(self):
        guest = self.boot('console=ttyS0 no_timer_check quiet '
                          'secmig.burn=1 secmig.dirty=20 secmig.wss=16')

        def enough(lines):
            return (len(matches(DIRTY, lines)) >= 2
                    and len(matches(BURN, lines)) >= 2
                    and len(matches(TICK, lines)) >= 8)

        lines = guest.wait_for(enough)
        self.assertEqual('secmig-guest: up burn=1 dirty=20 wss=16',
                         lines[0])
        ticks = matches(TICK, lines)
        self.assertEqual(list(range(1, len(ticks) + 1)),
                         [int(m.group(1)) for m in ticks])
        uptimes = [float(m.group(2)) for m in ticks]
        self.assertEqual(sorted(set(uptimes)), uptimes)
        # One line a second, give or take the pace of a TCG vCPU.
        period = (uptimes[-1] - uptimes[0]) / (len(uptimes) - 1)
        self.assertAlmostEqual(1.0, period, delta=0.1)
        # The first report covers the start; the next one the pace.
        rate, target, wss = matches(DIRTY, lines)[1].groups()
        self.assertEqual(('20', '16'), (target, wss))
        self.assertAlmostEqual(20.0, float(rate), delta=2.0)
        threads, cpu = matches(BURN, lines)[1].groups()
        self.assertEqual('1', threads)
        self.assertGreater(int(cpu), 50)
        self.assertEqual([], [line for line in lines if ' error' in line])

    def test_bad_parameters_refused(self):
        guest = self.boot('console=ttyS0 no_timer_check quiet '
                          'secmig.dirty=fast secmig.wss=0')
        lines = guest.wait_for(
            lambda lines: any(' error ' in line for line in lines))
        # The refusal names every bad parameter, and the guest goes no
        # further: no "up", no heartbeat.
        self.assertEqual(1, len(lines), lines)
        self.assertIn('error bad command line:', lines[0])
        self.assertIn('secmig.dirty=fast is not a whole number', lines[0])
        self.assertIn('secmig.wss=0: the working set needs at least 1 MiB',
                      lines[0])
        time.sleep(3)
        self.assertEqual(lines, guest.lines())
