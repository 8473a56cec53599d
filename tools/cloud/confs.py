"""The configuration files of the one-machine cloud, as text.

Each function returns the text of one file. The compute host's files
(nova.conf, qemu.conf, libvirtd.conf, secmig.conf) follow doc/nova.rst,
the operator's guide; ``tests/cloud/test_guide.py`` checks that they
still say what the guide says.
"""

import textwrap

#: The control plane's loopback address; compute hosts have their own.
CONTROL = '127.0.0.10'
PORTS = {'keystone': 5000, 'placement': 8778, 'glance': 9292,
         'neutron': 9696, 'nova': 8774}
REGION = 'RegionOne'
#: The password of every service user and of the test users.
PASSWORD = 'secmig-cloud'
RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
#: RabbitMQ virtual hosts: the API level (API, scheduler,
#: superconductor) and cell1 (cell conductor, computes), as devstack's
#: superconductor layout has them.
VHOST_TOP = 'secmig_cloud_top'
VHOST_CELL1 = 'secmig_cloud_cell1'


def url(service, path=''):
    return 'http://%s:%d%s' % (CONTROL, PORTS[service], path)


def db_url(name):
    return 'mysql+pymysql://secmig:secmig@127.0.0.1/%s?charset=utf8' % name


def _text(s):
    return textwrap.dedent(s).lstrip()


def auth_section(section, user, extra=''):
    """A keystoneauth password section for a service user."""
    return _text('''
        [%s]
        auth_type = password
        auth_url = %s
        username = %s
        password = %s
        project_name = service
        user_domain_name = Default
        project_domain_name = Default
        region_name = %s
        ''' % (section, url('keystone'), user, PASSWORD, REGION)) + extra


def authtoken(user):
    return auth_section(
        'keystone_authtoken', user,
        'www_authenticate_uri = %s\n' % url('keystone'))


def keystone(state):
    return _text('''
        [database]
        connection = %s

        [token]
        provider = fernet

        [fernet_tokens]
        key_repository = %s/keystone/fernet-keys

        [fernet_receipts]
        key_repository = %s/keystone/fernet-keys

        [credential]
        key_repository = %s/keystone/credential-keys
        ''' % (db_url('cloud_keystone'), state, state, state))


def placement():
    return _text('''
        [placement_database]
        connection = %s

        [api]
        auth_strategy = keystone

        ''' % db_url('cloud_placement')) + authtoken('placement')


def glance(state, venv):
    return _text('''
        [DEFAULT]
        enabled_backends = file:file

        [glance_store]
        default_backend = file

        [file]
        filesystem_store_datadir = %(state)s/glance/images

        [os_glance_staging_store]
        filesystem_store_datadir = %(state)s/glance/staging

        [os_glance_tasks_store]
        filesystem_store_datadir = %(state)s/glance/tasks

        [database]
        connection = %(db)s

        [paste_deploy]
        flavor = keystone
        config_file = %(venv)s/etc/glance/glance-api-paste.ini

        [oslo_concurrency]
        lock_path = %(state)s/glance/lock

        ''' % {'state': state, 'db': db_url('cloud_glance'),
               'venv': venv}) + authtoken('glance')


def neutron(state, venv):
    return _text('''
        [DEFAULT]
        core_plugin = ml2
        service_plugins = router,port_forwarding
        auth_strategy = keystone
        api_paste_config = %(venv)s/etc/neutron/api-paste.ini
        transport_url = %(rabbit)s%(vhost)s
        notify_nova_on_port_status_changes = false
        notify_nova_on_port_data_changes = false
        state_path = %(state)s/neutron

        [database]
        connection = %(db)s

        [ml2]
        type_drivers = flat
        tenant_network_types =
        mechanism_drivers =
        extension_drivers = port_security

        [oslo_concurrency]
        lock_path = %(state)s/neutron/lock

        ''' % {'state': state, 'db': db_url('cloud_neutron'),
               'venv': venv, 'rabbit': RABBIT, 'vhost': VHOST_TOP}
    ) + authtoken('neutron')


def _nova_clients():
    return (auth_section('placement', 'nova') + '\n'
            + auth_section('neutron', 'nova') + '\n'
            + _text('''
                [glance]
                api_servers = %s
                ''' % url('glance')))


def nova_api(state, venv, scheduler_secmig_conf):
    """nova.conf of the API level: API, scheduler, superconductor."""
    return _text('''
        [DEFAULT]
        transport_url = %(rabbit)s%(vhost)s
        state_path = %(state)s/nova
        my_ip = %(control)s

        [api]
        auth_strategy = keystone

        [wsgi]
        api_paste_config = %(venv)s/etc/nova/api-paste.ini

        [api_database]
        connection = %(api_db)s

        [database]
        connection = %(cell0_db)s

        [oslo_concurrency]
        lock_path = %(state)s/nova/lock

        [scheduler]
        discover_hosts_in_cells_interval = 2

        [filter_scheduler]
        available_filters = nova.scheduler.filters.all_filters
        available_filters = secmig.nova.filter.SecureMigrationFilter
        enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,\
ImagePropertiesFilter,ServerGroupAntiAffinityFilter,\
ServerGroupAffinityFilter,SecureMigrationFilter

        [secmig]
        config_file = %(secmig)s

        [conductor]
        workers = 1

        ''' % {'rabbit': RABBIT, 'vhost': VHOST_TOP, 'state': state,
               'control': CONTROL, 'venv': venv,
               'api_db': db_url('cloud_nova_api'),
               'cell0_db': db_url('cloud_nova_cell0'),
               'secmig': scheduler_secmig_conf}
    ) + authtoken('nova') + '\n' + _nova_clients()


