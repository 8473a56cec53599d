"""Is this host ready for secure live migration? One check per concern.

The checks behind ``secmig-status upgrade check``. Each takes paths and
values (never a global configuration), reads what it must, and returns
an oslo.upgradecheck :class:`Result`: ``SUCCESS``, ``WARNING`` (it works
now but will not for long, or cannot be told) or ``FAILURE`` (secmig
refuses migrations, or a migration could travel unprotected). The
details of a warning or failure end with ``Remedy: ...``, one sentence.

Nothing here imports Nova: nova.conf is read with oslo.config's own INI
parser, libvirt's files with :func:`parse_libvirt_conf`.
"""

import dataclasses
import datetime
import getpass
import os
import re
import shlex
import shutil
import stat
import subprocess

from cryptography.hazmat.primitives import hashes
from oslo_config import cfg
from oslo_config import types
from oslo_upgradecheck.upgradecheck import Code
from oslo_upgradecheck.upgradecheck import Result

from secmig.audit import verify as audit_verify
from secmig.auth import credentials
from secmig import exception
from secmig.pki import access
from secmig.pki import clearance
from secmig.pki import fileio
from secmig.pki import host as host_files
from secmig.pki import keys
from secmig.pki import verify
from secmig.policy import loader
from secmig import tls

#: A certificate (host or CA) with less validity left warns.
WARN_DAYS = 30
#: A revocation list with less time before its next update warns.
CRL_WARN = datetime.timedelta(days=1)
#: libvirt's default for migrate_tls_x509_cert_dir.
QEMU_DEFAULT_CERT_DIR = '/etc/pki/qemu'
#: libvirtd's PKI root (its CA/ and libvirt/ directories).
LIBVIRT_PKI_DIR = host_files.LIBVIRT_PKI_DIR
#: Where ``systemctl enable`` links socket units.
SYSTEMD_DIR = '/etc/systemd/system'
#: The user nova-compute runs as in the distributions' packages.
SERVICE_USER = 'nova'
SCHEDULER_FILTER = 'secmig.nova.filter.SecureMigrationFilter'
ENROLL = ('enroll this host: "secmig pki host-key", "secmig pki sign" on '
          'the CA, "secmig pki install"')

UNREADABLE = ('run this check as root, make the file readable by its '
              'owner (root) and its group (kvm: chmod 0640 for a key), and '
              'read "Service user access"')

_PKI_REMEDIES = {
    'expired': 'renew it ("secmig pki renew" on the CA, then "secmig pki '
               'install")',
    'expires_soon': 'renew it ("secmig pki renew" on the CA, then "secmig '
                    'pki install")',
    'not_yet_valid': 'synchronise this host\'s clock (NTP)',
    'wrong_host': 'give the name Nova uses with --host, or enroll the host '
                  'under that name',
    'crl_missing': 'publish the CRL on the CA ("secmig pki crl") and copy '
                   'ca-crl.pem here',
    'crl_stale': 'publish the CRL on the CA ("secmig pki crl") and copy '
                 'ca-crl.pem here',
    'revoked': ENROLL + ' with a new key ("host-key --force")',
}
_TLS_REMEDIES = {
    'plaintext_migration': 'set [libvirt] live_migration_with_native_tls = '
                           'true',
    'plaintext_control': 'set [libvirt] live_migration_scheme = tls and '
                         'remove live_migration_uri (OSSN-0089)',
    'tls_settings_conflict': 'set [libvirt] live_migration_tunnelled = '
                             'false',
}


def success(details):
    return Result(Code.SUCCESS, details)


def warning(problem, remedy):
    return Result(Code.WARNING, '%s. Remedy: %s.' % (problem, remedy))


def failure(problem, remedy):
    return Result(Code.FAILURE, '%s. Remedy: %s.' % (problem, remedy))


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# Certificates --------------------------------------------------------------

def check_certificates(cert_dir, host, margin, min_rsa_bits=2048,
                       require_crl=True, now=None, warn_days=WARN_DAYS):
    """This compute host's certificates in ``cert_dir``, for ``host``.

    Failure: a file is missing, a key is readable by every user, a key
    does not match its certificate, or a certificate fails
    :func:`~secmig.pki.verify.verify_certificate` with ``margin``
    seconds (``[pki] expiry_margin``). Warning: the host or CA
    certificate expires within ``warn_days``, or the CRL's next update
    is within a day.
    """
    now = now or _utcnow()
    names = [host_files.CA_CERT, host_files.SERVER_CERT,
             host_files.SERVER_KEY, host_files.CLIENT_CERT,
             host_files.CLIENT_KEY] + ([host_files.CA_CRL]
                                       if require_crl else [])
    missing = [n for n in names
               if not os.path.exists(os.path.join(cert_dir, n))]
    if missing:
        return failure('%s lacks %s' % (cert_dir, ', '.join(missing)),
                       ENROLL)
    try:
        trust = credentials.load_trust(cert_dir)
        certs = []
        for cert_name, key_name in (
                (host_files.SERVER_CERT, host_files.SERVER_KEY),
                (host_files.CLIENT_CERT, host_files.CLIENT_KEY)):
            refusal, cert = _check_pair(cert_dir, cert_name, key_name, trust,
                                        host, margin, min_rsa_bits,
                                        require_crl, now)
            if refusal is not None:
                return refusal
            certs.append(cert)
    except exception.SecmigError as e:
        return failure('%s (%s)' % (e, e.code),
                       UNREADABLE if e.code == 'unreadable_file' else ENROLL)
    return _expiry(certs[0], trust, host, now, warn_days)


