"""Options of the ``[policy]`` group: where the migration policy is."""

from oslo_config import cfg

from secmig.conf import groups

policy_group = cfg.OptGroup(
    'policy',
    title='Migration policy options',
    help='The migration policy decides, for every live migration, whether '
         'it may happen and under which constraints (see the policy guide '
         'and etc/secmig/migration-policy.yaml.sample). A missing or '
         'invalid policy file refuses every migration.')

policy_opts = [
    cfg.StrOpt('policy_file',
               default='/etc/secmig/migration-policy.yaml',
               help='Path of the YAML migration policy file. It is re-read '
                    'when it changes; check it first with '
                    '"secmig policy check FILE".'),
]


def register_opts(conf):
    groups.register(conf, policy_group, policy_opts)


def list_opts():
    return {policy_group: policy_opts}
