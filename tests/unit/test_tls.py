"""The transport checks: settings, control URIs, flags and tuning."""

import unittest

from secmig import tls

BITS = {'VIR_MIGRATE_TLS': 65536, 'VIR_MIGRATE_TUNNELLED': 4,
        'VIR_MIGRATE_POSTCOPY': 32768, 'VIR_MIGRATE_AUTO_CONVERGE': 8192,
        'VIR_MIGRATE_PARALLEL': 131072}
LIVE = 1  # VIR_MIGRATE_LIVE
TLS = LIVE | BITS['VIR_MIGRATE_TLS']
POSTCOPY = BITS['VIR_MIGRATE_POSTCOPY']
FORBIDDEN = {'post_copy': False, 'max_bandwidth_mib': 500}


class CheckTest(unittest.TestCase):

    def assertRefused(self, code, decision):
        self.assertFalse(decision.allowed, decision)
        self.assertEqual(code, decision.code, decision)


class ControlURITest(CheckTest):
    """Parameters of a libvirt URI that weaken its TLS are refused."""

    WEAK = {
        'qemu+tls://%s/system?no_verify=1': ['no_verify'],
        'qemu+tls://%s/system?pkipath=/somewhere': ['pkipath'],
        'qemu+tls://%s/system?tls_priority=NORMAL:-VERS-TLS1.3':
            ['tls_priority'],
        # libvirt also splits at ';' and unescapes the names.
        'qemu+tls://%s/system?mode=direct;no_verify=1': ['no_verify'],
        # nova.conf writes a literal % as %% (Nova formats the URI).
        'qemu+tls://%s/system?no%%5Fverify=1': ['no_verify'],
        'qemu+tls://%s/system?no_tty=1&pkipath=/x&no_verify=0':
            ['no_verify', 'pkipath'],
    }

    def settings(self, uri):
        return tls.check_settings(tls.LibvirtSettings(True, False, None,
                                                      uri))

    def test_weakening_parameters_in_live_migration_uri(self):
        for uri, names in self.WEAK.items():
            decision = self.settings(uri)
            self.assertRefused('weak_tls_uri', decision)
            self.assertEqual(names, decision.details['parameters'])
            self.assertIn('[libvirt] live_migration_uri %s has' % uri,
                          decision.reason)
            self.assertIn(', '.join(names), decision.reason)

    def test_weakening_parameters_in_the_destination_uri(self):
        for uri, names in self.WEAK.items():
            decision = tls.check_flags(TLS, uri % 'dst', BITS)
            self.assertRefused('weak_tls_uri', decision)
            self.assertEqual(names, decision.details['parameters'])
            self.assertEqual(['VIR_MIGRATE_TLS'], decision.details['flags'])

    def test_harmless_parameters_are_accepted(self):
        for uri in ('qemu+tls://%s/system',
                    'qemu+tls://%s/system?mode=direct',
                    'qemu+tls://%s/system?no_tty=1&keyfile=/k&proxy=auto'):
            self.assertTrue(self.settings(uri).allowed, uri)
            self.assertTrue(tls.check_flags(TLS, uri % 'dst', BITS).allowed,
                            uri)

    def test_uri_nova_cannot_format(self):
        for uri in ('qemu+tls://dst/system', 'qemu+tls://%s/%s',
                    'qemu+tls://%s/system?a=%'):
            decision = self.settings(uri)
            self.assertRefused('bad_migration_uri', decision)
            self.assertIn(uri, decision.reason)

    def test_plaintext_control_uri_is_refused_first(self):
        self.assertRefused('plaintext_control',
                           self.settings('qemu+tcp://%s/system?no_verify=1'))


class PostCopyTest(CheckTest):

    def test_forbidden_post_copy_is_refused_with_what_to_change(self):
        decision = tls.check_migration(TLS | POSTCOPY, 'qemu+tls://dst/system',
                                       FORBIDDEN, BITS)
        self.assertRefused('post_copy_forbidden', decision)
        self.assertIn('live_migration_permit_post_copy = false',
                      decision.reason)
        self.assertIn('VIR_MIGRATE_POSTCOPY', decision.details['flags'])

    def test_post_copy_under_a_bandwidth_cap_is_refused(self):
        decision = tls.check_post_copy(
            TLS | POSTCOPY, {'post_copy': True, 'max_bandwidth_mib': 500},
            BITS)
        self.assertRefused('post_copy_uncapped', decision)
        self.assertIn('500 MiB/s', decision.reason)
        self.assertEqual(500, decision.details['max_bandwidth_mib'])

    def test_permitted_post_copy_without_a_cap(self):
        self.assertTrue(tls.check_migration(
            TLS | POSTCOPY, 'qemu+tls://dst/system',
            {'post_copy': True, 'max_bandwidth_mib': None}, BITS))

    def test_no_post_copy_needs_no_permission(self):
        self.assertTrue(tls.check_migration(TLS, 'qemu+tls://dst/system',
                                            FORBIDDEN, BITS))


class TuneTest(unittest.TestCase):

    def test_flags_are_nova_s_unchanged(self):
        for flags in (TLS, TLS | POSTCOPY,
                      TLS | BITS['VIR_MIGRATE_PARALLEL']):
            tuning = tls.tune(flags, 0, 1, FORBIDDEN, BITS)
            self.assertEqual(flags, tuning.flags)
        # Auto-converge only when the operator permitted it.
        tuning = tls.tune(TLS, 0, 1, {'post_copy': True}, BITS)
        self.assertFalse(tuning.flags & BITS['VIR_MIGRATE_AUTO_CONVERGE'])

    def test_bandwidth_is_capped(self):
        self.assertEqual(500, tls.tune(TLS, 0, 1, FORBIDDEN,
                                       BITS).bandwidth_mib)
        self.assertEqual(500, tls.tune(TLS, 800, 1, FORBIDDEN,
                                       BITS).bandwidth_mib)
        self.assertEqual(200, tls.tune(TLS, 200, 1, FORBIDDEN,
                                       BITS).bandwidth_mib)
        self.assertEqual(800, tls.tune(TLS, 800, 4, {}, BITS).bandwidth_mib)
