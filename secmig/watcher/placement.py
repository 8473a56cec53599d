"""Where each host stands in Nova: its aggregates and availability zone.

Watcher's compute model carries neither, and migration policies name
them (``destinations``); the strategy reads Nova's aggregates once per
audit and gives every destination's facts its own, as the Nova scheduler
filter does.
"""

import collections
import dataclasses

from secmig.hotspot import eligible


def placement(aggregates):
    """``{host: (aggregate names, availability zone)}`` of Nova aggregates.

    ``aggregates`` are Watcher's ``nova_helper.Aggregate`` items (``name``,
    ``hosts``, ``availability_zone``, ``metadata``). A host's zone is the
    first zone one of its aggregates sets, None if none does: as the Nova
    scheduler filter reads host aggregates.
    """
    names = collections.defaultdict(set)
    zones = {}
    for aggregate in aggregates:
        zone = aggregate.availability_zone or (
            aggregate.metadata or {}).get('availability_zone')
        for host in aggregate.hosts or ():
            names[host].add(aggregate.name)
            if zone and host not in zones:
                zones[host] = zone
    return {host: (frozenset(names[host]), zones.get(host))
            for host in names}


class PlacedDestinations(eligible.Destinations):
    """Destinations whose facts carry their aggregates and zone.

    ``placement`` maps a host to ``(aggregate names, availability
    zone)``, as :func:`placement` reads them.
    """

    def __init__(self, *args, placement=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.placement = placement or {}
        self._placed = {}

    def host_facts(self, name):
        placed = self._placed.get(name)
        if placed is None:
            aggregates, zone = self.placement.get(name, ((), None))
            placed = self._placed[name] = dataclasses.replace(
                super().host_facts(name), aggregates=frozenset(aggregates),
                availability_zone=zone)
        return placed
