"""``secmig-status upgrade check``: is this host ready for secmig?

The OpenStack convention (oslo.upgradecheck, like ``nova-status``): run
it on every compute and scheduler host after installing or upgrading
secmig, before restarting the services. Exit status 0 when every check
succeeds, 1 when one warns, 2 when one fails (255 on a crash)::

    secmig-status --config-file /etc/secmig/secmig.conf \\
        --nova-config /etc/nova/nova.conf \\
        --libvirtd-config /etc/libvirt/libvirtd.conf \\
        --service-user nova upgrade check [--json]

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
               help='libvirtd.conf (compute hosts): its listen_tls and '
                    'listen_tcp, and the paths of libvirtd\'s TLS files '
                    'when it sets them (key_file, cert_file, ca_file, '
                    'crl_file).'),
    cfg.StrOpt('libvirt-pki-dir', default=readiness.LIBVIRT_PKI_DIR,
               help='libvirtd\'s PKI root, holding CA/cacert.pem and '
                    'libvirt/ (compute hosts).'),
    cfg.StrOpt('systemd-dir', default=readiness.SYSTEMD_DIR,
               help='Where systemd links enabled units: libvirtd-tls.socket '
                    'or libvirtd-tcp.socket enabled there are checked.'),
    cfg.StrOpt('service-user',
               help='The user nova-compute runs as, which must read the '
                    'host key and write the audit journal (default: %s, '
                    'when such a user exists).' % readiness.SERVICE_USER),
]


def _guarded(check):
    """Run ``check``; a broken configuration or file becomes a FAILURE.

    secmig-status names the problem rather than printing a traceback:
    an option with a bad value in secmig.conf, an unreadable file.
    """
    def run(self):
        try:
            return check(self)
        except cfg.Error as e:
            return readiness.failure(
                'secmig configuration: %s' % _describe(e),
                'correct it (see the check "secmig configuration"), then '
                'run this check again')
        except exception.SecmigError as e:
            return readiness.failure('%s (%s)' % (e, e.code),
                                     readiness.UNREADABLE)
        except OSError as e:
            return readiness.failure(
                'cannot read %s: %s' % (e.filename, e.strerror),
                readiness.UNREADABLE)
    run.__doc__ = check.__doc__
    return run


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

    def _check_config(self):
        """Every option of secmig.conf has a valid value."""
        bad = []
        for name in sorted(self.conf):
            item = self.conf[name]
            if isinstance(item, cfg.ConfigOpts.GroupAttr):
                for opt in sorted(item):
                    bad.extend(_bad_value(item, opt, name))
            else:
                bad.extend(_bad_value(self.conf, name, None))
        if bad:
            return readiness.failure(
                '; '.join(bad), 'correct the value in %s' % ', '.join(
                    self.conf.config_file or ['the configuration']))
        return readiness.success('%s: every option valid' % ', '.join(
            self.conf.config_file or ['no configuration file, defaults']))

    def _check_certificates(self):
        pki = self.conf.pki
        if not self._compute:
            return readiness.check_ca(pki.cert_dir, pki.require_crl)
        return readiness.check_certificates(
            pki.cert_dir, self.host(), pki.expiry_margin, pki.min_rsa_bits,
            pki.require_crl)

    def _check_libvirtd_certificates(self):
        if not self._compute:
            return readiness.success('not a compute host')
        pki = self.conf.pki
        return readiness.check_libvirtd_certificates(
            self.conf.libvirt_pki_dir, pki.cert_dir, self.host(),
            pki.expiry_margin, pki.min_rsa_bits, pki.require_crl,
            libvirtd_conf=self.conf.libvirtd_config)

    def _check_libvirtd_listener(self):
        if not self._compute:
            return readiness.success('not a compute host')
        return readiness.check_libvirtd_listener(self.conf.libvirtd_config,
                                                 self.conf.systemd_dir)

    def _check_service_user(self):
        if not self._compute:
            return readiness.success('not a compute host')
        return readiness.check_service_access(
            self.conf.service_user or readiness.SERVICE_USER,
            self.conf.pki.cert_dir, self.conf.audit.journal_path,
            explicit=self.conf.service_user is not None)

    def _check_nova(self):
        if not self._compute:
            return readiness.check_nova_scheduler(self.conf.nova_config)
        return readiness.check_nova_libvirt(self.conf.nova_config)

    def _check_qemu(self):
        if not self._compute:
            return readiness.success('not a compute host')
        return readiness.check_qemu(self.conf.qemu_config,
                                    self.conf.pki.cert_dir)

    def _check_policy(self):
        return readiness.check_policy(self.conf.policy.policy_file)

    def _check_audit(self):
        if not self._compute:
            return readiness.success('not a compute host')
        try:
            trust = credentials.load_trust(self.conf.pki.cert_dir)
        except exception.SecmigError:
            trust = None
        return readiness.check_audit(self.conf.audit.journal_path, trust,
                                     host=self.host())

    def _check_clock(self):
        return readiness.check_clock(self.conf.auth.max_clock_skew,
                                     readiness.read_clock())

    _upgrade_checks = tuple((name, _guarded(check)) for name, check in (
        ('secmig configuration', _check_config),
        ('Host certificates', _check_certificates),
        ('libvirtd certificates', _check_libvirtd_certificates),
        ('Nova configuration', _check_nova),
        ('libvirt and QEMU TLS', _check_qemu),
        ('libvirtd TLS listener', _check_libvirtd_listener),
        ('Migration policy', _check_policy),
        ('Audit journal', _check_audit),
        ('Service user access', _check_service_user),
        ('Clock synchronisation', _check_clock),
    ))


def _describe(error):
    """oslo.config's message without its internal location record."""
    text = str(error)
    if isinstance(error, cfg.ConfigFileValueError) and (
            'is not valid: ' in text):
        text = 'not a valid value: ' + text.split('is not valid: ', 1)[1]
    return text


def _bad_value(group, name, group_name):
    try:
        getattr(group, name)
    except cfg.Error as e:
        return ['[%s] %s is %s' % (group_name or 'DEFAULT', name,
                                   _describe(e))]
    return []


def main(argv=None):
    """Console script ``secmig-status``.

    A configuration file that is missing or does not parse is named on
    stderr, with exit status 2 (a failure), instead of a traceback.
    """
    conf = cfg.ConfigOpts()
    secmig_conf.register_opts(conf)
    conf.register_cli_opts(cli_opts)
    try:
        return upgradecheck.main(
            conf, project='secmig', upgrade_command=Checks(conf),
            argv=sys.argv[1:] if argv is None else list(argv))
    except cfg.Error as e:
        print('secmig-status: error: %s. Remedy: correct the file, or give '
              'the right one with --config-file.' % e, file=sys.stderr)
        return upgradecheck.Code.FAILURE


if __name__ == '__main__':
    sys.exit(main())
