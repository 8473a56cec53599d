"""Registration of an option group on one ``ConfigOpts``."""

from oslo_config import cfg


def register(conf, group, opts):
    """Register ``opts`` in a copy of ``group`` owned by ``conf``.

    oslo.config copies a registered ``OptGroup`` only shallowly, so every
    ``ConfigOpts`` that registers the same module-level group object
    shares its option table, overrides included. A group object per
    ``ConfigOpts`` keeps each configuration its own.
    """
    own = cfg.OptGroup(group.name, title=group.title, help=group.help)
    conf.register_group(own)
    conf.register_opts(opts, group=own)
