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


_TLS_SOCKETS = ('libvirtd-tls.socket', 'virtproxyd-tls.socket')
_TCP_SOCKETS = ('libvirtd-tcp.socket', 'virtproxyd-tcp.socket')


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


def check_libvirtd_listener(libvirtd_conf=None, systemd_dir=SYSTEMD_DIR):
    """libvirtd listens for TLS, and not for plain TCP.

    With systemd socket activation the socket units listen
    (``libvirtd-tls.socket``, or ``virtproxyd-tls.socket`` with the
    modular daemons) and libvirtd.conf's ``listen_*`` are ignored;
    otherwise libvirtd runs with ``--listen`` and ``listen_tls = 1``.
    Failure: a plain TCP socket unit is enabled, or libvirtd.conf says
    ``listen_tls = 0`` or ``listen_tcp = 1``. Warning: neither a TLS
    socket unit nor libvirtd.conf tells.
    """
    units = enabled_units(systemd_dir)
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
    tls = [u for u in _TLS_SOCKETS if u in units]
    if tls:
        return success('%s enabled (systemd socket activation)'
                       % ', '.join(tls))
    if libvirtd_conf:
        return success('%s: listen_tls = 1, listen_tcp = 0 (libvirtd must '
                       'run with --listen: LIBVIRTD_ARGS="--listen" in '
                       '/etc/default/libvirtd)' % libvirtd_conf)
    return warning('cannot tell whether libvirtd listens for TLS: no TLS '
                   'socket unit enabled in %s and no libvirtd.conf given'
                   % systemd_dir,
                   'systemctl enable --now libvirtd-tls.socket, or give '
                   'libvirtd.conf with --libvirtd-config')


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
