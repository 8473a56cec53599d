"""Real Nova services in-process, with secmig loaded as in production.

Nova's own functional base (``ServersTestBase``) runs the API, conductor,
scheduler and compute services in one process, on Nova's fake libvirt
and an in-process message bus. This mixin adds what a secmig cloud has:
a CA, an enrolled certificate per compute host (made by secmig's PKI),
a secmig.conf per host pointed to by ``[secmig] config_file``, the
secmig driver installed by :func:`secmig.nova.launcher.install` (the
mechanism ``secmig-nova-compute`` uses), the scheduler filter, and
libvirt set for QEMU native TLS with a TLS control connection.
"""

import os
import sys


import fixtures

import nova.conf
import nova.virt.libvirt

from secmig.nova import launcher
from tests import auditutil
from tests import pkiutil

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(HERE), 'etc', 'migration-policy.yaml')
#: The WSGI pipeline shipped in the nova wheel (installed under the
#: virtualenv, not next to the nova package where the fixture looks).
API_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
FILTER = 'secmig.nova.filter.SecureMigrationFilter'


class SecmigCloudMixin:
    """Mix in before Nova's ``ServersTestBase``.

    ``CLEARANCES`` gives each enrolled host's clearance (default 1);
    hosts in ``UNENROLLED`` start without any certificate.
    """

    CLEARANCES = {}
    UNENROLLED = ()
    SECMIG_FILTER = True
    #: Text replacements turning the test policy into this class's.
    SECMIG_POLICY_CHANGES = {}
    LIBVIRT_SCHEME = 'tls'

    def setUp(self):
        self.secmig_dir = self.useFixture(fixtures.TempDir()).path
        self.pki = pkiutil.TestPKI(os.path.join(self.secmig_dir, 'pki'))
        original = nova.virt.libvirt.LibvirtDriver
        self.addCleanup(setattr, nova.virt.libvirt, 'LibvirtDriver',
                        original)
        launcher.install()
        self.policy_file = self.write_policy()
        # Before Nova's setUp: it starts the API and the services.
        self.flags(api_paste_config=API_PASTE, group='wsgi')
        self.flags(live_migration_with_native_tls=True,
                   live_migration_scheme=self.LIBVIRT_SCHEME,
                   group='libvirt')
        super().setUp()

    def write_policy(self):
        with open(POLICY) as f:
            text = f.read()
        for old, new in self.SECMIG_POLICY_CHANGES.items():
            self.assertIn(old, text)
            text = text.replace(old, new)
        path = os.path.join(self.secmig_dir, 'migration-policy.yaml')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def publish_crl(self):
        """Copy the CA's current CRL to the controller and every host."""
        for name in list(self.pki.hosts) + ['controller']:
            path = os.path.join(self.pki.base_dir, name, 'ca-crl.pem')
            if os.path.isdir(os.path.dirname(path)):
                with open(path, 'wb') as f:
                    f.write(self.pki.crl_pem)

    def _setup_scheduler_service(self):
        if self.SECMIG_FILTER:
            self.flags(available_filters=[
                'nova.scheduler.filters.all_filters', FILTER],
                group='filter_scheduler')
            enabled = list(nova.conf.CONF.filter_scheduler.enabled_filters)
            self.flags(enabled_filters=enabled + ['SecureMigrationFilter'],
                       group='filter_scheduler')
            self.flags(config_file=self.secmig_conf('scheduler'),
                       group='secmig')
        return super()._setup_scheduler_service()

    def secmig_conf(self, host, **overrides):
        """Write ``host``'s secmig.conf; return its path."""
        cert_dir = os.path.join(self.pki.base_dir, host)
        if host == 'scheduler':
            cert_dir = self.scheduler_cert_dir()
        values = {
            'pki': {'cert_dir': cert_dir, 'verdict_refresh_interval': 0},
            'policy': {'policy_file': self.policy_file},
            'audit': {'journal_path': self.journal(host), 'deliver': False},
        }
        for group, options in overrides.items():
            values.setdefault(group, {}).update(options)
        path = os.path.join(self.secmig_dir, host + '.conf')
        with open(path, 'w') as f:
            for group, options in values.items():
                f.write('[%s]\n' % group)
                for key, value in options.items():
                    f.write('%s = %s\n' % (key, value))
        return path

    def scheduler_cert_dir(self):
        """The controller holds the CA certificate and CRL only."""
        path = os.path.join(self.pki.base_dir, 'controller')
        os.makedirs(path, exist_ok=True)
        for name, data in (('ca-cert.pem', self.pki.ca_cert_pem),
                           ('ca-crl.pem', self.pki.crl_pem)):
            with open(os.path.join(path, name), 'wb') as f:
                f.write(data)
        return path

    def journal(self, host):
        return os.path.join(self.secmig_dir, 'audit', host + '.jsonl')

    def start_compute(self, hostname='compute1', *args, **kwargs):
        if hostname not in self.UNENROLLED and hostname not in self.pki.hosts:
            self.pki.enroll(hostname,
                            clearance=self.CLEARANCES.get(hostname, 1))
        os.makedirs(os.path.join(self.pki.base_dir, hostname),
                    exist_ok=True)
        self.flags(config_file=self.secmig_conf(hostname), group='secmig')
        return super().start_compute(hostname, *args, **kwargs)

    def audit_steps(self, host):
        """``[(step, outcome, reason code)]`` from ``host``'s journal."""
        return auditutil.journal_steps(self.journal(host))
