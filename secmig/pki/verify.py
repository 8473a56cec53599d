"""Verification of host certificates: one verdict, one precise reason.

:func:`verify_certificate` is what every secmig component calls before it
trusts a host: the scheduler filter's cache, the handshake between two
hosts, the readiness checks and ``secmig pki verify``. It returns a
:class:`~secmig.decision.Decision`; on success its details carry the
subject, serial, fingerprint, clearance and expiry.

Path validation is cryptography's (``cryptography.x509.verification``:
signatures, validity, basic constraints, key usage, name constraints).
Cheaper checks run first only to name the problem precisely; none of
them replaces that validation.
"""

import datetime
import ipaddress

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509 import verification

from secmig.decision import Decision
from secmig import exception
from secmig.pki import clearance
from secmig.pki import fileio
from secmig.pki import keys

PURPOSES = ('server', 'client', 'both')
_EKU_FOR = {'server': [ExtendedKeyUsageOID.SERVER_AUTH],
            'client': [ExtendedKeyUsageOID.CLIENT_AUTH],
            'both': [ExtendedKeyUsageOID.SERVER_AUTH,
                     ExtendedKeyUsageOID.CLIENT_AUTH]}


class TrustStore:
    """The CA certificates a host trusts and their revocation lists.

    Every certificate in the bundle is a trust anchor, so the bundle
    must hold root CAs only: CA certificates that are self-signed. An
    intermediate CA placed there would be trusted on its own, whatever
    became of the CA that issued it (revoked, expired, constrained),
    and is refused. Host certificates must be issued directly by a CA
    of the bundle.

    :raises PKIError: ``bad_ca_bundle``: the bundle is empty, or holds a
        certificate that is not a CA certificate or not self-signed
    """

    def __init__(self, ca_certs, crls=()):
        if not ca_certs:
            raise exception.PKIError('the trusted CA bundle is empty',
                                     code='bad_ca_bundle')
        for ca in ca_certs:
            if not _is_ca(ca):
                raise exception.PKIError(
                    'the trusted CA bundle holds %s, which is not a CA '
                    'certificate' % ca.subject.rfc4514_string(),
                    code='bad_ca_bundle')
            if not _self_signed(ca):
                raise exception.PKIError(
                    'the trusted CA bundle holds %s, issued by %s: it is '
                    'not a root (self-signed) CA, and an intermediate CA in '
                    'the bundle would be trusted whatever became of its '
                    'issuer; trust the root CA and issue host certificates '
                    'from it' % (ca.subject.rfc4514_string(),
                                 ca.issuer.rfc4514_string()),
                    code='bad_ca_bundle')
        self.ca_certs = list(ca_certs)
        self.crls = list(crls)
        self._store = verification.Store(self.ca_certs)

    @classmethod
    def from_files(cls, ca_path, crl_path=None):
        """The trust store of a CA bundle file and a CRL file.

        :raises PKIError: ``unreadable_file``, ``malformed_pem``,
            ``truncated_pem``, ``unsupported_key`` (a file, see
            :mod:`secmig.pki.keys`), ``bad_ca_bundle`` (see above)
        """
        cas = keys.load_certificates(
            fileio.read_bytes(ca_path, 'CA bundle'), ca_path)
        crls = []
        if crl_path:
            crls.append(keys.load_crl(
                fileio.read_bytes(crl_path, 'revocation list'), crl_path))
        return cls(cas, crls)


def _is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert_or_crl, issuer):
    """True when ``issuer``'s key verifies the object's signature.

    False, never an exception, for a key or signature algorithm that
    cryptography cannot use.
    """
    try:
        if isinstance(cert_or_crl, x509.CertificateRevocationList):
            return cert_or_crl.is_signature_valid(issuer.public_key())
        cert_or_crl.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _self_signed(cert):
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def _ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def certificate_names(cert):
    """The DNS names and IP addresses in ``cert``'s SAN (None: no SAN)."""
    san = _ext(cert, x509.SubjectAlternativeName)
    if san is None:
        return None
    return (san.get_values_for_type(x509.DNSName)
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)])


def _relative(name):
    """A DNS name without the one trailing dot of its absolute form."""
    return name[:-1] if name.endswith('.') else name


