"""Driving the one-machine cloud as its users do.

The cloud is started by ``tools/cloud/cloud.py up`` and described in
``cloud.json``. :class:`CloudDriver` reaches it the way an operator or a
tenant does: Keystone tokens, Nova's API with a microversion, the
compute hosts' own tools (``virsh``, ``secmig``) run inside each host's
namespace. The cloud tier's tests (``tests/cloud``) and the demo
(``demo.py``) share it.
"""

import json
import os
import re
import subprocess
import time

import api
import hosts as hosts_mod

STATE = os.environ.get('SECMIG_CLOUD_DIR', '/var/lib/secmig-cloud')
JOURNAL = '/var/lib/secmig/audit/journal.jsonl'
TICK = re.compile(r'^secmig-guest: tick (\d+) ', re.M)
#: Bounds of the waits (TCG guests on two shared cores are slow).
BOOT_TIMEOUT = 300
MIGRATION_TIMEOUT = 300


def describe():
    """The running cloud's ``cloud.json``; fails clearly without one."""
    path = os.path.join(STATE, 'cloud.json')
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise AssertionError(
            'no cloud is running (%s is missing): start it with '
            '"tools/run-tests.sh cloud" or "tools/cloud/cloud.py up"'
            % path) from None


def wait(predicate, what, timeout, interval=1.0):
    """Poll until ``predicate()`` returns a true value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %d s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


class CloudDriver:
    """Sessions, servers, migrations and hosts of the running cloud.

    Class-level, so that a test class can share guests among its tests:
    call :meth:`connect` first, and give :meth:`cleanup_later`.
    """

    @classmethod
    def cleanup_later(cls, func, *args):
        """Have ``func(*args)`` run when the user of the cloud is done."""
        raise NotImplementedError

    @classmethod
    def connect(cls):
        cls.cloud = describe()
        cls.admin = api.session()
        cls.hosts = {h['name']: hosts_mod.ComputeHost(
            h['name'], h['address'], STATE, cls.cloud['venv'],
            h['enrollment']) for h in cls.cloud['hosts']}

    @classmethod
    def nova(cls, microversion='2.30', session=None):
        return api.nova(session or cls.admin, microversion)

    # Servers ------------------------------------------------------------

    @classmethod
    def boot(cls, name, host, image='secmig-guest', session=None,
             cleanup=None):
        """Boot a guest on ``host`` and wait for it.

        An admin chooses the host (``az:host``); None lets the scheduler.

        ``cleanup`` registers its deletion (default:
        :meth:`cleanup_later`).
        """
        nova = cls.nova('2.37', session)
        request = {'name': name, 'imageRef': cls.cloud['images'][image],
                   'flavorRef': cls.flavor_id(), 'networks': 'none'}
        if host:
            request['availability_zone'] = 'az1:%s' % host
        server = nova.post('/v2.1/servers', {'server': request})['server']
        (cleanup or cls.cleanup_later)(cls.delete, server['id'])
        server = wait(lambda: cls._settled(server['id']),
                      'server %s to boot' % name, BOOT_TIMEOUT)
        if server['status'] != 'ACTIVE':
            raise AssertionError('%s did not boot: %s'
                                 % (name, server.get('fault')))
        wait(lambda: cls.ticks(server['id']), 'the first tick of %s' % name,
             BOOT_TIMEOUT)
        return server

    @classmethod
    def flavor_id(cls):
        flavors = cls.nova().get('/v2.1/flavors')['flavors']
        return next(f['id'] for f in flavors
                    if f['name'] == cls.cloud['flavor']['name'])

    @classmethod
    def _settled(cls, server_id):
        server = cls.server(server_id)
        return server if server['status'] in ('ACTIVE', 'ERROR') else None

    @classmethod
    def server(cls, server_id):
        return cls.nova().get('/v2.1/servers/%s' % server_id)['server']

    @classmethod
    def host_of(cls, server_id):
        return cls.server(server_id)['OS-EXT-SRV-ATTR:host']

    @classmethod
    def delete(cls, server_id):
        nova = cls.nova()
        try:
            nova.delete('/v2.1/servers/%s' % server_id)
        except api.ApiError as e:
            if e.status == 404:
                return
            raise

        def gone():
            try:
                nova.get('/v2.1/servers/%s' % server_id)
            except api.ApiError as e:
                return e.status == 404
            return False
        wait(gone, 'server %s to go' % server_id, 120)

    @classmethod
    def console(cls, server_id):
        return cls.nova().post(
            '/v2.1/servers/%s/action' % server_id,
            {'os-getConsoleOutput': {'length': 200}})['output']

    @classmethod
    def ticks(cls, server_id):
        """The guest's last heartbeat number (0 before the first)."""
        found = TICK.findall(cls.console(server_id))
        return int(found[-1]) if found else 0

    # Migrations ---------------------------------------------------------

    @classmethod
    def live_migrate(cls, server_id, host=None, force=None,
                     microversion='2.30', session=None):
        """Request a live migration; returns the API's answer (or raises)."""
        body = {'host': host, 'block_migration': 'auto'}
        if force is not None:
            body['force'] = force
        return cls.nova(microversion, session).post(
            '/v2.1/servers/%s/action' % server_id, {'os-migrateLive': body})

    @classmethod
    def migrations(cls, server_id):
        """The server's live migrations, newest first."""
        found = cls.nova('2.59').get(
            '/v2.1/os-migrations?instance_uuid=%s&migration_type='
            'live-migration' % server_id)['migrations']
        return sorted(found, key=lambda m: m['id'], reverse=True)

    @classmethod
    def wait_migration(cls, server_id, count_before, timeout=None):
        """Wait for the migration after ``count_before``; return it."""
        def finished():
            found = cls.migrations(server_id)
            if len(found) > count_before and found[0]['status'] in (
                    'completed', 'failed', 'error', 'cancelled'):
                return found[0]
            return None
        return wait(finished, 'the live migration of %s' % server_id,
                    timeout or MIGRATION_TIMEOUT)

    @classmethod
    def wait_active(cls, server_id):
        """Wait for the server to be ACTIVE with no task; return it."""
        def settled():
            server = cls.server(server_id)
            return (server if server['OS-EXT-STS:task_state'] is None
                    else None)
        server = wait(settled, 'server %s to settle' % server_id, 120)
        if server['status'] != 'ACTIVE':
            raise AssertionError('server %s is %s' % (server_id,
                                                      server['status']))
        return server

    # Compute hosts --------------------------------------------------------

    @classmethod
    def on_host(cls, host, *cmd, **kwargs):
        """Run ``cmd`` inside a compute host; its standard output."""
        return cls.hosts[host].run(list(cmd), **kwargs)

    @classmethod
    def domain_state(cls, host, server):
        """libvirt's state of the server's domain on ``host`` (or None)."""
        name = server['OS-EXT-SRV-ATTR:instance_name']
        try:
            return cls.on_host(host, 'virsh', '-q', 'domstate',
                               name).strip()
        except hosts_mod.procs.CloudError:
            return None

    @classmethod
    def replace_file(cls, host, path, text, cleanup):
        """Write ``text`` to ``path`` in a host; ``cleanup`` restores it."""
        real = cls.hosts[host].path(path)
        with open(real) as f:
            original = f.read()
        stat = os.stat(real)

        def write(content):
            with open(real, 'w') as f:
                f.write(content)
            os.chown(real, stat.st_uid, stat.st_gid)
            os.chmod(real, stat.st_mode & 0o7777)
        cleanup(write, original)
        write(text)
        return original

    @classmethod
    def restart_compute(cls, host):
        """Restart a host's nova-compute; wait until it reports again."""
        def reported():
            found = cls.nova().get('/v2.1/os-services?binary=nova-compute'
                                   '&host=%s' % host)['services']
            return found[0]['updated_at'] if found else None
        compute = cls.hosts[host]
        compute.stop_compute()
        last = reported()
        service = compute.start_compute(cls.cloud['compute_user'])
        service.wait_for(lambda: reported() not in (None, last),
                         'nova-compute on %s to report' % host, 180)

    @classmethod
    def tls_parameters(cls, host, server):
        """A source QEMU's migration parameters once it has TLS credentials.

        libvirt sets them for the time of a migration; None otherwise.
        """
        try:
            out = cls.on_host(host, 'virsh', 'qemu-monitor-command',
                              server['OS-EXT-SRV-ATTR:instance_name'],
                              '{"execute": "query-migrate-parameters"}')
        except hosts_mod.procs.CloudError:
            return None
        params = json.loads(out)['return']
        return params if params.get('tls-creds') else None

    @classmethod
    def secmig(cls, host, *args):
        """``secmig ARGS`` on a host: (exit status, output)."""
        cmd = cls.hosts[host].enter(
            [os.path.join(cls.cloud['venv'], 'bin', 'secmig')] + list(args))
        result = subprocess.run(cmd, capture_output=True, text=True,
                                timeout=120)
        return result.returncode, result.stdout + result.stderr

    @classmethod
    def journal(cls, host, migration_uuid):
        """The audit records of one migration in a host's journal."""
        status, out = cls.secmig(host, 'audit', 'show', '--json',
                                 '--migration', migration_uuid, JOURNAL)
        if status:
            return []
        return [json.loads(line)['record'] for line in out.splitlines()
                if line.startswith('{')]
