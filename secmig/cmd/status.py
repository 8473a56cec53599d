"""``secmig-status upgrade check``: is this host ready for secmig?

The OpenStack convention (oslo.upgradecheck, like ``nova-status``): run
it on every compute and scheduler host after installing or upgrading
secmig, before restarting the services. Exit status 0 when every check
succeeds, 1 when one warns, 2 when one fails (255 on a crash)::

    secmig-status --config-file /etc/secmig/secmig.conf \\
        --nova-config /etc/nova/nova.conf upgrade check [--json]

The options below go before ``upgrade check``. The checks themselves are
in :mod:`secmig.readiness`.
"""

import socket
import sys

from oslo_config import cfg
from oslo_upgradecheck import upgradecheck

from secmig.auth import credentials
from secmig import conf as secmig_conf
from secmig import exception
from secmig import readiness

ROLES = ('compute', 'scheduler')

cli_opts = [
    cfg.StrOpt('role', default='compute', choices=ROLES,
               help='What this host runs: "compute" (secmig-nova-compute: '
                    'certificates, key, libvirt and QEMU, audit journal) '
                    'or "scheduler" (the filter: CA certificate and CRL '
                    'only).'),
    cfg.StrOpt('host',
               help='The host name this host\'s certificate must name: '
                    'Nova\'s [DEFAULT] host from --nova-config when set, '
                    'else this machine\'s host name (Nova\'s default).'),
    cfg.StrOpt('nova-config', default='/etc/nova/nova.conf',
               help='nova.conf of this host (read, never imported).'),
    cfg.StrOpt('qemu-config', default='/etc/libvirt/qemu.conf',
               help='libvirt\'s qemu.conf (compute hosts).'),
    cfg.StrOpt('libvirtd-config',
               help='libvirtd.conf, when libvirtd is configured through it '
                    '(not with systemd socket activation): its listen_tls '
                    'and listen_tcp are checked too.'),
]


class Checks(upgradecheck.UpgradeCommands):
    """secmig's readiness checks over one ``ConfigOpts``."""

    display_title = 'secmig readiness'

    def __init__(self, conf):
        super().__init__()
        self.conf = conf

    @property
    def _compute(self):
        return self.conf.role == 'compute'

    def _nova_sections(self):
        try:
            return readiness.read_ini(self.conf.nova_config)
        except exception.SecmigError:
            return {}

    def host(self):
        """The name this host's certificate must carry."""
        return self.conf.host or readiness.nova_host(
            self._nova_sections(), socket.gethostname())

    def _check_certificates(self):
        pki = self.conf.pki
        if not self._compute:
            return readiness.check_ca(pki.cert_dir, pki.require_crl)
        return readiness.check_certificates(
            pki.cert_dir, self.host(), pki.expiry_margin, pki.min_rsa_bits,
            pki.require_crl)

    def _check_nova(self):
        if not self._compute:
            return readiness.check_nova_scheduler(self.conf.nova_config)
        return readiness.check_nova_libvirt(self.conf.nova_config)

    def _check_qemu(self):
        if not self._compute:
            return readiness.success('not a compute host')
        return readiness.check_qemu(self.conf.qemu_config,
                                    self.conf.pki.cert_dir,
                                    self.conf.libvirtd_config)

    def _check_policy(self):
        return readiness.check_policy(self.conf.policy.policy_file)

    def _check_audit(self):
        if not self._compute:
            return readiness.success('not a compute host')
        try:
            trust = credentials.load_trust(self.conf.pki.cert_dir)
        except exception.SecmigError:
            trust = None
        return readiness.check_audit(self.conf.audit.journal_path, trust)

    def _check_clock(self):
        return readiness.check_clock(self.conf.auth.max_clock_skew,
                                     readiness.read_clock())

    _upgrade_checks = (
        ('Host certificates', _check_certificates),
        ('Nova configuration', _check_nova),
        ('libvirt and QEMU TLS', _check_qemu),
        ('Migration policy', _check_policy),
        ('Audit journal', _check_audit),
        ('Clock synchronisation', _check_clock),
    )


def main(argv=None):
    """Console script ``secmig-status``."""
    conf = cfg.ConfigOpts()
    secmig_conf.register_opts(conf)
    conf.register_cli_opts(cli_opts)
    return upgradecheck.main(
        conf, project='secmig', upgrade_command=Checks(conf),
        argv=sys.argv[1:] if argv is None else list(argv))


if __name__ == '__main__':
    sys.exit(main())
