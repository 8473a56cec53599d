"""Keys secmig adds to a compute node's stats.

The compute driver publishes them with the host's resources; Nova stores
them with the compute node and hands them to the scheduler in
``HostState.stats``, where the filter reads them.
"""

#: The host's certificate (PEM, public): the scheduler verifies it.
CERT = 'secmig_cert'
#: ``ready``, or the code of the TLS settings refusal.
TLS = 'secmig_tls'
