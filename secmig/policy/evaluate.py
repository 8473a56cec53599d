"""The migration decision: a pure function of facts and policy.

:func:`evaluate` answers one question: may this requester migrate this
instance from this source host to this destination host, now, under
this policy? It reads nothing but its arguments, so the scheduler
filter can call it once per candidate host, the compute side again for
a forced host, and Watcher before it proposes a move.

Checks run in a fixed order and the first refusal decides::

    rbac.*            who asks (oslo.policy rules on the credentials)
    automatic.*       Watcher-driven moves: global switch and opt-outs
    cooldown.*        minimum time since the instance last moved
    host_certificate  both hosts hold a valid certificate (built in)
    transport.encryption  both hosts are ready for TLS migration
    mac.*             destination clearance >= instance level
    destinations.*    availability zones and aggregates

Every decision's details carry ``rule`` (the setting that decided, as a
dotted path into the policy file) and ``policy_digest``. An allowing
decision also carries ``constraints``, the terms the migration must be
carried out under: ``encryption`` (always ``required``), ``post_copy``
(bool) and ``max_bandwidth_mib`` (int, or None for no cap).
"""

import logging
import math

from secmig.decision import Decision
from secmig.policy import facts as facts_mod
from secmig.policy import rules as rules_mod

LOG = logging.getLogger(__name__)

#: Values of an opt-out key that keep automatic migration enabled; any
#: other value opts out (an unclear answer is read as "no").
_YES = frozenset(('true', 'yes', 'on', '1'))


class _Refusal(Exception):
    """Raised by a check to end evaluation with a refusal."""

    def __init__(self, code, rule, reason, **details):
        super().__init__(reason)
        self.code = code
        self.rule = rule
        self.reason = reason
        self.details = details


class _Case:
    """The facts of one evaluation, plus what earlier checks derived."""

    __slots__ = ('request', 'instance', 'source', 'destination', 'policy',
                 'now', 'target', 'automatic', 'level')

    def __init__(self, request, instance, source, destination, policy, now):
        self.request = request
        self.instance = instance
        self.source = source
        self.destination = destination
        self.policy = policy
        self.now = now
        self.target = rules_mod.build_target({
            'project_id': instance.project_id,
            'user_id': instance.user_id,
            'instance_id': instance.uuid,
            'flavor': instance.flavor_name,
            'trigger': request.trigger,
            'source': source.name,
            'destination': destination.name})
        self.automatic = False
        self.level = 0

    def allows(self, rule, setting):
        try:
            return rules_mod.check(rule.check, self.target,
                                   self.request.credentials)
        except Exception as e:
            # oslo.policy's checks raise on credentials shaped unlike
            # the rule expects (a string where it descends into a dict).
            raise _Refusal('rbac_error', setting,
                           'rule %s (%s) cannot be evaluated against the '
                           'requester\'s credentials: %s: %s'
                           % (setting, rule.text, type(e).__name__, e))


def parse_level(value, mac):
    """A level written in a spec, property or metadata item.

    Accepts an integer from 0 to 100 or a name from ``mac.levels``
    (case-insensitive). Returns None when ``value`` is neither.
    """
    text = str(value).strip()
    if text.isdigit() and text.isascii():
        number = int(text)
        return number if number <= 100 else None
    return mac.levels.get(text.lower())


def instance_level(instance, mac):
    """The MAC level of ``instance``: ``(level, origins, problem)``.

    The level is the highest of ``mac.default_level``, the flavor extra
    spec and the image property (set by operators) and the instance
    metadata item (set by the project). Taking the maximum is what makes
    the project's value only ever raise the level. ``origins`` maps
    ``flavor``/``image``/``tenant`` to the level each gave (None when
    unset). ``problem`` is None, or ``(setting, message)`` when a value
    is not a level: the caller must refuse rather than guess.
    """
    sources = (('flavor', 'mac.flavor_extra_spec', mac.flavor_extra_spec,
                instance.flavor_extra_specs),
               ('image', 'mac.image_property', mac.image_property,
                instance.image_properties),
               ('tenant', 'mac.instance_metadata', mac.instance_metadata,
                instance.metadata))
    level = mac.default_level
    origins = {}
    for origin, setting, key, values in sources:
        raw = values.get(key)
        if raw is None:
            origins[origin] = None
            continue
        value = parse_level(raw, mac)
        if value is None:
            return level, origins, (setting, '%s %s=%r is not a level (an '
                                    'integer from 0 to 100 or a name under '
                                    'mac.levels)' % (origin, key, raw))
        origins[origin] = value
        level = max(level, value)
    return level, origins, None


