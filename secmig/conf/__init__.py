"""Configuration of secmig.

Each module of this package holds one option group and exposes
``register_opts(conf)`` and ``list_opts()``. Code receives a
``ConfigOpts`` to read from; only the Nova and Watcher adapters, whose
host processes force a global configuration, hand in ``cfg.CONF``.
"""

from oslo_config import cfg

from secmig.conf import audit
from secmig.conf import auth
from secmig.conf import nova_api
from secmig.conf import pki
from secmig.conf import policy
from secmig.conf import watcher
from secmig import exception

_MODULES = (pki, auth, policy, audit, watcher, nova_api)


def register_opts(conf):
    """Register every secmig option group on ``conf``."""
    for module in _MODULES:
        module.register_opts(conf)


def new_conf(args=(), default_config_files=None):
    """Return a fresh ``ConfigOpts`` with every secmig option registered."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    try:
        conf(list(args), project='secmig',
             default_config_files=default_config_files or [])
    except cfg.Error as e:
        raise exception.SecmigError('configuration: %s' % e,
                                    code='bad_config') from e
    return conf
