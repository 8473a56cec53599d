"""The clearance level bound into a host certificate.

Mandatory access control compares an instance's level with the
clearance of the destination host. The clearance travels in a
non-critical X.509 extension that only the CA writes, so a host cannot
raise its own level: changing it breaks the CA's signature. GnuTLS
(QEMU) ignores the extension because it is not critical.

The value is a DER INTEGER between 0 and ``MAX_LEVEL``. A certificate
without the extension (for example from an operator's own CA) has
clearance 0, the lowest.
"""

from cryptography import x509

from secmig import exception

#: An OID under the ITU-T X.667 UUID arc (2.25), which anyone may use
#: without registration; the UUID is secmig's own.
CLEARANCE_OID = x509.ObjectIdentifier(
    '2.25.96282515892153627830532804099092403167')
MAX_LEVEL = 100


def encode(level):
    if not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
        raise exception.PKIError(
            'clearance level must be an integer from 0 to %d, not %r'
            % (MAX_LEVEL, level), code='bad_clearance')
    return x509.UnrecognizedExtension(CLEARANCE_OID,
                                      bytes((0x02, 0x01, level)))


def decode(cert):
    """Return the certificate's clearance level (0 when absent)."""
    try:
        ext = cert.extensions.get_extension_for_oid(CLEARANCE_OID)
    except x509.ExtensionNotFound:
        return 0
    value = ext.value.value
    if (len(value) != 3 or value[0] != 0x02 or value[1] != 0x01
            or value[2] > MAX_LEVEL):
        raise exception.PKIError(
            'the clearance extension is malformed (%s)' % value.hex(),
            code='bad_clearance')
    return value[2]
