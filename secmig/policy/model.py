"""The parsed migration policy.

:mod:`secmig.policy.loader` builds a :class:`Policy` from the YAML file;
:mod:`secmig.policy.evaluate` reads it. Every value is already
validated and every RBAC rule already compiled, so evaluation does no
parsing. ``lines`` maps each setting's dotted path (``rbac.api``,
``mac.default_level``) to its line in the file, for messages; it is not
part of the policy's identity (:attr:`Policy.digest`).
"""

import dataclasses
import typing

#: The only value ``transport.encryption`` accepts: there is no way to
#: migrate without encryption, neither per policy nor per instance.
ENCRYPTION_REQUIRED = 'required'


@dataclasses.dataclass(frozen=True)
class Rule:
    """An oslo.policy check string and its compiled form.

    ``text`` is oslo.policy's normalised spelling of the rule; ``check``
    is ``f(target, credentials) -> bool``
    (:func:`secmig.policy.rules.evaluator`).
    """

    text: str
    check: typing.Any = dataclasses.field(compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Automatic:
    """Which instances Watcher may move on its own."""

    enabled: bool = True
    identify: typing.Optional[Rule] = None
    opt_out_projects: typing.FrozenSet[str] = frozenset()
    opt_out_flavors: typing.FrozenSet[str] = frozenset()
    flavor_extra_spec: str = 'secmig:auto_migrate'
    instance_metadata: str = 'secmig:auto_migrate'


@dataclasses.dataclass(frozen=True)
class Mac:
    """Mandatory access control: instance levels against clearances."""

    levels: typing.Mapping[str, int] = dataclasses.field(
        default_factory=dict)
    default_level: int = 0
    flavor_extra_spec: str = 'secmig:level'
    image_property: str = 'secmig_level'
    instance_metadata: str = 'secmig:level'


@dataclasses.dataclass(frozen=True)
class LevelAggregates:
    """Instances of ``min_level`` and above go only to ``aggregates``."""

    min_level: int
    aggregates: typing.FrozenSet[str]


@dataclasses.dataclass(frozen=True)
class Destinations:
    """Where an instance may go. None means "no restriction"."""

    availability_zones: typing.Optional[typing.FrozenSet[str]] = None
    aggregates: typing.Optional[typing.FrozenSet[str]] = None
    same_availability_zone: bool = False
    by_level: typing.Tuple[LevelAggregates, ...] = ()


@dataclasses.dataclass(frozen=True)
class Transport:
    """How the migration stream must travel."""

    encryption: str = ENCRYPTION_REQUIRED
    post_copy: bool = False
    post_copy_max_level: typing.Optional[int] = None
    max_bandwidth_mib: int = 0
    automatic_max_bandwidth_mib: int = 0


@dataclasses.dataclass(frozen=True)
class Cooldown:
    """Minimum time between two migrations of the same instance."""

    seconds: int = 0
    exempt: typing.Optional[Rule] = None


@dataclasses.dataclass(frozen=True)
class Policy:
    """A complete, validated migration policy."""

    source: str
    version: int
    rules: typing.Mapping[str, Rule]
    rbac: typing.Mapping[str, Rule]
    automatic: Automatic
    mac: Mac
    destinations: Destinations
    transport: Transport
    cooldown: Cooldown
    digest: str = ''
    lines: typing.Mapping[str, int] = dataclasses.field(
        default_factory=dict, compare=False, repr=False)

    def line_of(self, path):
        """The file line of setting ``path`` or of its closest parent."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition('.')[0]
        return None