def _check_pair(cert_dir, cert_name, key_name, trust, host, margin,
                min_rsa_bits, require_crl, now):
    cert_path = os.path.join(cert_dir, cert_name)
    key_path = os.path.join(cert_dir, key_name)
    if os.stat(key_path).st_mode & 0o007:
        return failure('%s is readable by every user' % key_path,
                       'chmod 0600 (or 0640 for QEMU\'s group)'), None
    cert = keys.load_certificate(
        fileio.read_bytes(cert_path, 'host certificate'), cert_path)
    key = keys.load_private_key(fileio.read_bytes(key_path, 'host key'),
                                key_path)
    pair = verify.verify_key_pair(cert, key)
    if not pair:
        return failure('%s: %s (%s)' % (key_path, pair.reason, pair.code),
                       ENROLL), None
    verdict = verify.verify_certificate(
        cert, trust, host=host, now=now, margin=margin,
        min_rsa_bits=min_rsa_bits, require_crl=require_crl)
    if not verdict:
        return failure('%s: %s (%s)' % (cert_path, verdict.reason,
                                        verdict.code),
                       _PKI_REMEDIES.get(verdict.code, ENROLL)), None
    return None, cert


def _expiry(cert, trust, host, now, warn_days):
    left = cert.not_valid_after_utc - now
    renew = _PKI_REMEDIES['expired']
    if left < datetime.timedelta(days=warn_days):
        return warning('the certificate of %s expires on %s, in %d days'
                       % (host, cert.not_valid_after_utc.date(), left.days),
                       renew)
    for ca in trust.ca_certs:
        if ca.not_valid_after_utc - now < datetime.timedelta(days=warn_days):
            return warning('the CA certificate %s expires on %s'
                           % (ca.subject.rfc4514_string(),
                              ca.not_valid_after_utc.date()),
                           'create a new CA and enroll every host with it')
    for crl in trust.crls:
        if crl.next_update_utc and crl.next_update_utc - now < CRL_WARN:
            return warning('the CRL expires on %s; then every certificate '
                           'is refused' % crl.next_update_utc.isoformat(),
                           'publish it on the CA ("secmig pki crl") and '
                           'copy ca-crl.pem here')
    return success('certificate of %s valid until %s (%d days), clearance '
                   '%d' % (host, cert.not_valid_after_utc.date(), left.days,
                           clearance.decode(cert)))


def check_ca(cert_dir, require_crl=True, now=None, warn_days=WARN_DAYS):
    """A scheduler host's trust anchor: the CA certificate and CRL."""
    now = now or _utcnow()
    names = [host_files.CA_CERT] + ([host_files.CA_CRL]
                                    if require_crl else [])
    missing = [n for n in names
               if not os.path.exists(os.path.join(cert_dir, n))]
    if missing:
        return failure('%s lacks %s' % (cert_dir, ', '.join(missing)),
                       'copy the CA\'s ca-cert.pem and ca-crl.pem there')
    try:
        trust = credentials.load_trust(cert_dir)
    except exception.SecmigError as e:
        return failure('%s (%s)' % (e, e.code),
                       'copy the CA\'s ca-cert.pem and ca-crl.pem again')
    for crl in trust.crls:
        issuers = [ca for ca in trust.ca_certs if ca.subject == crl.issuer]
        if not any(crl.is_signature_valid(ca.public_key())
                   for ca in issuers):
            return failure('ca-crl.pem is not signed by the trusted CA',
                           'copy the CA\'s own ca-crl.pem')
        if crl.next_update_utc and crl.next_update_utc < now:
            return failure('the CRL expired on %s: every host is refused'
                           % crl.next_update_utc.isoformat(),
                           'publish it on the CA ("secmig pki crl") and '
                           'copy ca-crl.pem here')
        if crl.next_update_utc and crl.next_update_utc - now < CRL_WARN:
            return warning('the CRL expires on %s'
                           % crl.next_update_utc.isoformat(),
                           'publish it on the CA ("secmig pki crl") and '
                           'copy ca-crl.pem here')
    return success('CA %s and its CRL installed in %s'
                   % (trust.ca_certs[0].subject.rfc4514_string(), cert_dir))


def libvirtd_tls_files(pki_dir=LIBVIRT_PKI_DIR, settings=None):
    """The files libvirtd's TLS reads, by role, as absolute paths.

    libvirtd's server side takes ``ca_file``, ``cert_file``, ``key_file``
    and ``crl_file`` from libvirtd.conf (``settings``, as
    :func:`parse_libvirt_conf` returns them) when set; the client side
    (the source host's libvirtd connecting to the destination) always
    reads the fixed paths under ``pki_dir``.
    """
    settings = settings or {}

    def path(name):
        return os.path.join(pki_dir, name)
    return {
        'ca': settings.get('ca_file') or path(host_files.LIBVIRT_CA_CERT),
        'crl': settings.get('crl_file') or path(host_files.LIBVIRT_CA_CRL),
        'server_cert': (settings.get('cert_file')
                        or path(host_files.LIBVIRT_SERVER_CERT)),
        'server_key': (settings.get('key_file')
                       or path(host_files.LIBVIRT_SERVER_KEY)),
        'client_ca': path(host_files.LIBVIRT_CA_CERT),
        'client_cert': path(host_files.LIBVIRT_CLIENT_CERT),
        'client_key': path(host_files.LIBVIRT_CLIENT_KEY),
    }


def _libvirtd_remedy(pki_dir):
    return ('"secmig pki install --cert CERT --ca ca-cert.pem --crl '
            'ca-crl.pem --libvirt-pki-dir %s" writes libvirtd\'s files '
            'beside QEMU\'s' % pki_dir)


