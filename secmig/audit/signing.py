"""The host key that signs journal checkpoints, and signature checks.

The journal is signed with the host's own identity: the certificate and
key installed in the ``[pki] cert_dir`` (``server-cert.pem`` and
``server-key.pem``), ECDSA P-256 by default, RSA accepted. A verifier
needs only the certificate, which the journal carries in its ``key``
lines, and a trust anchor to check it against.

A signer loaded from a ``cert_dir`` can load that directory again
(:meth:`HostSigner.reloaded`, after ``secmig pki renew``) and the CA
bundle beside it (:meth:`HostSigner.trust`), with which a writer checks
certificates other processes of the host introduced.
"""

import base64
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import fileio
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import verify as pki_verify


def common_name(cert):
    """The host name a certificate's subject names (its CN), or None."""
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        value = names[0].value if names else None
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, str) else None


class HostSigner:
    """Signs with a host key; ``fingerprint`` names its certificate.

    ``cert_dir`` is the directory it was loaded from, or None.
    """

    cert_dir = None

    def __init__(self, cert, key):
        if not keys.key_matches_certificate(key, cert):
            raise exception.PKIError(
                'the audit signing key does not match its certificate',
                code='key_mismatch')
        self.cert = cert
        self.key = key
        self.cert_pem = keys.cert_pem(cert).decode('ascii')
        self.fingerprint = keys.fingerprint(cert)
        self.subject = cert.subject.rfc4514_string()

    @property
    def common_name(self):
        """The host name the certificate's subject names (its CN)."""
        return common_name(self.cert) or self.fingerprint[:16]

    @classmethod
    def from_cert_dir(cls, cert_dir):
        """Load ``server-cert.pem`` and ``server-key.pem`` of a host.

        :raises SecmigError: a file is missing, unreadable or malformed,
            or the key is not the certificate's
        """
        cert_path = os.path.join(cert_dir, host_mod.SERVER_CERT)
        key_path = os.path.join(cert_dir, host_mod.SERVER_KEY)
        cert = keys.load_certificate(
            fileio.read_bytes(cert_path, 'host certificate'), cert_path)
        key = keys.load_private_key(
            fileio.read_bytes(key_path, 'host key'), key_path)
        signer = cls(cert, key)
        signer.cert_dir = cert_dir
        return signer

    def reloaded(self):
        """The signer ``cert_dir`` holds now (self when it has none).

        :raises SecmigError: as :meth:`from_cert_dir`
        """
        if self.cert_dir is None:
            return self
        return self.from_cert_dir(self.cert_dir)

    def trust(self):
        """The CA bundle (and CRL) in ``cert_dir``, or None when absent.

        :raises SecmigError: a file is there but cannot be used
        """
        if self.cert_dir is None:
            return None
        ca = os.path.join(self.cert_dir, host_mod.CA_CERT)
        crl = os.path.join(self.cert_dir, host_mod.CA_CRL)
        if not os.path.exists(ca):
            return None
        return pki_verify.TrustStore.from_files(
            ca, crl if os.path.exists(crl) else None)

    def sign(self, message):
        """Return the signature of ``message`` as base64 text."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            sig = self.key.sign(message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(self.key, rsa.RSAPrivateKey):
            sig = self.key.sign(message, padding.PKCS1v15(),
                                hashes.SHA256())
        else:
            raise exception.PKIError(
                'cannot sign with a %s key' % type(self.key).__name__,
                code='unsupported_key')
        return base64.b64encode(sig).decode('ascii')


def signature_valid(cert, message, sig_b64):
    """True when ``sig_b64`` is ``cert``'s signature of ``message``."""
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except (ValueError, TypeError):
        return False
    public_key = cert.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(sig, message, padding.PKCS1v15(),
                              hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True
