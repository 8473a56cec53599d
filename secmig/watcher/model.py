"""Watcher's compute model as the plain data of :mod:`secmig.hotspot`.

Watcher's model knows placement, sizes, states and flavor extra specs,
but not a host's link speed: that comes from the strategy's parameters.
"""

import collections.abc
import dataclasses
import json
import logging
import typing

from watcher.decision_engine.model import element

from secmig import exception
from secmig.hotspot import model
from secmig.hotspot import plan
from secmig.policy import facts

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Inventory:
    """The cluster as :mod:`secmig.hotspot` sees it, built once per audit.

    ``candidates`` (:class:`~secmig.hotspot.plan.Candidate`) and
    ``instances`` (:class:`~secmig.policy.facts.InstanceFacts`) map every
    instance id, but build an entry on first use only: the planner looks
    at the VMs of hot hosts, not at every VM of the cloud.
    """

    hosts: list
    vms: list
    free: dict
    candidates: typing.Mapping
    instances: typing.Mapping
    nodes: dict
    objects: dict
    errors: typing.List[str] = dataclasses.field(default_factory=list)


class _Lazy(collections.abc.Mapping):
    """``{key: build(key)}`` for the keys of ``keys``, built when read."""

    def __init__(self, keys, build):
        self._keys = keys
        self._build = build
        self._built = {}

    def __getitem__(self, key):
        value = self._built.get(key)
        if value is None:
            if key not in self._keys:
                raise KeyError(key)
            value = self._built[key] = self._build(key)
        return value

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def _metadata(instance):
    meta = instance.metadata or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return {}
    if not isinstance(meta, dict):
        return {}
    return {str(k): str(v) for k, v in meta.items()}


def _blocked(instance):
    if instance.watcher_exclude:
        return ('excluded', 'excluded by the audit scope')
    if instance.state != element.InstanceState.ACTIVE.value:
        return ('not_active', 'state is %s' % instance.state)
    if instance.locked:
        return ('locked', 'the instance is locked')
    return None


def _usable_destination(node):
    return (node.state == element.ServiceState.ONLINE.value
            and node.status == element.ServiceState.ENABLED.value)


def inventory(compute_model, link_bps, link_overrides=None, history=None):
    """Build an :class:`Inventory` from a Watcher ``ModelRoot``.

    A node's memory is its physical memory less what it reserves; an
    instance runs when its state is ``active`` (Ceilometer polls no
    other). Disabled or offline nodes stay in the inventory (their hotspots are
    still found) but get no free resources, so nothing moves onto them.
    A node's free resources are its capacity less its instances' needs,
    as ``ModelRoot.get_node_free_resources`` computes them. ``history``
    maps an instance to its recent migration times; the last one
    becomes the policy's ``last_migrated_at``.
    """
    overrides = link_overrides or {}
    history = history or {}
    objects = {}
    inv = Inventory([], [], {}, _Lazy(objects, lambda i: _candidate(
        objects[i])), _Lazy(objects, lambda i: _facts(objects[i], history)),
        {}, objects)
    for node in compute_model.get_all_compute_nodes().values():
        name = node.hostname
        inv.nodes[name] = node
        inv.hosts.append(model.HostInfo(
            name, cpus=node.vcpus or None,
            link_bps=overrides.get(name, link_bps),
            memory_mb=max(node.memory - node.memory_mb_reserved, 0)))
        vcpus = memory = disk = 0
        for instance in compute_model.get_node_instances(node):
            needs = _add_instance(inv, instance, name)
            vcpus, memory, disk = (vcpus + needs[0], memory + needs[1],
                                   disk + needs[2])
        if _usable_destination(node):
            inv.free[name] = plan.Resources(
                node.vcpu_capacity - vcpus, node.memory_mb_capacity - memory,
                node.disk_gb_capacity - disk)
    return inv


def _add_instance(inv, instance, hostname):
    """Record one instance; return its ``(vcpus, memory, disk)``."""
    uuid = instance.uuid
    vcpus = instance.vcpus
    try:
        expected_in, expected_out = model.expected_bandwidth(
            instance.flavor_extra_specs or {}, _metadata(instance))
    except exception.SecmigError as e:
        inv.errors.append('instance %s: %s' % (uuid, e))
        expected_in = expected_out = None
    inv.objects[uuid] = instance
    inv.vms.append(model.VmInfo(
        uuid, hostname, vcpus or 1, expected_in, expected_out,
        memory_mb=instance.memory,
        running=instance.state == element.InstanceState.ACTIVE.value))
    return vcpus, instance.memory, instance.disk


def _candidate(instance):
    return plan.Candidate(
        instance.uuid,
        plan.Resources(instance.vcpus, instance.memory, instance.disk),
        _blocked(instance))


def _facts(instance, history):
    times = history.get(instance.uuid)
    return facts.InstanceFacts(
        instance.uuid, instance.project_id or '', flavor_extra_specs={
            str(k): str(v) for k, v in
            (instance.flavor_extra_specs or {}).items()},
        metadata=_metadata(instance),
        last_migrated_at=max(times) if times else None)
