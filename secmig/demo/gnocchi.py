"""A real Gnocchi 4.7 for the demo, the tests and the benchmarks.

:class:`GnocchiServer` starts, in this order: a fresh PostgreSQL database
with a unique name (the indexer), a temporary directory for the ``file``
storage and incoming drivers, ``gnocchi-upgrade``, the Gnocchi WSGI
application served by a threaded :mod:`wsgiref` server in a child process
on 127.0.0.1 (port chosen by the kernel, kept across restarts), and
``gnocchi-metricd`` with a one-second processing delay. ``[api]
auth_mode`` is ``basic``: the user ``admin`` is an administrator.

It needs the ``gnocchi`` executables next to ``sys.executable`` (the
same virtualenv), ``gnocchi[postgresql]``, ``gnocchiclient`` and a
PostgreSQL server reachable with the DSN in ``SECMIG_TEST_PG_DSN``
(default ``postgresql://secmig:secmig@127.0.0.1:5432/postgres``) that may
create databases.

Every wait is bounded and fails with the last output of the process
concerned. ``stop()`` kills only the processes it started (by pid) and
drops only the database it created. The API server writes one line per
HTTP request to an access log, so a test or a benchmark can count the
requests a piece of code really sent (:meth:`GnocchiServer.request_count`).

Run ``python -m secmig.demo.gnocchi serve CONFIG PORTFILE ACCESSLOG PORT``
to serve the API in the foreground: that is what the child process does.
"""

import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

PG_DSN = os.environ.get('SECMIG_TEST_PG_DSN',
                        'postgresql://secmig:secmig@127.0.0.1:5432/postgres')
ADMIN = 'admin'

# Resource types and attributes as Ceilometer creates them (the subset
# secmig reads), plus the host resource type Watcher reads.
RESOURCE_TYPES = {
    'instance': {
        'display_name': {'type': 'string', 'required': True},
        'host': {'type': 'string', 'required': True},
        'flavor_id': {'type': 'string', 'required': True},
        'flavor_name': {'type': 'string', 'required': False},
        'image_ref': {'type': 'string', 'required': False},
        'server_group': {'type': 'string', 'required': False},
    },
    'instance_network_interface': {
        'name': {'type': 'string', 'required': True},
        'instance_id': {'type': 'uuid', 'required': False},
    },
    'nova_compute': {
        'host_name': {'type': 'string', 'required': True},
    },
}


def basic_session(endpoint, user=ADMIN):
    """A keystoneauth session for a Gnocchi with ``auth_mode = basic``."""
    from gnocchiclient import auth
    from keystoneauth1 import session
    return session.Session(
        auth=auth.GnocchiBasicPlugin(user=user, endpoint=endpoint))


class GnocchiFixtureError(Exception):
    """The test Gnocchi could not be started or used."""


