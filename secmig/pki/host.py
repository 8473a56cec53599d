"""The host side of enrollment: key, certificate request, installation.

The private key is generated on the host and never leaves it. The
installed directory has the layout of QEMU's ``tls-creds-x509`` object
and libvirt's ``migrate_tls_x509_cert_dir``: one certificate and key
serve as both the TLS server (incoming migrations) and client
(outgoing migrations)::

    ca-cert.pem  ca-crl.pem
    server-cert.pem  server-key.pem  client-cert.pem  client-key.pem
"""

import grp
import ipaddress
import os

from cryptography import x509
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import fileio
from secmig.pki import keys
from secmig.pki import verify

SERVER_CERT = 'server-cert.pem'
SERVER_KEY = 'server-key.pem'
CLIENT_CERT = 'client-cert.pem'
CLIENT_KEY = 'client-key.pem'
CA_CERT = 'ca-cert.pem'
CA_CRL = 'ca-crl.pem'


def make_key_and_csr(cert_dir, host, names=(), addresses=(),
                     key_type=keys.DEFAULT_KEY_TYPE, overwrite=False,
                     group=None):
    """Generate this host's key in ``cert_dir`` and return a CSR (PEM).

    An existing key is kept unless ``overwrite`` is true (rotation). The
    key files are mode 0600, or 0640 owned by ``group`` when given (for
    QEMU running as an unprivileged user in that group).
    """
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
    san = ([x509.DNSName(n) for n in sorted(set(names) | {host})]
           + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses])
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([
               x509.NameAttribute(NameOID.COMMON_NAME, host)]))
           .add_extension(x509.SubjectAlternativeName(san), critical=False)
           .sign(key, keys.signature_hash(key)))
    return csr.public_bytes(keys.serialization.Encoding.PEM)


def _key_mode(group):
    if group is None:
        return 0o600, None
    try:
        return 0o640, grp.getgrnam(group).gr_gid
    except KeyError as e:
        raise exception.PKIError('group %r does not exist' % group,
                                 code='bad_group') from e


def install(cert_dir, cert_pem, ca_pem, crl_pem=None, now=None,
            margin=0):
    """Install a signed certificate beside this host's key.

    Refuses (``PKIError``) a certificate that does not match the key in
    ``cert_dir`` or that the given CA does not validate; nothing is
    written then. Certificates, the CA bundle and the CRL are replaced;
    keys are never touched.
    """
    cert = keys.load_certificate(cert_pem)
    key_path = os.path.join(cert_dir, SERVER_KEY)
    key = keys.load_private_key(fileio.read_bytes(key_path, 'host key'),
                                key_path)
    match = verify.verify_key_pair(cert, key)
    if not match:
        raise exception.PKIError(
            '%s (key %s)' % (match.reason, key_path), code=match.code)
    trust = verify.TrustStore(
        keys.load_certificates(ca_pem),
        [keys.load_crl(crl_pem)] if crl_pem else [])
    verdict = verify.verify_certificate(cert, trust, now=now, margin=margin,
                                        require_crl=crl_pem is not None)
    if not verdict:
        raise exception.PKIError('not installing: %s' % verdict.reason,
                                 code=verdict.code)
    files = [(SERVER_CERT, cert_pem), (CLIENT_CERT, cert_pem),
             (CA_CERT, ca_pem)]
    if crl_pem:
        files.append((CA_CRL, crl_pem))
    with fileio.locked(cert_dir):
        for name, data in files:
            fileio.write_atomic(os.path.join(cert_dir, name), data,
                                mode=0o644, overwrite=True)
    return verdict
