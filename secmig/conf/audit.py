"""Options of the ``[audit]`` group."""

from oslo_config import cfg

audit_group = cfg.OptGroup('audit', title='audit options')

audit_opts = []


def register_opts(conf):
    conf.register_group(audit_group)
    conf.register_opts(audit_opts, group=audit_group)


def list_opts():
    return {audit_group: audit_opts}
