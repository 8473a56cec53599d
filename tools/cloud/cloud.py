"""A real OpenStack cloud with secmig on one machine.

Usage (as root, with the project's virtualenv's python)::

    python tools/cloud/cloud.py up      # (re)create and start everything
    python tools/cloud/cloud.py down    # stop everything it started
    python tools/cloud/cloud.py status

``up`` first stops whatever an earlier ``up`` left (it is safe to run
again), then starts: Keystone, Placement, Glance (file store), a Neutron
API (ML2, no agents: guests boot with ``networks: none``), Nova's API,
scheduler (with ``SecureMigrationFilter``), a superconductor and a cell
conductor without ``[api_database]``, and four compute hosts (see
:data:`HOSTS`), each its own mount and UTS namespace with its own
libvirtd, virtlogd and ``secmig-nova-compute`` (as user ``nova``), set up
as doc/nova.rst says and enrolled with ``secmig pki``. Databases live in
the local MariaDB (Neutron's migrations are MySQL-only), messages in the
local RabbitMQ.
State, configuration and logs are under ``$SECMIG_CLOUD_DIR``
(default ``/var/lib/secmig-cloud``); ``cloud.json`` there describes the
cloud to its users (the tests in ``tests/cloud``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import api
import confs
import hosts as hosts_mod
import identity
import procs

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
STATE = os.environ.get('SECMIG_CLOUD_DIR', '/var/lib/secmig-cloud')
#: The built guest, kept across clouds (build.sh rebuilds what changed).
GUEST_CACHE = os.environ.get('SECMIG_GUEST_DIR',
                             '/var/cache/secmig-cloud/guest')
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
DATABASES = ('cloud_keystone', 'cloud_placement', 'cloud_glance',
             'cloud_neutron', 'cloud_nova_api', 'cloud_nova_cell0',
             'cloud_nova_cell1')
#: The compute hosts: name, loopback address, enrollment. Two enrolled
#: hosts; one never enrolled (no certificate, no TLS listener); one
#: whose certificate the CA revoked and which, as a compromised host
#: would, never installed the CRL that says so.
HOSTS = (('cmp1', '127.0.0.11', 'enrolled'),
         ('cmp2', '127.0.0.12', 'enrolled'),
         ('cmp3', '127.0.0.13', 'unenrolled'),
         ('cmp4', '127.0.0.14', 'revoked'))
#: Control-plane services, in the order they stop.
SERVICES = tuple('nova-compute-%s' % h[0] for h in HOSTS) + (
    'nova-conductor-cell1', 'nova-conductor', 'nova-scheduler', 'nova',
    'neutron', 'glance', 'placement', 'keystone')


def say(msg):
    print('cloud: %s' % msg, flush=True)


def bin_(name):
    return os.path.join(VENV, 'bin', name)


def log(name):
    return os.path.join(STATE, 'log', name + '.log')


def compute_hosts():
    return [hosts_mod.ComputeHost(n, a, STATE, VENV, e) for n, a, e in HOSTS]


class Step:
    """Prints a step and its duration."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        self.start = time.monotonic()
        say('%s ...' % self.what)

    def __exit__(self, *exc):
        if exc[0] is None:
            say('%s: done in %.1f s'
                % (self.what, time.monotonic() - self.start))


# Infrastructure ------------------------------------------------------

def reset_databases():
    """Empty databases in the local MariaDB, owned by user ``secmig``.

    (Neutron's migrations are MySQL-only since 2025.2.)
    """
    sql = ["CREATE USER IF NOT EXISTS 'secmig'@'127.0.0.1' "
           "IDENTIFIED BY 'secmig';"]
    for name in DATABASES:
        sql += ['DROP DATABASE IF EXISTS %s;' % name,
                'CREATE DATABASE %s CHARACTER SET utf8mb4;' % name,
                "GRANT ALL ON %s.* TO 'secmig'@'127.0.0.1';" % name]
    procs.run(['mysql', '-u', 'root'], log('mariadb'), input='\n'.join(sql))


