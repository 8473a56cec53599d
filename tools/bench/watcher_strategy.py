"""Benchmark: secmig_hotspot against Watcher's built-in strategies.

Not a test. For each cluster size, starts one real Gnocchi 4.7 (see
secmig/demo/gnocchi.py), loads a cluster of HOSTS x VMS as Ceilometer
would publish it (about 5% of the hosts hot on CPU, 2% on network, 2%
swapping, ten points of one minute), with host meters on every host
(``compute.node.cpu.percent`` as Nova's CPU monitor publishes it, and
cumulative host network and swap-out meters as an operator's pollster
would, each the sum of the host's VMs; ``--no-host-meters`` leaves them
out), builds the same Watcher compute model for every strategy, and runs
one audit of each:

* ``secmig_hotspot`` (this project),
* ``workload_balance`` (threshold = the same host CPU threshold),
* ``workload_stabilization`` (CPU only; reported as "did not run" when
  it fails).

For each it prints the wall time of the audit (for secmig, the median
of three audits on fresh models; each one's time is printed too), its
CPU time (the strategy's process and Gnocchi's API processes: the work
it costs, whatever the machine lets run in parallel), the Gnocchi HTTP
requests it sent (counted by the server), the migrations
proposed and the hotspots left when the plan is applied to the model
(secmig's detection over the VMs' measures), then the ratios against
secmig, and how secmig read Gnocchi (mode, VMs read).

Run from the repository root with the project's virtualenv::

    .venv/bin/python tools/bench/watcher_strategy.py --hosts 50 200
    .venv/bin/python tools/bench/watcher_strategy.py --hosts 1000

``--skip-builtin-above N`` leaves Watcher's strategies out for sizes
above N hosts (the 1,000-host workload_balance audit takes minutes);
``--skip-stabilization-above N`` leaves out only
``workload_stabilization``.
"""

import argparse
import contextlib
import dataclasses
import logging
import os
import random
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from tests.watcher import strategy_util as su  # noqa: E402,I100 (first)

from watcher.common import utils  # noqa: E402
from watcher.decision_engine.strategy.strategies import (  # noqa: E402
    workload_balance)
from watcher.decision_engine.strategy.strategies import (  # noqa: E402
    workload_stabilization)

from secmig.hotspot import detect  # noqa: E402
from secmig.hotspot import model as hmodel  # noqa: E402
from secmig.hotspot import plan as plan_mod  # noqa: E402
from tests import gnocchi_fixture as gf  # noqa: E402

G = 60
POINTS = 10
CPUS = 16
MB = 1e6
LINK_GBPS = 10.0
#: secmig audits per size (median reported): each takes seconds, and a
#: shared two-core machine makes a single one noisy.
AUDITS = 3
PARAMS = dict(window=POINTS * G, granularity=G, stale_after=3 * G,
              min_points=3, link_gbps=LINK_GBPS, max_migrations=10000,
              max_migrations_per_source=5, max_migrations_per_destination=2)


def make_cluster(hosts, per_host, rnd):
    """SimVms: quiet hosts, and some hot on CPU, network or swap."""
    names = ['h%04d' % i for i in range(hosts)]
    kinds = {}
    for i, name in enumerate(names):
        kinds[name] = ('cpu' if i % 20 == 3 else 'net' if i % 50 == 7
                       else 'swap' if i % 50 == 11 else 'quiet')
    vms = []
    link = LINK_GBPS * 1e9 / 8
    for name in names:
        kind = kinds[name]
        for _ in range(per_host):
            cpu = rnd.uniform(0.2, 0.8)
            net = rnd.uniform(5, 40) * MB
            swap = 0.0
            if kind == 'cpu':
                cpu = rnd.uniform(1.4, 1.6)
            elif kind == 'net':
                net = link * rnd.uniform(0.088, 0.095)
            elif kind == 'swap':
                swap = rnd.uniform(0.15, 0.25)
            vms.append(gf.SimVm(str(uuid.uuid4()), name, cpu=cpu,
                                net_in=net, net_out=net / 4,
                                swap_out=swap))
    return names, vms


