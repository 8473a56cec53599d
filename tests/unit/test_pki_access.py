"""File access decided from modes and owners (secmig.pki.access).

The users are made up (uids that own nothing), so the decisions are the
kernel's rules applied to real files, whoever runs the tests.
"""

import os
import tempfile
import unittest

from secmig.pki import access


class AccessTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        os.chmod(tmp.name, 0o755)
        self.path = os.path.join(tmp.name, 'key.pem')
        with open(self.path, 'w'):
            pass
        if os.getuid() == 0:
            # root is never denied: give the file to a made-up owner.
            os.chown(self.path, 5151, -1)
        st = os.stat(self.path)
        self.gid = st.st_gid
        stranger = os.getuid() + 4242
        self.stranger = access.User('svc', stranger, frozenset({stranger}))
        self.member = access.User('svc', stranger,
                                  frozenset({stranger, self.gid}))
        self.owner = access.User('me', st.st_uid, frozenset({stranger}))

    def decide(self, mode, user, want=access.READ):
        os.chmod(self.path, mode)
        return access.check(user, self.path, want)

    def test_group_bits_apply_to_members_only(self):
        self.assertIsNone(self.decide(0o640, self.member))
        denial = self.decide(0o640, self.stranger)
        self.assertEqual('read', denial.need)
        self.assertEqual(0o640, denial.mode)
        self.assertEqual(self.path, denial.path)
        self.assertIn('svc cannot read %s (mode 0640, owner '
                      % self.path, str(denial))

    def test_owner_bits_win_over_group_and_other_bits(self):
        # POSIX: the owner gets the owner's bits, even if others get more.
        self.assertIsNotNone(self.decide(0o077, self.owner))
        self.assertIsNone(self.decide(0o600, self.owner))

    def test_write_needs_the_write_bit(self):
        self.assertIsNone(self.decide(0o660, self.member,
                                      access.READ | access.WRITE))
        denial = self.decide(0o640, self.member, access.READ | access.WRITE)
        self.assertEqual('read and write', denial.need)

    def test_root_is_never_denied(self):
        root = access.User('root', 0, frozenset({0}))
        self.assertIsNone(self.decide(0o000, root))

    def test_a_directory_on_the_way_must_be_searchable(self):
        directory = os.path.dirname(self.path)
        os.chmod(directory, 0o750)
        self.addCleanup(os.chmod, directory, 0o755)
        denial = self.decide(0o644, self.stranger)
        self.assertEqual((directory, 'enter'), (denial.path, denial.need))
        self.assertIsNone(self.decide(0o644, self.member))

    def test_nearest_existing(self):
        self.assertEqual(os.path.dirname(self.path), access.nearest_existing(
            os.path.join(os.path.dirname(self.path), 'a', 'b')))

    def test_named_user_has_its_groups(self):
        root = access.User.named('root')
        self.assertEqual((0, 'root'), (root.uid, root.group))
        self.assertIn(0, root.gids)
        self.assertRaises(KeyError, access.User.named, 'secmig-no-such')
