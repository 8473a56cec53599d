"""The names and addresses secmig's CA writes into host certificates.

A host certificate is only useful if every verifier that reads it checks
it against the same names: secmig's own checks (``cryptography``'s path
validation), GnuTLS in QEMU and libvirtd, and the resolvers that turn a
name into an address. The CA therefore issues only names that all of
them read the same way, and refuses the others with ``bad_name``:

- ASCII letters, digits and hyphens in labels of 1 to 63 characters, no
  label starting or ending with a hyphen, 253 characters at most (64 for
  the host name, which is also the subject's common name);
- no wildcard (``*.example.org`` would be valid for every host it
  matches), no underscore, no empty label, no trailing dot (``cmp1.`` is
  written ``cmp1``; verification accepts both for the host);
- an internationalised name in its ASCII form (``xn--...``);
- not an IP address, nor a name whose last label is all digits, which
  resolvers may read as an IPv4 address (``1.2.3`` is ``1.2.0.3``):
  addresses are subject alternative names of their own type.

Addresses are IPv4 or IPv6 addresses without a scope (``bad_address``),
kept in their canonical text form.
"""

import ipaddress
import re

from secmig import exception

MAX_NAME = 253
MAX_LABEL = 63
#: The upper bound of an X.509 common name (RFC 5280, ub-common-name).
MAX_HOST = 64

_LABEL = re.compile(r'[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\Z', re.ASCII)


def _refuse(name, why):
    raise exception.PKIError('%r cannot be a host name in a certificate: %s'
                             % (name, why), code='bad_name')


def dns_name(name):
    """Return ``name`` if the CA may issue it as a DNS name.

    :raises PKIError: ``bad_name``, with the rule ``name`` breaks
    """
    if not isinstance(name, str) or not name:
        _refuse(name, 'it is empty')
    if not name.isascii():
        _refuse(name, 'it is not ASCII; give an internationalised name in '
                      'its ASCII form (xn--...)')
    if is_address(name):
        _refuse(name, 'it is an IP address; give addresses with --address')
    if name.endswith('.'):
        _refuse(name, 'it ends with a dot; give it without (%s)'
                % name.rstrip('.'))
    if len(name) > MAX_NAME:
        _refuse(name, 'it is longer than %d characters' % MAX_NAME)
    labels = name.split('.')
    for label in labels:
        if not label:
            _refuse(name, 'it has an empty label')
        if '*' in label:
            _refuse(name, 'wildcards are not issued: the certificate would '
                          'be valid for every host the pattern matches')
        if len(label) > MAX_LABEL:
            _refuse(name, 'its label %r is longer than %d characters'
                    % (label, MAX_LABEL))
        if not _LABEL.match(label):
            _refuse(name, 'its label %r holds characters other than '
                          'letters, digits and hyphens, or starts or ends '
                          'with a hyphen' % label)
    if labels[-1].isdigit():
        _refuse(name, 'its last label is all digits, which resolvers may '
                      'read as an IPv4 address')
    return name


def host_name(host):
    """Return ``host`` if it may be a certificate's host name (and CN).

    :raises PKIError: ``bad_name``
    """
    dns_name(host)
    if len(host) > MAX_HOST:
        _refuse(host, 'a host name (the subject\'s common name) has at '
                      'most %d characters; give longer names with --name'
                % MAX_HOST)
    return host


def address(text):
    """The canonical form of the IP address ``text``.

    :raises PKIError: ``bad_address``, not an IP address or a scoped one
    """
    try:
        if not isinstance(text, str):
            raise ValueError(text)
        parsed = ipaddress.ip_address(text)
    except ValueError as e:
        raise exception.PKIError('%r is not an IP address' % (text,),
                                 code='bad_address') from e
    if getattr(parsed, 'scope_id', None):
        raise exception.PKIError(
            '%r is a scoped address; a certificate holds the address '
            'without its scope' % text, code='bad_address')
    return str(parsed)


def is_address(text):
    """True when ``text`` is an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
