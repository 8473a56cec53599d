"""Options of the ``[watcher]`` group: what the Watcher strategy reads."""

from oslo_config import cfg

from secmig.conf import groups

watcher_group = cfg.OptGroup(
    'watcher',
    title='Watcher hotspot strategy options',
    help='Read by secmig\'s Watcher strategy (secmig_hotspot) in the '
         'Watcher decision engine. Watcher cannot see the certificates '
         'the compute hosts publish to Nova, so it reads them from a '
         'directory; the CA certificate and revocation list come from '
         '[pki] cert_dir as everywhere else.')

watcher_opts = [
    cfg.StrOpt('host_cert_dir',
               default='/etc/secmig/host-certs',
               help='Directory of host certificates, one "<host>.pem" per '
                    'compute host, named as Nova names the host. A host '
                    'without a valid certificate here is never chosen as '
                    'a destination. A certificate here also stands for the '
                    'host\'s readiness for TLS migration, which the '
                    'compute host checks again before anything moves.'),
]


def register_opts(conf):
    groups.register(conf, watcher_group, watcher_opts)


def list_opts():
    return {watcher_group: watcher_opts}