def check_libvirtd_certificates(pki_dir, qemu_cert_dir, host, margin,
                                min_rsa_bits=2048, require_crl=True,
                                now=None, warn_days=WARN_DAYS,
                                libvirtd_conf=None):
    """libvirtd's own TLS files: the ``qemu+tls://`` control connection.

    Nova's peer-to-peer live migration always opens it, whatever QEMU's
    settings. Failure: a file is missing (:func:`libvirtd_tls_files`),
    a key is readable by every user or does not match its certificate,
    a certificate fails verification for ``host`` against libvirtd's CA
    and CRL, or libvirtd trusts other CA certificates than QEMU's in
    ``qemu_cert_dir``. Warning: expiry within ``warn_days``, or
    libvirtd's CRL is older than QEMU's.
    """
    now = now or _utcnow()
    remedy = _libvirtd_remedy(pki_dir)
    try:
        settings = (_read_libvirt_conf(libvirtd_conf)
                    if libvirtd_conf else {})
    except exception.SecmigError as e:
        return failure(str(e), 'give libvirtd.conf with --libvirtd-config')
    files = libvirtd_tls_files(pki_dir, settings)
    needed = [files[k] for k in ('ca', 'server_cert', 'server_key',
                                 'client_ca', 'client_cert', 'client_key')]
    if require_crl:
        needed.append(files['crl'])
    missing = [p for p in dict.fromkeys(needed) if not os.path.exists(p)]
    if missing:
        return failure('libvirtd\'s TLS lacks %s: the control connection '
                       'of every live migration (qemu+tls) fails'
                       % ', '.join(missing), remedy)
    try:
        crl = files['crl'] if os.path.exists(files['crl']) else None
        trust = verify.TrustStore.from_files(files['ca'], crl)
        certs = []
        for cert_key in (('server_cert', 'server_key'),
                         ('client_cert', 'client_key')):
            refusal, cert = _check_pair(
                '', files[cert_key[0]], files[cert_key[1]], trust,
                host, margin, min_rsa_bits, require_crl, now)
            if refusal is not None:
                return refusal
            certs.append(cert)
        problem = _same_ca(files, qemu_cert_dir, trust)
    except exception.SecmigError as e:
        return failure('%s (%s)' % (e, e.code), remedy)
    if problem is not None:
        return problem
    result = _expiry(certs[0], trust, host, now, warn_days)
    if result.code != Code.SUCCESS:
        return result
    stale = _older_crl(crl, os.path.join(qemu_cert_dir, host_files.CA_CRL))
    if stale is not None:
        return stale
    return success('libvirtd: certificate of %s valid until %s, same CA '
                   'as QEMU\'s (%s)' % (host, certs[0].not_valid_after_utc
                                        .date(), files['server_cert']))


def _fingerprints(certs):
    return {c.fingerprint(hashes.SHA256()) for c in certs}


def _same_ca(files, qemu_cert_dir, trust):
    qemu_ca = os.path.join(qemu_cert_dir, host_files.CA_CERT)
    if not os.path.exists(qemu_ca):
        return None     # the QEMU check reports it
    qemu = _fingerprints(verify.TrustStore.from_files(qemu_ca).ca_certs)
    for path in dict.fromkeys((files['ca'], files['client_ca'])):
        theirs = (trust.ca_certs if path == files['ca'] else
                  verify.TrustStore.from_files(path).ca_certs)
        if _fingerprints(theirs) != qemu:
            return failure('%s and %s hold different CA certificates: '
                           'libvirtd and QEMU would not trust the same '
                           'hosts' % (path, qemu_ca),
                           'install both from the same CA with "secmig '
                           'pki install"')
    return None


def _older_crl(crl_path, qemu_crl_path):
    if not crl_path or not os.path.exists(qemu_crl_path):
        return None
    mine = keys.load_crl(fileio.read_bytes(crl_path, 'revocation list'),
                         crl_path)
    qemu = keys.load_crl(fileio.read_bytes(qemu_crl_path,
                                           'revocation list'),
                         qemu_crl_path)
    if mine.last_update_utc < qemu.last_update_utc:
        return warning('%s is older than %s: libvirtd may accept a host '
                       'revoked since' % (crl_path, qemu_crl_path),
                       'copy the newest ca-crl.pem to both ("secmig pki '
                       'install --crl")')
    return None


# nova.conf -----------------------------------------------------------------

def read_ini(path):
    """``{section: {key: [values]}}`` of an oslo.config INI file.

    :raises SecmigError: the file is missing, unreadable or not INI
    """
    sections = {}
    try:
        cfg.ConfigParser(path, sections).parse()
    except OSError as e:
        raise exception.SecmigError('cannot read %s: %s'
                                    % (path, e.strerror or e),
                                    code='unreadable_file') from e
    except cfg.ParseError as e:
        raise exception.SecmigError(str(e), code='bad_config') from e
    return sections


def ini_value(sections, section, key, default=None):
    """The last value of ``key``, as oslo.config reads a single option."""
    values = sections.get(section, {}).get(key)
    return values[-1] if values else default


def nova_host(sections, fallback):
    """The host name Nova uses: ``[DEFAULT] host``, else ``fallback``."""
    return ini_value(sections, 'DEFAULT', 'host') or fallback


def _bool(sections, key, default):
    value = ini_value(sections, 'libvirt', key)
    if value is None:
        return default
    return types.Boolean()(value)


