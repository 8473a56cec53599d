"""The cloud's users, catalog, flavor and guest images.

Users (password :data:`confs.PASSWORD`, domain Default):

* ``admin`` (project ``admin``, role ``admin``), from keystone-manage
  bootstrap;
* service users ``nova``, ``placement``, ``glance``, ``neutron`` and
  ``watcher`` in project ``service`` with roles ``admin`` and
  ``service``;
* in project ``demo``: ``manager`` (role ``manager``) and ``member``
  (role ``member``), a tenant's project manager and member.
"""

import os
import subprocess

import api
import confs

SERVICES = (('nova', 'compute'), ('placement', 'placement'),
            ('glance', 'image'), ('neutron', 'network'))
FLAVOR = {'name': 'secmig.tiny', 'ram': 128, 'vcpus': 1, 'disk': 1}
#: Guest images: name -> kernel command line (tools/cloud/guest).
GUESTS = {
    'secmig-guest': 'no_timer_check console=ttyS0',
    # Burns one vCPU (a CPU hotspot for the Watcher strategy).
    'secmig-guest-burn': 'no_timer_check secmig.burn=1 console=ttyS0',
    # Dirties memory faster than a TLS stream on loopback carries it.
    'secmig-guest-dirty': 'no_timer_check secmig.dirty=1000 secmig.wss=48 '
                          'console=ttyS0',
}


def _id(client, path, key, name, body):
    """The id of ``name`` under ``path``, created from ``body`` if new."""
    found = client.get('%s?name=%s' % (path, name))[key]
    if found:
        return found[0]['id']
    return client.post(path, {key[:-1]: body})[key[:-1]]['id']


def populate(admin):
    ks = api.Client(admin, 'keystone')
    roles = {r['name']: r['id'] for r in ks.get('/v3/roles')['roles']}
    for name in ('service', 'manager', 'member'):
        if name not in roles:
            roles[name] = ks.post('/v3/roles',
                                  {'role': {'name': name}})['role']['id']
    projects = {name: _id(ks, '/v3/projects', 'projects', name,
                          {'name': name, 'domain_id': 'default'})
                for name in ('service', 'demo')}

    def user(name, project, *role_names):
        uid = _id(ks, '/v3/users', 'users', name,
                  {'name': name, 'domain_id': 'default',
                   'password': confs.PASSWORD,
                   'default_project_id': projects[project]})
        for role in role_names:
            ks.put('/v3/projects/%s/users/%s/roles/%s'
                   % (projects[project], uid, roles[role]))
    for name in ('nova', 'placement', 'glance', 'neutron', 'watcher'):
        user(name, 'service', 'admin', 'service')
    user('manager', 'demo', 'manager', 'member', 'reader')
    user('member', 'demo', 'member', 'reader')
    for name, kind in SERVICES:
        sid = _id(ks, '/v3/services', 'services', name,
                  {'name': name, 'type': kind})
        endpoint = confs.url(name, '/v2.1' if name == 'nova' else '')
        for interface in ('public', 'internal', 'admin'):
            ks.post('/v3/endpoints', {'endpoint': {
                'service_id': sid, 'interface': interface,
                'url': endpoint, 'region_id': confs.REGION}})


def _upload(glance, path, **props):
    image = glance.post('/v2/images', dict(props, visibility='public'))
    with open(path, 'rb') as f:
        glance.put('/v2/images/%s/file' % image['id'], data=f.read(),
                   headers={'Content-Type': 'application/octet-stream'})
    return image['id']


def guest(admin, out_dir, build_script):
    """Build the guest, upload it as UEC images; the flavor too.

    Returns ``{image name: image id}``.
    """
    subprocess.run([build_script, out_dir], check=True)
    glance = api.Client(admin, 'glance')
    kernel = _upload(glance, os.path.join(out_dir, 'vmlinuz'),
                     name='secmig-guest-kernel', disk_format='aki',
                     container_format='aki')
    ramdisk = _upload(glance, os.path.join(out_dir, 'initramfs.img'),
                      name='secmig-guest-ramdisk', disk_format='ari',
                      container_format='ari')
    images = {}
    for name, cmdline in GUESTS.items():
        images[name] = _upload(
            glance, os.path.join(out_dir, 'disk.raw'), name=name,
            disk_format='ami', container_format='ami', kernel_id=kernel,
            ramdisk_id=ramdisk, os_command_line=cmdline)
    nova = api.nova(admin)
    nova.post('/v2.1/flavors', {'flavor': FLAVOR})
    return images