def _address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _matches_host(names, host):
    """True when ``host`` is one of ``names``, as path validation has it.

    An address matches an address only; a DNS name matches a DNS name
    only, whatever the case, with at most one trailing dot on either
    (``127.0.0.1.`` is a DNS name, no address).
    """
    address = _address(host)
    if address is not None:
        return any(address == _address(n) for n in names)
    host = _relative(host.lower())
    return any(_address(n) is None and host == _relative(n.lower())
               for n in names)


def names_host(cert, host):
    """True when ``cert``'s subject alternative names include ``host``."""
    return _matches_host(certificate_names(cert) or [], host)


def name_in(host, names):
    """True when ``host`` (a DNS name or an IP address) is in ``names``."""
    return bool(host) and _matches_host(names, host)


def _check_dates(cert, now, margin):
    if now < cert.not_valid_before_utc:
        return Decision.refuse(
            'not_yet_valid', 'certificate is not valid before %s (now %s): '
            'check the clocks of this host and the CA'
            % (cert.not_valid_before_utc.isoformat(), now.isoformat()))
    if now >= cert.not_valid_after_utc:
        return Decision.refuse(
            'expired', 'certificate expired on %s; renew it with "secmig '
            'pki renew"' % cert.not_valid_after_utc.isoformat())
    if now + margin >= cert.not_valid_after_utc:
        return Decision.refuse(
            'expires_soon', 'certificate expires on %s, within the required '
            'margin of %d s; renew it with "secmig pki renew"'
            % (cert.not_valid_after_utc.isoformat(),
               margin.total_seconds()))
    return None


def _check_usage(cert, purpose):
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        return Decision.refuse(
            'leaf_is_ca', 'certificate is a CA certificate, not a host '
            'certificate')
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not ku.digital_signature:
        return Decision.refuse(
            'wrong_key_usage', 'key usage does not permit digital '
            'signatures, which TLS and the secmig handshake need')
    eku = _ext(cert, x509.ExtendedKeyUsage)
    missing = [oid._name for oid in _EKU_FOR[purpose]
               if eku is None or oid not in eku]
    if missing:
        return Decision.refuse(
            'wrong_extended_key_usage', 'extended key usage lacks %s: a '
            'host certificate must allow TLS %s authentication'
            % (', '.join(missing),
               'server and client' if purpose == 'both' else purpose))
    return None


def _check_revocation(cert, issuer, trust, now, require_crl):
    crls = [c for c in trust.crls if c.issuer == issuer.subject]
    if not crls:
        if require_crl:
            return Decision.refuse(
                'crl_missing', 'no revocation list from %s is installed '
                '(ca-crl.pem), so revocation cannot be checked'
                % issuer.subject.rfc4514_string())
        return None
    for crl in crls:
        if not _signed_by(crl, issuer):
            return Decision.refuse(
                'crl_invalid', 'the revocation list claiming to come from '
                '%s is not signed by that CA' % issuer.subject
                .rfc4514_string())
        if crl.next_update_utc is not None and now > crl.next_update_utc:
            return Decision.refuse(
                'crl_stale', 'the revocation list expired on %s; publish a '
                'fresh one with "secmig pki crl"'
                % crl.next_update_utc.isoformat())
        entry = crl.get_revoked_certificate_by_serial_number(
            cert.serial_number)
        if entry is not None:
            reason = _ext(entry, x509.CRLReason)
            return Decision.refuse(
                'revoked', 'certificate %x was revoked on %s (%s)'
                % (cert.serial_number,
                   entry.revocation_date_utc.isoformat(),
                   reason.reason.value if reason else 'unspecified'))
    return None


def _check_issuer(cert, trust):
    same_name = [ca for ca in trust.ca_certs if ca.subject == cert.issuer]
    if not same_name:
        return None, Decision.refuse(
            'foreign_ca', 'certificate is issued by %s, which is not a '
            'trusted CA' % cert.issuer.rfc4514_string())
    for ca in same_name:
        if _signed_by(cert, ca):
            return ca, None
    return None, Decision.refuse(
        'forged_ca', 'certificate names %s as issuer but that CA\'s key did '
        'not sign it: another CA is using the same name'
        % cert.issuer.rfc4514_string())


def _validate_path(cert, trust, host, purpose, now):
    builder = verification.PolicyBuilder().store(trust._store).time(now)
    try:
        if purpose in ('client', 'both'):
            builder.build_client_verifier().verify(cert, [])
        if purpose in ('server', 'both') and host:
            builder.build_server_verifier(_subject_for(host)).verify(
                cert, [])
    except verification.VerificationError as e:
        return Decision.refuse(
            'path_invalid', 'certificate path validation failed: %s' % e)
    except ValueError as e:
        # cryptography will not check a certificate against some names
        # a peer may claim (it raises instead of refusing).
        return Decision.refuse(
            'wrong_host', 'the certificate cannot be checked against the '
            'name %r: %s' % (host, e))
    return None