def _check_rbac(case):
    request, policy = case.request, case.policy
    if request.trigger not in facts_mod.TRIGGERS:
        raise _Refusal('unknown_trigger', 'rbac',
                       'unknown migration trigger %r (known: %s)'
                       % (request.trigger, ', '.join(facts_mod.TRIGGERS)))
    identify = policy.automatic.identify
    case.automatic = (request.trigger == 'watcher'
                      or (identify is not None
                          and case.allows(identify, 'automatic.identify')))
    trigger = 'watcher' if case.automatic else 'api'
    if not case.allows(policy.rbac[trigger], 'rbac.' + trigger):
        raise _Refusal('rbac_denied', 'rbac.' + trigger,
                       'the requester (user %s, project %s) may not request '
                       '%s migration of instance %s'
                       % (request.credentials.get('user_id'),
                          request.credentials.get('project_id'),
                          'a Watcher' if case.automatic else 'an API',
                          case.instance.uuid))


def _check_automatic(case):
    if not case.automatic:
        return
    auto, instance = case.policy.automatic, case.instance
    uuid = instance.uuid
    if not auto.enabled:
        raise _Refusal('automatic_disabled', 'automatic.enabled',
                       'automatic migrations are disabled by policy')
    if instance.project_id in auto.opt_out_projects:
        raise _Refusal('opted_out_project', 'automatic.opt_out.projects',
                       'project %s is opted out of automatic migration'
                       % instance.project_id)
    if instance.flavor_name in auto.opt_out_flavors:
        raise _Refusal('opted_out_flavor', 'automatic.opt_out.flavors',
                       'flavor %s is opted out of automatic migration'
                       % instance.flavor_name)
    spec = instance.flavor_extra_specs.get(auto.flavor_extra_spec)
    if spec is not None and str(spec).strip().lower() not in _YES:
        raise _Refusal('opted_out_flavor',
                       'automatic.opt_out.flavor_extra_spec',
                       'flavor %s opts out of automatic migration (%s=%s)'
                       % (instance.flavor_name, auto.flavor_extra_spec,
                          spec))
    meta = instance.metadata.get(auto.instance_metadata)
    if meta is not None and str(meta).strip().lower() not in _YES:
        raise _Refusal('opted_out_instance',
                       'automatic.opt_out.instance_metadata',
                       'instance %s opts out of automatic migration (%s=%s)'
                       % (uuid, auto.instance_metadata, meta))


def _check_cooldown(case):
    cooldown, last = case.policy.cooldown, case.instance.last_migrated_at
    if not cooldown.seconds or last is None:
        return
    elapsed = case.now - last
    if elapsed >= cooldown.seconds:
        return
    if cooldown.exempt is not None and case.allows(cooldown.exempt,
                                                   'cooldown.exempt'):
        return
    if not math.isfinite(elapsed):
        # A time that is not a number cannot prove the cooldown is over.
        raise _Refusal('cooldown', 'cooldown.seconds',
                       'instance %s: the time since its last migration is '
                       'unknown (%r - %r)' % (case.instance.uuid, case.now,
                                              last), retry_after=None)
    raise _Refusal('cooldown', 'cooldown.seconds',
                   'instance %s last migrated %ds ago; policy requires %ds '
                   'between migrations' % (case.instance.uuid, int(elapsed),
                                           cooldown.seconds),
                   retry_after=int(cooldown.seconds - elapsed) + 1)


def _check_hosts(case):
    for role, host in (('source', case.source),
                       ('destination', case.destination)):
        if not host.certificate_valid:
            raise _Refusal('%s_certificate_invalid' % role,
                           'host_certificate',
                           '%s host %s has no valid certificate (%s)'
                           % (role, host.name, host.certificate_code),
                           certificate_code=host.certificate_code)
    for role, host in (('source', case.source),
                       ('destination', case.destination)):
        if not host.tls_ready:
            raise _Refusal('%s_not_tls_ready' % role, 'transport.encryption',
                           '%s host %s is not ready for TLS migration and '
                           'the policy requires encryption'
                           % (role, host.name))


