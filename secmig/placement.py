"""Where a host stands (aggregates, availability zone), and who needs it.

The migration policy's ``destinations`` rules decide on the aggregates
and availability zone of a destination. A compute host learns them from
Nova's API, which can be unreachable; secmig then refuses a migration
only if the policy has such a rule, with a reason that says the facts
were unknown (not that the host is outside an aggregate).
"""

from secmig.decision import Decision

CODE = 'placement_unavailable'


class Unavailable(Exception):
    """The aggregates and zone of a host cannot be read now."""


def needed(policy):
    """True if ``policy`` decides on aggregates or availability zones."""
    rules = policy.destinations
    return (rules.availability_zones is not None
            or rules.aggregates is not None
            or rules.same_availability_zone
            or bool(rules.by_level))


def refusal(host, error):
    """The refusal when ``host``'s placement is needed but unknown."""
    return Decision.refuse(
        CODE, 'the aggregates and availability zone of %s could not be '
        'read, and the migration policy decides on them '
        '(destinations rules): %s' % (host, error),
        rule='destinations', host=host)
