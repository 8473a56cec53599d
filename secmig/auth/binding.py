"""What a handshake is bound to: one migration between two hosts.

Both hosts sign the binding (through the transcript), so a handshake
made for one migration cannot be used for another, for another instance,
between other hosts or under another policy.
"""

import dataclasses
import re

from secmig import exception

_MIGRATION_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9._:-]{0,63}', re.ASCII)
_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}', re.ASCII)
_HOST = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,252}', re.ASCII)
_DIGEST = re.compile(r'(?:[a-z0-9-]{1,16}:)?[0-9a-f]{64,128}', re.ASCII)

#: Field name -> pattern its value must match entirely.
FIELDS = {
    'migration_id': _MIGRATION_ID,
    'instance_uuid': _UUID,
    'source_host': _HOST,
    'dest_host': _HOST,
    'policy_digest': _DIGEST,
}


@dataclasses.dataclass(frozen=True)
class Binding:
    """One migration: ids, both hosts and the policy both must enforce.

    :param migration_id: the migration's id or uuid (1-64 characters of
        ``A-Za-z0-9._:-``)
    :param instance_uuid: the instance uuid, lowercase canonical form
    :param source_host: the source compute host name (as in its
        certificate's subject alternative names)
    :param dest_host: the destination compute host name
    :param policy_digest: the policy engine's digest, lowercase hex with
        an optional algorithm prefix, e.g. ``sha256:<64 hex>``

    The constructor raises ``SecmigError`` (code ``bad_binding``) on a
    value of the wrong form or when both hosts are the same.
    """

    migration_id: str
    instance_uuid: str
    source_host: str
    dest_host: str
    policy_digest: str

    def __post_init__(self):
        problem = check_fields(dataclasses.asdict(self))
        if problem:
            raise exception.SecmigError('bad migration binding: %s'
                                        % problem, code='bad_binding')

    def as_dict(self):
        return dataclasses.asdict(self)

    def peer_of(self, host):
        """The other end of the migration (None: ``host`` is neither)."""
        if host == self.source_host:
            return self.dest_host
        if host == self.dest_host:
            return self.source_host
        return None

    def differences(self, other):
        """Names of the fields whose values differ from ``other``'s."""
        return [name for name in FIELDS
                if getattr(self, name) != getattr(other, name)]


def check_fields(values):
    """Return why ``values`` is not a valid binding, or None if it is.

    ``values`` must be a dict with exactly the keys of :data:`FIELDS`,
    each a string of the right form.
    """
    if not isinstance(values, dict) or set(values) != set(FIELDS):
        return 'expected exactly the fields %s' % ', '.join(sorted(FIELDS))
    for name, pattern in FIELDS.items():
        value = values[name]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return '%s has an invalid value' % name
    if values['source_host'] == values['dest_host']:
        return 'source and destination are the same host'
    return None
