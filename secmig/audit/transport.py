"""The oslo.messaging side of audit delivery, built from configuration.

The transport URL is looked up as oslo.messaging looks up a notification
transport: ``[audit] transport_url`` when set, else
``[oslo_messaging_notifications] transport_url``, else
``[DEFAULT] transport_url``.
"""

import oslo_messaging

from secmig.audit import delivery
from secmig import exception


def notification_transport(conf):
    """Return an oslo.messaging notification transport for ``conf``."""
    try:
        return oslo_messaging.get_notification_transport(
            conf, url=conf.audit.transport_url or None)
    except Exception as e:
        raise exception.SecmigError(
            'cannot set up the audit notification transport: %s' % e,
            code='bad_transport') from e


def outbox_from_conf(conf, journal_path, host):
    sender = delivery.NotificationSender(
        notification_transport(conf), 'secmig-audit.%s' % host,
        conf.audit.notification_topics)
    return delivery.Outbox(journal_path, sender)