def check_nova_libvirt(path):
    """A compute host's nova.conf: live migrations use TLS end to end.

    Failure: native TLS off, the libvirtd control connection not TLS
    (``live_migration_scheme`` or ``live_migration_uri``, OSSN-0089),
    native TLS and tunnelling both on, or ``[secmig] config_file``
    naming a missing file. Warning: tunnelled over TLS (deprecated in
    Nova), or ``[secmig] config_file`` left to its default.
    """
    try:
        sections = read_ini(path)
        settings = tls.LibvirtSettings(
            native_tls=_bool(sections, 'live_migration_with_native_tls',
                             False),
            tunnelled=_bool(sections, 'live_migration_tunnelled', False),
            scheme=ini_value(sections, 'libvirt', 'live_migration_scheme'),
            uri=ini_value(sections, 'libvirt', 'live_migration_uri'))
    except exception.SecmigError as e:
        return failure(str(e), 'give the compute host\'s nova.conf with '
                       '--nova-config')
    except ValueError as e:
        return failure('%s: [libvirt] %s' % (path, e),
                       'use true or false')
    decision = tls.check_settings(settings)
    if not decision:
        return failure('%s: %s (%s)' % (path, decision.reason,
                                        decision.code),
                       _TLS_REMEDIES[decision.code])
    problem = _secmig_config_file(sections, path)
    if problem is not None:
        return problem
    if settings.tunnelled:
        return warning('%s: migrations are tunnelled through libvirtd over '
                       'TLS; Nova deprecated tunnelling and it cannot copy '
                       'block devices' % path,
                       'set live_migration_with_native_tls = true and '
                       'live_migration_tunnelled = false')
    return success('%s: %s; [secmig] config_file = %s'
                   % (path, decision.reason,
                      ini_value(sections, 'secmig', 'config_file')))


def _secmig_config_file(sections, path):
    config_file = ini_value(sections, 'secmig', 'config_file')
    if not config_file:
        return warning('%s does not set [secmig] config_file; Nova reads '
                       'the default /etc/secmig/secmig.conf' % path,
                       'set [secmig] config_file explicitly')
    if not os.path.exists(config_file):
        return failure('[secmig] config_file %s does not exist: secmig runs '
                       'on its defaults and refuses every migration'
                       % config_file,
                       'write it or correct the path in %s' % path)
    return None


def check_nova_scheduler(path):
    """A scheduler host's nova.conf: the filter is available and enabled."""
    try:
        sections = read_ini(path)
    except exception.SecmigError as e:
        return failure(str(e), 'give the scheduler host\'s nova.conf with '
                       '--nova-config')
    scheduler = sections.get('filter_scheduler', {})
    available = scheduler.get('available_filters',
                              ['nova.scheduler.filters.all_filters'])
    enabled = ','.join(scheduler.get('enabled_filters', [])).split(',')
    remedy = ('add "available_filters = %s" (keeping nova.scheduler.filters'
              '.all_filters) and SecureMigrationFilter to enabled_filters in '
              '[filter_scheduler]' % SCHEDULER_FILTER)
    if SCHEDULER_FILTER not in available:
        return failure('%s: [filter_scheduler] available_filters lacks %s'
                       % (path, SCHEDULER_FILTER), remedy)
    if 'SecureMigrationFilter' not in [f.strip() for f in enabled]:
        return failure('%s: SecureMigrationFilter is not in '
                       '[filter_scheduler] enabled_filters' % path, remedy)
    problem = _secmig_config_file(sections, path)
    if problem is not None:
        return problem
    return success('%s: SecureMigrationFilter enabled; [secmig] config_file '
                   '= %s' % (path, ini_value(sections, 'secmig',
                                             'config_file')))


# libvirt and QEMU ----------------------------------------------------------

_LIBVIRT_LINE = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+)\s*'
    r'(?:#.*)?$')


def parse_libvirt_conf(text):
    """Integer and string settings of a libvirt configuration file.

    libvirt's files (qemu.conf, libvirtd.conf) hold ``key = value`` lines
    with ``#`` comments; strings are double-quoted. List values are
    skipped: no check here reads one.
    """
    values = {}
    for line in text.splitlines():
        match = _LIBVIRT_LINE.match(line)
        if match:
            key, raw = match.groups()
            values[key] = (raw[1:-1].replace('\\"', '"')
                           if raw.startswith('"') else int(raw))
    return values


def _read_libvirt_conf(path):
    try:
        with open(path) as f:
            return parse_libvirt_conf(f.read())
    except OSError as e:
        raise exception.SecmigError('cannot read %s: %s'
                                    % (path, e.strerror or e),
                                    code='unreadable_file') from e


def check_qemu(qemu_conf, cert_dir, libvirtd_conf=None):
    """libvirt forces TLS on QEMU migrations, with secmig's certificates.

    Failure: ``migrate_tls_force`` is not 1, peer verification is off,
    or QEMU's migration certificate directory is not ``cert_dir`` (QEMU
    would present other certificates than the ones secmig verifies);
    with ``libvirtd_conf``, ``listen_tls = 0``. Warning: libvirtd also
    listens on plain TCP.
    """
    try:
        qemu = _read_libvirt_conf(qemu_conf)
        daemon = (_read_libvirt_conf(libvirtd_conf)
                  if libvirtd_conf else None)
    except exception.SecmigError as e:
        return failure(str(e), 'give libvirt\'s files with --qemu-config '
                       'and --libvirtd-config')
    if qemu.get('migrate_tls_force', 0) != 1:
        return failure('%s: migrate_tls_force is not 1, so libvirt accepts '
                       'a migration without TLS' % qemu_conf,
                       'set migrate_tls_force = 1 and restart libvirtd')
    verify_peer = qemu.get('migrate_tls_x509_verify',
                           qemu.get('default_tls_x509_verify', 1))
    if verify_peer != 1:
        return failure('%s: migrate_tls_x509_verify = 0: QEMU does not '
                       'verify the peer\'s certificate' % qemu_conf,
                       'set migrate_tls_x509_verify = 1')
    qemu_dir = (qemu.get('migrate_tls_x509_cert_dir')
                or qemu.get('default_tls_x509_cert_dir')
                or QEMU_DEFAULT_CERT_DIR)
    if os.path.normpath(qemu_dir) != os.path.normpath(cert_dir):
        return failure('%s: QEMU migrates with the certificates in %s, but '
                       'secmig\'s [pki] cert_dir is %s' % (qemu_conf,
                                                           qemu_dir,
                                                           cert_dir),
                       'set migrate_tls_x509_cert_dir = "%s"' % cert_dir)
    if daemon is not None:
        problem = _listen_settings(daemon, libvirtd_conf)
        if problem is not None:
            return problem
    return success('%s: TLS forced on QEMU migrations, peers verified, '
                   'certificates from %s' % (qemu_conf, qemu_dir))


