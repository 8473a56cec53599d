"""CADF events for the steps of a migration (pycadf).

One event per step. The event carries the evidence an investigator needs
to replay the decision: who asked (``requester``), why (``trigger``, e.g.
the hotspot metric), under which policy (``policy_digest``), between
which hosts (both certificate fingerprints), over which channel (the TLS
flags actually used) and what was decided, with its reason.
"""

import uuid

from pycadf import attachment
from pycadf import cadftaxonomy as taxonomy
from pycadf import cadftype
from pycadf import event as cadf_event
from pycadf import reason as cadf_reason
from pycadf import resource
from pycadf import tag

from secmig.audit import lines
from secmig import exception

#: step -> (CADF event type, CADF action). Authorisation verdicts are
#: ``control`` events (policy decisions); everything else is ``activity``.
STEPS = {
    'requested': (cadftype.EVENTTYPE_ACTIVITY, 'update/migrate/request'),
    'scheduled': (cadftype.EVENTTYPE_ACTIVITY, 'update/migrate/schedule'),
    'authenticated': (cadftype.EVENTTYPE_ACTIVITY, 'authenticate/peer'),
    'authorised': (cadftype.EVENTTYPE_CONTROL, 'allow'),
    'refused': (cadftype.EVENTTYPE_CONTROL, 'deny'),
    'started': (cadftype.EVENTTYPE_ACTIVITY, 'start/migrate'),
    'copied': (cadftype.EVENTTYPE_ACTIVITY, 'update/migrate/copy'),
    'activated': (cadftype.EVENTTYPE_ACTIVITY, 'update/migrate/activate'),
    'rolled_back': (cadftype.EVENTTYPE_ACTIVITY, 'restore/migrate'),
    'source_cleaned_up': (cadftype.EVENTTYPE_ACTIVITY,
                          'delete/migrate/source'),
    'failed': (cadftype.EVENTTYPE_ACTIVITY, 'update/migrate/fail'),
}

OUTCOMES = (taxonomy.OUTCOME_SUCCESS, taxonomy.OUTCOME_FAILURE,
            taxonomy.OUTCOME_PENDING, taxonomy.UNKNOWN)

#: Evidence keys with a defined meaning; others are kept as given.
EVIDENCE_KEYS = ('requester', 'trigger', 'policy_digest', 'source_host',
                 'destination_host', 'source_fingerprint',
                 'destination_fingerprint', 'tls_flags')

EVIDENCE_NAME = 'secmig.evidence'
REASON_TYPE = 'secmig/decision'
POLICY_TYPE = 'secmig/policy-digest'
_INSTANCE_TYPE = 'compute/machine'
_HOST_TYPE = 'service/compute'
_USER_TYPE = taxonomy.SECURITY_ACCOUNT_USER


def build_event(step, migration_id, instance_uuid, outcome, observer,
                decision=None, **evidence):
    """Return a valid ``pycadf.event.Event`` for one migration step.

    ``observer`` is the name of the host writing the record. ``decision``
    is a :class:`~secmig.decision.Decision` (or None). ``evidence`` must
    be JSON-serialisable; ``requester`` may be a dict with ``user_id``,
    ``user_name`` and ``project_id``. Raises ``SecmigError``
    (``bad_audit_event``) for an unknown step or outcome or evidence
    that cannot be recorded.
    """
    if step not in STEPS:
        raise exception.SecmigError(
            'unknown audit step %r; choose one of %s'
            % (step, ', '.join(STEPS)), code='bad_audit_event')
    if outcome not in OUTCOMES:
        raise exception.SecmigError(
            'unknown audit outcome %r; choose one of %s'
            % (outcome, ', '.join(OUTCOMES)), code='bad_audit_event')
    if not migration_id or not instance_uuid:
        raise exception.SecmigError(
            'an audit record needs a migration id and an instance uuid',
            code='bad_audit_event')
    content = dict(evidence, step=step, migration_id=migration_id,
                   instance_uuid=instance_uuid)
    if decision is not None:
        content['decision'] = decision.as_dict()
    try:
        lines.canonical(content)
    except (TypeError, ValueError) as e:
        raise exception.SecmigError(
            'audit evidence for %s cannot be recorded: %s' % (step, e),
            code='bad_audit_event') from e
    event_type, action = STEPS[step]
    event = cadf_event.Event(
        eventType=event_type, action=action, outcome=outcome,
        initiator=_initiator(evidence.get('requester'), observer),
        target=resource.Resource(id=instance_uuid, typeURI=_INSTANCE_TYPE),
        observer=_host(observer))
    if decision is not None:
        event.reason = cadf_reason.Reason(
            reasonType=REASON_TYPE, reasonCode=decision.code,
            policyType=POLICY_TYPE,
            policyId=evidence.get('policy_digest') or 'unknown')
    event.add_tag(tag.generate_name_value_tag('migration_id', migration_id))
    event.add_attachment(attachment.Attachment(
        typeURI='mime:application/json', content=content,
        name=EVIDENCE_NAME))
    if not event.is_valid():
        raise exception.SecmigError('the CADF event for %s is not valid'
                                    % step, code='bad_audit_event')
    return event


def _initiator(requester, observer):
    if isinstance(requester, dict) and requester.get('user_id'):
        return resource.Resource(id=_cadf_id(requester['user_id']),
                                 typeURI=_USER_TYPE,
                                 name=requester.get('user_name')
                                 or requester['user_id'])
    if isinstance(requester, str) and requester:
        return resource.Resource(id=_cadf_id(requester), typeURI=_USER_TYPE,
                                 name=requester)
    return _host(observer)


def _host(name):
    return resource.Resource(id=_cadf_id(name), typeURI=_HOST_TYPE,
                             name=name)


def _cadf_id(value):
    """``value`` if it is a UUID, else a stable UUID derived from it.

    CADF identifiers should be UUIDs (pycadf warns otherwise); the
    original value stays in the resource's name.
    """
    try:
        uuid.UUID(value)
        return value
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, value))


def as_dict(event):
    """The event as plain JSON types, like ``event.as_dict()``.

    pycadf's ``as_dict`` goes through oslo.serialization's generic
    ``to_primitive``, which costs more than the rest of a durable append;
    pycadf objects keep their CADF fields in ``__dict__``, so walking
    those gives the same result.
    """
    if isinstance(event, (str, int, float, bool)) or event is None:
        return event
    if isinstance(event, dict):
        return {k: as_dict(v) for k, v in event.items()}
    if isinstance(event, (list, tuple)):
        return [as_dict(v) for v in event]
    if hasattr(event, '__dict__'):
        return {k: as_dict(v) for k, v in vars(event).items()}
    return str(event)


def evidence_of(event_dict):
    """The evidence attachment of an event as stored, or None.

    ``event_dict`` may be any JSON value (a damaged journal's); this
    never raises.
    """
    if not isinstance(event_dict, dict):
        return None
    attachments = event_dict.get('attachments')
    for item in attachments if isinstance(attachments, list) else ():
        if isinstance(item, dict) and item.get('name') == EVIDENCE_NAME:
            return item.get('content')
    return None
