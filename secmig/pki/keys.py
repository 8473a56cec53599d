"""Keys, certificates and their PEM encodings.

Parsing is strict: anything that is not exactly the expected PEM objects
is refused with a reason that tells truncation apart from garbage.
"""

import base64
import hashlib
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509

from secmig.decision import Decision
from secmig import exception

#: Key types secmig generates. ECDSA P-256 is the default: small, fast to
#: sign with, and accepted by GnuTLS (QEMU), libvirt and cryptography's
#: path validation alike.
KEY_TYPES = ('ec-p256', 'ec-p384', 'ed25519', 'rsa-3072', 'rsa-4096')
DEFAULT_KEY_TYPE = 'ec-p256'
#: A CA key must be ECDSA or RSA: path validation refuses certificates
#: signed with Ed25519.
CA_KEY_TYPES = tuple(t for t in KEY_TYPES if t != 'ed25519')

_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_BEGIN = re.compile(rb'-----BEGIN ([A-Z0-9 ]{1,64})-----')
_END = re.compile(rb'-----END ([A-Z0-9 ]{1,64})-----')


def generate_key(key_type=DEFAULT_KEY_TYPE):
    if key_type == 'ec-p256':
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == 'ec-p384':
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == 'ed25519':
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in ('rsa-3072', 'rsa-4096'):
        return rsa.generate_private_key(65537, int(key_type[4:]))
    raise exception.PKIError(
        'unknown key type %r; choose one of %s'
        % (key_type, ', '.join(KEY_TYPES)), code='bad_key_type')


