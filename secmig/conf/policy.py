"""Options of the ``[policy]`` group."""

from oslo_config import cfg

policy_group = cfg.OptGroup('policy', title='policy options')

policy_opts = []


def register_opts(conf):
    conf.register_group(policy_group)
    conf.register_opts(policy_opts, group=policy_group)


def list_opts():
    return {policy_group: policy_opts}
