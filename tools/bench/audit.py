"""Benchmark the audit journal: durable appends per second, verification.

Usage::

    .venv/bin/python tools/bench/audit.py [--records N] [--threads T]
        [--verify-records N] [--verify-batch B]

1. Durable appends: T threads call ``AuditTrail.record`` (CADF event,
   chained line, signed checkpoint, fdatasync) N times in all, first with
   the default policy (``fsync = batch``: group commit), then with
   ``fsync = record`` (one fdatasync and one signature per record), and
   prints both rates and their ratio. Then the same with two writers
   (two processes' worth: two ``Journal`` objects) taking turns, so that
   each batch first verifies the other's.
2. Verification: writes a journal of ``--verify-records`` events (default
   1,000,000) in batches of ``--verify-batch`` records, each batch with
   its own signed checkpoint (generation skips fdatasync, which is not
   what is measured), then times ``verify_journal`` on it (every
   checkpoint's signature is checked).
3. The first append of a new writer to that journal: it verifies from
   the signed head, not from the first line, so it costs about what any
   append costs, whatever the journal's size.

Everything happens in a temporary directory, removed at the end.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from secmig.audit import events  # noqa: E402
from secmig.audit import journal  # noqa: E402
from secmig.audit import signing  # noqa: E402
from secmig.audit import trail  # noqa: E402
from secmig.audit import verify  # noqa: E402
from secmig.decision import Decision  # noqa: E402
from tests import pkiutil  # noqa: E402

EVIDENCE = dict(
    requester={'user_id': uuid.uuid4().hex, 'project_id': uuid.uuid4().hex},
    trigger={'metric': 'compute.node.cpu.percent', 'value': 91.5},
    policy_digest='sha256:' + 'ab' * 32, source_fingerprint='cd' * 32,
    destination_fingerprint='ef' * 32,
    tls_flags=['VIR_MIGRATE_LIVE', 'VIR_MIGRATE_PEER2PEER',
               'VIR_MIGRATE_TLS'])


def appends(base, signer, policy, records, threads, writers=1):
    path = os.path.join(base, 'append-%s-%d' % (policy, writers),
                        'journal.jsonl')
    journals = [journal.Journal(path, signer, fsync=policy)
                for _ in range(writers)]
    audits = [trail.AuditTrail(j) for j in journals]
    decision = Decision.allow('policy allows this migration')
    per_thread = records // threads

    def work(audit):
        migration, instance = str(uuid.uuid4()), str(uuid.uuid4())
        for _ in range(per_thread):
            audit.record('authorised', migration, instance, 'success',
                         decision=decision, **EVIDENCE)
    workers = [threading.Thread(target=work, args=(audits[n % writers],))
               for n in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    for j in journals:
        j.close()
    count = per_thread * threads
    assert verify.verify_journal(path, pinned={signer.fingerprint})
    return count / elapsed, count, elapsed


def first_append(path, signer):
    """Seconds a new writer takes for its first durable record."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # it was written without: not this append's cost
    os.close(fd)
    audit = trail.AuditTrail(journal.Journal(path, signer))
    start = time.perf_counter()
    audit.record('copied', str(uuid.uuid4()), str(uuid.uuid4()), 'success',
                 decision=Decision.allow('ok'), **EVIDENCE)
    elapsed = time.perf_counter() - start
    audit.close()
    return elapsed


def build_journal(base, signer, records, batch):
    path = os.path.join(base, 'verify', 'journal.jsonl')
    j = journal.Journal(path, signer, max_batch=batch)
    j.sync = lambda fd: None  # content only: durability is not measured
    template = events.build_event(
        'copied', str(uuid.uuid4()), str(uuid.uuid4()), 'success', 'cmp1',
        decision=Decision.allow('ok'), **EVIDENCE).as_dict()
    body = {'step': 'copied', 'migration_id': 'm', 'instance_uuid': 'i',
            'outcome': 'success', 'event': template}
    start = time.perf_counter()
    written = 0
    while written < records:
        n = min(batch, records - written)
        j.append_many([('event', dict(body, id='%032x' % (written + k)))
                       for k in range(n)])
        written += n
    j.close()
    return path, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--records', type=int, default=2000,
                        help='durable appends per policy (default 2000)')
    parser.add_argument('--threads', type=int, default=16)
    parser.add_argument('--verify-records', type=int, default=1000000)
    parser.add_argument('--verify-batch', type=int, default=16,
                        help='records per signed checkpoint in the '
                             'verification journal (default 16)')
    parser.add_argument('--dir', help='parent of the temporary directory '
                                      '(default: the system temp dir)')
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix='secmig-bench-audit-', dir=args.dir)
    try:
        pki = pkiutil.TestPKI(os.path.join(base, 'pki'))
        signer = signing.HostSigner.from_cert_dir(
            pki.enroll('cmp1').cert_dir)
        print('durable appends, %d threads, %d records each run, in %s'
              % (args.threads, args.records, base))
        rates = {}
        for policy in ('batch', 'record'):
            rate, count, elapsed = appends(base, signer, policy,
                                           args.records, args.threads)
            rates[policy] = rate
            print('  fsync=%-6s %8.0f appends/s (%d in %.2f s)'
                  % (policy, rate, count, elapsed))
        print('  group commit speed-up (batch / record): %.1fx'
              % (rates['batch'] / rates['record']))
        for policy in ('batch', 'record'):
            rate, count, elapsed = appends(base, signer, policy,
                                           args.records, args.threads,
                                           writers=2)
            print('  fsync=%-6s %8.0f appends/s (%d in %.2f s), two writers '
                  'taking turns' % (policy, rate, count, elapsed))

        path, built = build_journal(base, signer, args.verify_records,
                                    args.verify_batch)
        size = os.path.getsize(path)
        print('verification journal: %d events, %d per checkpoint, '
              '%.0f MiB, written in %.1f s'
              % (args.verify_records, args.verify_batch, size / 2 ** 20,
                 built))
        start = time.perf_counter()
        verdict = verify.verify_journal(path, trust=pki.trust(),
                                        host='cmp1')
        elapsed = time.perf_counter() - start
        assert verdict, verdict
        print('  verify: %.2f s (%.0f records/s, %d checkpoint signatures), '
              '%s' % (elapsed, verdict.details['records'] / elapsed,
                      verdict.details['checkpoints'], verdict.code))
        print('  first durable append by a new writer: %.1f ms'
              % (first_append(path, signer) * 1000))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
