"""secmig's own certificate authority, for small clouds and devstack.

A CA directory holds::

    ca-cert.pem    the CA certificate (public, distribute it to hosts)
    ca-key.pem     the CA private key (0600; keep it off compute hosts)
    ca-crl.pem     the current revocation list (distribute it to hosts)
    tokens.json    hashes of enrollment tokens and what each approves
    issued.json    serial, host, names, clearance and state of every
                   certificate issued; renewals and revocations are
                   recorded here
    issued/        a copy of every certificate issued

Operators with their own CA skip all of this: secmig verifies any CA's
certificates (see :mod:`secmig.pki.verify`); certificates without the
clearance extension have clearance 0.
"""

import dataclasses
import datetime
import ipaddress
import json
import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from secmig import exception
from secmig.pki import clearance as clearance_ext
from secmig.pki import fileio
from secmig.pki import keys
from secmig.pki import names as host_names
from secmig.pki import renewal
from secmig.pki import tokens

CA_CERT = 'ca-cert.pem'
CA_KEY = 'ca-key.pem'
CA_CRL = 'ca-crl.pem'
DEFAULT_CA_DAYS = 3650
DEFAULT_HOST_DAYS = 365
DEFAULT_CRL_DAYS = 7

_REVOCATION_REASONS = {
    'unspecified': x509.ReasonFlags.unspecified,
    'key-compromise': x509.ReasonFlags.key_compromise,
    'superseded': x509.ReasonFlags.superseded,
    'cessation-of-operation': x509.ReasonFlags.cessation_of_operation,
    'affiliation-changed': x509.ReasonFlags.affiliation_changed,
}
REVOCATION_REASONS = tuple(_REVOCATION_REASONS)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def host_extensions_builder(builder, subject_key, issuer_cert, names,
                            addresses, level):
    """Add the extensions of a host certificate to ``builder``.

    QEMU (GnuTLS) insists on digitalSignature and keyEncipherment when
    keyUsage is critical, and one certificate serves as both the TLS
    server (incoming migration) and client (outgoing migration).
    """
    san = ([x509.DNSName(n) for n in names]
           + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses])
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True,
                content_commitment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH,
                 ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                subject_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_cert.public_key()), critical=False)
            )


def sign_host_certificate(ca_cert, ca_key, public_key, host, names,
                          addresses, level, now, not_after):
    """A host certificate for ``public_key``, as this CA issues it.

    Subject (organization, clearance, host name), validity from five
    minutes before ``now`` to ``not_after``, the extensions of
    :func:`host_extensions_builder`, signed with ``ca_key``. Nothing is
    checked and nothing recorded: hosts get theirs through
    :meth:`CertificateAuthority.sign`.
    """
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([
                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'secmig'),
                   clearance_ext.attribute(level),
                   x509.NameAttribute(NameOID.COMMON_NAME, host)]))
               .issuer_name(ca_cert.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(not_after))
    builder = host_extensions_builder(builder, public_key, ca_cert, names,
                                      addresses, level)
    return builder.sign(ca_key, keys.signature_hash(ca_key))


