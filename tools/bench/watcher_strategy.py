"""Benchmark: secmig_hotspot against Watcher's built-in strategies.

Not a test. For each cluster size, starts one real Gnocchi 4.7 (see
secmig/demo/gnocchi.py) and publishes a cluster of HOSTS x VMS as a
cloud sends it (tests/gnocchi_fixture.py ``publish``): Ceilometer's VM
meters (``cpu``, ``memory.resident``, each interface's bytes and dropped
packets; guests without balloon statistics) and, as an operator's
collector would, every host's CPU, link, swap-out and available-memory
meters (``--no-host-meters`` leaves the host meters out), polled and
archived every 300 s as Ceilometer does by default, for the strategy's
default 30-minute window. About 5 % of the hosts are hot on CPU, 2 % on their
link, 2 % swap, and on 2 % a starved VM (short of what it expects, its
interfaces dropping packets) sits beside an idle one on a saturated
link. It builds the same Watcher compute model for every strategy and
runs one audit of each:

* ``secmig_hotspot`` (this project),
* ``workload_balance`` (threshold = the same host CPU threshold),
* ``workload_stabilization`` (CPU only; reported as "did not run" when
  it fails).

For each it prints the wall time of the audit (for secmig, the median
of five audits on fresh models; each one's time is printed too), its
CPU time (the strategy's process and Gnocchi's API processes: the work
it costs, whatever the machine lets run in parallel), the Gnocchi HTTP
requests it sent (counted by the server), the migrations proposed and
the hotspots left when the plan is applied (secmig's detection over the
cluster's true loads once the VMs have moved: a host swaps while less
than 10 % of its memory is available, a starved VM gets what it expects
once off a saturated link), then the ratios against secmig. When
Watcher's strategies are left out, it adds secmig's peak memory during
one more audit (Python's allocations, traced) and the largest Gnocchi
answer (bytes) of an audit.

Run from the repository root with the project's virtualenv::

    .venv/bin/python tools/bench/watcher_strategy.py --hosts 50 200
    .venv/bin/python tools/bench/watcher_strategy.py --hosts 1000 \\
        --skip-stabilization-above 200

Gnocchi's file storage holds several files per metric (85,000 metrics at
1,000 hosts): on a slow disk, give it memory (``TMPDIR=/dev/shm``, under
1 GiB at 1,000 hosts). At 10,000 hosts (850,000 metrics) it grew past 10
million files and 5 GiB with a third of the measures still to process:
more files than ``/dev/shm`` allows by default, and more memory than a
24 GiB machine has once each file's kernel memory is counted, while a
disk processes tens of metrics per second. With three VMs per host
(290,000 metrics) it fits: about 5.4 million files at the peak, on a
tmpfs of its own with enough inodes (as root)::

    mount -t tmpfs -o size=20G,nr_inodes=16M secmig-bench /mnt/secmig-bench
    TMPDIR=/mnt/secmig-bench .venv/bin/python \\
        tools/bench/watcher_strategy.py --hosts 10000 --vms-per-host 3 \\
        --skip-builtin-above 1000

Progress goes to standard error; each size's table is printed as soon
as it is measured.

``--skip-builtin-above N`` leaves Watcher's strategies out for sizes
above N hosts (the 1,000-host workload_balance audit takes minutes);
``--skip-stabilization-above N`` leaves out only
``workload_stabilization``.
"""

import argparse
import contextlib
import dataclasses
import datetime
import logging
import os
import random
import statistics
import sys
import time
import tracemalloc
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
from secmig.pki import ca as ca_mod  # noqa: E402
from secmig.pki import keys  # noqa: E402
from tests import gnocchi_fixture as gf  # noqa: E402

