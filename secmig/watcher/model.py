"""Watcher's compute model as the plain data of :mod:`secmig.hotspot`.

Watcher's model knows placement, sizes, states and flavor extra specs,
but not a host's link speed: that comes from the strategy's parameters.
"""

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
    hosts: list
    vms: list
    free: dict
    candidates: dict
    instances: dict
    nodes: dict
    objects: dict
    errors: typing.List[str] = dataclasses.field(default_factory=list)


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


def _blocked(instance, node):
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

    Disabled or offline nodes stay in the inventory (their hotspots are
    still found) but get no free resources, so nothing moves onto them.
    ``history`` maps an instance to its recent migration times; the last
    one becomes the policy's ``last_migrated_at``.
    """
    overrides = link_overrides or {}
    history = history or {}
    inv = Inventory([], [], {}, {}, {}, {}, {})
    for node in compute_model.get_all_compute_nodes().values():
        name = node.hostname
        inv.nodes[name] = node
        inv.hosts.append(model.HostInfo(
            name, cpus=node.vcpus or None,
            link_bps=overrides.get(name, link_bps)))
        if _usable_destination(node):
            free = compute_model.get_node_free_resources(node)
            inv.free[name] = plan.Resources(free['vcpu'], free['memory'],
                                            free['disk'])
        for instance in compute_model.get_node_instances(node):
            _add_instance(inv, instance, node, history)
    return inv


def _add_instance(inv, instance, node, history):
    specs = dict(instance.flavor_extra_specs or {})
    meta = _metadata(instance)
    try:
        expected_in, expected_out = model.expected_bandwidth(specs, meta)
    except exception.SecmigError as e:
        inv.errors.append('instance %s: %s' % (instance.uuid, e))
        expected_in = expected_out = None
    uuid = instance.uuid
    inv.objects[uuid] = instance
    inv.vms.append(model.VmInfo(uuid, node.hostname, instance.vcpus or 1,
                                expected_in, expected_out))
    inv.candidates[uuid] = plan.Candidate(
        uuid, plan.Resources(instance.vcpus, instance.memory, instance.disk),
        _blocked(instance, node))
    times = history.get(uuid)
    inv.instances[uuid] = facts.InstanceFacts(
        uuid, instance.project_id or '', flavor_extra_specs={
            str(k): str(v) for k, v in specs.items()},
        metadata=meta, last_migrated_at=max(times) if times else None)