class CertificateAuthority:
    """Operations on a CA directory; each one holds the directory lock."""

    def __init__(self, ca_dir):
        self.ca_dir = ca_dir
        self.cert = keys.load_certificate(
            fileio.read_bytes(self._path(CA_CERT), 'CA certificate'),
            self._path(CA_CERT))
        self._tokens = tokens.TokenStore(self._path('tokens.json'))

    def _path(self, name):
        return os.path.join(self.ca_dir, name)

    @classmethod
    def create(cls, ca_dir, common_name, days=DEFAULT_CA_DAYS,
               key_type=keys.DEFAULT_KEY_TYPE, now=None, overwrite=False):
        """Create a CA in ``ca_dir`` (made 0700 if missing)."""
        now = now or utcnow()
        if key_type not in keys.CA_KEY_TYPES:
            raise exception.PKIError(
                'a CA key must be one of %s, not %s'
                % (', '.join(keys.CA_KEY_TYPES), key_type),
                code='bad_key_type')
        os.makedirs(ca_dir, mode=0o700, exist_ok=True)
        key = keys.generate_key(key_type)
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'secmig'),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                               critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, key_encipherment=False,
                    content_commitment=False, data_encipherment=False,
                    key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                    key.public_key()), critical=False)
                .sign(key, keys.signature_hash(key)))
        with fileio.locked(ca_dir):
            fileio.write_atomic(os.path.join(ca_dir, CA_KEY),
                                keys.private_key_pem(key), mode=0o600,
                                overwrite=overwrite)
            fileio.write_atomic(os.path.join(ca_dir, CA_CERT),
                                keys.cert_pem(cert), overwrite=overwrite)
            os.makedirs(os.path.join(ca_dir, 'issued'), exist_ok=True)
            ca = cls(ca_dir)
            ca._write_issued({})
            ca._write_crl(key, {}, now, DEFAULT_CRL_DAYS)
        return ca

    def _key(self):
        path = self._path(CA_KEY)
        if not os.path.exists(path):
            raise exception.PKIError(
                'the CA private key %s is missing: signing and revocation '
                'must run where the CA key is kept' % path,
                code='ca_key_missing')
        key = keys.load_private_key(fileio.read_bytes(path, 'CA key'), path)
        if not keys.key_matches_certificate(key, self.cert):
            raise exception.PKIError(
                'the CA key %s does not belong to the CA certificate %s'
                % (path, self._path(CA_CERT)), code='key_mismatch')
        return key

    def _read_issued(self):
        path = self._path('issued.json')
        if not os.path.exists(path):
            return {}
        try:
            return json.loads(fileio.read_bytes(path, 'CA index'))
        except ValueError as e:
            raise exception.PKIError('CA index %s is corrupt: %s'
                                     % (path, e),
                                     code='corrupt_ca_state') from e

    def _write_issued(self, issued):
        fileio.write_atomic(self._path('issued.json'),
                            fileio.json_bytes(issued), mode=0o600,
                            overwrite=True)

    # Enrollment -------------------------------------------------------

    def create_token(self, host, names=(), addresses=(), level=0,
                     ttl=tokens.DEFAULT_TTL, now=None):
        """Return a one-time token approving a certificate for ``host``.

        :raises PKIError: ``bad_name`` or ``bad_address`` for a name or
            address :mod:`secmig.pki.names` does not issue,
            ``bad_clearance``, ``bad_ttl``
        """
        now = now or utcnow()
        clearance_ext.attribute(level)  # validates the level
        host, names, addresses = _checked_names(host, names, addresses)
        with fileio.locked(self.ca_dir):
            return self._tokens.create(host, names, addresses, level,
                                       now.timestamp(), ttl)

    def sign(self, csr_pem, token, days=DEFAULT_HOST_DAYS, now=None,
             min_rsa_bits=2048):
        """Sign a host's CSR against an enrollment token; return PEM.

        The certificate carries the names, addresses and clearance that the
        token approved, never what the CSR asks for: a CSR asking for a
        name the token did not approve is refused, and the token stays
        unused.
        """
        now = now or utcnow()
        csr = keys.load_csr(csr_pem)
        with fileio.locked(self.ca_dir):
            record = self._tokens.check(token, now.timestamp())
            _check_csr(csr, record, min_rsa_bits)
            cert = self._issue(csr.public_key(), record['host'],
                               record['names'], record['addresses'],
                               record['clearance'], days, now)
            self._tokens.mark_used(token, now.timestamp())
        return keys.cert_pem(cert)

    def renew(self, request_pem, days=DEFAULT_HOST_DAYS, now=None,
              revoke_old=True, min_rsa_bits=2048, current_pem=None):
        """Issue a successor to a valid certificate of this CA, to its holder.

        ``request_pem`` is a renewal request (:mod:`secmig.pki.renewal`):
        a CSR for the new key, signed over by the key of the current
        certificate, which the request holds or ``current_pem`` gives.
        The new certificate keeps the host, names, addresses and
        clearance of the current one. A certificate is renewed once; by
        default (``revoke_old``) it is then revoked as superseded, and
        the CRL republished.

        :raises PKIError: ``renewal_unproven`` (a CSR alone, or a
            signature that is not the current key's), ``renewal_mismatch``
            (``current_pem`` is not the request's certificate),
            ``foreign_ca``, ``already_renewed``, ``revoked``, ``expired``,
            the codes of :meth:`sign` for the CSR, and those of
            :func:`secmig.pki.renewal.parse`
        """
        now = now or utcnow()
        request = renewal.parse(request_pem)
        request = _with_current(request, current_pem)
        current = request.cert
        with fileio.locked(self.ca_dir):
            issued = self._read_issued()
            entry = issued.get('%x' % current.serial_number)
            if entry is None or (keys.fingerprint(current)
                                 != entry['fingerprint']):
                raise exception.PKIError(
                    'certificate %x was not issued by this CA'
                    % current.serial_number, code='foreign_ca')
            if entry.get('renewed_by'):
                raise exception.PKIError(
                    'certificate %x was already renewed as %s (a copy is in '
                    '%s); a certificate is renewed once'
                    % (current.serial_number, entry['renewed_by'],
                       self._path(os.path.join(
                           'issued', entry['renewed_by'] + '.pem'))),
                    code='already_renewed')
            if entry['revoked_at'] is not None:
                raise exception.PKIError(
                    'certificate %x is revoked; enroll the host again with '
                    'a new token' % current.serial_number, code='revoked')
            if now >= current.not_valid_after_utc:
                raise exception.PKIError(
                    'certificate %x expired on %s; enroll the host again '
                    'with a new token' % (current.serial_number,
                                          current.not_valid_after_utc),
                    code='expired')
            renewal.check(request)
            _check_csr(request.csr, entry, min_rsa_bits)
            cert = self._issue(request.csr.public_key(), entry['host'],
                               entry['names'], entry['addresses'],
                               entry['clearance'], days, now)
            issued = self._read_issued()
            issued['%x' % current.serial_number]['renewed_by'] = (
                '%x' % cert.serial_number)
            self._write_issued(issued)
            if revoke_old:
                self._revoke_locked(current.serial_number, 'superseded', now)
        return keys.cert_pem(cert)

    def _issue(self, public_key, host, names, addresses, level, days, now):
        if days <= 0:
            raise exception.PKIError('certificate lifetime must be positive',
                                     code='bad_days')
        # Names approved before the rules of secmig.pki.names held are
        # refused here too.
        host, names, addresses = _checked_names(host, names, addresses)
        ca_key = self._key()
        not_after = min(now + datetime.timedelta(days=days),
                        self.cert.not_valid_after_utc)
        cert = sign_host_certificate(self.cert, ca_key, public_key, host,
                                     names, addresses, level, now, not_after)
        serial = '%x' % cert.serial_number
        fileio.write_atomic(self._path(os.path.join('issued',
                                                    serial + '.pem')),
                            keys.cert_pem(cert))
        issued = self._read_issued()
        issued[serial] = {
            'host': host, 'names': list(names), 'addresses': list(addresses),
            'clearance': level, 'fingerprint': keys.fingerprint(cert),
            'not_after': not_after.isoformat(), 'revoked_at': None,
            'reason': None}
        self._write_issued(issued)
        return cert

    # Revocation -------------------------------------------------------

    def revoke(self, serial, reason='unspecified', now=None):
        """Revoke an issued certificate and publish a new CRL."""
        now = now or utcnow()
        if reason not in _REVOCATION_REASONS:
            raise exception.PKIError(
                'unknown revocation reason %r; choose one of %s'
                % (reason, ', '.join(REVOCATION_REASONS)),
                code='bad_reason')
        with fileio.locked(self.ca_dir):
            self._revoke_locked(serial, reason, now)

    def _revoke_locked(self, serial, reason, now):
        issued = self._read_issued()
        entry = issued.get('%x' % serial)
        if entry is None:
            raise exception.PKIError(
                'no certificate with serial %x was issued by this CA'
                % serial, code='unknown_serial')
        if entry['revoked_at'] is None:
            entry['revoked_at'] = now.isoformat()
            entry['reason'] = reason
            self._write_issued(issued)
        self._write_crl(self._key(), issued, now, DEFAULT_CRL_DAYS)

    def publish_crl(self, days=DEFAULT_CRL_DAYS, now=None):
        """Re-issue the CRL (it must be refreshed before it goes stale)."""
        now = now or utcnow()
        with fileio.locked(self.ca_dir):
            self._write_crl(self._key(), self._read_issued(), now, days)

    def _write_crl(self, ca_key, issued, now, days):
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(now - datetime.timedelta(minutes=5))
                   .next_update(now + datetime.timedelta(days=days)))
        for serial, entry in sorted(issued.items()):
            if entry['revoked_at'] is None:
                continue
            revoked = (x509.RevokedCertificateBuilder()
                       .serial_number(int(serial, 16))
                       .revocation_date(datetime.datetime.fromisoformat(
                           entry['revoked_at']))
                       .add_extension(x509.CRLReason(
                           _REVOCATION_REASONS[entry['reason']]),
                           critical=False)
                       .build())
            builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(ca_key, keys.signature_hash(ca_key))
        fileio.write_atomic(self._path(CA_CRL), crl.public_bytes(
            keys.serialization.Encoding.PEM), overwrite=True)


