"""The value every secmig check returns.

A check never answers with a bare boolean or a log line: it returns a
:class:`Decision` that says whether the thing is allowed, a stable
machine-readable ``code`` (for audit records, tests and tooling) and a
sentence for people (for logs, instance faults and the command line).
"""

import dataclasses
import types


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    reason: str
    details: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))

    @classmethod
    def allow(cls, reason='allowed', code='ok', **details):
        return cls(True, code, reason, types.MappingProxyType(details))

    @classmethod
    def refuse(cls, code, reason, **details):
        return cls(False, code, reason, types.MappingProxyType(details))

    def __bool__(self):
        return self.allowed

    def as_dict(self):
        """A JSON-serialisable copy, for audit records and CLI output."""
        return {'allowed': self.allowed, 'code': self.code,
                'reason': self.reason, 'details': dict(self.details)}

    def __str__(self):
        verdict = 'allowed' if self.allowed else 'refused'
        return '%s (%s): %s' % (verdict, self.code, self.reason)
