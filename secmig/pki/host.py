"""The host side of enrollment: key, certificate request, installation.

The private key is generated on the host and never leaves it. The
installed directory has the layout of QEMU's ``tls-creds-x509`` object
and libvirt's ``migrate_tls_x509_cert_dir``: one certificate and key
serve as both the TLS server (incoming migrations) and client
(outgoing migrations)::

    ca-cert.pem  ca-crl.pem
    server-cert.pem  server-key.pem  client-cert.pem  client-key.pem

A renewal (:func:`make_renewal_request`) leaves the next key beside them,
``next-key.pem``, until :func:`install` puts it in the keys' place.

libvirtd's own TLS (the ``qemu+tls://`` control connection) reads fixed
paths under its PKI root, ``/etc/pki``; :func:`install` can write those
too, with the same certificate and a copy of the same key::

    CA/cacert.pem  CA/cacrl.pem
    libvirt/servercert.pem  libvirt/clientcert.pem
    libvirt/private/serverkey.pem  libvirt/private/clientkey.pem
"""

import dataclasses
import grp
import ipaddress
import os
import pwd
import stat

from cryptography import x509
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import fileio
from secmig.pki import keys
from secmig.pki import names as host_names
from secmig.pki import renewal
from secmig.pki import verify

SERVER_CERT = 'server-cert.pem'
SERVER_KEY = 'server-key.pem'
CLIENT_CERT = 'client-cert.pem'
CLIENT_KEY = 'client-key.pem'
CA_CERT = 'ca-cert.pem'
CA_CRL = 'ca-crl.pem'
#: The key a renewal request asks a certificate for, until installed.
NEXT_KEY = 'next-key.pem'

#: libvirtd's PKI root and its files relative to it.
LIBVIRT_PKI_DIR = '/etc/pki'
LIBVIRT_CA_CERT = 'CA/cacert.pem'
LIBVIRT_CA_CRL = 'CA/cacrl.pem'
LIBVIRT_SERVER_CERT = 'libvirt/servercert.pem'
LIBVIRT_CLIENT_CERT = 'libvirt/clientcert.pem'
LIBVIRT_SERVER_KEY = 'libvirt/private/serverkey.pem'
LIBVIRT_CLIENT_KEY = 'libvirt/private/clientkey.pem'
#: Owner of every installed file; the group QEMU (``libvirt-qemu`` on
#: Debian) runs in, which reads QEMU's key.
DEFAULT_OWNER = 'root'
DEFAULT_KEY_GROUP = 'kvm'
CERT_MODE = 0o644
KEY_MODE = 0o600
GROUP_KEY_MODE = 0o640
_LIBVIRT_DIRS = (('CA', 0o755), ('libvirt', 0o755),
                 ('libvirt/private', 0o750))


@dataclasses.dataclass(frozen=True)
class InstalledFile:
    """A file :func:`install` wrote (or, for a key, set the access of)."""

    path: str
    mode: int
    uid: int
    gid: int

    def __str__(self):
        return '%s %04o %s:%s' % (self.path, self.mode, _user_name(self.uid),
                                  _group_name(self.gid))


@dataclasses.dataclass(frozen=True)
class Installation:
    """What :func:`install` did: the certificate's verdict and files."""

    verdict: object
    files: tuple


def resolve_user(name):
    """``(uid, primary gid)`` of the user ``name`` (or a numeric id).

    :raises PKIError: ``bad_user``, no such user
    """
    try:
        entry = (pwd.getpwuid(int(name)) if str(name).isdigit()
                 else pwd.getpwnam(name))
    except KeyError as e:
        raise exception.PKIError('user %r does not exist' % name,
                                 code='bad_user') from e
    return entry.pw_uid, entry.pw_gid


def resolve_group(name):
    """The gid of the group ``name`` (or a numeric id).

    :raises PKIError: ``bad_group``, no such group
    """
    try:
        return (grp.getgrgid(int(name)) if str(name).isdigit()
                else grp.getgrnam(name)).gr_gid
    except KeyError as e:
        raise exception.PKIError('group %r does not exist' % name,
                                 code='bad_group') from e


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def make_key_and_csr(cert_dir, host, names=(), addresses=(),
                     key_type=keys.DEFAULT_KEY_TYPE, overwrite=False,
                     group=None):
    """Generate this host's key in ``cert_dir`` and return a CSR (PEM).

    An existing key is kept unless ``overwrite`` is true (rotation). The
    key files are mode 0600, or 0640 owned by ``group`` when given (for
    QEMU running as an unprivileged user in that group).

    :raises PKIError: ``bad_name`` or ``bad_address`` (see
        :mod:`secmig.pki.names`), before anything is written
    """
    host = host_names.host_name(host)
    names = [host_names.dns_name(n) for n in names]
    addresses = [host_names.address(a) for a in addresses]
    os.makedirs(cert_dir, mode=0o755, exist_ok=True)
    key = keys.generate_key(key_type)
    pem = keys.private_key_pem(key)
    mode, gid = _key_mode(group)
    with fileio.locked(cert_dir):
        for name in (SERVER_KEY, CLIENT_KEY):
            path = os.path.join(cert_dir, name)
            fileio.write_atomic(path, pem, mode=mode, overwrite=overwrite)
            if gid is not None:
                os.chown(path, -1, gid)
    return _csr(key, host, names, addresses).public_bytes(
        keys.serialization.Encoding.PEM)


