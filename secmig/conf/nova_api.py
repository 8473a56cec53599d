"""Options of the ``[nova]`` group: how a compute host reads Nova's API.

A compute host asks Nova's public API (``os-aggregates``) which
aggregates and availability zone a host belongs to, as a user with the
admin role, through keystoneauth: its standard authentication, session
and adapter options (``auth_type``, ``auth_url``, ``username``...,
``cafile``, ``timeout``, ``valid_interfaces``, ``region_name``,
``endpoint_override``...) live in this group, as in Nova's own
``[neutron]`` or ``[placement]``. Only the Nova adapter reads it.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from secmig.conf import groups

GROUP = 'nova'

nova_group = cfg.OptGroup(
    GROUP,
    title='Nova API options',
    help='How a compute host reads, from Nova\'s API, the aggregates and '
         'availability zone of the hosts of a migration, which the '
         'migration policy\'s "destinations" rules need. Compute hosts '
         'have no access to Nova\'s API database. Give a user with the '
         'admin role (listing aggregates is an admin API). Without '
         'auth_type, aggregates and zones are unknown, and a policy with '
         '"destinations" rules refuses every migration.')

nova_opts = [
    cfg.IntOpt('aggregates_cache_time',
               default=60, min=0, max=3600,
               help='Seconds a host keeps the list of aggregates it read '
                    'from Nova\'s API before it reads it again: the '
                    'longest a change of aggregates or zones takes to '
                    'reach migration decisions. 0 reads it for every '
                    'migration.'),
]


def _adapter_opts():
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    cfg.set_defaults(opts, service_type='compute',
                     valid_interfaces=['internal', 'public'])
    return opts


def register_opts(conf):
    groups.register(conf, nova_group, nova_opts)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)
    conf.register_opts(_adapter_opts(), group=GROUP)


def list_opts():
    """The options of the group, with the ``password`` plugin's."""
    opts = (nova_opts + ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options() + _adapter_opts())
    names = {opt.dest for opt in opts}
    opts += [opt for opt in ks_loading.get_auth_plugin_conf_options(
        'password') if opt.dest not in names]
    return {nova_group: opts}
