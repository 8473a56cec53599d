"""Is a live migration going to travel encrypted? And how is it tuned?

Pure functions over the libvirt settings and flags a compute host uses;
the Nova adapter passes the values in (the libvirt flag bits included),
so nothing here imports libvirt or Nova.

Two layers of checks, both fail closed:

* :func:`check_settings` runs before a migration is accepted: QEMU native
  TLS on and the libvirt control connection over TLS (OSSN-0089: native
  TLS with ``live_migration_scheme=tcp`` leaves libvirtd's control
  channel in clear), or tunnelled migration over a TLS control URI.
* :func:`check_migration` runs on the flags and control URI Nova will
  really use (computed by the driver once, at start): at the checks,
  before anything moves, and again at the libvirt call, so that no later
  change of configuration can slip a plaintext migration through. It
  also refuses post-copy that the policy does not permit, or that would
  escape the policy's bandwidth cap.

Control URIs may carry only the query parameters in
:data:`URI_PARAMS_ALLOWED`: libvirt's others (``no_verify``,
``pkipath``, ``tls_priority``...) disable or redirect the verification
of the TLS connection.
"""

import dataclasses
import re
import urllib.parse

from secmig.decision import Decision

#: Names of the libvirt migration flags secmig reads or sets.
FLAG_NAMES = ('VIR_MIGRATE_TLS', 'VIR_MIGRATE_TUNNELLED',
              'VIR_MIGRATE_POSTCOPY', 'VIR_MIGRATE_AUTO_CONVERGE',
              'VIR_MIGRATE_PARALLEL')


#: Query parameters of a libvirt remote URI that leave the verification
#: of a TLS connection alone: ``mode`` and ``proxy`` pick the daemon on
#: the far side; ``no_tty`` and ``keyfile`` only apply to ssh transports.
URI_PARAMS_ALLOWED = frozenset(('mode', 'proxy', 'no_tty', 'keyfile'))


def uri_params(uri):
    """The names of the query parameters of ``uri``, as libvirt reads them.

    libvirt splits the query at ``&`` and ``;`` and unescapes each name.
    """
    query = urllib.parse.urlsplit(uri or '').query
    names = (urllib.parse.unquote_plus(part.partition('=')[0])
             for part in re.split('[&;]', query) if part)
    return sorted(set(names))


def check_uri(uri, what, shown=None):
    """Refuse a control URI whose parameters may weaken its TLS.

    :param what: where the URI comes from, for the reason
    :param shown: the URI as the operator wrote it (default ``uri``)
    """
    weak = [name for name in uri_params(uri)
            if name not in URI_PARAMS_ALLOWED]
    if weak:
        return Decision.refuse(
            'weak_tls_uri', '%s %s has the libvirt URI parameter(s) %s, '
            'which may disable or redirect the verification of the TLS '
            'connection (only %s are accepted): remove them'
            % (what, shown or uri, ', '.join(weak),
               ', '.join(sorted(URI_PARAMS_ALLOWED))), parameters=weak)
    return Decision.allow('no URI parameter weakens TLS')


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
    if settings.uri:
        try:
            # What Nova does with it (LibvirtDriver._live_migration_uri).
            uri = settings.uri % 'host'
        except (TypeError, ValueError) as e:
            return Decision.refuse(
                'bad_migration_uri', '[libvirt] live_migration_uri %s does '
                'not format with one host name (%s): it needs exactly one '
                '%%s, and %%%% for a literal %%' % (settings.uri, e))
        uri = check_uri(uri, '[libvirt] live_migration_uri',
                        shown=settings.uri)
        if not uri:
            return uri
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
    uri = check_uri(destination_uri, 'the control URI')
    if not uri:
        return Decision.refuse(uri.code, uri.reason, flags=used,
                               **uri.details)
    if not flags & (bits['VIR_MIGRATE_TLS'] | bits['VIR_MIGRATE_TUNNELLED']):
        return Decision.refuse(
            'plaintext_migration', 'refusing to call libvirt without '
            'VIR_MIGRATE_TLS: the migration stream would be in clear',
            flags=used)
    return Decision.allow('encrypted migration flags', flags=used)


def check_post_copy(flags, constraints, bits):
    """Refuse post-copy the policy's ``constraints`` do not permit.

    Nova decides from its own flags whether a migration may switch to
    post-copy (``live-migration-force-complete``, ``[libvirt]
    live_migration_timeout_action = force_complete``), so the flag is
    never removed behind its back: the migration is refused instead.
    libvirt's post-copy phase has a bandwidth of its own
    (``VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY``) that Nova's
    ``Guest.migrate`` does not set and no public Guest method changes:
    under a bandwidth cap post-copy is refused too.
    """
    if not flags & bits['VIR_MIGRATE_POSTCOPY']:
        return Decision.allow('no post-copy')
    if not constraints.get('post_copy', False):
        return Decision.refuse(
            'post_copy_forbidden', 'this host enables post-copy ([libvirt] '
            'live_migration_permit_post_copy = true) but the migration '
            'policy forbids it for this migration: set '
            'live_migration_permit_post_copy = false on this host, or '
            'allow post_copy in the policy\'s transport section')
    cap = constraints.get('max_bandwidth_mib')
    if cap:
        return Decision.refuse(
            'post_copy_uncapped', 'the migration policy caps bandwidth at '
            '%d MiB/s, which libvirt does not apply to the post-copy phase '
            '(Nova sets no post-copy bandwidth): set [libvirt] '
            'live_migration_permit_post_copy = false on this host, or '
            'remove the cap from the policy' % cap, max_bandwidth_mib=cap)
    return Decision.allow('post-copy permitted by the policy')


def check_migration(flags, destination_uri, constraints, bits):
    """:func:`check_flags`, then :func:`check_post_copy`."""
    decision = check_flags(flags, destination_uri, bits)
    if not decision:
        return decision
    post_copy = check_post_copy(flags, constraints, bits)
    if not post_copy:
        return Decision.refuse(post_copy.code, post_copy.reason,
                               flags=decision.details['flags'],
                               **post_copy.details)
    return decision


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What one migration is handed to libvirt with."""

    flags: int
    bandwidth_mib: int
    parallel: int


def tune(flags, bandwidth_mib, parallel, constraints, bits):
    """Adjust one migration to the policy's constraints.

    The flags are Nova's, unchanged: secmig never adds a flag the
    operator did not permit, and refuses (:func:`check_post_copy`)
    rather than remove one Nova relies on. The bandwidth is capped at
    the policy's limit (0 from Nova means "no limit").
    """
    cap = constraints.get('max_bandwidth_mib')
    if cap:
        bandwidth_mib = min(bandwidth_mib, cap) if bandwidth_mib else cap
    return Tuning(flags, bandwidth_mib, parallel)
