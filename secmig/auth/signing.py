"""Signatures with host keys, whatever their type.

The algorithm follows from the key alone, so nothing on the wire
selects it and nothing can be downgraded:

- ECDSA: SHA-256 on P-256, SHA-384 on P-384, SHA-512 on P-521;
- RSA: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt;
- Ed25519: pure Ed25519.

Which keys a host certificate may carry is the PKI's decision
(:func:`secmig.pki.keys.check_key_strength`); this module signs with any
of the above.
"""

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes

_CURVE_HASH = {'secp256r1': hashes.SHA256, 'secp384r1': hashes.SHA384,
               'secp521r1': hashes.SHA512}


def _pss():
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                       salt_length=32)


def supported(key):
    """True when this module can sign or verify with ``key``."""
    if isinstance(key, (ec.EllipticCurvePrivateKey,
                        ec.EllipticCurvePublicKey)):
        return key.curve.name in _CURVE_HASH
    return isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey,
                            ed25519.Ed25519PrivateKey,
                            ed25519.Ed25519PublicKey))


def sign(private_key, data):
    """Sign ``data``; raises ``ValueError`` for an unsupported key."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.name in _CURVE_HASH:
            return private_key.sign(
                data, ec.ECDSA(_CURVE_HASH[private_key.curve.name]()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, _pss(), hashes.SHA256())
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    raise ValueError('cannot sign with a %s' % type(private_key).__name__)


def verify(public_key, signature, data):
    """True if ``signature`` is ``public_key``'s signature of ``data``.

    Never raises: an unsupported key or a malformed signature is False.
    """
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if public_key.curve.name not in _CURVE_HASH:
                return False
            public_key.verify(
                signature, data,
                ec.ECDSA(_CURVE_HASH[public_key.curve.name]()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, _pss(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