def _csr(key, host, names, addresses):
    san = ([x509.DNSName(n) for n in sorted(set(names) | {host})]
           + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses])
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(key, keys.signature_hash(key)))


def make_renewal_request(cert_dir, key_type=keys.DEFAULT_KEY_TYPE,
                         overwrite=False):
    """Generate this host's next key; return a renewal request (PEM).

    The request (:mod:`secmig.pki.renewal`) asks for a successor of the
    certificate in ``cert_dir``, with its names, for the next key, and
    is signed by the current key. The next key is written beside the
    current one, as ``next-key.pem`` (0600); the current key and
    certificate stay in use until :func:`install` installs the new
    certificate, which puts the next key in their place. A next key left
    by an earlier request is used again, unless ``overwrite``.

    :raises PKIError: ``unreadable_file``, ``malformed_pem``,
        ``malformed_key``, ``key_mismatch`` (the current key is not the
        certificate's), ``bad_name`` (the certificate holds a name the
        CA no longer issues)
    """
    cert_path = os.path.join(cert_dir, SERVER_CERT)
    key_path = os.path.join(cert_dir, SERVER_KEY)
    cert = keys.load_certificate(
        fileio.read_bytes(cert_path, 'host certificate'), cert_path)
    key = keys.load_private_key(fileio.read_bytes(key_path, 'host key'),
                                key_path)
    host = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    names = verify.certificate_names(cert) or []
    addresses = [n for n in names if host_names.is_address(n)]
    host = host_names.host_name(host[0].value if host else '')
    names = [host_names.dns_name(n) for n in names if n not in addresses]
    next_path = os.path.join(cert_dir, NEXT_KEY)
    with fileio.locked(cert_dir):
        if overwrite or not os.path.exists(next_path):
            fileio.write_atomic(next_path, keys.private_key_pem(
                keys.generate_key(key_type)), mode=KEY_MODE, overwrite=True)
        next_key = keys.load_private_key(
            fileio.read_bytes(next_path, 'next host key'), next_path)
    return renewal.make(cert, key, _csr(next_key, host, names, addresses))


def _key_mode(group):
    if group is None:
        return KEY_MODE, None
    return GROUP_KEY_MODE, resolve_group(group)


