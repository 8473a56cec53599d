"""Entry point for ``oslo-config-generator`` (namespace ``secmig``)."""

from secmig import conf as secmig_conf


def list_opts():
    opts = []
    for module in secmig_conf._MODULES:
        opts.extend(module.list_opts().items())
    return opts
