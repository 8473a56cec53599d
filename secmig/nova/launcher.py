"""Run nova-compute with secmig's compute-side enforcement loaded.

Nova has no hook mechanism any more (``nova/hooks.py`` went in 22.0.0)
and imports ``[DEFAULT] compute_driver`` only from ``nova.virt``, so an
out-of-tree driver class cannot be named in nova.conf. secmig therefore
ships its own entry point, ``secmig-nova-compute``, used in place of
``nova-compute`` (same arguments, same configuration files). Before it
hands over to Nova's own ``main()``, it replaces
``nova.virt.libvirt.LibvirtDriver`` with
:class:`secmig.nova.driver.SecureLibvirtDriver`, a subclass that wraps the
live-migration phases. ``compute_driver = libvirt.LibvirtDriver`` stays as
it is; nothing in Nova's files changes.

The functional tests install the driver with :func:`install` exactly as
the launcher does.
"""

import sys


def install():
    """Make ``libvirt.LibvirtDriver`` resolve to secmig's subclass.

    Idempotent. Returns the installed class.
    """
    import nova.virt.libvirt as nova_libvirt

    from secmig.nova import driver

    nova_libvirt.LibvirtDriver = driver.SecureLibvirtDriver
    return driver.SecureLibvirtDriver


def main():
    """Console script ``secmig-nova-compute``."""
    # nova.cmd.compute monkey-patches on import (eventlet mode); import it
    # first, as nova-compute's own console script does.
    from nova.cmd import compute

    install()
    sys.exit(compute.main())