def reset_vhosts():
    for vhost in (confs.VHOST_TOP, confs.VHOST_CELL1):
        subprocess.run(['rabbitmqctl', '-q', 'delete_vhost', vhost],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.run(['rabbitmqctl', '-q', 'add_vhost', vhost], log('rabbitmq'))
        procs.run(['rabbitmqctl', '-q', 'set_permissions', '-p', vhost,
                   'guest', '.*', '.*', '.*'], log('rabbitmq'))


def ensure_loopback():
    """127.0.0.0/8 is all loopback on Linux; check the control address."""
    if not procs.port_open('127.0.0.1', 5672):
        raise procs.CloudError('RabbitMQ is not listening on 127.0.0.1:5672 '
                               '(tools/test-setup.sh starts it)')
    for name, port in confs.PORTS.items():
        if procs.port_open(confs.CONTROL, port):
            raise procs.CloudError(
                '%s:%d is already taken (by something other than this '
                'cloud: "cloud.py down" found nothing of its own there)'
                % (confs.CONTROL, port))


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def etc(*parts):
    return os.path.join(STATE, 'etc', *parts)


# Services --------------------------------------------------------------

def wsgi(name, app, env):
    """Serve a WSGI application with gunicorn on the control address."""
    return procs.spawn(name, [
        sys.executable, os.path.join(HERE, 'serve.py'), name,
        '%s:%d' % (confs.CONTROL, confs.PORTS[name]), app],
        STATE, env=dict(os.environ, **env))


def start_keystone():
    conf = etc('keystone', 'keystone.conf')
    write(conf, confs.keystone(STATE))
    manage = [bin_('keystone-manage'), '--config-file', conf]
    for d in ('fernet-keys', 'credential-keys'):
        os.makedirs(os.path.join(STATE, 'keystone', d), exist_ok=True)
    procs.run(manage + ['db_sync'], log('keystone-manage'))
    for setup in ('fernet_setup', 'credential_setup'):
        procs.run(manage + [setup, '--keystone-user', 'root',
                            '--keystone-group', 'root'],
                  log('keystone-manage'))
    procs.run(manage + ['bootstrap', '--bootstrap-password', confs.PASSWORD,
                        '--bootstrap-admin-url', confs.url('keystone'),
                        '--bootstrap-public-url', confs.url('keystone'),
                        '--bootstrap-internal-url', confs.url('keystone'),
                        '--bootstrap-region-id', confs.REGION],
              log('keystone-manage'))
    service = wsgi('keystone',
                   'keystone.server.wsgi:initialize_public_application()',
                   {'OS_KEYSTONE_CONFIG_FILES': conf})
    service.wait_http(confs.url('keystone', '/v3'))


def start_placement():
    conf = etc('placement', 'placement.conf')
    write(conf, confs.placement())
    procs.run([bin_('placement-manage'), '--config-file', conf, 'db',
               'sync'], log('placement-manage'))
    wsgi('placement', 'placement.wsgi.api:application',
         {'OS_PLACEMENT_CONFIG_DIR': etc('placement')}
         ).wait_http(confs.url('placement'))


def start_glance():
    conf = etc('glance', 'glance-api.conf')
    write(conf, confs.glance(STATE, VENV))
    for d in ('images', 'staging', 'tasks', 'lock'):
        os.makedirs(os.path.join(STATE, 'glance', d), exist_ok=True)
    procs.run([bin_('glance-manage'), '--config-file', conf, 'db_sync'],
              log('glance-manage'))
    wsgi('glance', 'glance.wsgi.api:application',
         {'OS_GLANCE_CONFIG_DIR': etc('glance')}
         ).wait_http(confs.url('glance', '/versions'))


def start_neutron():
    conf = etc('neutron', 'neutron.conf')
    write(conf, confs.neutron(STATE, VENV))
    procs.run([bin_('neutron-db-manage'), '--config-file', conf, 'upgrade',
               'heads'], log('neutron-manage'))
    wsgi('neutron', 'neutron.wsgi.api:application',
         {'OS_NEUTRON_CONFIG_FILES': conf}
         ).wait_http(confs.url('neutron', '/'))


def start_nova():
    conf = etc('nova', 'nova.conf')
    cell1 = etc('nova', 'nova-cell1.conf')
    write(conf, confs.nova_api(STATE, VENV,
                               etc('nova', 'secmig-scheduler.conf')))
    write(cell1, confs.nova_cell1(STATE))
    write(etc('nova', 'secmig-scheduler.conf'),
          confs.secmig_scheduler(STATE))
    for d in ('nova/lock', 'nova-cell1'):
        os.makedirs(os.path.join(STATE, d), exist_ok=True)
    manage = [bin_('nova-manage'), '--config-file', conf]
    procs.run(manage + ['api_db', 'sync'], log('nova-manage'))
    procs.run(manage + ['cell_v2', 'map_cell0', '--database_connection',
                        confs.db_url('cloud_nova_cell0')], log('nova-manage'))
    procs.run(manage + ['db', 'sync'], log('nova-manage'))
    procs.run(manage + ['cell_v2', 'create_cell', '--name', 'cell1',
                        '--transport-url',
                        confs.RABBIT + confs.VHOST_CELL1,
                        '--database_connection',
                        confs.db_url('cloud_nova_cell1')],
              log('nova-manage'))
    procs.run([bin_('nova-manage'), '--config-file', cell1, 'db', 'sync',
               '--local_cell'],
              log('nova-manage'))
    # Nova's API reads its paste pipeline from the first file.
    api_service = wsgi('nova', 'nova.wsgi.osapi_compute:application',
                       {'OS_NOVA_CONFIG_FILES': '%s;%s' % (
                           os.path.join(VENV, 'etc', 'nova', 'api-paste.ini'),
                           conf)})
    services = [
        procs.spawn('nova-scheduler', [bin_('nova-scheduler'),
                                       '--config-file', conf], STATE),
        procs.spawn('nova-conductor', [bin_('nova-conductor'),
                                       '--config-file', conf], STATE),
        procs.spawn('nova-conductor-cell1', [bin_('nova-conductor'),
                                             '--config-file', cell1], STATE),
    ]
    api_service.wait_http(confs.url('nova', '/'))
    for service in services:
        if not service.alive():
            service.fail('exited at start')


# PKI and compute hosts ----------------------------------------------

def secmig_cmd(*args):
    return [bin_('secmig')] + list(args)


def enroll(host, ca_dir):
    """Enroll ``host`` the way doc/nova.rst tells an operator to."""
    token_path = os.path.join(STATE, 'ca', '%s.token' % host.name)
    procs.run(secmig_cmd('pki', 'token-create', '--ca-dir', ca_dir,
                         '--host', host.name, '--address', host.address,
                         '--clearance', '1', '--out', token_path),
              log('pki'))
    csr = host.run(secmig_cmd('pki', 'host-key', '--host', host.name,
                              '--address', host.address, '--group', 'kvm'))
    csr_path = os.path.join(STATE, 'ca', '%s.csr' % host.name)
    cert_path = os.path.join(STATE, 'ca', '%s.pem' % host.name)
    write(csr_path, csr)
    procs.run(secmig_cmd('pki', 'sign', '--ca-dir', ca_dir, '--csr',
                         csr_path, '--token-file', token_path, '--out',
                         cert_path),
              log('pki'))
    host.run(secmig_cmd('pki', 'install', '--cert', cert_path, '--ca',
                        os.path.join(ca_dir, 'ca-cert.pem'), '--crl',
                        os.path.join(ca_dir, 'ca-crl.pem')))
    host.run(secmig_cmd('pki', 'verify', '/etc/pki/qemu/server-cert.pem',
                        '--host', host.name))


def start_pki(hosts):
    ca_dir = os.path.join(STATE, 'ca')
    procs.run(secmig_cmd('pki', 'ca-create', '--ca-dir', ca_dir, '--name',
                         'secmig cloud CA'), log('pki'))
    for host in hosts:
        if host.enrollment != 'unenrolled':
            enroll(host, ca_dir)
    for host in hosts:
        if host.enrollment == 'revoked':
            procs.run(secmig_cmd('pki', 'revoke', '--ca-dir', ca_dir,
                                 '--cert', os.path.join(ca_dir, '%s.pem'
                                                        % host.name),
                                 '--reason', 'key-compromise'), log('pki'))
    # The new CRL reaches the hosts that are still trusted (doc/nova.rst:
    # "after a new CRL, run secmig pki install again").
    for host in hosts:
        if host.enrollment == 'enrolled':
            host.run(secmig_cmd(
                'pki', 'install', '--cert',
                os.path.join(ca_dir, '%s.pem' % host.name), '--ca',
                os.path.join(ca_dir, 'ca-cert.pem'), '--crl',
                os.path.join(ca_dir, 'ca-crl.pem')))
    sched = os.path.join(STATE, 'scheduler', 'pki')
    os.makedirs(sched, exist_ok=True)
    for name in ('ca-cert.pem', 'ca-crl.pem'):
        shutil.copy(os.path.join(ca_dir, name), sched)


def policy_text():
    """The cloud runs the sample policy, as an operator starts with."""
    with open(os.path.join(TOP, 'etc', 'secmig',
                           'migration-policy.yaml.sample')) as f:
        return f.read()


def start_hosts(hosts):
    hosts_mod.ensure_accounts()
    for host in hosts:
        host.create(hosts)
    start_pki(hosts)
    write(os.path.join(STATE, 'scheduler', 'migration-policy.yaml'),
          policy_text())
    user = hosts_mod.service_user(VENV)
    if user is None:
        say('WARNING: user nova cannot run %s/bin/python (its interpreter '
            'is in a directory nova cannot enter): nova-compute runs as '
            'root' % VENV)
    services = []
    for host in hosts:
        host.configure(policy_text(), user)
        host.start_libvirt(listen=host.enrollment != 'unenrolled')
        services.append(host.start_compute(user))
    return user, services


def wait_computes(services, admin):
    nova = api.nova(admin)

    def up(name):
        found = nova.get('/v2.1/os-services?binary=nova-compute&host=%s'
                         % name)['services']
        return found and found[0]['state'] == 'up'
    for service in services:
        name = service.name.rsplit('-', 1)[1]
        service.wait_for(lambda: up(name), 'nova-compute %s up' % name, 180)
    procs.run([bin_('nova-manage'), '--config-file', etc('nova', 'nova.conf'),
               'cell_v2', 'discover_hosts', '--verbose'], log('nova-manage'))

    def hypervisors():
        return len(nova.get('/v2.1/os-hypervisors')['hypervisors'])
    services[0].wait_for(lambda: hypervisors() == len(services),
                         'every hypervisor', 120)
    # A compute node is listed before its inventory reaches Placement,
    # and the scheduler finds no candidate until it has.
    placement = api.placement(admin)
    for service in services:
        name = service.name.rsplit('-', 1)[1]
        service.wait_for(lambda: has_inventory(placement, name),
                         'the inventory of %s in Placement' % name, 120)


def provider(placement, name):
    found = placement.get('/resource_providers?name=%s' % name)
    return found['resource_providers'][0] if found[
        'resource_providers'] else None


def has_inventory(placement, name):
    rp = provider(placement, name)
    return rp is not None and 'MEMORY_MB' in placement.get(
        '/resource_providers/%s/inventories' % rp['uuid'])['inventories']


def aggregate(admin, hosts):
    """Every host in aggregate ``secmig-enrolled``, zone ``az1``.

    The sample policy admits only those as destinations. Nova mirrors
    the aggregate into Placement, where the scheduler's zone filter
    looks; that is checked, not assumed.
    """
    nova = api.nova(admin, '2.41')  # 2.41: aggregates show their uuid
    placement = api.placement(admin)
    agg = nova.post('/v2.1/os-aggregates', {'aggregate': {
        'name': 'secmig-enrolled', 'availability_zone': 'az1'}})
    for host in hosts:
        nova.post('/v2.1/os-aggregates/%d/action' % agg['aggregate']['id'],
                  {'add_host': {'host': host.name}})
        rp = provider(placement, host.name)
        mirrored = placement.get('/resource_providers/%s/aggregates'
                                 % rp['uuid'])['aggregates']
        if agg['aggregate']['uuid'] not in mirrored:
            raise procs.CloudError('Nova did not add %s to aggregate %s '
                                   'in Placement' % (host.name,
                                                     agg['aggregate']['uuid']))


# Commands ----------------------------------------------------------------

def up(args):
    if os.geteuid() != 0:
        raise procs.CloudError('cloud.py up needs root (namespaces, '
                               'libvirtd, accounts)')
    down(args, quiet=True)
    shutil.rmtree(STATE, ignore_errors=True)
    started = time.monotonic()
    os.makedirs(os.path.join(STATE, 'log'), exist_ok=True)
    hosts = compute_hosts()
    with Step('databases and message queues'):
        ensure_loopback()
        reset_databases()
        reset_vhosts()
    with Step('Keystone'):
        start_keystone()
        admin = api.session(password=confs.PASSWORD)
        identity.populate(admin)
    with Step('Placement, Glance, Neutron'):
        start_placement()
        start_glance()
        start_neutron()
    with Step('Nova API, scheduler and conductors'):
        start_nova()
    with Step('compute hosts (namespaces, PKI, libvirtd, nova-compute)'):
        user, services = start_hosts(hosts)
        wait_computes(services, admin)
        aggregate(admin, hosts)
    with Step('guest image and flavor'):
        images = identity.guest(admin, GUEST_CACHE,
                                os.path.join(HERE, 'guest', 'build.sh'))
    description = {
        'state_dir': STATE, 'venv': VENV, 'password': confs.PASSWORD,
        'auth_url': confs.url('keystone', '/v3'),
        'hosts': [{'name': h.name, 'address': h.address,
                   'enrollment': h.enrollment, 'dir': h.dir}
                  for h in hosts],
        'compute_user': user,
        'images': images, 'flavor': identity.FLAVOR,
        'setup_seconds': round(time.monotonic() - started, 1)}
    write(os.path.join(STATE, 'cloud.json'),
          json.dumps(description, indent=2) + '\n')
    say('up in %.1f s; described in %s'
        % (description['setup_seconds'], os.path.join(STATE, 'cloud.json')))


def down(args, quiet=False):
    if not os.path.isdir(STATE):
        return
    for host in compute_hosts():
        host.stop()
    for name in SERVICES:
        procs.stop_pidfile(os.path.join(STATE, name + '.pid'))
    try:
        os.unlink(os.path.join(STATE, 'cloud.json'))
    except FileNotFoundError:
        pass
    if not quiet:
        say('stopped; state and logs stay in %s' % STATE)


def status(args):
    for name in SERVICES + tuple('host-%s' % h[0] for h in HOSTS):
        pidfile = os.path.join(STATE, name + '.pid')
        try:
            with open(pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError):
            print('%-22s not started' % name)
            continue
        print('%-22s %s (pid %d)' % (name, 'running' if procs.alive(pid)
                                     else 'DEAD', pid))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('command', choices=('up', 'down', 'status'))
    args = parser.parse_args(argv)
    try:
        {'up': up, 'down': down, 'status': status}[args.command](args)
    except procs.CloudError as e:
        print('cloud: FAILED: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
