"""Hotspot analysis: which hosts and VMs are in trouble, and the evidence.

The model, in three layers that a Watcher strategy (or a benchmark, or a
test) stitches together:

* :mod:`secmig.hotspot.model` holds plain data: what the cloud looks like
  (:class:`~secmig.hotspot.model.HostInfo`, :class:`~secmig.hotspot.model.
  VmInfo`: placement, CPU count, link capacity, expected VM bandwidth) and
  what was measured (:class:`~secmig.hotspot.model.Observations`: one time
  series per VM and per host and kind, in fixed units: CPU in cores used,
  network in bytes/s per direction, swap-out in MiB/s, host CPU in per
  cent).
* :mod:`secmig.hotspot.gnocchi_query` fills an ``Observations`` from
  Gnocchi in a fixed, small number of aggregates API requests, whatever
  the size of the cloud: host meters first, then the meters of the VMs
  on the hosts :func:`~secmig.hotspot.detect.screen` picks (every VM
  when the cloud has no host meters). It is the only module here that
  talks to a service.
* :mod:`secmig.hotspot.detect` is pure: given the inventory, the
  observations and :class:`~secmig.hotspot.detect.Thresholds`, it returns
  a :class:`~secmig.hotspot.detect.Report` listing every hotspot
  (condition, host, instance, metrics, values, threshold, window) and
  every gap in the data (missing, stale or too short series, unknown
  capacity), per host and per VM.

The three conditions of the design:

1. ``vm_bandwidth_shortfall``: a VM receives or sends less than its
   expected bandwidth (flavor extra specs ``quota:vif_inbound_average`` /
   ``quota:vif_outbound_average`` in KB/s, or the ``secmig:expected_
   bandwidth`` property) while its host's link in the same direction is
   saturated.
2. ``host_cpu`` / ``host_network``: a host's CPU or link use stays above a
   threshold for a sustained part of the observation window (a single
   spike is not a hotspot).
3. ``host_swap``: a host swaps memory out faster than a threshold.

Host figures come from host-level meters when an operator provides them
and otherwise are the sum of the figures of the VMs placed on the host.
A missing figure is never read as "no load": it becomes a gap in the
report, so an audit can fail or say which data is missing instead of
concluding that there is no hotspot.
"""
