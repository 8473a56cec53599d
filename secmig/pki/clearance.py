"""The clearance level bound into a host certificate.

Mandatory access control compares an instance's level with the
clearance of the destination host. The clearance travels in the
certificate's subject as one organizational-unit attribute,
``OU=secmig-clearance=N``, that only the CA writes: a host cannot raise
its own level, because changing the subject breaks the CA's signature.

A subject attribute rather than a private X.509 extension: GnuTLS (and so
QEMU) parses every extension's OID, and refuses to load a certificate
whose OID has an arc wider than 64 bits, which rules out the
registration-free UUID arc (2.25); an attribute needs no OID of ours.

A certificate without the attribute (for example from an operator's own
CA) has clearance 0, the lowest. An operator's CA may write the attribute
itself.
"""

from cryptography import x509
from cryptography.x509.oid import NameOID

from secmig import exception

MAX_LEVEL = 100
_PREFIX = 'secmig-clearance='
#: The one text of each level.
_LEVELS = {str(n): n for n in range(MAX_LEVEL + 1)}


def attribute(level):
    """The subject attribute carrying ``level``."""
    if (not isinstance(level, int) or isinstance(level, bool)
            or not 0 <= level <= MAX_LEVEL):
        raise exception.PKIError(
            'clearance level must be an integer from 0 to %d, not %r'
            % (MAX_LEVEL, level), code='bad_clearance')
    return x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                              '%s%d' % (_PREFIX, level))


def decode(cert):
    """Return the certificate's clearance level (0 when absent).

    Raises ``PKIError`` (``bad_clearance``) when the attribute is present
    more than once or does not hold, in canonical form (what
    :func:`attribute` writes), an integer from 0 to ``MAX_LEVEL``: other
    digits (Arabic-Indic, fullwidth, superscript), signs, spaces and
    leading zeros are refused, never read as a number.
    """
    # A value that is not text (a BIT STRING) is no clearance attribute.
    values = [a.value for a in cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATIONAL_UNIT_NAME)
        if isinstance(a.value, str) and a.value.startswith(_PREFIX)]
    if not values:
        return 0
    level = _LEVELS.get(values[0][len(_PREFIX):])
    if len(values) > 1 or level is None:
        raise exception.PKIError(
            'the clearance attribute is malformed (%s): it must be written '
            'once, as a level from 0 to %d in ASCII decimal digits without '
            'leading zeros' % (', '.join(map(ascii, values)), MAX_LEVEL),
            code='bad_clearance')
    return level
