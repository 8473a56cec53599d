"""Options of the ``[pki]`` group: where a host keeps its identity."""

from oslo_config import cfg

from secmig.conf import groups

pki_group = cfg.OptGroup(
    'pki',
    title='Host identity (X.509) options',
    help='Where this host keeps its certificate, key, trusted CA bundle '
         'and revocation list, and how strictly they are checked. The '
         'default directory is the one libvirt uses for QEMU native TLS '
         'migration (migrate_tls_x509_cert_dir), so that secmig and QEMU '
         'use the same files.')

pki_opts = [
    cfg.StrOpt('cert_dir',
               default='/etc/pki/qemu',
               help='Directory holding ca-cert.pem, server-cert.pem, '
                    'server-key.pem, client-cert.pem, client-key.pem and '
                    'optionally ca-crl.pem, in the layout QEMU\'s '
                    'tls-creds-x509 object expects.'),
    cfg.IntOpt('expiry_margin',
               default=3600,
               min=0,
               help='Seconds of remaining validity a certificate must have '
                    'to be accepted. A certificate that expires sooner is '
                    'refused, so that it cannot expire during a migration.'),
    cfg.IntOpt('min_rsa_bits',
               default=2048,
               min=2048,
               help='Smallest RSA modulus accepted in a certificate.'),
    cfg.IntOpt('verdict_refresh_interval',
               default=60,
               min=0,
               help='Seconds between two re-verifications, by the Nova '
                    'scheduler filter, of every host certificate it has '
                    'seen, with the CA bundle and revocation list read '
                    'anew: the longest a revocation takes to reach the '
                    'scheduler. 0 re-verifies on every scheduling request '
                    '(for tests).'),
    cfg.BoolOpt('require_crl',
                default=True,
                help='Refuse certificates when the CA\'s revocation list '
                     '(ca-crl.pem) is missing. A present revocation list '
                     'is always checked, and one past its next-update time '
                     'is refused whatever this option says.'),
]


def register_opts(conf):
    groups.register(conf, pki_group, pki_opts)


def list_opts():
    return {pki_group: pki_opts}