def _listen_settings(daemon, libvirtd_conf):
    if daemon.get('listen_tls', 1) != 1:
        return failure('%s: listen_tls = 0: the libvirtd control '
                       'connection cannot use TLS' % libvirtd_conf,
                       'set listen_tls = 1 and restart libvirtd (or enable '
                       'libvirtd-tls.socket under systemd socket '
                       'activation)')
    if daemon.get('listen_tcp', 0) == 1:
        return failure('%s: listen_tcp = 1: libvirtd also accepts plain '
                       'TCP connections, unencrypted' % libvirtd_conf,
                       'set listen_tcp = 0 and restart libvirtd')
    return None


# libvirtd's TLS listener ---------------------------------------------------
#
# Port 16514 has one of two owners. Under systemd socket activation (Debian
# 12's default) systemd listens through libvirtd-tls.socket and hands the
# socket to libvirtd when it starts; libvirtd.conf's listen_* are then
# ignored, and libvirtd refuses --listen. Otherwise libvirtd listens itself
# when started with --listen, as libvirtd.conf's listen_tls says.

#: Present when systemd runs this host (sd_booted(3)); without it the units
#: linked under /etc/systemd/system start nothing.
SYSTEMD_RUN_DIR = '/run/systemd/system'
#: LIBVIRTD_ARGS, read by Debian's libvirtd.service and its init script.
LIBVIRTD_DEFAULTS = '/etc/default/libvirtd'
#: The pid file of the system libvirtd.
LIBVIRTD_PID_FILE = '/run/libvirtd.pid'
#: The root :func:`check_libvirtd_listener` reads the host's files under.
HOST_ROOT = '/'
#: The daemons that serve ``qemu+tls://``: the monolithic libvirtd and the
#: modular daemons' proxy.
_DAEMONS = ('libvirtd', 'virtproxyd')
#: Each daemon's units; every socket unit binds to ``<daemon>.socket``, and
#: ``<daemon>.service`` wants it.
_DAEMON_UNITS = ('.service', '.socket', '-ro.socket', '-admin.socket',
                 '-tls.socket', '-tcp.socket')
_TCP_SOCKETS = tuple(d + '-tcp.socket' for d in _DAEMONS)
#: libvirtd's options that take a value (``libvirtd --help``).
_VALUE_OPTIONS = ('-f', '-p', '-t', '--config', '--pid-file', '--timeout')
_ARGS_LINE = re.compile(r'^\s*(?:export\s+)?LIBVIRTD_ARGS=(.*)$')
_ENABLE_TLS = ('systemctl enable --now %s-tls.socket, then systemctl '
               'restart %s')
_START_LISTENER = ('under systemd, systemctl enable --now libvirtd-tls.socket'
                   ' then systemctl restart libvirtd; without systemd, start '
                   'libvirtd with --listen (LIBVIRTD_ARGS="--listen" in %s)'
                   % LIBVIRTD_DEFAULTS)


def enabled_units(systemd_dir=SYSTEMD_DIR):
    """Names of the units linked in ``systemd_dir``'s ``*.wants``."""
    units = set()
    try:
        wants = [d for d in os.listdir(systemd_dir) if d.endswith('.wants')]
    except OSError:
        return units
    for directory in wants:
        try:
            units.update(os.listdir(os.path.join(systemd_dir, directory)))
        except OSError:
            continue
    return units


def masked_units(systemd_dir=SYSTEMD_DIR):
    """Names of the units masked in ``systemd_dir``.

    ``systemctl mask`` links the unit to /dev/null; an empty unit file
    masks it too.
    """
    masked = set()
    try:
        names = os.listdir(systemd_dir)
    except OSError:
        return masked
    for name in names:
        path = os.path.join(systemd_dir, name)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if os.readlink(path) == os.devnull:
                    masked.add(name)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                masked.add(name)
        except OSError:
            continue
    return masked


def has_listen(args):
    """Whether libvirtd's arguments ``args`` (no program name) hold -l."""
    value_next = False
    for arg in args:
        if value_next:
            value_next = False
        elif arg == '--':
            break
        elif arg == '--listen':
            return True
        elif arg in _VALUE_OPTIONS:
            value_next = True
        elif arg.startswith('-') and not arg.startswith('--'):
            for i, flag in enumerate(arg[1:], 2):
                if flag == 'l':
                    return True
                if flag in 'fpt':
                    value_next = i == len(arg)
                    break
    return False


def libvirtd_args(defaults_file=LIBVIRTD_DEFAULTS):
    """LIBVIRTD_ARGS of libvirtd's defaults file, split into arguments.

    The last assignment counts, as in the shell. None when the file is
    missing or unreadable, or assigns none (Debian ships it commented).
    """
    try:
        with open(defaults_file) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    args = None
    for line in text.splitlines():
        match = _ARGS_LINE.match(line)
        if not match:
            continue
        try:
            words = shlex.split(match.group(1), comments=True)
            args = tuple(a for word in words for a in shlex.split(word))
        except ValueError:
            continue
    return args