def _bin(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        raise GnocchiFixtureError(
            '%s not found next to %s: run the tests with the virtualenv '
            'that has gnocchi installed' % (name, sys.executable))
    return path


def _tail(path, lines=30):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def _dsn_for(dbname):
    base, _, _ = PG_DSN.rpartition('/')
    return '%s/%s' % (base, dbname)


def _admin_sql(statement, dsn=PG_DSN):
    import psycopg2
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as e:
        raise GnocchiFixtureError(
            'PostgreSQL unreachable at %s: %s' % (dsn, e))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


class GnocchiServer(object):
    """One Gnocchi (API + metricd) over its own database and directory."""

    def __init__(self, processing_delay=1, sacks=8, metricd_workers=1,
                 parallel_operations=1, api_processes=None):
        self.processing_delay = processing_delay
        # Like gnocchi-api, which starts uwsgi with 1.5 processes per CPU.
        self.api_processes = api_processes or max(
            1, (os.cpu_count() or 1) * 3 // 2)
        # Gnocchi's thread pool (one thread per metric read) costs more
        # than it saves with the file driver on a small machine: an
        # aggregates request over 500 metrics took 1.7 s with 2 threads
        # and 0.4 s with 1.
        self.parallel_operations = parallel_operations
        self.sacks = sacks
        self.metricd_workers = metricd_workers
        self.workdir = None
        self.dbname = None
        self.port = None
        self.api = None
        self.metricd = None
        self.startup_seconds = None
        self._client = None

    # -- life cycle -----------------------------------------------------

    @property
    def endpoint(self):
        return 'http://127.0.0.1:%d' % self.port

    def start(self):
        began = time.monotonic()
        self.workdir = tempfile.mkdtemp(prefix='secmig-gnocchi-')
        self.dbname = 'secmig_gnocchi_%s' % uuid.uuid4().hex[:12]
        try:
            _admin_sql('CREATE DATABASE %s' % self.dbname)
            self._write_config()
            self._upgrade()
            self.start_api()
            self.start_metricd()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self):
        """Stop what was started; safe to call more than once."""
        self.stop_api()
        self._stop_process('metricd')
        if self.dbname:
            with contextlib.suppress(GnocchiFixtureError, Exception):
                _admin_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)'
                           % self.dbname)
            self.dbname = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _path(self, name):
        return os.path.join(self.workdir, name)

    def _write_config(self):
        storage = self._path('storage')
        os.makedirs(storage)
        lines = [
            '[DEFAULT]',
            'debug = false',
            'parallel_operations = %d' % self.parallel_operations,
            '[indexer]',
            'url = %s' % _dsn_for(self.dbname),
            '[storage]',
            'driver = file',
            'file_basepath = %s' % storage,
            '[incoming]',
            'driver = file',
            'file_basepath = %s' % storage,
            '[api]',
            'auth_mode = basic',
            'operation_timeout = 10',
            '[metricd]',
            'workers = %d' % self.metricd_workers,
            'metric_processing_delay = %d' % self.processing_delay,
            'metric_reporting_delay = -1',
            'metric_cleanup_delay = 3600',
        ]
        with open(self._path('gnocchi.conf'), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def _upgrade(self):
        log = self._path('upgrade.log')
        with open(log, 'w') as out:
            try:
                rc = subprocess.call(
                    [_bin('gnocchi-upgrade'), '--config-file',
                     self._path('gnocchi.conf'),
                     '--sacks-number', str(self.sacks)],
                    stdout=out, stderr=subprocess.STDOUT, timeout=120)
            except subprocess.TimeoutExpired:
                raise GnocchiFixtureError(
                    'gnocchi-upgrade did not finish in 120 s:\n%s'
                    % _tail(log))
        if rc != 0:
            raise GnocchiFixtureError(
                'gnocchi-upgrade failed (%d):\n%s' % (rc, _tail(log)))

    def start_api(self, timeout=60):
        """Start the API process (again); it keeps the port it had."""
        if self.api is not None:
            return
        portfile = self._path('api.port')
        with contextlib.suppress(FileNotFoundError):
            os.unlink(portfile)
        cmd = [sys.executable, '-m', 'secmig.demo.gnocchi', 'serve',
               self._path('gnocchi.conf'), portfile,
               self._path('access.log'), str(self.port or 0),
               str(self.api_processes)]
        self.api = self._spawn(cmd, 'api.log')
        deadline = time.monotonic() + timeout
        while not os.path.exists(portfile):
            self._check_alive('api', deadline, timeout)
            time.sleep(0.05)
        with open(portfile) as f:
            self.port = int(f.read())
        self._wait_http(deadline, timeout)

    def stop_api(self):
        self._stop_process('api')

    def start_metricd(self):
        if self.metricd is None:
            self.metricd = self._spawn(
                [_bin('gnocchi-metricd'), '--config-file',
                 self._path('gnocchi.conf')], 'metricd.log')

    def _spawn(self, cmd, logname):
        out = open(self._path(logname), 'a')
        try:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            out.close()

    def _stop_process(self, name):
        proc = getattr(self, name)
        if proc is None:
            return
        setattr(self, name, None)
        if proc.poll() is not None:
            return
        # metricd forks workers: signal its own process group only.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def _check_alive(self, name, deadline, timeout):
        proc = getattr(self, name)
        log = self._path('%s.log' % name)
        if proc.poll() is not None:
            setattr(self, name, None)
            raise GnocchiFixtureError(
                'Gnocchi %s exited with %s:\n%s'
                % (name, proc.returncode, _tail(log)))
        if time.monotonic() > deadline:
            self._stop_process(name)
            raise GnocchiFixtureError(
                'Gnocchi %s not ready after %d s:\n%s'
                % (name, timeout, _tail(log)))

    def _wait_http(self, deadline, timeout):
        while True:
            try:
                with socket.create_connection(('127.0.0.1', self.port), 1):
                    return
            except OSError:
                self._check_alive('api', deadline, timeout)
                time.sleep(0.05)

    # -- clients and counters ---------------------------------------------

    def session(self):
        """A keystoneauth session authenticated as the admin user."""
        return basic_session(self.endpoint)

    def client(self):
        """A shared gnocchiclient v1 client (admin)."""
        if self._client is None:
            from gnocchiclient.v1 import client
            self._client = client.Client(session=self.session())
        return self._client

    def request_count(self):
        """HTTP requests the API has answered since it was first started."""
        try:
            with open(self._path('access.log'), 'rb') as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    @contextlib.contextmanager
    def counting(self):
        """Yield a dict whose ``requests`` is set to the requests served."""
        box = {'requests': None}
        before = self.request_count()
        yield box
        box['requests'] = self.request_count() - before

    # -- data helpers -------------------------------------------------------

    def create_archive_policy(self, name, granularity=60, points=1440,
                              methods=('mean', 'rate:mean')):
        """Create (or keep) an archive policy with one definition."""
        from gnocchiclient import exceptions
        try:
            return self.client().archive_policy.create({
                'name': name,
                'aggregation_methods': list(methods),
                'back_window': 0,
                'definition': [{'granularity': '%ds' % granularity,
                                'points': points}],
            })
        except exceptions.ArchivePolicyAlreadyExists:
            return self.client().archive_policy.get(name)

    def create_resource_types(self, types=None):
        """Create Ceilometer's resource types (those missing)."""
        from gnocchiclient import exceptions
        for name, attrs in (types or RESOURCE_TYPES).items():
            with contextlib.suppress(exceptions.ResourceTypeAlreadyExists):
                self.client().resource_type.create(
                    {'name': name, 'attributes': attrs})

    def create_resources(self, resource_type, resources, workers=4):
        """Create resources in parallel; each item is a resource dict.

        A ``metrics`` key maps metric names to an archive policy name, as
        Gnocchi's resource API accepts. Gnocchi has no bulk resource
        creation, so this sends one request per resource.
        """
        client = self.client()

        def create(res):
            return client.resource.create(resource_type, res)

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(create, resources))

    def insert_resources(self, resource_type, resources):
        """Insert resources and their metrics straight into the indexer.

        The same rows Gnocchi's resource API writes (``resource``, the
        resource type's attribute table, ``metric``), in one transaction:
        about a thousand times faster than one API request per resource,
        for clusters of thousands of VMs. Each item is a resource dict as
        :meth:`create_resources` takes; ``metrics`` maps a metric name to
        ``{'archive_policy_name': ...}``. Returns the resource dicts with
        their Gnocchi ``id`` (a UUID derived from the original id, as the
        API derives it for the ``admin`` creator).
        """
        import psycopg2
        from psycopg2 import extras

        from gnocchi import utils as gutils
        conn = psycopg2.connect(_dsn_for(self.dbname), connect_timeout=10)
        try:
            with conn, conn.cursor() as cur:
                cur.execute('SELECT tablename, attributes FROM resource_type '
                            'WHERE name = %s', (resource_type,))
                table, attributes = cur.fetchone()
                if isinstance(attributes, str):
                    attributes = json.loads(attributes)
                names = sorted(attributes)
                now = datetime.datetime.utcnow()
                rows, attrs, metrics, created = [], [], [], []
                for res in resources:
                    original = str(res['id'])
                    rid = str(gutils.ResourceUUID(original, ADMIN))
                    rows.append((rid, ADMIN, now, now, original,
                                 resource_type))
                    attrs.append(tuple(res.get(n) for n in names) + (rid,))
                    for metric, spec in res.get('metrics', {}).items():
                        metrics.append((str(uuid.uuid4()),
                                        spec['archive_policy_name'], ADMIN,
                                        rid, metric, 'active', False, now))
                    created.append(dict(res, id=rid,
                                        original_resource_id=original))
                extras.execute_values(
                    cur, 'INSERT INTO resource (id, creator, started_at, '
                    'revision_start, original_resource_id, type) VALUES %s',
                    rows, page_size=5000)
                extras.execute_values(
                    cur, 'INSERT INTO %s (%s) VALUES %%s'
                    % (table, ', '.join(names + ['id'])), attrs,
                    page_size=5000)
                extras.execute_values(
                    cur, 'INSERT INTO metric (id, archive_policy_name, '
                    'creator, resource_id, name, status, '
                    'needs_raw_data_truncation, last_measure_timestamp) '
                    'VALUES %s', metrics, page_size=5000)
        finally:
            conn.close()
        return created

    def add_host(self, hostname, metrics=None):
        """A ``nova_compute`` resource named as Ceilometer and Watcher do."""
        return {'id': '%s_%s' % (hostname, hostname),
                'host_name': hostname, 'metrics': dict(metrics or {})}

    def post_measures(self, measures, batch=2000):
        """Post measures in batches: ``{resource_id: {metric: [(ts, v)]}}``.

        Timestamps may be datetimes or ISO strings. Metrics must exist.
        """
        client = self.client()
        payload = {}
        count = 0
        for rid, metrics in measures.items():
            payload[rid] = {
                name: [{'timestamp': _iso(ts), 'value': value}
                       for ts, value in points]
                for name, points in metrics.items()}
            count += sum(len(p) for p in metrics.values())
            if count >= batch:
                client.metric.batch_resources_metrics_measures(payload)
                payload, count = {}, 0
        if payload:
            client.metric.batch_resources_metrics_measures(payload)

    def backlog(self):
        """Measures waiting for metricd."""
        status = self.client().status.get(details=False)
        return status['storage']['summary']['measures']

    def wait_processed(self, timeout=120):
        """Block until metricd has processed every posted measure.

        Then refresh the indexer's planner statistics, as PostgreSQL's
        autovacuum does after a bulk load. Where autovacuum is off (CI
        machines turn it off), a database loaded with thousands of
        resources keeps the estimates of an empty one, and every search
        joins the whole metric table.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = self.backlog()
            if left == 0:
                _admin_sql('ANALYZE', _dsn_for(self.dbname))
                return
            if self.metricd is None or self.metricd.poll() is not None:
                raise GnocchiFixtureError(
                    'gnocchi-metricd is not running; %d measures left:\n%s'
                    % (left, _tail(self._path('metricd.log'))))
            if time.monotonic() > deadline:
                raise GnocchiFixtureError(
                    'metricd left %d measures unprocessed after %d s:\n%s'
                    % (left, timeout, _tail(self._path('metricd.log'))))
            time.sleep(0.2)


@dataclasses.dataclass
class SimVm:
    """A simulated VM: per-second rates, constant or one per period.

    ``cpu`` in cores, ``net_in``/``net_out`` in bytes/s summed over its
    ``interfaces`` (split evenly), ``swap_out`` in MiB/s. ``measured``
    False creates the resources without any measure (missing data).
    """

    id: str
    host: str
    cpu: object = 0.1
    net_in: object = 0.0
    net_out: object = 0.0
    swap_out: object = 0.0
    interfaces: int = 1
    measured: bool = True


RATE_POLICY = 'secmig-test-rate'
GAUGE_POLICY = 'secmig-test-gauge'


def load_cluster(server, hosts, vms, points=10, granularity=60,
                 host_cpu_pct=None, now=None, bulk=True, wait_timeout=120):
    """Create a cluster's resources and measures as Ceilometer would.

    ``hosts`` are host names (``nova_compute`` resources), ``vms``
    :class:`SimVm`. Cumulative meters (``cpu`` in ns, network bytes,
    ``memory.swap.out`` in MiB) get ``points + 1`` samples one granularity
    apart, so that their rates give ``points`` periods ending at the
    current period. ``host_cpu_pct`` maps a host to a gauge value for
    ``compute.node.cpu.percent``. ``bulk`` writes the resources straight
    into the indexer (:meth:`GnocchiServer.insert_resources`) instead of
    through the API. Waits up to ``wait_timeout`` seconds for metricd to
    process every measure. Returns the aligned end time (epoch s).
    """
    server.create_archive_policy(RATE_POLICY, granularity)
    server.create_archive_policy(GAUGE_POLICY, granularity,
                                 methods=('mean',))
    server.create_resource_types()
    host_cpu_pct = host_cpu_pct or {}
    rate = {'archive_policy_name': RATE_POLICY}
    gauge = {'archive_policy_name': GAUGE_POLICY}
    create = server.insert_resources if bulk else server.create_resources
    create('nova_compute', [
        server.add_host(h, {'compute.node.cpu.percent': gauge}
                        if h in host_cpu_pct else {}) for h in hosts])
    create('instance', [
        {'id': vm.id, 'display_name': 'vm-%s' % vm.id[:8],
         'host': vm.host, 'flavor_id': 'm1',
         'metrics': {'cpu': rate, 'memory.swap.out': gauge}}
        for vm in vms])
    nics = []
    for vm in vms:
        for n in range(vm.interfaces):
            nics.append({'id': 'instance-%s-tap%d' % (vm.id, n),
                         'name': 'tap%d' % n, 'instance_id': vm.id,
                         'metrics': {'network.incoming.bytes': rate,
                                     'network.outgoing.bytes': rate}})
    created = create('instance_network_interface', nics)
    nic_ids = {(r['instance_id'], r['name']): r['id'] for r in created}

    end, stamps = sample_times(points, granularity, now)
    measures = {}
    for vm in (v for v in vms if v.measured):
        measures.update(vm_measures(
            vm, stamps, granularity,
            lambda n, vm=vm: nic_ids[(vm.id, 'tap%d' % n)]))
    for host, pct in host_cpu_pct.items():
        measures['%s_%s' % (host, host)] = {
            'compute.node.cpu.percent': [
                (_utc(t), v) for t, v in zip(stamps[1:],
                                             _per_period(pct, points))]}
    server.post_measures(measures)
    server.wait_processed(timeout=wait_timeout)
    return end


def sample_times(points, granularity, now=None):
    """``(end, stamps)``: ``points + 1`` sample times ending at ``end``."""
    end = (now or time.time()) // granularity * granularity
    return end, [end - granularity * (points + 1 - k)
                 for k in range(points + 1)]


def vm_measures(vm, stamps, granularity, nic_id):
    """Ceilometer's cumulative samples of one :class:`SimVm`.

    Returns ``{resource id: {metric: [(datetime, value)]}}``: the
    instance's ``cpu`` (ns) and ``memory.swap.out`` (MiB), and each
    interface's byte counters under ``nic_id(n)``.
    """
    measures = {vm.id: {
        'cpu': cumulative_samples(stamps, vm.cpu, granularity * 1e9),
        'memory.swap.out': cumulative_samples(stamps, vm.swap_out,
                                              granularity)}}
    for n in range(vm.interfaces):
        measures[nic_id(n)] = {
            'network.incoming.bytes': cumulative_samples(
                stamps, vm.net_in, granularity / vm.interfaces),
            'network.outgoing.bytes': cumulative_samples(
                stamps, vm.net_out, granularity / vm.interfaces)}
    return measures


def _per_period(value, points):
    if isinstance(value, (int, float)):
        return [float(value)] * points
    if len(value) != points:
        raise GnocchiFixtureError('%d values for %d periods'
                                  % (len(value), points))
    return [float(v) for v in value]


def cumulative_samples(stamps, rate, factor):
    """Counter samples whose per-period increase is ``rate * factor``."""
    total, samples = 0.0, [(_utc(stamps[0]), 0.0)]
    for t, r in zip(stamps[1:], _per_period(rate, len(stamps) - 1)):
        total += r * factor
        samples.append((_utc(t), total))
    return samples


def _utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def _iso(ts):
    if isinstance(ts, datetime.datetime):
        return ts.isoformat()
    return ts


# -- the API child process ----------------------------------------------------

def serve(config, portfile, accesslog, port, processes=1):
    """Serve the Gnocchi API until SIGTERM (runs in the child process).

    ``processes`` processes accept on one listening socket, each with its
    own application and database connections (forked before either
    exists), one request at a time; a single process answers with a
    thread per request. Every process of the group ends on SIGTERM.
    """
    import socketserver
    from wsgiref import simple_server

    class Handler(simple_server.WSGIRequestHandler):
        def log_message(self, *args):
            pass

    class Server(simple_server.WSGIServer):
        allow_reuse_address = True

    class ThreadingServer(socketserver.ThreadingMixIn, Server):
        daemon_threads = True

    # Several processes each answer one request at a time, so that a
    # busy process leaves the next connection to an idle one (threads in
    # one process would share its interpreter lock).
    httpd = simple_server.make_server(
        '127.0.0.1', port, None, handler_class=Handler,
        server_class=ThreadingServer if processes == 1 else Server)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    children = []  # in the parent; None in a child
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            children = None
            break
        children.append(pid)

    from gnocchi.rest import app
    from gnocchi import service

    conf = service.prepare_service(
        args=['--config-file', config], log_to_std=True)
    application = app.load_app(conf)
    log = open(accesslog, 'a', buffering=1)

    def counted(environ, start_response):
        # Logged before the answer is sent, so that a client that got its
        # answer always finds its request in the log. One short write to
        # a file opened for appending: the processes' lines do not mix.
        log.write(json.dumps([environ['REQUEST_METHOD'],
                              environ.get('PATH_INFO', '')]) + '\n')
        return application(environ, start_response)

    httpd.set_app(counted)
    if children is None:
        httpd.serve_forever()
        return
    tmp = portfile + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(httpd.server_port))
    os.rename(tmp, portfile)
    try:
        httpd.serve_forever()
    finally:
        # The parent ends last, so that once it is reaped no process
        # holds the port any more.
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


if __name__ == '__main__':
    if len(sys.argv) != 7 or sys.argv[1] != 'serve':
        sys.exit('usage: %s serve CONFIG PORTFILE ACCESSLOG PORT PROCESSES'
                 % sys.argv[0])
    serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
          int(sys.argv[6]))