def hotspots_after(hosts, vms, obs, moves):
    th = detect.Thresholds(window=POINTS * G, granularity=G,
                           stale_after=3 * G, min_points=3)
    infos = [hmodel.HostInfo(h, CPUS, LINK_GBPS * 1e9 / 8) for h in hosts]
    placed = plan_mod.apply(
        [hmodel.VmInfo(v.id, v.host) for v in vms], moves)
    # Host meters do not follow a VM the plan moves: judge the VM sums.
    report = detect.detect(infos, placed, dataclasses.replace(obs, host={}),
                           th)
    return len(report.hotspots)


def _moves(solution):
    return [plan_mod.Move(a['input_parameters']['resource_id'],
                          a['input_parameters']['source_node'],
                          a['input_parameters']['destination_node'], '', {})
            for a in solution.actions if a['action_type'] == 'migrate']


def api_cpu_seconds(server):
    """CPU seconds the Gnocchi API processes (parent, workers) used."""
    parent, ticks = server.api.pid, 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(entry) == parent or int(fields[1]) == parent:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf('SC_CLK_TCK')


@contextlib.contextmanager
def measured(server):
    """Yield a dict set to the wall time, requests and CPU time spent.

    ``cpu`` is this process's CPU time (the strategy, all its threads)
    plus the Gnocchi API's: the work an audit costs, whatever the
    cores and the machine's other load let run in parallel.
    """
    box = {}
    with server.counting() as served:
        api, own, began = (api_cpu_seconds(server), time.process_time(),
                           time.monotonic())
        yield box
        box['wall'] = time.monotonic() - began
        box['cpu'] = (time.process_time() - own
                      + api_cpu_seconds(server) - api)
    box['requests'] = served['requests']


def run_secmig(server, site, hosts, vms, now, audits=AUDITS):
    """``audits`` audits, each on a fresh model; the last one is returned.

    Returns ``(one measure per audit, moves, strategy)``. The first
    audit of a process verifies the destinations' certificates; the
    decision engine keeps those verdicts for the audits that follow.
    """
    audits_measured = []
    for _ in range(audits):
        model = su.build_model(hosts, vms, node_vcpus=CPUS,
                               node_memory=65536)
        strategy = su.make_strategy(site, model, server.client(), now,
                                    **PARAMS)
        with measured(server) as box:
            solution = strategy.execute()
        audits_measured.append(box)
    return audits_measured, _moves(solution), strategy


def _builtin(cls, server, hosts, vms, params):
    model = su.build_model(hosts, vms, node_vcpus=CPUS, node_memory=65536)
    strategy = cls(config=utils.Struct(datasources=['gnocchi']),
                   osc=su.gnocchi_clients(server.client()))
    strategy._compute_model = model
    strategy.input_parameters = utils.Struct(params)
    with measured(server) as box:
        solution = strategy.execute()
    return box, _moves(solution)


def run_workload_balance(server, hosts, vms):
    return _builtin(workload_balance.WorkloadBalance, server, hosts, vms,
                    {'metrics': 'instance_cpu_usage', 'threshold': 80.0,
                     'period': POINTS * G, 'granularity': G})


def run_workload_stabilization(server, hosts, vms):
    cls = workload_stabilization.WorkloadStabilization
    params = {name: spec['default'] for name, spec in
              cls.get_schema()['properties'].items()}
    params.update({'metrics': ['instance_cpu_usage'], 'periods': {
        'instance': POINTS * G, 'compute_node': POINTS * G, 'node': 0},
        'granularity': G})
    return _builtin(cls, server, hosts, vms, params)


def _load(server, hosts, vms):
    """load_cluster, waiting as long as metricd needs on large clusters."""
    now = time.time()
    gf.load_cluster(server, hosts, vms, points=POINTS, granularity=G,
                    now=now, wait_timeout=3600)
    return now // G * G