@dataclasses.dataclass(frozen=True)
class RunningLibvirtd:
    """The libvirtd that runs.

    Its pid, its arguments and the socket units systemd handed it
    (``LISTEN_FDNAMES``; None when not told).
    """

    pid: int
    args: tuple
    sockets: frozenset = None


def running_libvirtd(pid_file=LIBVIRTD_PID_FILE, proc_dir='/proc'):
    """The libvirtd ``pid_file`` names, or None when none runs."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().split()[0])
        with open(os.path.join(proc_dir, str(pid), 'cmdline'), 'rb') as f:
            argv = f.read().decode(errors='replace').split('\0')
    except (OSError, ValueError, IndexError):
        return None
    if argv[-1] == '':
        argv.pop()
    if not argv or os.path.basename(argv[0]) != 'libvirtd':
        return None     # a stale pid file, its pid now another program's
    return RunningLibvirtd(pid, tuple(argv[1:]),
                           _systemd_sockets(proc_dir, pid))


def _systemd_sockets(proc_dir, pid):
    """The socket units systemd passed process ``pid`` when it started.

    /proc/PID/environ is the environment the process started with (root
    reads it). Without ``LISTEN_FDNAMES`` there, or unreadable: None.
    """
    try:
        with open(os.path.join(proc_dir, str(pid), 'environ'), 'rb') as f:
            environ = f.read().decode(errors='replace').split('\0')
    except OSError:
        return None
    for variable in environ:
        name, _, value = variable.partition('=')
        if name == 'LISTEN_FDNAMES':
            return frozenset(value.split(':'))
    return None


@dataclasses.dataclass(frozen=True)
class _Listener:
    """What one source tells of libvirtd's TLS listener."""

    listens: bool = None    # None: this source cannot tell
    details: str = ''
    remedy: str = None
    by_listen: bool = False     # libvirtd's own, as libvirtd.conf says


def _daemon_units(daemon, units):
    """``daemon``'s units among ``units``, sorted.

    Any of them enabled pulls in ``<daemon>.socket``: systemd then
    socket-activates the daemon, unless that socket is masked.
    """
    return sorted(units & {daemon + u for u in _DAEMON_UNITS})


def _configured_listener(units, masked, args, defaults, booted):
    """What the configuration starts after a (re)start of libvirtd."""
    if booted:
        for daemon in _DAEMONS:
            shown = _daemon_units(daemon, units)
            if shown and daemon + '.socket' not in masked:
                return _activated_listener(daemon, shown, args, defaults)
    if args is not None and has_listen(args):
        return _Listener(True, '%s gives LIBVIRTD_ARGS --listen' % defaults,
                         by_listen=True)
    add_listen = 'LIBVIRTD_ARGS="--listen" in %s, then restart libvirtd' % (
        defaults)
    if booted and 'libvirtd.service' in units:
        return _Listener(False, 'libvirtd.service is enabled, its socket '
                         'units masked, and LIBVIRTD_ARGS in %s does not '
                         'give --listen: libvirtd does not listen on port '
                         '16514' % defaults, add_listen)
    if args is not None:
        return _Listener(False, 'LIBVIRTD_ARGS in %s does not give '
                         '--listen and no socket unit listens: libvirtd '
                         'does not listen on port 16514' % defaults,
                         add_listen)
    return _Listener(None, 'no libvirtd socket unit %s and no LIBVIRTD_ARGS '
                     'in %s' % ('enabled' if booted else
                                '(systemd does not run this host)',
                                defaults))


def _activated_listener(daemon, shown, args, defaults):
    activation = ('systemd socket activation: %s enabled'
                  % ', '.join(shown))
    if daemon == 'libvirtd' and args is not None and has_listen(args):
        return _Listener(False, '%s gives LIBVIRTD_ARGS --listen, which '
                         'libvirtd refuses under %s: libvirtd does not '
                         'start' % (defaults, activation),
                         'remove --listen from LIBVIRTD_ARGS in %s, '
                         'systemctl enable --now libvirtd-tls.socket, then '
                         'systemctl restart libvirtd' % defaults)
    tls = daemon + '-tls.socket'
    if tls in shown:
        return _Listener(True, '%s is enabled (%s)' % (tls, activation))
    return _Listener(False, '%s is not enabled (%s): nothing listens on '
                     'port 16514' % (tls, activation),
                     _ENABLE_TLS % (daemon, daemon))


def _running_listener(running, pid_file):
    """What the running libvirtd listens on, when that can be told."""
    if running is None:
        return _Listener(None, 'no libvirtd runs (%s)' % pid_file)
    name = 'libvirtd (pid %d)' % running.pid
    if has_listen(running.args):
        return _Listener(True, '%s runs with --listen' % name,
                         by_listen=True)
    if running.sockets is None:
        return _Listener(None, '%s runs without --listen' % name)
    if 'libvirtd-tls.socket' in running.sockets:
        return _Listener(True, '%s holds libvirtd-tls.socket from systemd'
                         % name)
    return _Listener(False, '%s was started by systemd with %s, not '
                     'libvirtd-tls.socket: it does not listen on port 16514'
                     % (name, ', '.join(sorted(running.sockets))),
                     _ENABLE_TLS % ('libvirtd', 'libvirtd'))


