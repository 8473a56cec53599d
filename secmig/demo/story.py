"""``secmig demo``: the whole story, step by step, with a summary.

Seven steps, each printed as it runs and judged against what it should
show; :meth:`Story.run` returns the results and the command exits
non-zero if any step did not behave as shown:

1. ``secmig pki``: a CA, three enrolled computes, one host enrolled then
   revoked, one host never enrolled;
2. Nova in-process (:mod:`secmig.nova.cloud`) with the secmig filter and
   driver, five VMs (three on the host that will be hot);
3. Ceilometer-like metrics with a CPU hotspot, in a real Gnocchi when
   PostgreSQL is reachable, else in the embedded store;
4. the Watcher strategy, in a separate process
   (:mod:`secmig.watcher.demo_step`), finds the hotspot and proposes
   migrations, which run through Nova's API;
5. a tenant manager's request and forced migrations (2.30) to the
   unenrolled and to the revoked host are refused, with their reasons;
6. one real QEMU migration over TLS with the same CA's certificates;
7. every migration's audit trail, and each journal verified.

Nova is imported in this process; Watcher only in the child process.
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time

from secmig.demo import metrics as metrics_mod
from secmig.demo import pki as pki_mod
from secmig.pki import host as host_files

ENROLLED = ('compute1', 'compute2', 'compute3')
REVOKED = 'revoked'
UNENROLLED = 'rogue'
HOT = 'compute1'
#: VMs per host at the start: the hot host gets three.
LAYOUT = (('compute1', 3), ('compute2', 1), ('compute3', 1))
#: vCPUs of the hot host's VMs (the fake libvirt hosts have 16, the
#: project's default quota 20): large and busy, their 4.8 cores each
#: make the host 90 % busy. The other VMs have 1 vCPU.
HOT_VCPUS = 5
HOT_CPU = 4.8
GRANULARITY = 60
POINTS = 10
STRATEGY_PARAMS = dict(window=POINTS * GRANULARITY, granularity=GRANULARITY,
                       stale_after=3 * GRANULARITY, min_points=3,
                       link_gbps=1.0)
WATCHER_CREDENTIALS = {'user_id': 'watcher', 'user_name': 'watcher',
                       'user_domain_id': 'default',
                       'project_id': 'service', 'roles': ['service']}
WATCHER_TIMEOUT = 180

#: The cloud's migration policy: admins and the Watcher service user may
#: migrate; project managers may not (Nova would let them).
POLICY = """\
version: 1
rules:
  admin: "role:admin"
  project_manager: "role:manager and project_id:%(target.project_id)s"
  watcher_service: >-
    role:service and user_name:watcher and user_domain_id:default
rbac:
  api: "rule:admin"
  watcher: "rule:watcher_service"
automatic:
  enabled: true
  identify: "rule:watcher_service"
mac:
  levels:
    public: 0
    internal: 1
    secret: 3
  default_level: public
transport:
  encryption: required
  post_copy: forbidden
  max_bandwidth_mib: 500