def install(cert_dir, cert_pem, ca_pem, crl_pem=None, now=None,
            margin=0, libvirt_pki_dir=None, owner=None, key_gid=None):
    """Install a signed certificate beside this host's key.

    Refuses (``PKIError``) a certificate that does not match the keys in
    ``cert_dir`` or that the given CA does not validate; nothing is
    written then. In ``cert_dir`` (QEMU's layout) the certificates, the
    CA bundle and the CRL are replaced, mode 0644. With ``key_gid`` the
    keys become 0640 in that group (QEMU's, and the group nova-compute's
    user joins to sign handshakes).

    A key's content is replaced only by the next key of a renewal
    (:func:`make_renewal_request`), when the certificate is the next
    key's: the next key then takes the place, owner and mode of each key
    and ``next-key.pem`` is removed.

    With ``libvirt_pki_dir`` libvirtd's layout is written under it too:
    the same certificates (0644) and copies of the keys (0600, for
    libvirtd, which runs as root); ``libvirt/private`` is 0750.

    ``owner`` is ``(uid, gid)`` for every file written and for the keys
    (None: the writing process's). Every file is written atomically, its
    mode and owner set before it appears.

    :returns: an :class:`Installation`
    """
    cert = keys.load_certificate(cert_pem)
    key_pems, rotated = {}, []
    for name in (SERVER_KEY, CLIENT_KEY):
        key_path = os.path.join(cert_dir, name)
        key_pems[name] = fileio.read_bytes(key_path, 'host key')
        key = keys.load_private_key(key_pems[name], key_path)
        match = verify.verify_key_pair(cert, key)
        if not match:
            key_pems[name] = _next_key_pem(cert_dir, cert)
            if key_pems[name] is None:
                raise exception.PKIError(
                    '%s (key %s)' % (match.reason, key_path),
                    code=match.code)
            rotated.append(name)
    trust = verify.TrustStore(
        keys.load_certificates(ca_pem),
        [keys.load_crl(crl_pem)] if crl_pem else [])
    verdict = verify.verify_certificate(cert, trust, now=now, margin=margin,
                                        require_crl=crl_pem is not None)
    if not verdict:
        raise exception.PKIError('not installing: %s' % verdict.reason,
                                 code=verdict.code)
    uid, gid = owner if owner is not None else (-1, -1)
    files = [(SERVER_CERT, cert_pem), (CLIENT_CERT, cert_pem),
             (CA_CERT, ca_pem)] + ([(CA_CRL, crl_pem)] if crl_pem else [])
    libvirt = [(LIBVIRT_CA_CERT, ca_pem, CERT_MODE),
               (LIBVIRT_SERVER_CERT, cert_pem, CERT_MODE),
               (LIBVIRT_CLIENT_CERT, cert_pem, CERT_MODE),
               (LIBVIRT_SERVER_KEY, key_pems[SERVER_KEY], KEY_MODE),
               (LIBVIRT_CLIENT_KEY, key_pems[CLIENT_KEY], KEY_MODE)]
    if crl_pem:
        libvirt.insert(1, (LIBVIRT_CA_CRL, crl_pem, CERT_MODE))
    written = []
    with fileio.locked(cert_dir):
        for name, data in files:
            written.append(_write(os.path.join(cert_dir, name), data,
                                  CERT_MODE, uid, gid))
        for name in (SERVER_KEY, CLIENT_KEY):
            if name in rotated:
                _replace_key(os.path.join(cert_dir, name), key_pems[name])
            written.append(_key_access(os.path.join(cert_dir, name), uid,
                                       key_gid))
        if libvirt_pki_dir:
            for name, mode in _LIBVIRT_DIRS:
                _make_dir(os.path.join(libvirt_pki_dir, name), mode, uid,
                          gid)
            for name, data, mode in libvirt:
                written.append(_write(os.path.join(libvirt_pki_dir, name),
                                      data, mode, uid, gid))
        next_path = os.path.join(cert_dir, NEXT_KEY)
        if (os.path.exists(next_path) and key_pems[SERVER_KEY]
                == fileio.read_bytes(next_path, 'next host key')):
            os.unlink(next_path)
            fileio.fsync_dir(cert_dir)
    return Installation(verdict, tuple(written))


def _next_key_pem(cert_dir, cert):
    """The next key (PEM) when it is ``cert``'s key, else None."""
    path = os.path.join(cert_dir, NEXT_KEY)
    if not os.path.exists(path):
        return None
    pem = fileio.read_bytes(path, 'next host key')
    if not keys.key_matches_certificate(keys.load_private_key(pem, path),
                                        cert):
        return None
    return pem


def _replace_key(path, pem):
    """Put the key ``pem`` at ``path`` with the owner and mode there."""
    st = os.stat(path)
    fileio.write_atomic(path, pem, mode=stat.S_IMODE(st.st_mode) & 0o740,
                        overwrite=True, uid=st.st_uid, gid=st.st_gid)


def _write(path, data, mode, uid, gid):
    fileio.write_atomic(path, data, mode=mode, overwrite=True, uid=uid,
                        gid=gid)
    st = os.stat(path)
    return InstalledFile(path, mode, st.st_uid, st.st_gid)


def _make_dir(path, mode, uid, gid):
    os.makedirs(path, mode=mode, exist_ok=True)
    try:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    except OSError as e:
        raise exception.PKIError('cannot set the owner or mode of %s: %s '
                                 '(run as root)' % (path, e.strerror),
                                 code='chown_failed') from e


def _key_access(path, uid, gid):
    """Give the key ``path`` to ``uid`` and group ``gid`` (0640).

    Without ``gid`` the group is kept and every bit beyond 0740 dropped.
    A key changing group is made 0600 first, so that it is never
    readable by a group it is not meant for, even between the calls.
    """
    st = os.stat(path)
    mode = GROUP_KEY_MODE if gid is not None else st.st_mode & 0o740
    try:
        if gid is not None and gid != st.st_gid:
            os.chmod(path, KEY_MODE)
        os.chown(path, uid, -1 if gid is None else gid)
        os.chmod(path, mode)
    except OSError as e:
        raise exception.PKIError('cannot set the owner or mode of %s: %s '
                                 '(run as root)' % (path, e.strerror),
                                 code='chown_failed') from e
    st = os.stat(path)
    return InstalledFile(path, mode, st.st_uid, st.st_gid)
