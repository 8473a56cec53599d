"""Renewal requests: the holder of a certificate asks for its successor.

A certificate is renewed only for whoever holds its private key. The
host makes a renewal request (``secmig pki renew-request``), one PEM
file of three blocks::

    -----BEGIN CERTIFICATE-----                the current certificate
    -----BEGIN CERTIFICATE REQUEST-----        a CSR for the new key
    -----BEGIN SECMIG RENEWAL SIGNATURE-----   the current key's signature

The CSR's own signature proves possession of the new key. The renewal
signature, by the current certificate's key, covers::

    b'secmig-pki-renewal/1' 0x00 SHA-256(certificate DER) SHA-256(CSR DER)

so it proves possession of the current key and binds it to this
certificate and this CSR: it cannot be moved to another CSR, and the
label keeps it apart from anything else a host key signs (handshake
messages, audit checkpoints, TLS). The algorithm follows from the key,
as for every host signature (:mod:`secmig.auth.signing`).

A copy of the public certificate alone, or a CSR alone, proves nothing
and is refused (``renewal_unproven``).
"""

import dataclasses
import hashlib

from secmig.auth import signing
from secmig import exception
from secmig.pki import keys

LABEL = b'secmig-pki-renewal/1'
CERT_BLOCK = 'CERTIFICATE'
CSR_BLOCK = 'CERTIFICATE REQUEST'
SIGNATURE_BLOCK = 'SECMIG RENEWAL SIGNATURE'
_BLOCKS = (CERT_BLOCK, CSR_BLOCK, SIGNATURE_BLOCK)
#: Larger than any signature of an accepted key (RSA 16384 bits).
MAX_SIGNATURE = 2048


@dataclasses.dataclass(frozen=True)
class RenewalRequest:
    """A parsed renewal request; ``cert`` and ``signature`` may be None."""

    cert: object
    csr: object
    signature: bytes


def _der(obj):
    return obj.public_bytes(keys.serialization.Encoding.DER)


def signed_bytes(cert, csr):
    """The exact bytes the current key signs for ``cert``'s renewal."""
    return (LABEL + b'\x00' + hashlib.sha256(_der(cert)).digest()
            + hashlib.sha256(_der(csr)).digest())


def make(cert, key, csr):
    """The renewal request (PEM) of ``cert``'s holder for ``csr``.

    :raises PKIError: ``key_mismatch`` when ``key`` is not ``cert``'s;
        ``unsupported_key`` when it cannot sign
    """
    if not keys.key_matches_certificate(key, cert):
        raise exception.PKIError(
            'the host key does not belong to the current certificate %x'
            % cert.serial_number, code='key_mismatch')
    try:
        signature = signing.sign(key, signed_bytes(cert, csr))
    except ValueError as e:
        raise exception.PKIError(str(e), code='unsupported_key') from e
    return (keys.cert_pem(cert)
            + csr.public_bytes(keys.serialization.Encoding.PEM)
            + keys.pem_block(SIGNATURE_BLOCK, signature))


def parse(data, path='<renewal request>'):
    """Parse a renewal request, or a bare CSR (which :func:`check` refuses).

    :raises PKIError: ``malformed_pem``, ``truncated_pem``,
        ``unsupported_key`` (see :mod:`secmig.pki.keys`), and
        ``malformed_pem`` for a block other than the three above, one
        given twice, no CSR, or an over-long signature
    """
    found = {}
    for label, der in keys.pem_blocks(data, path):
        if label not in _BLOCKS:
            raise exception.PKIError(
                '%s holds a "%s" block; a renewal request holds only %s'
                % (path, label, ', '.join(_BLOCKS)), code='malformed_pem')
        if label in found:
            raise exception.PKIError('%s holds two "%s" blocks'
                                     % (path, label), code='malformed_pem')
        found[label] = der
    if CSR_BLOCK not in found:
        raise exception.PKIError('%s holds no certificate request' % path,
                                 code='malformed_pem')
    signature = found.get(SIGNATURE_BLOCK)
    if signature is not None and not 0 < len(signature) <= MAX_SIGNATURE:
        raise exception.PKIError('%s holds a signature of %d bytes'
                                 % (path, len(signature)),
                                 code='malformed_pem')
    return RenewalRequest(
        keys.load_certificate(data, path) if CERT_BLOCK in found else None,
        keys.load_csr(data, path), signature)


def check(request):
    """Refuse a request not signed by the key of its certificate.

    :raises PKIError: ``renewal_unproven``
    """
    if request.signature is None or request.cert is None:
        raise exception.PKIError(
            'a certificate request alone does not prove that the requester '
            'holds the key of the certificate to renew; make the request on '
            'the host with "secmig pki renew-request"',
            code='renewal_unproven')
    if not signing.verify(request.cert.public_key(), request.signature,
                          signed_bytes(request.cert, request.csr)):
        raise exception.PKIError(
            'the renewal request is not signed by the key of certificate %x '
            'over this certificate request: only the holder of that key may '
            'renew it' % request.cert.serial_number, code='renewal_unproven')
