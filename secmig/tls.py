"""Is a live migration going to travel encrypted? And how is it tuned?

Pure functions over the libvirt settings and flags a compute host uses;
the Nova adapter passes the values in (the libvirt flag bits included),
so nothing here imports libvirt or Nova.

Two layers of checks, both fail closed:

* :func:`check_settings` runs before a migration is accepted: QEMU native
  TLS on and the libvirt control connection over TLS (OSSN-0089: native
  TLS with ``live_migration_scheme=tcp`` leaves libvirtd's control
  channel in clear), or tunnelled migration over a TLS control URI.
* :func:`check_flags` runs on the flags actually handed to libvirt, at
  the last moment, so that no later change of configuration can slip a
  plaintext migration through.
"""

import dataclasses
import urllib.parse

from secmig.decision import Decision

#: Names of the libvirt migration flags secmig reads or sets.
FLAG_NAMES = ('VIR_MIGRATE_TLS', 'VIR_MIGRATE_TUNNELLED',
              'VIR_MIGRATE_POSTCOPY', 'VIR_MIGRATE_AUTO_CONVERGE',
              'VIR_MIGRATE_PARALLEL')


@dataclasses.dataclass(frozen=True)
class LibvirtSettings:
    """The ``[libvirt]`` options of nova.conf that decide the transport."""

    native_tls: bool
    tunnelled: bool
    scheme: str = None
    uri: str = None

    def control_scheme(self):
        """The transport of the libvirtd control connection."""
        if self.uri:
            scheme = urllib.parse.urlsplit(self.uri.replace(
                '%s', 'host')).scheme
            return scheme.partition('+')[2] or 'unix'
        return self.scheme or 'tcp'


def check_settings(settings):
    """Refuse settings under which a migration could travel in clear."""
    control = settings.control_scheme()
    if settings.native_tls and settings.tunnelled:
        return Decision.refuse(
            'tls_settings_conflict', '[libvirt] live_migration_with_native_'
            'tls and live_migration_tunnelled are both set; Nova refuses '
            'to start with both: keep native TLS only')
    if not (settings.native_tls or settings.tunnelled):
        return Decision.refuse(
            'plaintext_migration', 'QEMU native TLS is off ([libvirt] '
            'live_migration_with_native_tls = false): guest memory would '
            'cross the network in clear')
    if control != 'tls':
        return Decision.refuse(
            'plaintext_control', 'the libvirtd control connection uses %r, '
            'not tls (OSSN-0089): set [libvirt] live_migration_scheme = '
            'tls' % control, control_scheme=control)
    mode = 'native_tls' if settings.native_tls else 'tunnelled_over_tls'
    return Decision.allow('migrations use %s with a TLS control connection'
                          % mode.replace('_', ' '), mode=mode)


def flag_names(flags, bits):
    """The names of the known flags set in ``flags`` (for the audit)."""
    return sorted(name for name, bit in bits.items() if flags & bit)


def check_flags(flags, destination_uri, bits):
    """Refuse a libvirt migrate call that would not be encrypted.

    :param flags: the flags about to be passed to libvirt
    :param destination_uri: the libvirt control URI of the destination
    :param bits: ``{flag name: bit}`` for the names in :data:`FLAG_NAMES`
    """
    scheme = urllib.parse.urlsplit(destination_uri or '').scheme
    control = scheme.partition('+')[2]
    used = flag_names(flags, bits)
    if control != 'tls':
        return Decision.refuse(
            'plaintext_control', 'refusing to call libvirt with control URI '
            '%s: it is not qemu+tls (OSSN-0089)' % destination_uri,
            flags=used)
    if not flags & (bits['VIR_MIGRATE_TLS'] | bits['VIR_MIGRATE_TUNNELLED']):
        return Decision.refuse(
            'plaintext_migration', 'refusing to call libvirt without '
            'VIR_MIGRATE_TLS: the migration stream would be in clear',
            flags=used)
    return Decision.allow('encrypted migration flags', flags=used)


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What one migration is handed to libvirt with."""

    flags: int
    bandwidth_mib: int
    parallel: int


def tune(flags, bandwidth_mib, parallel, constraints, bits):
    """Adjust one migration to the policy's constraints.

    Post-copy is removed unless the policy allows it for this migration
    (the guest would run on the destination while its memory is still
    on the source: a failure then loses the guest). Without post-copy,
    auto-converge is added so that a busy guest still finishes. The
    bandwidth is capped at the policy's limit (0 from Nova means "no
    limit").
    """
    if not constraints.get('post_copy', False):
        if flags & bits['VIR_MIGRATE_POSTCOPY']:
            flags &= ~bits['VIR_MIGRATE_POSTCOPY']
        flags |= bits['VIR_MIGRATE_AUTO_CONVERGE']
    cap = constraints.get('max_bandwidth_mib')
    if cap:
        bandwidth_mib = min(bandwidth_mib, cap) if bandwidth_mib else cap
    return Tuning(flags, bandwidth_mib, parallel)
