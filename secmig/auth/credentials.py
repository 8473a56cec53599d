"""A host's own identity for the handshake: certificate and private key.

They are read from the directory QEMU's native TLS uses (``[pki]
cert_dir``, see :mod:`secmig.pki.host`), so that a host proves the same
identity in the handshake as on the migration stream.
"""

import dataclasses
import os

from cryptography import x509

from secmig.auth import signing
from secmig import exception
from secmig.pki import fileio
from secmig.pki import host as host_files
from secmig.pki import keys
from secmig.pki import verify


@dataclasses.dataclass(frozen=True)
class HostCredentials:
    """The host name this host answers to, its certificate and its key.

    Build it with :func:`load`, which checks that the three belong
    together; the handshake trusts that they do.
    """

    host: str
    cert: x509.Certificate
    key: object

    @property
    def fingerprint(self):
        return keys.fingerprint(self.cert)


def from_objects(host, cert, key):
    """Check and pair a certificate and key already in memory.

    :raises PKIError: ``key_mismatch`` when the key is not the
        certificate's, ``wrong_host`` when the certificate does not name
        ``host``, ``unsupported_key`` when the key cannot sign
    """
    match = verify.verify_key_pair(cert, key)
    if not match:
        raise exception.PKIError(match.reason, code=match.code)
    if not verify.names_host(cert, host):
        raise exception.PKIError(
            'this host\'s certificate (%s) does not name %s, the host name '
            'it must prove' % (cert.subject.rfc4514_string(), host),
            code='wrong_host')
    if not signing.supported(key):
        raise exception.PKIError(
            'the host key (%s) cannot sign handshakes'
            % type(key).__name__, code='unsupported_key')
    return HostCredentials(host, cert, key)


def load(cert_dir, host):
    """Load ``host``'s certificate and key from ``cert_dir``.

    Reads ``server-cert.pem`` and ``server-key.pem``, the pair QEMU uses
    for incoming migrations (the client pair is the same certificate).

    :raises PKIError: when a file is missing or unreadable, or for the
        reasons given by :func:`from_objects`
    """
    cert_path = os.path.join(cert_dir, host_files.SERVER_CERT)
    key_path = os.path.join(cert_dir, host_files.SERVER_KEY)
    cert = keys.load_certificate(
        fileio.read_bytes(cert_path, 'host certificate'), cert_path)
    key = keys.load_private_key(fileio.read_bytes(key_path, 'host key'),
                                key_path)
    return from_objects(host, cert, key)


def load_trust(cert_dir):
    """The CA bundle and revocation list installed in ``cert_dir``.

    ``ca-crl.pem`` is optional here; whether its absence is acceptable
    is ``[pki] require_crl``'s decision, taken at verification.
    """
    crl_path = os.path.join(cert_dir, host_files.CA_CRL)
    return verify.TrustStore.from_files(
        os.path.join(cert_dir, host_files.CA_CERT),
        crl_path if os.path.exists(crl_path) else None)
