"""Options of the ``[auth]`` group: the handshake between two hosts."""

from oslo_config import cfg

from secmig.conf import groups

auth_group = cfg.OptGroup(
    'auth',
    title='Host-to-host authentication options',
    help='Before a live migration the source and destination hosts '
         'authenticate each other with a signed challenge-response bound '
         'to the migration. These options bound its clocks, its memory '
         'and the size of what it reads.')

auth_opts = [
    cfg.IntOpt('max_clock_skew',
               default=30,
               min=1,
               max=600,
               help='Largest difference, in seconds, accepted between a '
                    'handshake message\'s timestamp and this host\'s '
                    'clock, in either direction. Messages outside it are '
                    'refused as stale or from the future. Keep the hosts\' '
                    'clocks synchronised (NTP) well within this bound.'),
    cfg.IntOpt('handshake_timeout',
               default=60,
               min=1,
               max=3600,
               help='Seconds a host waits for the next message of a '
                    'handshake it takes part in; a later message is '
                    'refused and the handshake must start again.'),
    cfg.IntOpt('replay_cache_size',
               default=10000,
               min=16,
               help='Number of handshake nonces a host remembers to refuse '
                    'replays. When more fresh handshakes arrive within the '
                    'clock-skew window, the oldest are forgotten and '
                    'messages older than them are refused (never '
                    'accepted).'),
    cfg.IntOpt('max_pending_handshakes',
               default=1024,
               min=1,
               help='Handshakes a responding host keeps in progress at '
                    'once; beyond it a new handshake is refused '
                    '(too_many_handshakes) and those in progress go on.'),
    cfg.IntOpt('max_message_bytes',
               default=16384,
               min=4096,
               max=1048576,
               help='Largest handshake message, in bytes, a host reads. '
                    'Larger messages are refused without being parsed.'),
]


def register_opts(conf):
    groups.register(conf, auth_group, auth_opts)


def list_opts():
    return {auth_group: auth_opts}
