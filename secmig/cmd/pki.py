"""``secmig pki``: create a CA, enroll hosts, install and verify.

Enrollment of a host, end to end (the token travels in a file, never on
a command line, where ``ps`` and the shell history would show it)::

    ca$    secmig pki ca-create --ca-dir /etc/secmig/ca --name "Cloud CA"
    ca$    secmig pki token-create --ca-dir /etc/secmig/ca --host cmp1 \\
               --address 192.0.2.11 --clearance 2 --out cmp1.token
    cmp1$  secmig pki host-key --host cmp1 --address 192.0.2.11 > cmp1.csr
    ca$    secmig pki sign --ca-dir /etc/secmig/ca --csr cmp1.csr \\
               --token-file cmp1.token > cmp1.pem
    cmp1$  secmig pki install --cert cmp1.pem --ca ca-cert.pem \\
               --crl ca-crl.pem --group kvm
    cmp1$  secmig pki verify /etc/pki/qemu/server-cert.pem --host cmp1

Renewal, by the holder of the current key only::

    cmp1$  secmig pki renew-request > cmp1.renew
    ca$    secmig pki renew --ca-dir /etc/secmig/ca --request cmp1.renew \\
               > cmp1.pem
    cmp1$  secmig pki install --cert cmp1.pem --ca ca-cert.pem \\
               --crl ca-crl.pem --group kvm
"""

import argparse
import json
import os
import sys

from secmig import exception
from secmig.pki import ca as ca_mod
from secmig.pki import fileio
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import tokens
from secmig.pki import verify


