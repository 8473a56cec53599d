"""LibvirtDriver with secmig's enforcement around live migration.

:func:`secmig.nova.launcher.install` makes ``libvirt.LibvirtDriver``
resolve to :class:`SecureLibvirtDriver`. Each override calls the core
guard (:class:`secmig.guard.HostGuard`) and then Nova's own code; a
refusal becomes ``MigrationPreCheckError`` before anything moves, or a
failed (rolled back) migration at the libvirt call.

Phases, and where they run::

    check_can_live_migrate_destination  destination  policy + handshake;
                                                     own flags encrypted,
                                                     the name QEMU will
                                                     verify (inbound address
                                                     or libvirt hostname)
                                                     in own certificate
    check_can_live_migrate_source       source       needs the handshake;
                                                     the flags and control
                                                     URI Nova will use
    pre_live_migration                  destination  needs authorisation
    _live_migration_operation           source       the same flags check,
                                                     names QEMU verifies
    post_live_migration                 source       audit: copied
    post_live_migration_at_destination  destination  audit: activated
    post_live_migration_at_source       source       audit: source cleaned
    rollback_live_migration_at_*        both         audit: rolled back
    live_migration_abort                source       audit: failed
"""

import os

from oslo_log import log as logging
from oslo_utils import excutils

import nova.conf
from nova import exception
from nova.virt.libvirt import driver as libvirt_driver

from secmig.decision import Decision
from secmig.nova import config
from secmig.nova import facts
from secmig.nova import placement
from secmig.nova import rpc
from secmig.nova import startup
from secmig.nova import stats
from secmig.pki import host as host_files
from secmig import tls
from secmig import unavailable

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
config.register_opts(CONF)


def libvirt_settings():
    """This host's ``[libvirt]`` transport settings."""
    return tls.LibvirtSettings(
        native_tls=CONF.libvirt.live_migration_with_native_tls,
        tunnelled=CONF.libvirt.live_migration_tunnelled,
        scheme=CONF.libvirt.live_migration_scheme,
        uri=CONF.libvirt.live_migration_uri)


def flag_bits():
    """The libvirt flag bits secmig reads, from the loaded libvirt."""
    return {name: getattr(libvirt_driver.libvirt, name)
            for name in tls.FLAG_NAMES}


def _refuse(decision):
    raise exception.MigrationPreCheckError(
        reason='secmig refused the migration (%s): %s'
        % (decision.code, decision.reason))


class _GuardedGuest:
    """A guest whose ``migrate`` passes through the guard first."""

    def __init__(self, guest, guard, instance_uuid):
        self._guest = guest
        self._guard = guard
        self._instance_uuid = instance_uuid

    def __getattr__(self, name):
        return getattr(self._guest, name)

    def migrate(self, destination, migrate_uri=None, migrate_disks=None,
                destination_xml=None, flags=0, bandwidth=0, parallel=0):
        decision, tuning = self._guard.start_outgoing(
            self._instance_uuid, destination, flags, bandwidth, parallel,
            flag_bits(), migrate_uri=migrate_uri)
        if not decision:
            raise exception.MigrationError(
                reason='secmig refused to start the migration (%s): %s'
                % (decision.code, decision.reason))
        return self._guest.migrate(
            destination, migrate_uri=migrate_uri,
            migrate_disks=migrate_disks, destination_xml=destination_xml,
            flags=tuning.flags, bandwidth=tuning.bandwidth_mib,
            parallel=tuning.parallel)


class SecureLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver, with every live migration guarded."""

    _secmig = None

    def init_host(self, host):
        """Nova's ``init_host``, then secmig's; secmig's never raises.

        A broken secmig (configuration, key, policy, journal, message
        bus) leaves the service running and every live migration of
        this host refused with the reason (:mod:`secmig.nova.startup`).
        """
        super().init_host(host)
        self._secmig_conf, self._secmig = startup.compute_guard(CONF, host)
        self._secmig_placement = placement.for_host(self._secmig_conf,
                                                    self._secmig)
        settings = tls.check_settings(libvirt_settings())
        if not settings:
            LOG.error("secmig: every live migration to or from %s will be "
                      "refused: %s", host, settings.reason)
        try:
            self._secmig_server = rpc.start_server(self._secmig, host)
        except Exception:
            LOG.exception("secmig: %s cannot answer handshakes; every live "
                          "migration from it will be refused", host)
            self._secmig_server = None

    def cleanup_host(self, host):
        if self._secmig is not None:
            if self._secmig_server is not None:
                self._secmig_server.stop()
            if self._secmig.audit is not None:
                self._secmig.audit.close()
        super().cleanup_host(host)

    def get_available_resource(self, nodename):
        data = super().get_available_resource(nodename)
        if self._secmig is not None:
            data.setdefault('stats', {}).update(self._secmig_stats())
        return data

    def _secmig_stats(self):
        """The stats the scheduler filter reads; never raises.

        A certificate that cannot be read, or a secmig that could not
        start, publishes no certificate: the scheduler then refuses this
        host as a destination.
        """
        if isinstance(self._secmig, unavailable.UnavailableGuard):
            return {stats.CERT: '', stats.TLS: unavailable.CODE}
        path = os.path.join(self._secmig_conf.pki.cert_dir,
                            host_files.SERVER_CERT)
        try:
            with open(path) as f:
                cert = f.read()
        except (OSError, ValueError):
            cert = ''
        settings = tls.check_settings(libvirt_settings())
        return {stats.CERT: cert,
                stats.TLS: 'ready' if settings else settings.code}

    # Checks before anything moves -----------------------------------

    def _secmig_settings(self):
        """This host's TLS settings, and the flags Nova computed from them.

        Nova reads ``[libvirt]`` once, in ``init_host``; the options read
        now may differ from what it migrates with.
        """
        settings = tls.check_settings(libvirt_settings())
        if not settings:
            return settings
        uri = self._live_migration_uri(self._secmig.host)
        for flags in (self._live_migration_flags,
                      self._block_migration_flags):
            decision = tls.check_flags(flags, uri, flag_bits())
            if not decision:
                return decision
        return settings

    def _secmig_transport(self, dest_check_data):
        """``host -> (flags, control URI, bits)`` Nova will migrate with."""
        flags = (self._block_migration_flags
                 if dest_check_data.block_migration
                 else self._live_migration_flags)
        return lambda host: (flags, self._live_migration_uri(host),
                             flag_bits())

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        # Nova's own checks first (they move nothing), so that the
        # handshake is the last step before Nova asks the source, which
        # holds this host's proof until then.
        data = super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration, disk_over_commit)
        try:
            decision = self._secmig_incoming(context, instance)
            if not decision:
                _refuse(decision)
        except Exception:
            # Nova removes what its checks left (the shared storage test
            # file) only when they return: any refusal or error from
            # here on must clean up itself.
            with excutils.save_and_reraise_exception():
                self._secmig_cleanup_destination_check(context, data)
        return data

    def _secmig_incoming(self, context, instance):
        """The destination's Decision; raises when placement refuses."""
        migration_id = facts.migration_id(context, instance.uuid)
        if migration_id is None:
            return Decision.refuse(
                'no_migration', 'instance %s has no live migration in '
                'progress' % instance.uuid)
        aggregates, zone = self._secmig_placement(
            context, self._secmig.host, instance)
        inbound_addr = CONF.libvirt.live_migration_inbound_addr
        return self._secmig.authorise_incoming(
            migration_id, facts.request(context),
            facts.instance(context, instance), instance.host,
            self._secmig_settings(),
            rpc.RPCPeerChannel(context, self._secmig.host), aggregates,
            zone, inbound_addr=inbound_addr,
            # Without an inbound address Nova gives libvirt no migrate
            # URI; this host's libvirtd then names itself by its
            # hostname, which QEMU on the source verifies.
            libvirt_hostname=(None if inbound_addr
                              else self._host.get_hostname()))

    def _secmig_cleanup_destination_check(self, context, data):
        """Nova's cleanup of its destination checks; never raises."""
        try:
            self.cleanup_live_migration_destination_check(context, data)
        except Exception:
            LOG.exception("secmig: the destination check data %s was not "
                          "cleaned up", data)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        # Nova's own checks first: they decide block migration, hence
        # the flags; they move nothing.
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        decision = self._secmig.authorise_outgoing(
            facts.request(context), facts.instance(context, instance),
            self._secmig_settings(),
            lambda host: self._secmig_placement(context, host, instance),
            transport=self._secmig_transport(data))
        if not decision:
            _refuse(decision)
        return data

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        if self._secmig.is_authorised(instance.uuid) is None:
            _refuse(Decision.refuse(
                'not_authorised', 'instance %s has no secmig authorisation '
                'on %s' % (instance.uuid, self._secmig.host)))
        return super().pre_live_migration(
            context, instance, block_device_info, network_info, disk_info,
            migrate_data)

    # The libvirt call ------------------------------------------------

    def _live_migration_operation(self, context, instance, dest,
                                  block_migration, migrate_data, guest,
                                  device_names):
        return super()._live_migration_operation(
            context, instance, dest, block_migration, migrate_data,
            _GuardedGuest(guest, self._secmig, instance.uuid), device_names)

    # Later phases: audit only -----------------------------------------

    def _secmig_phase(self, step, instance, outcome='success',
                      reason=None, forget=False):
        written = self._secmig.record_phase(step, instance.uuid, outcome,
                                            reason, forget)
        if not written:
            LOG.error("secmig: %s of instance %s not audited: %s", step,
                      instance.uuid, written.reason)

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        self._secmig_phase('copied', instance)
        return super().post_live_migration(context, instance,
                                           block_device_info, migrate_data)

    def post_live_migration_at_source(self, context, instance,
                                      network_info):
        result = super().post_live_migration_at_source(context, instance,
                                                       network_info)
        self._secmig_phase('source_cleaned_up', instance, forget=True)
        return result

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        result = super().post_live_migration_at_destination(
            context, instance, network_info, block_migration,
            block_device_info)
        self._secmig_phase('activated', instance, forget=True)
        return result

    def rollback_live_migration_at_source(self, context, instance,
                                          migrate_data):
        self._secmig_phase('rolled_back', instance, 'failure', forget=True)
        return super().rollback_live_migration_at_source(context, instance,
                                                         migrate_data)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._secmig_phase('rolled_back', instance, 'failure', forget=True)
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks, migrate_data)

    def live_migration_abort(self, instance):
        self._secmig_phase('failed', instance, 'failure', reason='aborted')
        return super().live_migration_abort(instance)
