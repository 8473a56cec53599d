"""Build real certificates for tests with secmig's own CA code.

Shared by every test tier. Nothing here is a fake: the CA, the tokens,
the host keys and CSRs are the production code paths; only the
directory is temporary.
"""

import dataclasses
import datetime
import os

from cryptography.hazmat.primitives import hashes
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from secmig.pki import ca as ca_mod
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import verify

NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class HostIdentity:
    name: str
    cert_dir: str
    cert: object
    key: object
    clearance: int

    @property
    def cert_pem(self):
        return keys.cert_pem(self.cert)


class TestPKI:
    """A CA in ``base_dir/ca`` and enrolled hosts in ``base_dir/<host>``."""

    def __init__(self, base_dir, ca_name='secmig test CA',
                 key_type=keys.DEFAULT_KEY_TYPE):
        self.base_dir = base_dir
        self.ca_dir = os.path.join(base_dir, 'ca')
        self.ca = ca_mod.CertificateAuthority.create(self.ca_dir, ca_name,
                                                     key_type=key_type)
        self.hosts = {}

    def enroll(self, name, clearance=0, addresses=('127.0.0.1',),
               key_type=keys.DEFAULT_KEY_TYPE, days=30, now=None):
        cert_dir = os.path.join(self.base_dir, name)
        token = self.ca.create_token(name, addresses=addresses,
                                     level=clearance, now=now)
        csr = host_mod.make_key_and_csr(cert_dir, name, addresses=addresses,
                                        key_type=key_type, overwrite=True)
        cert_pem = self.ca.sign(csr, token, days=days, now=now)
        host_mod.install(cert_dir, cert_pem, self.ca_cert_pem,
                         self.crl_pem, now=now)
        identity = HostIdentity(
            name, cert_dir, keys.load_certificate(cert_pem),
            keys.load_private_key(_read(
                os.path.join(cert_dir, host_mod.SERVER_KEY))),
            clearance)
        self.hosts[name] = identity
        return identity

    def revoke(self, name, reason='key-compromise'):
        self.ca.revoke(self.hosts[name].cert.serial_number, reason)

    @property
    def ca_cert_pem(self):
        return _read(os.path.join(self.ca_dir, ca_mod.CA_CERT))

    @property
    def crl_pem(self):
        return _read(os.path.join(self.ca_dir, ca_mod.CA_CRL))

    def ca_key(self):
        return keys.load_private_key(_read(os.path.join(self.ca_dir,
                                                        ca_mod.CA_KEY)))

    def trust(self):
        """A TrustStore with the CA and its current CRL."""
        return verify.TrustStore(keys.load_certificates(self.ca_cert_pem),
                                 [keys.load_crl(self.crl_pem)])


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def subject(cn, extra=()):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'secmig'),
                      *extra, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def build_leaf(issuer_cert, issuer_key, host='node1', key=None,
               not_before=None, not_after=None, eku=None, ku_sign=True,
               ca=False, san=True, subject_extra=()):
    """A host certificate of any shape, signed by ``issuer_key``.

    For shapes secmig's CA refuses to produce; returns ``(cert, key)``.
    """
    key = key or keys.generate_key()
    builder = (x509.CertificateBuilder()
               .subject_name(subject(host, subject_extra))
               .issuer_name(issuer_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - datetime.timedelta(1))
               .not_valid_after(not_after or NOW + datetime.timedelta(30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=ku_sign, key_encipherment=True,
                   content_commitment=False, data_encipherment=False,
                   key_agreement=False, key_cert_sign=ca, crl_sign=False,
                   encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(eku or [
                   ExtendedKeyUsageOID.SERVER_AUTH,
                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier
                              .from_issuer_public_key(
                                  issuer_cert.public_key()), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(host)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def intermediate_ca(root_cert, root_key, name='intermediate CA'):
    """A CA certificate issued by ``root``: ``(cert, key)``."""
    key = keys.generate_key()
    cert = (x509.CertificateBuilder()
            .subject_name(subject(name)).issuer_name(root_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(1))
            .not_valid_after(NOW + datetime.timedelta(300))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, key_encipherment=False,
                content_commitment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(root_key, hashes.SHA256()))
    return cert, key
