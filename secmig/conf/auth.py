"""Options of the ``[auth]`` group."""

from oslo_config import cfg

auth_group = cfg.OptGroup('auth', title='auth options')

auth_opts = []


def register_opts(conf):
    conf.register_group(auth_group)
    conf.register_opts(auth_opts, group=auth_group)


def list_opts():
    return {auth_group: auth_opts}
