"""The digest that names one version of the migration policy.

The digest is the SHA-256 of a canonical JSON form of the *parsed*
policy: defaults filled in, sets sorted, rules in oslo.policy's
normalised spelling. Comments, key order, quoting, whitespace and line
numbers therefore do not change it; any change in meaning does. Hosts
compare digests to make sure they decide under the same policy, and
every decision carries the digest of the policy that made it.
"""

import dataclasses
import hashlib
import json

from secmig.policy import model

#: Fields that describe where the policy came from, not what it says.
_NOT_CONTENT = ('source', 'digest', 'lines')


def _plain(value):
    if isinstance(value, model.Rule):
        return value.text
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in _NOT_CONTENT}
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, 'items'):
        return {key: _plain(item) for key, item in value.items()}
    return value


def canonical(policy):
    """The canonical form of ``policy``, as compact sorted JSON bytes."""
    return json.dumps(_plain(policy), sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True).encode('ascii')


def compute(policy):
    """The hex SHA-256 of :func:`canonical`."""
    return hashlib.sha256(canonical(policy)).hexdigest()