def _subject_for(host):
    """The name path validation checks ``host`` as.

    A DNS name's absolute form (``cmp1.``) names the same host, as
    :func:`name_in` has it.
    """
    try:
        return verification.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return verification.DNSName(_relative(host))


def verify_certificate(cert, trust, host=None, purpose='both', now=None,
                       margin=3600, min_rsa_bits=2048, require_crl=True):
    """Decide whether ``cert`` is a valid host certificate.

    Never raises for a certificate parsed by :mod:`secmig.pki.keys` (or
    as thoroughly: names, extensions and key read once) and a trust
    store whose CRLs it parsed: whatever the certificate holds and
    whatever ``host`` claims, the answer is a decision.

    :param cert: a ``cryptography`` certificate
    :param trust: a :class:`TrustStore`
    :param host: when given, a DNS name or IP address the certificate's
        subject alternative names must contain
    :param purpose: ``server``, ``client`` or ``both`` TLS roles
    :param margin: seconds of validity the certificate must have left
    :returns: a :class:`Decision`; refusals carry one of the codes
        ``weak_key``, ``unsupported_key``, ``self_signed_leaf``,
        ``leaf_is_ca``, ``not_yet_valid``, ``expired``, ``expires_soon``,
        ``foreign_ca``, ``forged_ca``, ``wrong_key_usage``,
        ``wrong_extended_key_usage``, ``no_san``, ``wrong_host``,
        ``crl_missing``, ``crl_invalid``, ``crl_stale``, ``revoked``,
        ``bad_clearance`` or ``path_invalid``.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    margin = datetime.timedelta(seconds=margin)
    subject = cert.subject.rfc4514_string()
    steps = (
        lambda: _strength(cert, min_rsa_bits),
        lambda: (Decision.refuse(
            'self_signed_leaf', 'certificate is self-signed; a host '
            'certificate must be issued by the CA')
            if _self_signed(cert) and not _is_ca(cert) else None),
        lambda: _check_usage(cert, purpose),
        lambda: _check_dates(cert, now, margin),
    )
    for step in steps:
        refusal = step()
        if refusal is not None:
            return _with_subject(refusal, subject)
    issuer, refusal = _check_issuer(cert, trust)
    if refusal is None:
        refusal = _check_names(cert, host)
    if refusal is None:
        refusal = _check_revocation(cert, issuer, trust, now, require_crl)
    if refusal is None:
        refusal = _validate_path(cert, trust, host, purpose, now)
    if refusal is not None:
        return _with_subject(refusal, subject)
    try:
        level = clearance.decode(cert)
    except exception.PKIError as e:
        return _with_subject(Decision.refuse(e.code, str(e)), subject)
    return Decision.allow(
        'certificate of %s is valid until %s'
        % (subject, cert.not_valid_after_utc.isoformat()),
        subject=subject, serial='%x' % cert.serial_number,
        fingerprint=keys.fingerprint(cert), clearance=level,
        names=certificate_names(cert),
        not_after=cert.not_valid_after_utc.isoformat())


def _strength(cert, min_rsa_bits):
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        return Decision.refuse(
            'unsupported_key', 'the certificate\'s public key cannot be '
            'read: %s' % e)
    decision = keys.check_key_strength(public_key, min_rsa_bits)
    return None if decision else decision


def _check_names(cert, host):
    names = certificate_names(cert)
    if not names:
        return Decision.refuse(
            'no_san', 'certificate has no subject alternative names; hosts '
            'are identified by them')
    if host and not _matches_host(names, host):
        return Decision.refuse(
            'wrong_host', 'certificate is for %s, not for %s'
            % (', '.join(names), host))
    return None


def _with_subject(decision, subject):
    return Decision.refuse(decision.code, decision.reason, subject=subject,
                           **decision.details)


def verify_key_pair(cert, key):
    """Decide whether ``key`` is the private key of ``cert``."""
    if keys.key_matches_certificate(key, cert):
        return Decision.allow('private key matches the certificate')
    return Decision.refuse(
        'key_mismatch', 'the private key does not belong to certificate %s'
        % cert.subject.rfc4514_string())
