"""Real Nova services in-process, with secmig loaded as in production.

The cloud itself is :class:`secmig.nova.cloud.SecmigCloudMixin` (the
demo runs the same one); the tests enroll hosts with
:class:`tests.pkiutil.TestPKI`, run the test policy and read journals
with :mod:`tests.auditutil`.
"""

import os

from secmig.nova import cloud
from tests import auditutil
from tests import pkiutil

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(HERE), 'etc', 'migration-policy.yaml')
API_PASTE = cloud.API_PASTE
FILTER = cloud.FILTER


class SecmigCloudMixin(cloud.SecmigCloudMixin):
    """Mix in before Nova's ``ServersTestBase``.

    ``CLEARANCES`` gives each enrolled host's clearance (default 1);
    hosts in ``UNENROLLED`` start without any certificate.
    """

    SECMIG_POLICY_SOURCE = POLICY
    #: oslotest's per-test limit (``OS_TEST_TIMEOUT`` overrides it). A
    #: migration expected to be refused that goes ahead instead can leave
    #: Nova waiting at tear-down for an RPC answer that never comes; the
    #: limit ends the test rather than the whole tier.
    DEFAULT_TIMEOUT = 300

    def make_pki(self, base_dir):
        return pkiutil.TestPKI(base_dir)

    def audit_steps(self, host):
        """``[(step, outcome, reason code)]`` from ``host``'s journal."""
        return auditutil.journal_steps(self.journal(host))
