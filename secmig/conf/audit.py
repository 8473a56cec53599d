"""Options of the ``[audit]`` group: the journal and its delivery."""

from oslo_config import cfg

from secmig.conf import groups

audit_group = cfg.OptGroup(
    'audit',
    title='Audit trail options',
    help='Every step of a migration is written as a CADF event to a '
         'local journal (durable, hash-chained, signed with the host key '
         'from [pki] cert_dir) before the step proceeds, then delivered '
         'as an oslo.messaging notification.')

audit_opts = [
    cfg.StrOpt('journal_path',
               default='/var/lib/secmig/audit/journal.jsonl',
               help='The append-only journal. Beside it live '
                    '<journal>.head (the signed chain head), '
                    '<journal>.lock and <journal>.cursor (delivery). One '
                    'journal per host; every process of the host that '
                    'records migrations appends to it.'),
    cfg.StrOpt('fsync',
               default='batch',
               choices=[('batch', 'group commit: records appended '
                                  'concurrently share one write, one '
                                  'signature and one fdatasync'),
                        ('record', 'one write, one signature and one '
                                   'fdatasync per record')],
               help='When records are forced to disk. Both policies return '
                    'from a record only after fdatasync; "batch" makes '
                    'concurrent records cheaper.'),
    cfg.IntOpt('group_commit_max_records',
               default=256, min=1,
               help='Most records written as one batch (fsync = batch).'),
    cfg.FloatOpt('group_commit_window',
                 default=0.0, min=0.0, max=1.0,
                 help='Seconds a batch waits for more records before it is '
                      'written (fsync = batch). 0 batches only the records '
                      'that queued while the previous batch was written, '
                      'which adds no latency.'),
    cfg.BoolOpt('deliver',
                default=True,
                help='Deliver records as notifications from a background '
                     'thread of the process that writes them. When false, '
                     'run "secmig audit deliver" (e.g. from a timer).'),
    cfg.ListOpt('notification_topics',
                default=['secmig_audit'],
                help='Topics the audit notifications are sent to '
                     '(messagingv2 format, priority INFO, so the queue is '
                     '<topic>.info).'),
    cfg.StrOpt('transport_url',
               secret=True,
               help='Messaging URL for audit notifications. When unset, '
                    'the transport is the one oslo.messaging uses for '
                    'notifications: [oslo_messaging_notifications] '
                    'transport_url, else [DEFAULT] transport_url.'),
    cfg.FloatOpt('delivery_retry_interval',
                 default=10.0, min=0.1,
                 help='Seconds between delivery attempts while the broker '
                      'is unreachable. Records wait in the journal '
                      'meanwhile; none is lost.'),
]


def register_opts(conf):
    groups.register(conf, audit_group, audit_opts)


def list_opts():
    return {audit_group: audit_opts}
