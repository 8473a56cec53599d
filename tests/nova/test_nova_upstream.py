"""Nova's own live-migration functional tests, with secmig in place.

Every test class of the installed ``nova.tests.functional.libvirt.
test_live_migration`` runs again here with the secmig driver (loaded by
the launcher's mechanism), the scheduler filter, enrolled hosts and
native TLS: secmig must not break what Nova guarantees.
"""

import inspect

from nova.tests.functional.libvirt import test_live_migration as upstream

from tests.nova import base


def _upstream_test_classes():
    for name, cls in vars(upstream).items():
        if (inspect.isclass(cls) and cls.__module__ == upstream.__name__
                and any(n.startswith('test_') for n in dir(cls))):
            yield name, cls


class _SecmigInThePath(base.SecmigCloudMixin):
    """Fails the test if no migration went through secmig's checks."""

    def setUp(self):
        super().setUp()
        self.addCleanup(self._assert_secmig_authorised)

    def _assert_secmig_authorised(self):
        steps = [step for host in self.pki.hosts
                 for step, _, _ in self.audit_steps(host)]
        self.assertIn('authorised', steps)


for _name, _cls in _upstream_test_classes():
    globals()['Secmig' + _name] = type(
        'Secmig' + _name, (_SecmigInThePath, _cls),
        {'__doc__': 'Nova\'s %s with secmig enabled.' % _name})
del _name, _cls