def _with_current(request, current_pem):
    """``request`` with its certificate, from itself or ``current_pem``."""
    if current_pem is None:
        if request.cert is None:
            raise exception.PKIError(
                'the request does not say which certificate it renews; '
                'make it on the host with "secmig pki renew-request"',
                code='renewal_unproven')
        return request
    current = keys.load_certificate(current_pem, 'the current certificate')
    if request.cert is None:
        return dataclasses.replace(request, cert=current)
    if keys.fingerprint(request.cert) != keys.fingerprint(current):
        raise exception.PKIError(
            'the renewal request is for certificate %x, not %x'
            % (request.cert.serial_number, current.serial_number),
            code='renewal_mismatch')
    return request


def _checked_names(host, names, addresses):
    return (host_names.host_name(host),
            [host_names.dns_name(n) for n in names],
            [host_names.address(a) for a in addresses])


def _check_csr(csr, approved, min_rsa_bits):
    """Refuse a CSR that is not self-consistent or asks for too much."""
    try:
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise exception.PKIError(
            'the certificate request\'s signature does not verify: it was '
            'altered or not made with the key it carries',
            code='csr_signature_invalid')
    strength = keys.check_key_strength(csr.public_key(), min_rsa_bits)
    if not strength:
        raise exception.PKIError(strength.reason, code=strength.code)
    asked = set(a.value for a in csr.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME))
    try:
        san = csr.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        asked |= set(san.get_values_for_type(x509.DNSName))
        asked |= set(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    approved_names = set(approved['names']) | set(approved['addresses'])
    extra = sorted(asked - approved_names)
    if extra:
        raise exception.PKIError(
            'the certificate request asks for %s, which the enrollment for '
            '%s did not approve (approved: %s)'
            % (', '.join(extra), approved['host'],
               ', '.join(sorted(approved_names))),
            code='csr_names_not_approved')