def signature_hash(key):
    """The digest to sign with ``key`` (Ed25519 takes none)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


def private_key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _check_pem_framing(data, label, path):
    text = data.decode('ascii', errors='replace')
    begin = '-----BEGIN %s' % label
    if begin not in text:
        raise exception.PKIError(
            '%s is not a PEM %s (no "%s" line)' % (path, label.lower(), begin),
            code='malformed_pem')
    if text.count(begin) != text.count('-----END %s' % label):
        raise exception.PKIError(
            '%s is truncated: a "%s" block has no END line'
            % (path, begin), code='truncated_pem')


def _parsed(path, what, load, touch):
    """Return ``load()`` after ``touch`` has read its lazy parts.

    cryptography parses names, extensions, keys and revocation entries
    when first read; reading them here makes a corrupt one fail at load,
    as ``PKIError``, and never later in a check. Besides ``ValueError``,
    cryptography raises ``TypeError`` (a name attribute of the wrong
    string type), ``InvalidVersion`` and ``UnsupportedAlgorithm``.
    """
    try:
        loaded = load()
        touch(loaded)
    except UnsupportedAlgorithm as e:
        raise exception.PKIError(
            '%s holds a %s with an algorithm secmig cannot use: %s'
            % (path, what, e), code='unsupported_key') from e
    except (ValueError, TypeError, x509.InvalidVersion) as e:
        raise exception.PKIError(
            '%s holds a corrupt %s: %s' % (path, what, e),
            code='malformed_pem') from e
    return loaded


def pem_block(label, der):
    """``der`` as one PEM block labelled ``label``."""
    body = base64.b64encode(der)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b'\n'.join([b'-----BEGIN %s-----' % label.encode('ascii')]
                      + lines
                      + [b'-----END %s-----' % label.encode('ascii'), b''])


def pem_blocks(data, path='<pem>'):
    """The PEM blocks of ``data`` as ``[(label, der)]``, in order.

    Text outside the blocks is ignored, as openssl does.

    :raises PKIError: ``malformed_pem`` (no block, a block whose body is
        not base64 or whose END line names another label),
        ``truncated_pem`` (a block without its END line)
    """
    blocks, label, body = [], None, []
    for line in data.splitlines():
        line = line.strip()
        if label is None:
            begin = _BEGIN.fullmatch(line)
            if begin:
                label, body = begin.group(1).decode('ascii'), []
            continue
        end = _END.fullmatch(line)
        if end is None:
            body.append(line)
            continue
        if end.group(1).decode('ascii') != label:
            raise exception.PKIError(
                '%s: a "BEGIN %s" block ends with "END %s"'
                % (path, label, end.group(1).decode('ascii')),
                code='malformed_pem')
        try:
            blocks.append((label, base64.b64decode(b''.join(body),
                                                   validate=True)))
        except ValueError as e:
            raise exception.PKIError(
                '%s: the "%s" block is not base64: %s' % (path, label, e),
                code='malformed_pem') from e
        label = None
    if label is not None:
        raise exception.PKIError(
            '%s is truncated: a "BEGIN %s" block has no END line'
            % (path, label), code='truncated_pem')
    if not blocks:
        raise exception.PKIError('%s holds no PEM block' % path,
                                 code='malformed_pem')
    return blocks


def load_certificates(data, path='<certificate>'):
    """Parse one or more PEM certificates.

    :raises PKIError: ``malformed_pem`` (no certificate, or a corrupt
        one), ``truncated_pem`` (a block without its END line),
        ``unsupported_key`` (a key or curve cryptography cannot read)
    """
    _check_pem_framing(data, 'CERTIFICATE', path)

    def touch(certs):
        for cert in certs:
            cert.subject, cert.issuer, cert.extensions, cert.public_key()
    return _parsed(path, 'certificate',
                   lambda: x509.load_pem_x509_certificates(data), touch)


def load_certificate(data, path='<certificate>'):
    """Parse exactly one PEM certificate.

    :raises PKIError: as :func:`load_certificates`; ``malformed_pem``
        also when there is more than one
    """
    certs = load_certificates(data, path)
    if len(certs) != 1:
        raise exception.PKIError(
            '%s holds %d certificates; expected exactly one'
            % (path, len(certs)), code='malformed_pem')
    return certs[0]


def load_private_key(data, path='<key>'):
    """Parse an unencrypted PEM private key.

    :raises PKIError: ``malformed_pem``, ``truncated_pem`` (framing),
        ``malformed_key`` (anything else)
    """
    _check_pem_framing(data, '', path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise exception.PKIError(
            '%s is not a usable unencrypted PEM private key: %s'
            % (path, e), code='malformed_key') from e


def load_csr(data, path='<csr>'):
    """Parse the first PEM certificate request of ``data``.

    :raises PKIError: ``malformed_pem``, ``truncated_pem``,
        ``unsupported_key``, as :func:`load_certificates`
    """
    _check_pem_framing(data, 'CERTIFICATE REQUEST', path)

    def touch(csr):
        csr.subject, csr.extensions, csr.attributes, csr.public_key()
    return _parsed(path, 'certificate request',
                   lambda: x509.load_pem_x509_csr(data), touch)


def load_crl(data, path='<crl>'):
    """Parse a PEM certificate revocation list.

    :raises PKIError: ``malformed_pem``, ``truncated_pem``,
        ``unsupported_key``, as :func:`load_certificates`
    """
    _check_pem_framing(data, 'X509 CRL', path)

    def touch(crl):
        crl.issuer, crl.extensions, crl.next_update_utc
        for entry in crl:
            entry.serial_number, entry.revocation_date_utc, entry.extensions
    return _parsed(path, 'revocation list',
                   lambda: x509.load_pem_x509_crl(data), touch)


def public_key_der(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_certificate(key, cert):
    return (public_key_der(key.public_key())
            == public_key_der(cert.public_key()))


def fingerprint(cert):
    """SHA-256 fingerprint of the DER certificate, as lowercase hex."""
    return hashlib.sha256(
        cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_key_strength(public_key, min_rsa_bits=2048):
    """Refuse key algorithms and sizes too weak for host identities."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < min_rsa_bits:
            return Decision.refuse(
                'weak_key', 'RSA key of %d bits is below the minimum of %d'
                % (public_key.key_size, min_rsa_bits))
        return Decision.allow(key='rsa-%d' % public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _ACCEPTED_CURVES):
            return Decision.refuse(
                'weak_key', 'elliptic curve %s is not accepted (use P-256, '
                'P-384 or P-521)' % public_key.curve.name)
        return Decision.allow(key='ec-%s' % public_key.curve.name)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return Decision.allow(key='ed25519')
    return Decision.refuse(
        'unsupported_key', 'key algorithm %s is not accepted for host '
        'certificates (use ECDSA, Ed25519 or RSA)'
        % type(public_key).__name__)