def _check_mac(case):
    level, origins, problem = instance_level(case.instance, case.policy.mac)
    if problem is not None:
        raise _Refusal('bad_instance_level', problem[0],
                       'instance %s: %s' % (case.instance.uuid, problem[1]))
    case.level = level
    clearance = case.destination.clearance
    if clearance < level:
        raise _Refusal('insufficient_clearance', 'mac',
                       'destination %s has clearance %d, below the level %d '
                       'of instance %s' % (case.destination.name, clearance,
                                           level, case.instance.uuid),
                       instance_level=level, level_origins=origins,
                       destination_clearance=clearance)


def _check_destinations(case):
    rules, dest = case.policy.destinations, case.destination
    zone = dest.availability_zone
    if rules.availability_zones is not None and (
            zone not in rules.availability_zones):
        raise _Refusal('availability_zone_not_allowed',
                       'destinations.availability_zones',
                       'destination %s is in availability zone %s, where '
                       'migrations may not go' % (dest.name, zone))
    if rules.same_availability_zone and zone != (
            case.source.availability_zone):
        raise _Refusal('availability_zone_changed',
                       'destinations.same_availability_zone',
                       'destination %s is in availability zone %s, not in '
                       'the source\'s %s' % (dest.name, zone,
                                             case.source.availability_zone))
    if rules.aggregates is not None and not (
            rules.aggregates & dest.aggregates):
        raise _Refusal('aggregate_not_allowed', 'destinations.aggregates',
                       'destination %s is in none of the aggregates %s'
                       % (dest.name, ', '.join(sorted(rules.aggregates))))
    for index, entry in enumerate(rules.by_level):
        if case.level >= entry.min_level and not (
                entry.aggregates & dest.aggregates):
            raise _Refusal('aggregate_not_allowed_for_level',
                           'destinations.by_level[%d]' % index,
                           'instances of level %d and above may only go to '
                           'aggregates %s; destination %s is in none'
                           % (entry.min_level,
                              ', '.join(sorted(entry.aggregates)),
                              dest.name))


def constraints(policy, level, automatic):
    """The terms an allowed migration must be carried out under."""
    transport = policy.transport
    post_copy = transport.post_copy and (
        transport.post_copy_max_level is None
        or level <= transport.post_copy_max_level)
    caps = [transport.max_bandwidth_mib]
    if automatic:
        caps.append(transport.automatic_max_bandwidth_mib)
    caps = [cap for cap in caps if cap]
    return {'encryption': transport.encryption, 'post_copy': post_copy,
            'max_bandwidth_mib': min(caps) if caps else None}


_CHECKS = (_check_rbac, _check_automatic, _check_cooldown, _check_hosts,
           _check_mac, _check_destinations)


def evaluate(request, instance, source, destination, policy, now):
    """Decide one migration; never raises.

    :param request: :class:`~secmig.policy.facts.Request`
    :param instance: :class:`~secmig.policy.facts.InstanceFacts`
    :param source: :class:`~secmig.policy.facts.HostFacts`
    :param destination: :class:`~secmig.policy.facts.HostFacts`
    :param policy: :class:`~secmig.policy.model.Policy`
    :param now: the current POSIX time
    :returns: a :class:`~secmig.decision.Decision`
    """
    digest = getattr(policy, 'digest', None)
    try:
        case = _Case(request, instance, source, destination, policy, now)
        for step in _CHECKS:
            step(case)
    except _Refusal as refusal:
        return Decision.refuse(refusal.code, refusal.reason,
                               rule=refusal.rule, policy_digest=digest,
                               **refusal.details)
    except Exception as e:
        # Fail closed: a fact of the wrong type, or a bug, refuses.
        LOG.exception("migration policy evaluation failed for instance %s",
                      getattr(instance, 'uuid', None))
        return Decision.refuse('evaluation_error',
                               'the migration policy could not be evaluated: '
                               '%s: %s' % (type(e).__name__, e),
                               rule='evaluate', policy_digest=digest)
    trigger = 'watcher' if case.automatic else 'api'
    return Decision.allow(
        'instance %s may migrate from %s to %s (level %d, destination '
        'clearance %d)' % (instance.uuid, source.name, destination.name,
                           case.level, destination.clearance),
        rule='rbac.' + trigger, policy_digest=digest, trigger=trigger,
        automatic=case.automatic, instance_level=case.level,
        destination_clearance=destination.clearance,
        constraints=constraints(policy, case.level, case.automatic))
