"""secmig's configuration inside Nova's processes.

Nova's global ``CONF`` gets one option, ``[secmig] config_file``; all of
secmig's own options live in that file (``/etc/secmig/secmig.conf``),
read into a ``ConfigOpts`` of secmig's own, so they never collide with
Nova's groups and the same file serves the ``secmig`` command line.
"""

import os

from oslo_config import cfg

from secmig import conf as secmig_conf
from secmig import exception

secmig_group = cfg.OptGroup(
    'secmig', title='secmig',
    help='Secure live migration (secmig) plugin for Nova.')

secmig_opts = [
    cfg.StrOpt('config_file',
               default='/etc/secmig/secmig.conf',
               help='secmig\'s configuration file: host identity ([pki]), '
                    'handshake ([auth]), migration policy ([policy]) and '
                    'audit trail ([audit]).'),
]


def register_opts(conf):
    conf.register_group(secmig_group)
    conf.register_opts(secmig_opts, group=secmig_group)


def list_opts():
    return [(secmig_group, secmig_opts)]


def load(nova_conf):
    """A fresh secmig ``ConfigOpts`` read from ``[secmig] config_file``.

    It holds every secmig group, and ``[nova]`` (Nova's API, read by the
    compute hosts).

    A missing file leaves secmig's defaults, which refuse migrations
    until certificates and a policy are installed (fail closed).

    Every option is read once here, so a value of the wrong type is
    found now rather than at the first migration.

    :raises secmig.exception.SecmigError: code ``config_invalid``, naming
        the file, when it does not parse or holds an invalid value
    """
    path = nova_conf.secmig.config_file
    files = [path] if path and os.path.exists(path) else []
    try:
        conf = secmig_conf.new_conf(default_config_files=files)
        _read_every_option(conf)
    except (exception.SecmigError, cfg.Error, ValueError) as e:
        raise exception.SecmigError(
            'secmig.conf %s is invalid: %s' % (path, e),
            code='config_invalid') from e
    return conf


def _read_every_option(conf):
    """Convert every registered option's value (oslo.config is lazy)."""
    for name in list(conf):
        value = conf[name]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for option in list(value):
                _ = value[option]