#: Ceilometer's default polling interval and archive granularity, and
#: the strategy's default window: six periods.
G = 300
POINTS = 6
CPUS = 16
MEMORY = 65536  # MiB per host
HOST_USED = 2000  # MiB the host itself uses
MB = 1e6
LINK_GBPS = 10.0
LINK = LINK_GBPS * 1e9 / 8
#: A starved VM expects this (bytes/s), gets STARVED on a full link.
EXPECTED = 200 * MB
STARVED = 50 * MB
#: secmig audits per size (median reported): each takes seconds, and a
#: shared two-core machine makes a single one noisy.
AUDITS = 5
PARAMS = dict(window=POINTS * G, granularity=G, stale_after=3 * G,
              min_points=3, link_gbps=LINK_GBPS, max_migrations=10000,
              max_migrations_per_source=5, max_migrations_per_destination=2)
TH = detect.Thresholds(window=POINTS * G, granularity=G, stale_after=3 * G,
                       min_points=3)
#: When the truth after the moves is judged.
NOW_TRUTH = 1_800_000_000.0


@dataclasses.dataclass
class Cluster:
    """The cluster's truth: hosts, guests, and what each guest does."""

    names: list
    guests: list
    kinds: dict


def make_cluster(hosts, per_host, rnd):
    """Guests on quiet hosts, and on hosts hot on CPU, link or memory."""
    names = ['h%05d' % i for i in range(hosts)]
    kinds, guests = {}, []
    for i, name in enumerate(names):
        kind = ('cpu' if i % 20 == 3 else 'net' if i % 50 == 7
                else 'swap' if i % 50 == 11 else 'starve' if i % 50 == 19
                else 'quiet')
        kinds[name] = kind
        for k in range(per_host):
            g = gf.Guest(str(uuid.uuid4()), name, balloon=False,
                         cpu=rnd.uniform(0.2, 0.8),
                         net_in=rnd.uniform(5, 40) * MB,
                         resident=rnd.uniform(1500, 3500), memory_mb=4096)
            if kind == 'cpu':
                g.cpu = rnd.uniform(1.4, 1.6)
            elif kind == 'net':
                g.net_in = LINK * rnd.uniform(0.088, 0.095)
            elif kind == 'swap':
                g.resident, g.memory_mb = rnd.uniform(6000, 6100), 6144
            elif kind == 'starve':
                g.net_in = (LINK * 0.95 - STARVED) / (per_host - 2)
                if k < 2:
                    g.metadata = {'secmig:expected_bandwidth':
                                  str(EXPECTED / 1024)}
                    g.net_in = STARVED if k == 0 else 0.0
                    g.drop_in = 20.0 if k == 0 else 0.0
            g.net_out = g.net_in / 4
            guests.append(g)
    return Cluster(names, guests, kinds)


def host_meters(names, guests, host_meters=True):
    """Each host's meters (:class:`gf.Host`) from its guests' truth."""
    on = {name: [] for name in names}
    for g in guests:
        on[g.host].append(g)
    hosts = []
    for name in names:
        if not host_meters:
            hosts.append(gf.Host(name))
            continue
        resident = sum(g.resident for g in on[name])
        free = MEMORY - HOST_USED - resident
        hosts.append(gf.Host(
            name, cpu_pct=sum(g.cpu for g in on[name]) * 100.0 / CPUS,
            net_in=sum(g.net_in for g in on[name]),
            net_out=sum(g.net_out for g in on[name]),
            swap_out=5.0 if free < MEMORY * 0.1 else 0.0, mem_free=free))
    return hosts


def moved_truth(cluster, moves):
    """The guests as they are once ``moves`` are done.

    A starved VM gets what it expects once its host's link is not
    saturated any more, and drops nothing.
    """
    where = {m.instance: m.destination for m in moves}
    guests = [dataclasses.replace(g, host=where.get(g.id, g.host))
              for g in cluster.guests]
    links = {}
    for g in guests:
        links[g.host] = links.get(g.host, 0.0) + g.net_in
    for g in guests:
        if g.drop_in and links[g.host] < LINK * TH.link_saturated_pct / 100:
            links[g.host] += EXPECTED - g.net_in
            g.net_in, g.drop_in = EXPECTED, 0.0
    return guests


