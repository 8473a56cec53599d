"""Keys secmig adds to a compute node's stats, and reading them back.

The compute driver publishes them with the host's resources; Nova stores
them with the compute node and hands them to the scheduler in
``HostState.stats``, where the filter reads them.
"""

from nova import context as nova_context
from nova import objects

#: The host's certificate (PEM, public): the scheduler verifies it.
CERT = 'secmig_cert'
#: ``ready``, or the code of the TLS settings refusal.
TLS = 'secmig_tls'


def published_certificates(context):
    """``{host: certificate PEM}`` of every compute node that has one.

    Reads every cell's compute nodes from its database. A cell that does
    not answer is left out (Nova logs why): its hosts' certificates are
    verified when requests name them.
    """
    found = {}
    by_cell = nova_context.scatter_gather_skip_cell0(
        context, objects.ComputeNodeList.get_all)
    for nodes in by_cell.values():
        if nova_context.is_cell_failure_sentinel(nodes):
            continue
        for node in nodes:
            pem = (node.stats or {}).get(CERT)
            if pem:
                found[node.host] = pem
    return found