def nova_cell1(state):
    """nova.conf of cell1's conductor: no [api_database]."""
    return _text('''
        [DEFAULT]
        transport_url = %s%s
        state_path = %s/nova-cell1

        [database]
        connection = %s

        [conductor]
        workers = 1

        ''' % (RABBIT, VHOST_CELL1, state, db_url('cloud_nova_cell1'))
    ) + _nova_clients()


def privsep(venv, user):
    """How nova-compute starts its privileged helpers.

    As ``nova``: through sudo and nova-rootwrap, as a packaged host does
    (sudo's secure_path does not reach the virtualenv, hence the full
    path). As root: the helper directly.
    """
    if user:
        helper = ('sudo %s/bin/nova-rootwrap /etc/nova/rootwrap.conf '
                  'privsep-helper --config-file /etc/nova/nova.conf' % venv)
    else:
        helper = '%s/bin/privsep-helper' % venv
    return ''.join('[%s]\nhelper_command = %s\n\n' % (section, helper)
                   for section in ('nova_sys_admin', 'privsep_osbrick'))


def rootwrap(venv):
    """/etc/nova/rootwrap.conf: Nova's own, finding the virtualenv's tools."""
    return _text('''
        [DEFAULT]
        filters_path = /etc/nova/rootwrap.d
        exec_dirs = %s/bin,/sbin,/usr/sbin,/bin,/usr/bin
        use_syslog = False
        ''' % venv)


def nova_compute(host, venv, user):
    """/etc/nova/nova.conf of a compute host (doc/nova.rst)."""
    return _text('''
        [DEFAULT]
        host = %(name)s
        my_ip = %(address)s
        transport_url = %(rabbit)s%(vhost)s
        compute_driver = libvirt.LibvirtDriver
        state_path = /var/lib/nova
        instances_path = /var/lib/nova/instances

        [libvirt]
        virt_type = qemu
        cpu_mode = custom
        cpu_models = qemu64
        live_migration_with_native_tls = true
        live_migration_scheme = tls
        live_migration_tunnelled = false
        live_migration_inbound_addr = %(name)s
        live_migration_permit_post_copy = false
        live_migration_permit_auto_converge = true

        [secmig]
        config_file = /etc/secmig/secmig.conf

        [oslo_concurrency]
        lock_path = /var/lib/nova/lock

        [vnc]
        enabled = false

        [workarounds]
        disable_group_policy_check_upcall = true

        [filter_scheduler]
        track_instance_changes = false

        ''' % {'name': host.name, 'address': host.address,
               'rabbit': RABBIT, 'vhost': VHOST_CELL1}
    ) + privsep(venv, user) + _nova_clients()


def secmig_compute():
    """/etc/secmig/secmig.conf of a compute host.

    ``[nova]``: the credentials secmig reads aggregates with from Nova's
    API (the compute host has no API database).
    """
    return _text('''
        [pki]
        cert_dir = /etc/pki/qemu
        require_crl = true

        [policy]
        policy_file = /etc/secmig/migration-policy.yaml

        [audit]
        journal_path = /var/lib/secmig/audit/journal.jsonl
        transport_url = %s%s

        ''' % (RABBIT, VHOST_CELL1)) + auth_section('nova', 'nova')


def secmig_scheduler(state):
    return _text('''
        [pki]
        cert_dir = %(state)s/scheduler/pki

        [policy]
        policy_file = %(state)s/scheduler/migration-policy.yaml
        ''' % {'state': state})


def libvirtd(host):
    """/etc/libvirt/libvirtd.conf of a compute host (doc/nova.rst)."""
    return _text('''
        listen_tls = 1
        listen_tcp = 0
        listen_addr = "%s"
        crl_file = "/etc/pki/CA/cacrl.pem"
        unix_sock_group = "libvirt"
        unix_sock_rw_perms = "0770"
        auth_unix_rw = "none"
        host_uuid = "%s"
        ''' % (host.address, host.uuid))


def qemu(host):
    """/etc/libvirt/qemu.conf of a compute host (doc/nova.rst)."""
    return _text('''
        migrate_tls_x509_cert_dir = "/etc/pki/qemu"
        migrate_tls_x509_verify = 1
        migrate_tls_force = 1
        migration_address = "%s"
        security_driver = "none"
        ''' % host.address)


def etc_hosts(hosts):
    lines = ['127.0.0.1 localhost']
    lines += ['%s %s' % (h.address, h.name) for h in hosts]
    return '\n'.join(lines) + '\n'
