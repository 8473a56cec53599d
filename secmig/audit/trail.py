"""The audit API the enforcement points call.

::

    trail = AuditTrail.from_conf(conf)
    trail.record('authorised', migration.uuid, instance.uuid, 'success',
                 decision=decision, requester=..., policy_digest=...,
                 source_fingerprint=..., destination_fingerprint=...,
                 tls_flags=[...])

:meth:`AuditTrail.record` returns once the record is durable and signed
(see :mod:`secmig.audit.journal`); delivery as a notification follows in
the background and never delays or endangers that write.
"""

import dataclasses
import logging

from secmig.audit import delivery
from secmig.audit import events
from secmig.audit import journal as journal_mod
from secmig.audit import signing
from secmig.audit import transport

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """Where a record went: its number in the journal and its stable id."""

    seq: int
    id: str


class AuditTrail:
    """Records migration steps in ``journal``; ``worker`` delivers them.

    ``host`` names the observer in the CADF events (by default the
    subject of the signing certificate).
    """

    def __init__(self, journal, host=None, worker=None):
        self.journal = journal
        self.host = host or journal.signer.common_name
        self.worker = worker

    @classmethod
    def from_conf(cls, conf, deliver=None, host=None):
        """Build the trail from ``[audit]`` and ``[pki]`` options.

        ``deliver`` overrides ``[audit] deliver`` (background delivery
        from this process).
        """
        signer = signing.HostSigner.from_cert_dir(conf.pki.cert_dir)
        journal = journal_mod.Journal(
            conf.audit.journal_path, signer, fsync=conf.audit.fsync,
            max_batch=conf.audit.group_commit_max_records,
            window=conf.audit.group_commit_window)
        worker = None
        if conf.audit.deliver if deliver is None else deliver:
            worker = delivery.DeliveryWorker(
                transport.outbox_from_conf(conf, journal.path,
                                           signer.common_name),
                interval=conf.audit.delivery_retry_interval)
        return cls(journal, host=host, worker=worker)

    def record(self, step, migration_id, instance_uuid, outcome,
               decision=None, **evidence):
        """Append the audit record of one migration step; return it.

        Returns a :class:`Recorded` once the record is durable. Raises
        ``SecmigError`` when it cannot be written (``bad_audit_event``,
        ``journal_write_failed``, ``journal_tampered``,
        ``stale_host_key``): the caller must then not proceed with the
        step (fail closed).
        """
        event = events.build_event(step, migration_id, instance_uuid,
                                   outcome, self.host, decision=decision,
                                   **evidence)
        body = {'id': event.id, 'step': step, 'migration_id': migration_id,
                'instance_uuid': instance_uuid, 'outcome': outcome,
                'event': events.as_dict(event)}
        seq = self.journal.append('event', body)
        LOG.debug("audit record %d (%s) for migration %s: %s %s", seq,
                  event.id, migration_id, step, outcome)
        if self.worker is not None:
            self.worker.wake()
        return Recorded(seq, event.id)

    def close(self):
        if self.worker is not None:
            self.worker.stop(timeout=5)
        self.journal.close()
