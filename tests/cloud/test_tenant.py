"""A tenant's live migration through Nova's normal API, with real tokens.

Given project ``demo`` with a manager (role ``manager``) and a member,
and a guest of theirs: Nova's own policy lets the manager ask for a live
migration and refuses the member; the sample secmig policy, which keeps
moving instances an operator's act, then refuses the manager with its
reason, and the guest stays where it is.
"""

import json

from tests.cloud import base

api = base.api


class TenantMigrationTest(base.CloudTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = api.session('manager', 'demo')
        cls.member = api.session('member', 'demo')
        cls.guest = cls.boot('tenant-guest', None, session=cls.manager)
        cls.home = cls.host_of(cls.guest['id'])

    def test_manager_refused_by_the_sample_policy(self):
        before = len(self.migrations(self.guest['id']))
        # Up to 2.33 Nova answers once the conductor has scheduled the
        # move, so the refusal reaches the requester (from 2.34 the
        # answer comes first and the server's actions say only "Error").
        with self.assertRaises(api.ApiError) as cm:
            self.live_migrate(self.guest['id'], microversion='2.30',
                              session=self.manager)
        self.assertEqual(400, cm.exception.status, cm.exception.text)
        message = json.loads(cm.exception.text)['badRequest']['message']
        self.assertIn('No valid host was found', message)
        self.assertIn('secmig refused the migration (rbac_denied)', message)
        self.assertIn('may not request an API migration', message)
        self.assertEqual('error', self.wait_migration(
            self.guest['id'], before)['status'])
        self.wait_active(self.guest['id'])
        self.assertEqual(self.home, self.host_of(self.guest['id']))

    def test_member_refused_by_nova(self):
        before = len(self.migrations(self.guest['id']))
        with self.assertRaises(api.ApiError) as cm:
            self.live_migrate(self.guest['id'], microversion='2.68',
                              session=self.member)
        self.assertEqual(403, cm.exception.status)
        self.assertIn('os_compute_api:os-migrate-server:migrate_live',
                      cm.exception.text)
        self.assertEqual(before, len(self.migrations(self.guest['id'])))