def _listener_verdict(now, configured, libvirtd_conf):
    """One result from what runs (``now``) and what would start."""
    if now.listens is None and configured.listens is None:
        return warning('cannot tell whether libvirtd listens for TLS: %s; '
                       '%s' % (configured.details, now.details),
                       _START_LISTENER)
    if now.listens is False:
        if configured.listens:
            return failure('%s, although %s' % (now.details,
                                                configured.details),
                           'systemctl restart libvirtd: systemd hands it '
                           'the enabled sockets when it starts')
        remedy = (configured.remedy if configured.listens is False
                  else now.remedy)
        return failure(now.details, remedy or _START_LISTENER)
    if now.listens and configured.listens is False:
        return warning('%s now, but not once restarted: %s'
                       % (now.details, configured.details),
                       configured.remedy)
    verdict = now if now.listens else configured
    if not verdict.listens:
        return failure(verdict.details, verdict.remedy)
    if not verdict.by_listen:
        return success(verdict.details)
    if not libvirtd_conf:
        return warning('%s, but listen_tls and listen_tcp are not checked '
                       'without libvirtd.conf' % verdict.details,
                       'give libvirtd.conf with --libvirtd-config')
    return success('%s; %s: listen_tls = 1, listen_tcp = 0'
                   % (verdict.details, libvirtd_conf))


def _under(root, path):
    return os.path.join(root, path.lstrip('/'))


def check_libvirtd_listener(libvirtd_conf=None, systemd_dir=None, root=None):
    """libvirtd listens for TLS on port 16514, and not for plain TCP.

    Each of the host's files is read under ``root`` (default ``/``);
    ``systemd_dir`` defaults to ``/etc/systemd/system`` there. Where
    systemd runs the host and socket-activates libvirtd (libvirtd.socket,
    or libvirtd.service, or any other of its socket units enabled and
    libvirtd.socket not masked; virtproxyd's for the modular daemons),
    ready means ``libvirtd-tls.socket`` (``virtproxyd-tls.socket``) is
    enabled. Otherwise libvirtd must be started with ``--listen``: given
    in ``/etc/default/libvirtd``'s LIBVIRTD_ARGS, or on the command line
    of the libvirtd that runs (``/run/libvirtd.pid``), which tells what
    listens now; a socket-activated libvirtd that runs tells which
    sockets systemd handed it.

    Failure: a plain TCP socket unit is enabled; libvirtd.conf says
    ``listen_tls = 0`` or ``listen_tcp = 1``; socket activation without
    the TLS socket unit, or with ``--listen`` in LIBVIRTD_ARGS (libvirtd
    refuses to start); the running libvirtd does not listen. Warning:
    nothing tells; libvirtd listens now but would not once restarted;
    ``--listen`` without libvirtd.conf to check.
    """
    root = HOST_ROOT if root is None else root
    systemd_dir = systemd_dir or _under(root, SYSTEMD_DIR)
    masked = masked_units(systemd_dir)
    units = enabled_units(systemd_dir) - masked
    tcp = [u for u in _TCP_SOCKETS if u in units]
    if tcp:
        return failure('%s enabled: libvirtd accepts plain TCP '
                       'connections, unencrypted' % ', '.join(tcp),
                       'systemctl disable --now %s' % ' '.join(tcp))
    if libvirtd_conf:
        try:
            daemon = _read_libvirt_conf(libvirtd_conf)
        except exception.SecmigError as e:
            return failure(str(e), 'give libvirtd.conf with '
                           '--libvirtd-config')
        problem = _listen_settings(daemon, libvirtd_conf)
        if problem is not None:
            return problem
    defaults = _under(root, LIBVIRTD_DEFAULTS)
    configured = _configured_listener(
        units, masked, libvirtd_args(defaults), defaults,
        os.path.isdir(_under(root, SYSTEMD_RUN_DIR)))
    pid_file = _under(root, LIBVIRTD_PID_FILE)
    now = _running_listener(
        running_libvirtd(pid_file, _under(root, '/proc')), pid_file)
    return _listener_verdict(now, configured, libvirtd_conf)


# Policy, audit -------------------------------------------------------------

def check_policy(path):
    """The migration policy file loads; its digest is in the details."""
    try:
        policy = loader.load(path)
    except loader.PolicyError as e:
        remedy = ('write it from etc/secmig/migration-policy.yaml.sample, '
                  'the same file on every host'
                  if e.code == 'policy_missing' else
                  'fix the file; "secmig policy check %s" names the line'
                  % path)
        return failure('%s (%s): every migration is refused' % (e, e.code),
                       remedy)
    return success('%s is valid, digest %s (it must be the same on every '
                   'host)' % (path, policy.digest))


def check_audit(journal_path, trust=None, host=None):
    """The journal's directory is writable and the journal intact.

    ``trust`` (a TrustStore) anchors the journal's signing certificates;
    without it the journal is checked against itself only. ``host``
    binds it to this host: every signing certificate must name it.
    """
    directory = os.path.dirname(os.path.abspath(journal_path))
    existing = directory
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    user = getpass.getuser()
    if not os.access(existing, os.W_OK | os.X_OK):
        return failure('%s is not writable by %s: every migration is '
                       'refused' % (existing, user),
                       'create %s, writable by the user nova-compute runs '
                       'as' % directory)
    if not os.path.exists(journal_path):
        return success('no journal yet; %s is writable by %s (run this '
                       'check as the user nova-compute runs as)'
                       % (existing, user))
    try:
        verdict = audit_verify.verify_journal(journal_path, trust=trust,
                                              host=host)
    except exception.SecmigError as e:
        return failure(str(e), 'make the journal readable by %s' % user)
    if not verdict:
        return failure('%s is not intact: %s (%s, record %s)'
                       % (journal_path, verdict.reason, verdict.code,
                          verdict.details.get('record')),
                       'keep it as evidence; "secmig audit verify %s" '
                       'locates the damage, and "secmig audit recover" '
                       'sets it aside and starts a new journal '
                       '(doc/audit.rst)' % journal_path)
    return success('%s: %s' % (journal_path, verdict.reason))


# The user nova-compute runs as ---------------------------------------------