def bench(size, per_host, builtin, seed, host_meters=True,
          stabilization=True):
    rnd = random.Random(seed)
    hosts, vms = make_cluster(size, per_host, rnd)
    site = su.Site()
    server = gf.GnocchiServer(metricd_workers=2).start()
    try:
        began = time.monotonic()
        end = _load(server, [] if host_meters else hosts, vms)
        if host_meters:
            su.load_host_meters(server, su.host_figures(vms, CPUS), end,
                                POINTS, G)
        loaded = time.monotonic() - began
        site.enroll(*hosts)
        now = end + 5
        obs = su.observations(server, hosts, vms, now, POINTS * G, G)
        before = hotspots_after(hosts, vms, obs, [])
        rows = []
        audits, moves, strategy = run_secmig(server, site, hosts, vms, now)
        strategy.walls = [a['wall'] for a in audits]
        rows.append(('secmig_hotspot', {
            'wall': statistics.median(strategy.walls),
            'cpu': statistics.median(a['cpu'] for a in audits),
            'requests': audits[-1]['requests']}, len(moves),
            hotspots_after(hosts, vms, obs, moves)))
        if builtin:
            runners = [('workload_balance', run_workload_balance)]
            if stabilization:
                runners.append(('workload_stabilization',
                                run_workload_stabilization))
            for name, runner in runners:
                try:
                    box, moves = runner(server, hosts, vms)
                except Exception as e:
                    rows.append((name, None, None,
                                 'did not run: %s: %s'
                                 % (type(e).__name__, str(e)[:80])))
                    continue
                rows.append((name, box, len(moves),
                             hotspots_after(hosts, vms, obs, moves)))
        return loaded, before, rows, strategy
    finally:
        server.stop()
        site.cleanup()


def print_table(size, per_host, loaded, before, rows, strategy=None):
    print('\n%d hosts x %d VMs: %d hotspots before (Gnocchi loaded in '
          '%.0f s)' % (size, per_host, before, loaded))
    print('%-24s %8s %8s %9s %11s %13s %8s %8s %8s'
          % ('strategy', 'wall s', 'cpu s', 'requests', 'migrations',
             'hotspots left', 'x wall', 'x cpu', 'x req'))
    ours = rows[0][1]
    for name, box, moves, left in rows:
        if box is None:
            print('%-24s %s' % (name, left))
            continue
        print('%-24s %8.2f %8.2f %9d %11d %13d %8.1f %8.1f %8.1f'
              % (name, box['wall'], box['cpu'], box['requests'], moves,
                 left, box['wall'] / ours['wall'], box['cpu'] / ours['cpu'],
                 box['requests'] / max(ours['requests'], 1)))
    if strategy is not None:
        print('secmig_hotspot wall time is the median of %d audits (%s s); '
              'the first one verified the certificates'
              % (len(strategy.walls),
                 ', '.join('%.2f' % w for w in strategy.walls)))
        obs = strategy.observations
        print('secmig read Gnocchi in %s mode: %d of %d VMs read, host '
              'meters of %d hosts' % (obs.mode, len(obs.vm), size * per_host,
                                      len(obs.host)))
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, nargs='+',
                        default=[50, 200, 1000])
    parser.add_argument('--vms-per-host', type=int, default=10)
    parser.add_argument('--skip-builtin-above', type=int, default=None)
    parser.add_argument('--skip-stabilization-above', type=int,
                        default=None)
    parser.add_argument('--seed', type=int, default=5)
    parser.add_argument('--no-host-meters', action='store_true',
                        help='publish per-VM meters only')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for size in args.hosts:
        builtin = (args.skip_builtin_above is None
                   or size <= args.skip_builtin_above)
        loaded, before, rows, strategy = bench(
            size, args.vms_per_host, builtin, args.seed,
            host_meters=not args.no_host_meters,
            stabilization=(args.skip_stabilization_above is None
                           or size <= args.skip_stabilization_above))
        print_table(size, args.vms_per_host, loaded, before, rows,
                    strategy)


if __name__ == '__main__':
    main()
