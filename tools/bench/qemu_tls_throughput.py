"""Throughput of a real QEMU live migration: plaintext against TLS.

Usage::

    .venv/bin/python tools/bench/qemu_tls_throughput.py [--memory-mib 512]
        [--runs 3]

Two paused QEMU guests on loopback, certificates from secmig's CA and
``verify-peer=on`` on both ends, exactly as in the system tests. Guest
RAM is filled with random data (``-device loader``) so that every page
crosses the wire in full: zero pages would travel as a few bytes each
and measure nothing. The bandwidth cap (``max-bandwidth``, 128 MiB/s by
default) is lifted. Runs alternate plaintext and TLS; the figure per run
is ``ram.transferred / total-time`` from ``query-migrate``, and the
medians are printed with their ratio.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir))

from secmig.demo import qemu  # noqa: E402
from tests import pkiutil  # noqa: E402

#: Where the random fill starts: above the BIOS area, in plain RAM.
FILL_ADDRESS = 0x100000
#: Lifts QEMU's default 128 MiB/s cap (bytes per second).
UNCAPPED = 100 << 30
MIB = 1 << 20


def write_fill(path, size):
    with open(path, 'wb') as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))


def migrate_once(workdir, pki, memory_mib, fill, tls):
    """One migration; returns (MiB/s, query-migrate info)."""
    src, dst = pki.hosts['src'], pki.hosts['dst']
    with qemu.Guest(workdir, 'dst', memory_mib, dst.cert_dir, 'server',
                    incoming=True) as destination, \
            qemu.Guest(workdir, 'src', memory_mib, src.cert_dir,
                       loads=[(fill, FILL_ADDRESS)]) as source:
        port = qemu.listen_incoming(destination, tls=tls)
        info = qemu.migrate(source, port,
                            tls_hostname='dst' if tls else None,
                            timeout=600, max_bandwidth=UNCAPPED)
        if info['status'] != 'completed':
            raise RuntimeError('migration %s: %s\n%s' % (
                info['status'], info.get('error-desc'),
                destination.stderr()))
        if qemu.wait_incoming(destination)['status'] != 'completed':
            raise RuntimeError('destination did not complete: %s'
                               % destination.stderr())
    seconds = info['total-time'] / 1000.0
    return info['ram']['transferred'] / MIB / seconds, info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--memory-mib', type=int, default=512)
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args(argv)
    if args.memory_mib < 128 or args.runs < 1:
        parser.error('need --memory-mib >= 128 and --runs >= 1')
    if qemu.qemu_binary() is None:
        parser.error('qemu-system-x86_64 is not installed')
    workdir = tempfile.mkdtemp(prefix='secmig-bench-')
    try:
        pki = pkiutil.TestPKI(workdir)
        pki.enroll('src')
        pki.enroll('dst')
        fill = os.path.join(workdir, 'fill.bin')
        # From 1 MiB up to 63 MiB below the top of RAM: clear of the BIOS
        # area and of anything the firmware places high.
        fill_mib = args.memory_mib - 64
        write_fill(fill, fill_mib * MIB)
        print('guest %d MiB (%d MiB random), accel %s, %d runs each'
              % (args.memory_mib, fill_mib,
                 'kvm' if qemu.kvm_usable() else 'tcg', args.runs))
        rates = {False: [], True: []}
        for run in range(args.runs):
            for tls in (False, True):
                rate, info = migrate_once(workdir, pki, args.memory_mib,
                                          fill, tls)
                rates[tls].append(rate)
                print('run %d %-9s %8.1f MiB/s  (%d MiB in %d ms)'
                      % (run + 1, 'tls' if tls else 'plaintext', rate,
                         info['ram']['transferred'] // MIB,
                         info['total-time']))
        plain = statistics.median(rates[False])
        tls = statistics.median(rates[True])
        print('plaintext median: %.1f MiB/s' % plain)
        print('tls median:       %.1f MiB/s' % tls)
        print('ratio plaintext/tls: %.2f' % (plain / tls))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