def hotspots_after(cluster, moves, with_host_meters):
    """Hotspots secmig's detection finds in the truth after ``moves``."""
    guests = moved_truth(cluster, moves)
    infos = [hmodel.HostInfo(h, CPUS, LINK, MEMORY) for h in cluster.names]
    vms = [hmodel.VmInfo(g.id, g.host, expected_in=_expected(g),
                         memory_mb=g.memory_mb) for g in guests]

    def flat(value):
        return tuple((NOW_TRUTH - G * k, float(value))
                     for k in range(POINTS, 0, -1))

    vm = {g.id: {'cpu': flat(g.cpu), 'net_in': flat(g.net_in),
                 'net_out': flat(g.net_out), 'drop_in': flat(g.drop_in)}
          for g in guests}
    host = {}
    for h in host_meters(cluster.names, guests, with_host_meters):
        kinds = ('cpu_pct', 'net_in', 'net_out', 'swap_out', 'mem_free')
        host[h.name] = {k: flat(getattr(h, k)) for k in kinds
                        if getattr(h, k) is not None}
    obs = hmodel.Observations(NOW_TRUTH, TH.window, G, vm=vm, host=host)
    return len(detect.detect(infos, vms, obs, TH).hotspots)


def _expected(guest):
    value = guest.metadata.get('secmig:expected_bandwidth')
    return float(value) * 1024 if value else None


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


class SizingClient(object):
    """A real gnocchiclient that notes the size of every answer."""

    def __init__(self, server):
        from gnocchiclient.v1 import client as gclient
        self.client = gclient.Client(session=server.session())
        self.sizes = []
        post = self.client.api.post

        def sized(url, **kwargs):
            response = post(url, **kwargs)
            self.sizes.append(len(response.content))
            return response

        self.client.api.post = sized


def _model(cluster):
    return su.build_model(cluster.names, cluster.guests, node_vcpus=CPUS,
                          node_memory=MEMORY)


def run_secmig(server, site, cluster, now, audits=AUDITS, profile=False):
    """``audits`` audits, each on a fresh model; the last one is returned.

    Returns ``(one measure per audit, moves, strategy, profile)``. The
    first audit of a process verifies the destinations' certificates;
    the decision engine keeps those verdicts for the audits that follow.
    With ``profile``, one more audit traces Python's allocations (its
    peak, bytes) and sizes Gnocchi's answers (the largest, bytes).
    """
    audits_measured = []
    for _ in range(audits):
        strategy = su.make_strategy(site, _model(cluster), server.client(),
                                    now, **PARAMS)
        with measured(server) as box:
            solution = strategy.execute()
        audits_measured.append(box)
    extra = None
    if profile:
        sizing = SizingClient(server)
        traced = su.make_strategy(site, _model(cluster), sizing.client, now,
                                  **PARAMS)
        tracemalloc.start()
        try:
            traced.execute()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        extra = {'peak_bytes': peak, 'largest_answer': max(sizing.sizes),
                 'answers': len(sizing.sizes)}
    return audits_measured, _moves(solution), strategy, extra


def _builtin(cls, server, cluster, params):
    strategy = cls(config=utils.Struct(datasources=['gnocchi']),
                   osc=su.gnocchi_clients(server.client()))
    strategy._compute_model = _model(cluster)
    strategy.input_parameters = utils.Struct(params)
    with measured(server) as box:
        solution = strategy.execute()
    return box, _moves(solution)


def run_workload_balance(server, cluster):
    return _builtin(workload_balance.WorkloadBalance, server, cluster,
                    {'metrics': 'instance_cpu_usage', 'threshold': 80.0,
                     'period': POINTS * G, 'granularity': G})