"""


@dataclasses.dataclass
class Result:
    number: int
    title: str
    status: str = 'FAILED'   # OK, FAILED or SKIPPED
    summary: str = ''


class StepFailed(Exception):
    """A step did not behave as it should; the message says how."""


class Story:
    """Run the demo in ``workdir``.

    :param metrics: ``auto`` (Gnocchi if PostgreSQL answers, else
        embedded), ``gnocchi`` or ``embedded``.
    :param qemu: run the QEMU step when qemu-system-x86_64 exists.
    """

    def __init__(self, workdir, metrics='auto', qemu=True, out=None):
        self.workdir = workdir
        self.metrics = metrics
        self.qemu = qemu
        self.out = out or sys.stdout
        self.results = []
        self.cloud = None
        self.gnocchi = None
        self.site = None
        self.servers = {}
        self.migrations = []

    # -- output -----------------------------------------------------------

    def say(self, text='', indent=4):
        print(' ' * indent + text if text else '', file=self.out, flush=True)

    def run(self):
        os.makedirs(self.workdir, exist_ok=True)
        self._log_to_file()
        steps = [
            ('Certificates: a CA and enrolled hosts (secmig pki)', self.pki),
            ('Nova in-process with the secmig filter and driver', self.nova),
            ('Metrics with a hotspot', self.metrics_step),
            ('Watcher strategy proposes, Nova migrates', self.watcher),
            ('Requests that must be refused', self.refusals),
            ('A real QEMU migration over TLS', self.qemu_step),
            ('Audit trail, per migration, verified', self.audit),
        ]
        try:
            for number, (title, step) in enumerate(steps, 1):
                self.results.append(self._run_step(number, title, step))
        finally:
            self._stop()
        self._summary()
        return self.results

    def _run_step(self, number, title, step):
        result = Result(number, title)
        self.say('[%d/7] %s' % (number, title), indent=0)
        began = time.monotonic()
        try:
            outcome = step()
        except StepFailed as e:
            result.summary = str(e)
        except Exception as e:  # reported, and the demo goes on
            logging.getLogger(__name__).exception("step %d", number)
            result.summary = '%s: %s' % (type(e).__name__, e)
        else:
            result.status, result.summary = outcome
        self.say('-> %s: %s (%.1f s)' % (result.status, result.summary,
                                         time.monotonic() - began))
        # The summary keeps the first line; the step showed the rest.
        result.summary = result.summary.splitlines()[0]
        self.say()
        return result

    def _summary(self):
        self.say('Summary', indent=0)
        for r in self.results:
            self.say('%d. %-7s %s: %s' % (r.number, r.status, r.title,
                                          r.summary), indent=2)
        failed = [r for r in self.results if r.status == 'FAILED']
        self.say('secmig demo: %s (files and logs in %s)' % (
            'every step behaved as shown' if not failed else
            '%d step(s) FAILED' % len(failed), self.workdir), indent=0)

    def _log_to_file(self):
        handler = logging.FileHandler(os.path.join(self.workdir, 'demo.log'))
        handler.setFormatter(logging.Formatter(
            '%(asctime)s %(levelname)s %(name)s %(message)s'))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)

    def _stop(self):
        if self.cloud is not None:
            # Nova logs each thread pool's shutdown at INFO on stderr.
            logging.getLogger('nova').setLevel(logging.WARNING)
            self.cloud.stop()
            self.cloud = None
        if self.gnocchi is not None:
            self.gnocchi.stop()
            self.gnocchi = None

    # -- 1. certificates ------------------------------------------------

    def pki(self):
        site = self.site = pki_mod.CliPKI(os.path.join(self.workdir, 'pki'))
        for name in ENROLLED + (REVOKED,):
            site.enroll(name, clearance=1)
        site.revoke(REVOKED)
        for command in site.commands[:6]:
            self.say('$ ' + command)
        self.say('... (%d secmig pki commands in all)' % len(site.commands))
        expected = {name: True for name in ENROLLED}
        expected[REVOKED] = False
        for name, ok in sorted(expected.items()):
            valid, text = site.verify(name)
            self.say('secmig pki verify %s: %s' % (name, text))
            if valid != ok:
                raise StepFailed('%s: expected %s, got: %s' % (
                    name, 'valid' if ok else 'invalid', text))
        if os.path.exists(os.path.join(site.cert_dir(UNENROLLED))):
            raise StepFailed('%s has a certificate directory' % UNENROLLED)
        self.say('%s: never enrolled, no certificate' % UNENROLLED)
        return 'OK', ('CA created; %s enrolled; %s revoked; %s unenrolled'
                      % (', '.join(ENROLLED), REVOKED, UNENROLLED))

    # -- 2. Nova --------------------------------------------------------

    def nova(self):
        if self.site is None:
            raise StepFailed('no certificates (step 1 failed)')
        policy = os.path.join(self.workdir, 'policy-source.yaml')
        with open(policy, 'w') as f:
            f.write(POLICY)
        # Nova and eventlet print import-time warnings: keep them in the
        # log file, not on the terminal.
        with open(os.path.join(self.workdir, 'demo.log'), 'a') as log, \
                contextlib.redirect_stderr(log):
            from secmig.nova import cloud
        hosts = list(ENROLLED) + [UNENROLLED, REVOKED]
        self.cloud = cloud.DemoCloud(self.site, self.workdir, policy, hosts,
                                     unenrolled=[UNENROLLED])
        self.cloud.start()
        drivers = {h: type(self.cloud.computes[h].driver).__name__
                   for h in hosts}
        self.say('computes: %s' % ', '.join(
            '%s (%s)' % (h, d) for h, d in drivers.items()))
        self.say('scheduler filters: ...,SecureMigrationFilter; libvirt: '
                 'native TLS, scheme tls')
        if set(drivers.values()) != {'SecureLibvirtDriver'}:
            raise StepFailed('secmig driver not loaded: %s' % drivers)
        flavors = {HOT: self.cloud.flavor(HOT_VCPUS)}
        small = self.cloud.flavor(1)
        n = 0
        for host, count in LAYOUT:
            for _ in range(count):
                n += 1
                server = self.cloud.boot(host, 'vm%d' % n,
                                         flavors.get(host, small))
                self.servers[server['id']] = server
        placement = {}
        for sid, server in self.servers.items():
            placement.setdefault(self.cloud.host_of(sid), []).append(
                server['name'])
        for host in hosts:
            self.say('%-9s %s' % (host, ', '.join(placement.get(host, []))
                                  or '-'))
        return 'OK', ('API, conductor, scheduler and %d computes; %d VMs '
                      'booted' % (len(hosts), len(self.servers)))

    # -- 3. metrics -----------------------------------------------------

    def metrics_step(self):
        if not self.servers:
            raise StepFailed('no VMs (step 2 failed)')
        placed = [(sid, self.cloud.host_of(sid)) for sid in self.servers]
        self.sim_vms = metrics_mod.demo_vms(placed, HOT, hot_cpu=HOT_CPU)
        self.hosts = list(ENROLLED) + [UNENROLLED, REVOKED]
        self.now = time.time()
        store = self.metrics
        why = ''
        if store == 'auto':
            store, why = self._choose_store()
        if store == 'gnocchi':
            from secmig.demo import gnocchi
            self.gnocchi = gnocchi.GnocchiServer().start()
            gnocchi.load_cluster(self.gnocchi, self.hosts, self.sim_vms,
                                 points=POINTS, granularity=GRANULARITY,
                                 now=self.now, bulk=False)
            self.metric_spec = {'store': 'gnocchi',
                                'endpoint': self.gnocchi.endpoint}
            label = metrics_mod.LABEL_GNOCCHI + ' at ' + self.gnocchi.endpoint
        else:
            self.metric_spec = {
                'store': 'embedded', 'hosts': self.hosts,
                'vms': [dataclasses.asdict(v) for v in self.sim_vms],
                'points': POINTS, 'granularity': GRANULARITY,
                'now': self.now}
            label = metrics_mod.LABEL_EMBEDDED + why
        self.say('store: ' + label)
        for host in ENROLLED:
            cores = sum(v.cpu for v in self.sim_vms if v.host == host)
            self.say('%-9s %4.1f cores busy (of 16) over the last %d min'
                     % (host, cores, POINTS * GRANULARITY // 60))
        return 'OK', 'CPU hotspot on %s; store: %s' % (HOT, label)

    def _choose_store(self):
        from secmig.demo import gnocchi
        try:
            with socket.create_connection(('127.0.0.1', 5432), 2):
                pass
        except OSError as e:
            return 'embedded', ' (PostgreSQL unreachable: %s)' % e
        try:
            gnocchi._bin('gnocchi-upgrade')
        except gnocchi.GnocchiFixtureError as e:
            return 'embedded', ' (%s)' % e
        return 'gnocchi', ''

    # -- 4. Watcher and Nova --------------------------------------------

    def watcher(self):
        if not getattr(self, 'metric_spec', None):
            raise StepFailed('no metrics (step 3 failed)')
        result = self._run_watcher()
        for h in result['hotspots']:
            self.say('hotspot: %s on %s' % (h['condition'], h['host']))
        proposed = [a['input_parameters'] for a in result['actions']
                    if a['action_type'] == 'migrate']
        for nop in (a for a in result['actions']
                    if a['action_type'] == 'nop'):
            message = nop['input_parameters']['message']
            if message.get('secmig') == 'report':
                self.say('report: %s' % json.dumps(message,
                                                   sort_keys=True)[:300])
        if not proposed:
            raise StepFailed('the strategy proposed no migration')
        api = self.cloud.client('watcher', ['admin', 'service'])
        for p in proposed:
            server = self.servers[p['resource_id']]
            self.say('proposed: %s %s -> %s; running through Nova...' % (
                server['name'], p['source_node'], p['destination_node']))
            self.cloud.live_migrate(api, server, p['destination_node'])
            status = self.cloud.wait_migration(server)
            host = self.cloud.host_of(server['id'])
            self.migrations.append((server, p['source_node'],
                                    p['destination_node'], status, host))
            self.say('  migration %s; %s now on %s'
                     % (status, server['name'], host))
            if status != 'completed' or host != p['destination_node']:
                raise StepFailed('%s: migration %s, on %s' % (
                    server['name'], status, host))
        return 'OK', ('%d hotspot(s) found in %d metric requests; %d '
                      'migration(s) proposed and completed through Nova'
                      % (len(result['hotspots']), result['requests'],
                         len(proposed)))

    def _run_watcher(self):
        trust = os.path.join(self.site.base_dir, 'controller')
        certs = os.path.join(self.workdir, 'host-certs')
        os.makedirs(certs, exist_ok=True)
        for host in self.site.hosts:
            shutil.copy(os.path.join(self.site.cert_dir(host),
                                     host_files.SERVER_CERT),
                        os.path.join(certs, host + '.pem'))
        spec = {
            'hosts': self._hypervisors(),
            'vms': [self._vm(sid) for sid in self.servers],
            'metrics': self.metric_spec,
            'secmig': {'cert_dir': trust, 'host_cert_dir': certs,
                       'policy_file': self.cloud.policy_file},
            'credentials': WATCHER_CREDENTIALS,
            'params': STRATEGY_PARAMS, 'now': self.now}
        path_in = os.path.join(self.workdir, 'watcher-input.json')
        path_out = os.path.join(self.workdir, 'watcher-actions.json')
        with open(path_in, 'w') as f:
            json.dump(spec, f, indent=1)
        self.say('$ python -m secmig.watcher.demo_step %s %s'
                 % (path_in, path_out))
        log = os.path.join(self.workdir, 'watcher-step.log')
        with open(log, 'w') as err:
            rc = subprocess.call(
                [sys.executable, '-m', 'secmig.watcher.demo_step', path_in,
                 path_out], stdin=subprocess.DEVNULL, stdout=err,
                stderr=subprocess.STDOUT, timeout=WATCHER_TIMEOUT)
        if rc != 0:
            with open(log) as f:
                tail = f.read()[-1500:]
            raise StepFailed('the Watcher step exited with %d:\n%s'
                             % (rc, tail))
        with open(path_out) as f:
            return json.load(f)

    def _hypervisors(self):
        """Hosts as Nova reports them (vCPUs, memory, disk)."""
        api = self.cloud.client('admin', ['admin'], '2.87')
        hosts = []
        for h in api.api_get('/os-hypervisors/detail').body['hypervisors']:
            hosts.append({'name': h['service']['host'], 'vcpus': h['vcpus'],
                          'memory_mb': h['memory_mb'],
                          'disk_gb': h['local_gb']})
        return hosts

    def _vm(self, sid):
        server = self.cloud.api.get_server(sid)
        vcpus, ram, disk, extra = self.cloud.flavor_of(server)
        return {'id': sid, 'name': server['name'], 'vcpus': vcpus,
                'memory_mb': ram, 'disk_gb': disk, 'extra_specs': extra,
                'project_id': server['tenant_id'],
                'host': server['OS-EXT-SRV-ATTR:host']}

    # -- 5. refusals ----------------------------------------------------

    def refusals(self):
        if self.cloud is None or not self.servers:
            raise StepFailed('no cloud (step 2 failed)')
        server = next(s for s in self.servers.values()
                      if self.cloud.host_of(s['id']) == HOT)
        manager = self.cloud.client('manager', ['reader', 'member',
                                                'manager'], '2.30')
        admin = self.cloud.client('admin', ['admin'], '2.30')
        cases = [
            ('tenant manager asks to live-migrate %s' % server['name'],
             manager, None, False, '(rbac_denied)'),
            ('admin forces %s to %s (2.30, scheduler bypassed)'
             % (server['name'], UNENROLLED), admin, UNENROLLED, True,
             '(host_identity_unavailable)'),
            ('admin forces %s to %s (2.30, scheduler bypassed)'
             % (server['name'], REVOKED), admin, REVOKED, True,
             '(revoked)'),
        ]
        problems = []
        for what, api, host, force, code in cases:
            status, message = self.cloud.refusal_of(api, server, host, force)
            where = self.cloud.host_of(server['id'])
            self.say('%s: HTTP %s' % (what, status))
            self.say('  %s' % message, indent=4)
            if status != 400 or code not in (message or '') or where != HOT:
                problems.append('%s: HTTP %s, %s, VM on %s'
                                % (what, status, message, where))
        if problems:
            raise StepFailed('; '.join(problems))
        return 'OK', ('%d requests refused with their reasons; the VM '
                      'stayed on %s' % (len(cases), HOT))

    # -- 6. QEMU --------------------------------------------------------

    def qemu_step(self):
        from secmig.demo import qemu
        if not self.qemu:
            return 'SKIPPED', 'skipped (--skip-qemu)'
        if qemu.qemu_binary() is None:
            return 'SKIPPED', ('qemu-system-x86_64 not installed '
                               '(apt-get install qemu-system-x86)')
        if self.site is None:
            raise StepFailed('no certificates (step 1 failed)')
        workdir = os.path.join(self.workdir, 'qemu')
        os.makedirs(workdir, exist_ok=True)
        src, dst = ENROLLED[0], ENROLLED[1]
        self.say('source %s, destination %s: tls-creds-x509 over %s, '
                 'verify-peer=on' % (src, dst, self.site.base_dir))
        info, incoming = qemu.encrypted_migration(
            workdir, self.site.cert_dir(src), self.site.cert_dir(dst), dst)
        ram = info.get('ram', {})
        self.say('source: %s, %.1f MiB sent in %s ms; destination: %s' % (
            info.get('status'), ram.get('transferred', 0) / 2 ** 20,
            info.get('total-time'), incoming))
        if info.get('status') != 'completed' or incoming != 'completed':
            raise StepFailed('source %s (%s), destination %s' % (
                info.get('status'), info.get('error-desc'), incoming))
        return 'OK', ('guest RAM migrated %s -> %s over TLS with the '
                      "demo CA's certificates" % (src, dst))

    # -- 7. audit -------------------------------------------------------

    def audit(self):
        if self.cloud is None:
            raise StepFailed('no cloud (step 2 failed)')
        journals = {h: self.cloud.journal(h) for h in
                    list(ENROLLED) + [UNENROLLED, REVOKED]
                    if os.path.exists(self.cloud.journal(h))}
        by_migration = {}
        for host, path in journals.items():
            with open(path) as f:
                for line in f:
                    body = json.loads(line).get('body', {})
                    if body.get('migration_id'):
                        by_migration.setdefault(body['migration_id'],
                                                set()).add(host)
        for migration, hosts in sorted(by_migration.items()):
            self.say('migration %s:' % migration)
            for host in sorted(hosts):
                _, out, _ = pki_mod.run_cli('audit', 'show', journals[host],
                                            '--migration', migration)
                for line in out.splitlines():
                    self.say('%-9s %s' % (host, _short(line)), indent=6)
        problems = []
        for host, path in sorted(journals.items()):
            status, out, err = pki_mod.run_cli(
                'audit', 'verify', path, '--ca', self.site.ca_cert_path)
            self.say('secmig audit verify %s: %s' % (
                os.path.basename(path), (out + err).strip().split(': ')[-1]))
            if status != 0:
                problems.append('%s: %s' % (host, (out + err).strip()))
        for server, src, dst, _, _ in self.migrations:
            steps = _steps(journals.get(dst), server['id'])
            if 'activated' not in steps:
                problems.append('%s: no "activated" record on %s'
                                % (server['name'], dst))
        if problems:
            raise StepFailed('; '.join(problems))
        return 'OK', ('%d migration(s) on record in %d journals; every '
                      'journal intact' % (len(by_migration), len(journals)))


def _steps(path, instance):
    if not path:
        return []
    with open(path) as f:
        bodies = [json.loads(line).get('body', {}) for line in f]
    return [b.get('step') for b in bodies
            if b.get('instance_uuid') == instance]


def _short(line):
    """An ``audit show`` line without the record id and instance."""
    line = line.split(' id=')[0]
    return ' '.join(part for part in line.split()
                    if not part.startswith(('instance=', 'migration=')))