def _positive(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError('%r is not a positive integer'
                                         % value)
    return number


def _read(path, what):
    if path == '-':
        return sys.stdin.buffer.read()
    return fileio.read_bytes(path, what)


def _one_stdin(**paths):
    """Refuse two inputs both read from standard input ("-")."""
    stdin = sorted('--' + name.replace('_', '-')
                   for name, path in paths.items() if path == '-')
    if len(stdin) > 1:
        raise exception.PKIError(
            '%s cannot all be read from standard input; give files'
            % ' and '.join(stdin), code='usage')


def _token(args):
    if args.token_file is not None:
        return tokens.read_token(_read(args.token_file, 'token file'),
                                 args.token_file)
    print('secmig: warning: --token shows the token to every user of this '
          'machine (ps) and keeps it in the shell history; give it with '
          '--token-file PATH, or --token-file - on standard input',
          file=sys.stderr)
    return args.token


def _emit(data, out, force=False, mode=0o644):
    if out:
        fileio.write_atomic(out, data.encode() if isinstance(data, str)
                            else data, mode=mode, overwrite=force)
    else:
        sys.stdout.write(data.decode() if isinstance(data, bytes) else data)


def _ca(args):
    return ca_mod.CertificateAuthority(args.ca_dir)


def do_ca_create(args, conf):
    ca_mod.CertificateAuthority.create(args.ca_dir, args.name, args.days,
                                       args.key_type, overwrite=args.force)
    print('created CA "%s" in %s' % (args.name, args.ca_dir))


def do_token_create(args, conf):
    token = _ca(args).create_token(args.host, args.name, args.address,
                                   args.clearance, args.ttl)
    _emit(token + '\n', args.out, force=args.force, mode=0o600)


def do_host_key(args, conf):
    cert_dir = args.cert_dir or conf.pki.cert_dir
    csr = host_mod.make_key_and_csr(cert_dir, args.host, args.name,
                                    args.address, args.key_type,
                                    overwrite=args.force, group=args.group)
    _emit(csr, args.out, force=True)


def do_sign(args, conf):
    _one_stdin(csr=args.csr, token_file=args.token_file)
    token = _token(args)
    cert = _ca(args).sign(_read(args.csr, 'certificate request'),
                          token, args.days,
                          min_rsa_bits=conf.pki.min_rsa_bits)
    _emit(cert, args.out, force=args.force)


def do_renew_request(args, conf):
    cert_dir = args.cert_dir or conf.pki.cert_dir
    request = host_mod.make_renewal_request(cert_dir, args.key_type,
                                            overwrite=args.force)
    _emit(request, args.out, force=True)


def do_renew(args, conf):
    _one_stdin(request=args.request, cert=args.cert)
    current = _read(args.cert, 'certificate') if args.cert else None
    cert = _ca(args).renew(_read(args.request, 'renewal request'),
                           args.days, revoke_old=args.revoke_old,
                           min_rsa_bits=conf.pki.min_rsa_bits,
                           current_pem=current)
    _emit(cert, args.out, force=args.force)


def do_revoke(args, conf):
    if args.cert:
        serial = keys.load_certificate(
            _read(args.cert, 'certificate'), args.cert).serial_number
    else:
        try:
            serial = int(args.serial, 16)
        except ValueError:
            raise exception.PKIError('%r is not a hexadecimal serial number'
                                     % args.serial, code='bad_serial')
    _ca(args).revoke(serial, args.reason)
    print('revoked %x; distribute %s to every host'
          % (serial, os.path.join(args.ca_dir, ca_mod.CA_CRL)))


def do_crl(args, conf):
    _ca(args).publish_crl(args.days)
    print('published %s' % os.path.join(args.ca_dir, ca_mod.CA_CRL))


def do_install(args, conf):
    cert_dir = args.cert_dir or conf.pki.cert_dir
    owner = host_mod.resolve_user(args.owner)
    key_gid = host_mod.resolve_group(args.group)
    crl = _read(args.crl, 'revocation list') if args.crl else None
    done = host_mod.install(
        cert_dir, _read(args.cert, 'certificate'),
        _read(args.ca, 'CA bundle'), crl, margin=conf.pki.expiry_margin,
        libvirt_pki_dir=None if args.no_libvirt else args.libvirt_pki_dir,
        owner=owner, key_gid=key_gid)
    verdict = done.verdict
    print('installed %s in %s%s (clearance %d)'
          % (verdict.details['subject'], cert_dir,
             '' if args.no_libvirt else ' and ' + args.libvirt_pki_dir,
             verdict.details['clearance']))
    for installed in done.files:
        print('  %s' % installed)


def do_verify(args, conf):
    cert_dir = conf.pki.cert_dir
    ca_path = args.ca or os.path.join(cert_dir, host_mod.CA_CERT)
    crl_path = args.crl
    if crl_path is None and not args.ca:
        default_crl = os.path.join(cert_dir, host_mod.CA_CRL)
        crl_path = default_crl if os.path.exists(default_crl) else None
    cert = keys.load_certificate(_read(args.cert, 'certificate'), args.cert)
    verdict = verify.verify_certificate(
        cert, verify.TrustStore.from_files(ca_path, crl_path),
        host=args.host, purpose=args.purpose,
        margin=(conf.pki.expiry_margin if args.margin is None
                else args.margin),
        min_rsa_bits=conf.pki.min_rsa_bits,
        require_crl=conf.pki.require_crl and not args.no_crl)
    if verdict and args.key:
        pair = verify.verify_key_pair(
            cert, keys.load_private_key(_read(args.key, 'key'), args.key))
        verdict = verdict if pair else pair
    if args.json:
        print(json.dumps(verdict.as_dict(), indent=1, sort_keys=True))
    elif verdict:
        print('valid: %s' % verdict.reason)
    else:
        print('invalid (%s): %s' % (verdict.code, verdict.reason),
              file=sys.stderr)
    return 0 if verdict else 1


def add_parser(subparsers):
    pki = subparsers.add_parser(
        'pki', help='host certificates: CA, enrollment, verification',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = pki.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def ca_dir(p):
        p.add_argument('--ca-dir', required=True,
                       help='the CA directory (holds ca-key.pem)')

    def output(p):
        p.add_argument('--out', help='write here instead of stdout')
        p.add_argument('--force', action='store_true',
                       help='replace an existing output file')

    def names(p):
        p.add_argument('--name', action='append', default=[],
                       help='another DNS name of the host (repeatable)')
        p.add_argument('--address', action='append', default=[],
                       help='an IP address of the host (repeatable)')

    p = command('ca-create', do_ca_create, 'create a CA')
    ca_dir(p)
    p.add_argument('--name', required=True, help='the CA\'s common name')
    p.add_argument('--days', type=_positive, default=ca_mod.DEFAULT_CA_DAYS)
    p.add_argument('--key-type', choices=keys.CA_KEY_TYPES,
                   default=keys.DEFAULT_KEY_TYPE)
    p.add_argument('--force', action='store_true',
                   help='replace an existing CA key and certificate')

    p = command('token-create', do_token_create,
                'create a one-time enrollment token for a host')
    ca_dir(p)
    p.add_argument('--host', required=True, help='the host\'s name')
    names(p)
    p.add_argument('--clearance', type=int, default=0,
                   help='MAC clearance level bound into the certificate')
    p.add_argument('--ttl', type=_positive, default=tokens.DEFAULT_TTL,
                   help='seconds the token stays valid')
    p.add_argument('--out', help='write the token to this file (mode '
                                 '0600) instead of stdout')
    p.add_argument('--force', action='store_true',
                   help='replace an existing token file')

    p = command('host-key', do_host_key,
                'on a host: generate its key and print a CSR')
    p.add_argument('--host', required=True, help='this host\'s name')
    names(p)
    p.add_argument('--cert-dir', help='default: [pki] cert_dir')
    p.add_argument('--key-type', choices=keys.KEY_TYPES,
                   default=keys.DEFAULT_KEY_TYPE)
    p.add_argument('--group', help='make the key 0640 for this group '
                                   '(the group QEMU runs in)')
    p.add_argument('--out', help='write the CSR here instead of stdout')
    p.add_argument('--force', action='store_true',
                   help='replace an existing key (key rotation)')

    p = command('sign', do_sign, 'sign a host CSR against a token')
    ca_dir(p)
    p.add_argument('--csr', required=True, help='the CSR file, or -')
    token = p.add_mutually_exclusive_group(required=True)
    token.add_argument('--token-file', metavar='PATH',
                       help='the file holding the enrollment token, or - '
                            'to read it from standard input')
    token.add_argument('--token', help='the token itself (discouraged: '
                                       'ps and the shell history show it)')
    p.add_argument('--days', type=_positive,
                   default=ca_mod.DEFAULT_HOST_DAYS)
    output(p)

    p = command('renew-request', do_renew_request,
                'on a host: generate its next key and print a renewal '
                'request signed by its current key')
    p.add_argument('--cert-dir', help='default: [pki] cert_dir')
    p.add_argument('--key-type', choices=keys.KEY_TYPES,
                   default=keys.DEFAULT_KEY_TYPE)
    p.add_argument('--out', help='write the request here instead of stdout')
    p.add_argument('--force', action='store_true',
                   help='replace the next key of an earlier request')

    p = command('renew', do_renew,
                'issue a successor to a valid certificate, for the holder '
                'of its key (same names and clearance; the new key from '
                'the request); the current one is revoked as superseded')
    ca_dir(p)
    p.add_argument('--request', '--csr', dest='request', required=True,
                   help='the renewal request from "secmig pki '
                        'renew-request", or -')
    p.add_argument('--cert', help='the current certificate (the request '
                                  'holds it)')
    p.add_argument('--days', type=_positive,
                   default=ca_mod.DEFAULT_HOST_DAYS)
    old = p.add_mutually_exclusive_group()
    old.add_argument('--keep-old', dest='revoke_old', action='store_false',
                     help='leave the current certificate valid until it '
                          'expires')
    old.add_argument('--revoke-old', dest='revoke_old', action='store_true',
                     default=True, help='revoke the current certificate as '
                                        'superseded (the default)')
    output(p)

    p = command('revoke', do_revoke,
                'revoke a certificate and publish a new CRL')
    ca_dir(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--cert', help='the certificate file')
    which.add_argument('--serial', help='the serial number, in hex')
    p.add_argument('--reason', choices=ca_mod.REVOCATION_REASONS,
                   default='unspecified')

    p = command('crl', do_crl, 're-publish the revocation list')
    ca_dir(p)
    p.add_argument('--days', type=_positive,
                   default=ca_mod.DEFAULT_CRL_DAYS,
                   help='days until the list must be refreshed')

    p = command('install', do_install,
                'install a signed certificate beside this host\'s key')
    p.add_argument('--cert', required=True)
    p.add_argument('--ca', required=True, help='the CA certificate(s)')
    p.add_argument('--crl', help='the CA\'s revocation list')
    p.add_argument('--cert-dir', help='QEMU\'s layout (default: [pki] '
                                      'cert_dir)')
    p.add_argument('--libvirt-pki-dir', default=host_mod.LIBVIRT_PKI_DIR,
                   help='libvirtd\'s PKI root, holding CA/ and libvirt/ '
                        '(default: %(default)s)')
    p.add_argument('--no-libvirt', action='store_true',
                   help='write only QEMU\'s layout')
    p.add_argument('--owner', default=host_mod.DEFAULT_OWNER,
                   help='user (and its group) owning every file '
                        '(default: %(default)s)')
    p.add_argument('--group', default=host_mod.DEFAULT_KEY_GROUP,
                   help='group that reads QEMU\'s key, mode 0640: the '
                        'group QEMU runs in, which nova-compute\'s user '
                        'joins (default: %(default)s)')

    p = command('verify', do_verify,
                'verify a host certificate (exit 0 only when valid)')
    p.add_argument('cert', help='the certificate file, or -')
    p.add_argument('--host', help='name or address the certificate must '
                                  'be valid for')
    p.add_argument('--ca', help='trusted CA bundle (default: ca-cert.pem '
                                'in [pki] cert_dir)')
    p.add_argument('--crl', help='revocation list (default: ca-crl.pem in '
                                 '[pki] cert_dir when present)')
    p.add_argument('--no-crl', action='store_true',
                   help='accept the certificate without a revocation list')
    p.add_argument('--key', help='also check that this key matches')
    p.add_argument('--purpose', choices=verify.PURPOSES, default='both')
    p.add_argument('--margin', type=int,
                   help='seconds of validity required (default: [pki] '
                        'expiry_margin)')
    p.add_argument('--json', action='store_true',
                   help='print the verdict as JSON')
