"""The facts a migration decision is made from.

Enforcement points (the scheduler filter, the compute-side checks, the
Watcher strategy, ``secmig policy explain``) gather these from their own
sources and hand them to :func:`secmig.policy.evaluate.evaluate`, which
reads nothing else. Defaults fail closed: a host whose certificate
verdict or TLS readiness is not stated is treated as unverified and not
ready.
"""

import dataclasses
import typing

from secmig import exception

#: ``api``: a person (or a script with a person's credentials) through
#: Nova's API; ``watcher``: the Watcher service acting on its own.
TRIGGERS = ('api', 'watcher')


@dataclasses.dataclass(frozen=True)
class Request:
    """Who asks for the migration, and how.

    ``credentials`` is an oslo.policy credentials dict (``user_id``,
    ``project_id``, ``roles``, ...), as returned by an oslo.context
    ``RequestContext.to_policy_values()``.
    """

    trigger: str
    credentials: typing.Mapping[str, typing.Any]

    @classmethod
    def from_context(cls, context, trigger='api'):
        """Credentials of an oslo.context ``RequestContext``.

        Adds ``user_name`` and ``project_name``, which
        ``to_policy_values()`` leaves out, so that a rule can name the
        Watcher service user (``user_name:watcher``).
        """
        credentials = dict(context.to_policy_values())
        for key in ('user_name', 'project_name'):
            value = getattr(context, key, None)
            if value is not None:
                credentials.setdefault(key, value)
        return cls(trigger, credentials)


@dataclasses.dataclass(frozen=True)
class InstanceFacts:
    """The instance to migrate.

    ``flavor_extra_specs`` and ``image_properties`` are the values the
    cloud's operators control; ``metadata`` is the instance metadata its
    project controls. ``last_migrated_at`` is the POSIX time the last
    migration of the instance started, or None if it never moved.
    """

    uuid: str
    project_id: str
    user_id: str = ''
    flavor_name: str = ''
    flavor_extra_specs: typing.Mapping[str, str] = dataclasses.field(
        default_factory=dict)
    image_properties: typing.Mapping[str, str] = dataclasses.field(
        default_factory=dict)
    metadata: typing.Mapping[str, str] = dataclasses.field(
        default_factory=dict)
    last_migrated_at: typing.Optional[float] = None


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """A compute host, as its certificate and its configuration show it.

    ``clearance`` must come from the host's verified certificate and
    nowhere else; ``certificate_valid``/``certificate_code`` are the
    verdict of :func:`secmig.pki.verify.verify_certificate`.
    """

    name: str
    clearance: int = 0
    certificate_valid: bool = False
    certificate_code: str = 'unknown'
    tls_ready: bool = False
    aggregates: typing.FrozenSet[str] = frozenset()
    availability_zone: typing.Optional[str] = None

    @classmethod
    def from_verdict(cls, name, verdict, tls_ready, aggregates=(),
                     availability_zone=None):
        """Build host facts from a certificate verification Decision.

        The clearance is read from the verdict only when it is valid; an
        invalid certificate proves nothing, so its clearance counts as 0.
        """
        clearance = verdict.details.get('clearance', 0) if verdict else 0
        return cls(name, int(clearance), bool(verdict), verdict.code,
                   bool(tls_ready), frozenset(aggregates), availability_zone)


def _fail(where, problem):
    raise exception.SecmigError('facts: %s: %s' % (where, problem),
                                code='bad_facts')


def _take(data, where, fields):
    """Check ``data`` against ``{key: (types, required)}``; return kwargs."""
    if not isinstance(data, dict):
        _fail(where, 'expected an object')
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _fail(where, 'unknown key %r (expected one of: %s)'
              % (unknown[0], ', '.join(sorted(fields))))
    kwargs = {}
    for key, (types, required) in fields.items():
        if key not in data:
            if required:
                _fail(where, 'missing %r' % key)
            continue
        value = data[key]
        if isinstance(value, bool) and bool not in types:
            _fail('%s.%s' % (where, key), 'wrong type bool')
        if not isinstance(value, types):
            _fail('%s.%s' % (where, key),
                  'wrong type %s' % type(value).__name__)
        if key in _STRING_MAPS and not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in value.items()):
            _fail('%s.%s' % (where, key), 'keys and values must be strings')
        kwargs[key] = value
    return kwargs


_STRING_MAPS = ('flavor_extra_specs', 'image_properties', 'metadata')
_HOST = {'name': ((str,), True), 'clearance': ((int,), False),
         'certificate_valid': ((bool,), False),
         'certificate_code': ((str,), False), 'tls_ready': ((bool,), False),
         'aggregates': ((list,), False),
         'availability_zone': ((str, type(None)), False)}
_INSTANCE = {'uuid': ((str,), True), 'project_id': ((str,), True),
             'user_id': ((str,), False), 'flavor_name': ((str,), False),
             'flavor_extra_specs': ((dict,), False),
             'image_properties': ((dict,), False),
             'metadata': ((dict,), False),
             'last_migrated_at': ((int, float, type(None)), False)}
_REQUEST = {'trigger': ((str,), True), 'credentials': ((dict,), True)}
_TOP = {'request': ((dict,), True), 'instance': ((dict,), True),
        'source': ((dict,), True), 'destination': ((dict,), True),
        'now': ((int, float), False)}


def _host(data, where):
    kwargs = _take(data, where, _HOST)
    aggregates = kwargs.pop('aggregates', [])
    if not all(isinstance(a, str) for a in aggregates):
        _fail(where + '.aggregates', 'expected a list of strings')
    return HostFacts(aggregates=frozenset(aggregates), **kwargs)


def from_dict(data):
    """Parse the JSON form of the facts (``secmig policy explain``).

    Returns ``(request, instance, source, destination, now)``; ``now``
    is None when absent.

    :raises SecmigError: code ``bad_facts``, naming the key.
    """
    top = _take(data, 'facts', _TOP)
    request = Request(**_take(top['request'], 'request', _REQUEST))
    instance = InstanceFacts(**_take(top['instance'], 'instance', _INSTANCE))
    return (request, instance, _host(top['source'], 'source'),
            _host(top['destination'], 'destination'), top.get('now'))