def check_service_access(user_name, cert_dir, journal_path, explicit=True):
    """nova-compute's user can read the host key and write the journal.

    secmig's guard runs inside nova-compute: it signs handshakes with
    ``server-key.pem`` in ``cert_dir`` and appends to the journal at
    ``journal_path``. Decided from modes, owners and the user's groups
    (:mod:`secmig.pki.access`), so that root can check for the service
    user. ``user_name`` is a name or an :class:`access.User`. Failure: a
    file or directory on the way denies it, or ``user_name`` does not
    exist and was given ``explicit``-ly; without ``explicit`` a missing
    user is reported as not checked.
    """
    try:
        user = (user_name if isinstance(user_name, access.User)
                else access.User.named(user_name))
    except KeyError:
        if explicit:
            return failure('user %s does not exist' % user_name,
                           'give the user nova-compute runs as with '
                           '--service-user')
        return success('no user %s here; not checked (give the user '
                       'nova-compute runs as with --service-user)'
                       % user_name)
    problems, remedies = [], []
    for name in (host_files.SERVER_KEY, host_files.SERVER_CERT,
                 host_files.CA_CERT, host_files.CA_CRL):
        path = os.path.join(cert_dir, name)
        if not os.path.exists(path):
            continue    # the certificate check reports it
        denial = access.check(user, path, access.READ)
        if denial is not None:
            problems.append(str(denial))
            remedies.append(_read_remedy(denial, user))
            break
    journal_problem = _journal_access(user, journal_path)
    if journal_problem is not None:
        problems.append(journal_problem[0])
        remedies.append(journal_problem[1])
    if problems:
        return failure('%s: secmig in nova-compute refuses every migration'
                       % '; '.join(problems), '; '.join(remedies))
    return success('%s can read the host key in %s and write the journal '
                   'in %s' % (user.name, cert_dir,
                              os.path.dirname(journal_path)))


def _read_remedy(denial, user):
    if denial.need == 'enter':
        return 'chmod 0755 %s' % denial.path
    if denial.group not in ('root', '0') and denial.mode & 0o040:
        return ('usermod -a -G %s %s, then restart nova-compute'
                % (denial.group, user.name))
    return ('"secmig pki install --group kvm" (the key becomes root:kvm '
            '0640) and "usermod -a -G kvm %s", then restart nova-compute'
            % user.name)


def _journal_access(user, journal_path):
    directory = os.path.dirname(os.path.abspath(journal_path))
    remedy = ('install -d -o %s -g %s -m 0750 %s'
              % (user.name, user.group or user.name, directory))
    if os.path.exists(journal_path):
        denial = access.check(user, journal_path, access.READ | access.WRITE)
        if denial is not None:
            return str(denial), 'chown %s %s' % (user.name, journal_path)
    existing = access.nearest_existing(directory)
    if not stat.S_ISDIR(os.stat(existing).st_mode):
        return '%s is not a directory' % existing, remedy
    denial = access.check(user, existing, access.WRITE | access.SEARCH)
    if denial is not None:
        return str(denial), remedy
    return None


# Clock ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClockReading:
    """What a time service says of this host's clock.

    ``offset`` is in seconds (positive: this clock is ahead), ``None``
    when the source reports synchronisation but no offset.
    """

    source: str
    synchronised: bool
    offset: float = None


_CHRONY_TIME = re.compile(
    r'^System time\s*:\s*([0-9.]+) seconds (fast|slow)', re.M)
_CHRONY_LEAP = re.compile(r'^Leap status\s*:\s*(.+?)\s*$', re.M)


def parse_chronyc_tracking(text):
    """A :class:`ClockReading` from ``chronyc tracking`` output, or None."""
    leap = _CHRONY_LEAP.search(text)
    if not leap:
        return None
    offset = _CHRONY_TIME.search(text)
    value = None
    if offset:
        value = float(offset.group(1))
        if offset.group(2) == 'slow':
            value = -value
    return ClockReading('chronyc tracking',
                        leap.group(1) != 'Not synchronised', value)


def parse_timedatectl_show(text):
    """A :class:`ClockReading` from ``timedatectl show``, or None."""
    match = re.search(r'^NTPSynchronized=(yes|no)\s*$', text, re.M)
    if not match:
        return None
    return ClockReading('timedatectl', match.group(1) == 'yes')


_CLOCK_SOURCES = ((('chronyc', '-n', 'tracking'), parse_chronyc_tracking),
                  (('timedatectl', 'show'), parse_timedatectl_show))


def read_clock(sources=_CLOCK_SOURCES, timeout=5):
    """Ask the first time service that answers; None when none does."""
    for argv, parse in sources:
        if shutil.which(argv[0]) is None:
            continue
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        reading = parse(done.stdout) if done.returncode == 0 else None
        if reading is not None:
            return reading
    return None


def check_clock(max_skew, reading):
    """The clock is close enough for the handshake's ``max_skew`` bound.

    Two hosts each off by half the bound, in opposite directions, reach
    it: an offset beyond ``max_skew / 2`` fails.
    """
    remedy = 'run NTP (chrony) on every host'
    if reading is None:
        return warning('cannot tell whether the clock is synchronised (no '
                       'answer from chronyc or timedatectl); handshakes '
                       'fail beyond %d s of skew' % max_skew, remedy)
    if not reading.synchronised:
        return warning('%s: the clock is not synchronised; handshakes fail '
                       'beyond %d s of skew' % (reading.source, max_skew),
                       remedy)
    if reading.offset is None:
        return success('%s: the clock is synchronised' % reading.source)
    if abs(reading.offset) > max_skew / 2.0:
        return failure('%s: the clock is %.3f s off, more than half of '
                       '[auth] max_clock_skew (%d s)'
                       % (reading.source, reading.offset, max_skew), remedy)
    return success('%s: the clock is synchronised, %.6f s off (bound %d s)'
                   % (reading.source, reading.offset, max_skew))