def run_workload_stabilization(server, cluster):
    cls = workload_stabilization.WorkloadStabilization
    params = {name: spec['default'] for name, spec in
              cls.get_schema()['properties'].items()}
    params.update({'metrics': ['instance_cpu_usage'], 'periods': {
        'instance': POINTS * G, 'compute_node': POINTS * G, 'node': 0},
        'granularity': G})
    return _builtin(cls, server, cluster, params)


def issue_certificates(site, names):
    """Give every host a certificate as secmig's CA issues it.

    The CA's own subject and extensions, signed with its key, but with
    no enrollment token and no entry in the CA's index: enrollment
    rewrites both stores for each host, which at thousands of hosts is
    most of the set-up, and it is not what the benchmark measures. The
    strategy verifies the certificates against the CA and its CRL.
    """
    ca_key = site.pki.ca_key()
    ca_cert = site.pki.ca.cert
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in names:
        cert = ca_mod.sign_host_certificate(
            ca_cert, ca_key, keys.generate_key().public_key(), name, [name],
            ['127.0.0.1'], 0, now, now + datetime.timedelta(days=1))
        with open(os.path.join(site.host_cert_dir, name + '.pem'),
                  'wb') as f:
            f.write(keys.cert_pem(cert))


def progress(message):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), file=sys.stderr,
          flush=True)


def bench(size, per_host, builtin, seed, with_host_meters=True,
          stabilization=True):
    """Measure one cluster size and print its table (before clean-up)."""
    rnd = random.Random(seed)
    cluster = make_cluster(size, per_host, rnd)
    site = su.Site()
    progress('%d hosts x %d VMs: starting Gnocchi' % (size, per_host))
    server = gf.GnocchiServer(metricd_workers=2).start()
    try:
        progress('publishing %d periods of every meter'
                 % (POINTS + 2))
        began = time.monotonic()
        now = time.time()
        gf.publish(server, host_meters(cluster.names, cluster.guests,
                                       with_host_meters),
                   cluster.guests, now, (POINTS + 2) * G, poll=G,
                   granularity=G, wait_timeout=4 * 3600)
        loaded = time.monotonic() - began
        progress('published in %.0f s; secmig_hotspot audits' % loaded)
        issue_certificates(site, cluster.names)
        now += 5
        before = hotspots_after(cluster, [], with_host_meters)
        rows = []
        audits, moves, strategy, extra = run_secmig(
            server, site, cluster, now, profile=not builtin)
        strategy.walls = [a['wall'] for a in audits]
        rows.append(('secmig_hotspot', {
            'wall': statistics.median(strategy.walls),
            'cpu': statistics.median(a['cpu'] for a in audits),
            'requests': audits[-1]['requests']}, len(moves),
            hotspots_after(cluster, moves, with_host_meters)))
        if builtin:
            runners = [('workload_balance', run_workload_balance)]
            if stabilization:
                runners.append(('workload_stabilization',
                                run_workload_stabilization))
            for name, runner in runners:
                progress('%s audit' % name)
                try:
                    box, moves = runner(server, cluster)
                except Exception as e:
                    rows.append((name, None, None,
                                 'did not run: %s: %s'
                                 % (type(e).__name__, str(e)[:80])))
                    continue
                rows.append((name, box, len(moves),
                             hotspots_after(cluster, moves,
                                            with_host_meters)))
        print_table(size, per_host, loaded, before, rows, strategy, extra)
    finally:
        progress('removing Gnocchi\'s data')
        server.stop()
        site.cleanup()


def print_table(size, per_host, loaded, before, rows, strategy=None,
                extra=None):
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
    if extra is not None:
        print('secmig peak memory (traced Python allocations) %.1f MiB; '
              'largest Gnocchi answer %.2f MB of %d answers'
              % (extra['peak_bytes'] / 2 ** 20, extra['largest_answer'] / 1e6,
                 extra['answers']))
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
        bench(size, args.vms_per_host, builtin, args.seed,
              with_host_meters=not args.no_host_meters,
              stabilization=(args.skip_stabilization_above is None
                             or size <= args.skip_stabilization_above))


if __name__ == '__main__':
    main()
