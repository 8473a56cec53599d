"""Names and clearances: the CA issues only what verification reads.

The attacks: ask the CA for a name that the certificate checks cannot
handle (a wildcard, an underscore, an IP address written as a DNS name,
a trailing dot, an empty label, an over-long or non-ASCII name), and
write a clearance with digits that are not ASCII. Each is refused with
its reason; the properties hold over whole classes of such inputs.
"""

import os
import tempfile
import time
import unittest

from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from secmig import exception
from secmig.pki import clearance
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import names
from secmig.pki import verify
from tests.cliutil import secmig
from tests import pkiutil

BOUNDED = settings(max_examples=150, deadline=None, database=None,
                   derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.filter_too_much])
#: Issuing a certificate writes files; fewer examples keep it quick.
ISSUING = settings(BOUNDED, max_examples=60)

_ldh_label = st.from_regex(r'\A[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?\Z')
_odd_label = (st.text(alphabet='abz09-_*\u00f1\uff13 .', max_size=8)
              | st.sampled_from(['a' * 63, 'a' * 64, 'xn--nde-fla', '1',
                                 '192', '*']))
_labels = st.one_of(_ldh_label, _ldh_label, _ldh_label, _odd_label)
_shaped = st.builds(lambda labels, dot: '.'.join(labels) + dot,
                    st.lists(_labels, min_size=1, max_size=4),
                    st.sampled_from(['', '', '', '.', '..']))
#: Texts shaped like host names, valid or not, and any text at all.
name_like = st.one_of(_shaped, _shaped, _shaped, st.ip_addresses().map(str),
                      st.text(max_size=30))
#: Mostly names the CA issues, to exercise what it issues.
issuable_like = st.one_of(
    st.lists(_ldh_label, min_size=1, max_size=4).map('.'.join), name_like)

#: The reason each kind of bad name is refused with.
BAD_NAMES = {
    '*.cloud': 'wildcards are not issued',
    'cmp_1': 'other than letters, digits and hyphens',
    '-cmp1': 'starts or ends with a hyphen',
    '192.0.2.1': 'it is an IP address; give addresses with --address',
    '2001:db8::1': 'it is an IP address',
    '1.2.3': 'last label is all digits',
    '10': 'last label is all digits',
    'cmp1.': 'ends with a dot; give it without (cmp1)',
    'cmp1..': 'ends with a dot',
    'a..b': 'empty label',
    '.cmp1': 'empty label',
    '': 'it is empty',
    'a' * 64 + '.cloud': 'longer than 63 characters',
    '.'.join(['a' * 63] * 4): 'longer than 253 characters',
    'n\u00f6de': 'not ASCII',
    'cmp\uff11': 'not ASCII',
    'cmp 1': 'other than letters',
}


class NamesTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.pki = pkiutil.TestPKI(self.tmp)

    def assertRefused(self, code, reason, func, *args, **kwargs):
        with self.assertRaises(exception.PKIError) as ctx:
            func(*args, **kwargs)
        self.assertEqual(code, ctx.exception.code, str(ctx.exception))
        self.assertIn(reason, str(ctx.exception))

    def test_the_ca_refuses_each_kind_of_bad_name(self):
        for name, reason in BAD_NAMES.items():
            with self.subTest(name=name):
                self.assertRefused('bad_name', reason,
                                   self.pki.ca.create_token, 'node1',
                                   names=[name])
                self.assertRefused('bad_name', reason,
                                   self.pki.ca.create_token, name)

    def test_the_host_name_is_the_common_name_at_most_64(self):
        long = 'a' * 30 + '.' + 'b' * 40
        self.assertRefused('bad_name', 'at most 64 characters',
                           self.pki.ca.create_token, long)
        self.pki.ca.create_token('node1', names=[long])

    def test_addresses_are_canonical_and_unscoped(self):
        self.assertRefused('bad_address', 'is not an IP address',
                           self.pki.ca.create_token, 'node1',
                           addresses=['cmp1'])
        self.assertRefused('bad_address', 'scoped address',
                           self.pki.ca.create_token, 'node1',
                           addresses=['fe80::1%eth0'])
        token = self.pki.ca.create_token('node1',
                                         addresses=['2001:DB8:0::1'])
        csr = host_mod.make_key_and_csr(os.path.join(self.tmp, 'h'),
                                        'node1', addresses=['2001:db8::1'])
        cert = keys.load_certificate(self.pki.ca.sign(csr, token))
        self.assertIn('2001:db8::1', verify.certificate_names(cert))

    def test_the_host_refuses_bad_names_before_writing_a_key(self):
        cert_dir = os.path.join(self.tmp, 'h')
        self.assertRefused('bad_name', 'wildcards',
                           host_mod.make_key_and_csr, cert_dir, 'node1',
                           names=['*.cloud'])
        self.assertRefused('bad_name', 'not ASCII',
                           host_mod.make_key_and_csr, cert_dir, 'n\u00f6de')
        self.assertRefused('bad_address', 'not an IP address',
                           host_mod.make_key_and_csr, cert_dir, 'node1',
                           addresses=['cmp1'])
        self.assertFalse(os.path.exists(cert_dir))

    def test_a_token_approved_earlier_cannot_issue_a_bad_name(self):
        # A token approved before the name rules held.
        token = self.pki.ca.create_token('node1')
        store = self.pki.ca._tokens
        records = store._load()
        for record in records.values():
            record['names'].append('cmp_1')
        store._save(records, time.time())
        csr = host_mod.make_key_and_csr(os.path.join(self.tmp, 'h'),
                                        'node1')
        self.assertRefused('bad_name', 'cmp_1', self.pki.ca.sign, csr,
                           token)

    def test_the_command_line_says_why_in_one_line(self):
        self.assertEqual(0, secmig('pki', 'ca-create', '--ca-dir',
                                   os.path.join(self.tmp, 'ca2'), '--name',
                                   'CA')[0])
        cases = [
            (('pki', 'token-create', '--ca-dir', os.path.join(self.tmp,
                                                              'ca2'),
              '--host', 'cmp_1'), "'cmp_1' cannot be a host name"),
            (('pki', 'token-create', '--ca-dir', os.path.join(self.tmp,
                                                              'ca2'),
              '--host', 'cmp1', '--name', '*.cloud'), 'wildcards'),
            (('pki', 'host-key', '--host', 'cmp1.', '--cert-dir',
              os.path.join(self.tmp, 'h')), 'ends with a dot'),
            (('pki', 'host-key', '--host', 'cmp1', '--address', 'x',
              '--cert-dir', os.path.join(self.tmp, 'h')),
             "'x' is not an IP address"),
        ]
        for argv, reason in cases:
            with self.subTest(argv=argv):
                status, _, err = secmig(*argv)
                self.assertEqual(1, status, err)
                self.assertIn(reason, err)
                self.assertEqual(1, err.count('\n'), err)
                self.assertNotIn('Traceback', err)


class NamePropertiesTest(unittest.TestCase):
    """Over texts shaped like names: refused, or issued and verified."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        cls.trust = cls.pki.trust()
        cls.good = cls.pki.enroll('node1')

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def issue(self, name, as_host):
        host = name if as_host else 'node1'
        token = self.pki.ca.create_token(host, [] if as_host else [name])
        csr = host_mod.make_key_and_csr(
            os.path.join(self.tmp.name, 'h'), host,
            [] if as_host else [name], overwrite=True)
        return keys.load_certificate(self.pki.ca.sign(csr, token))

    @ISSUING
    @given(issuable_like, st.booleans())
    def test_every_name_the_ca_issues_verifies(self, name, as_host):
        try:
            cert = self.issue(name, as_host)
        except exception.PKIError as e:
            self.assertEqual('bad_name', e.code, str(e))
            return
        for host in (name, name.upper(), name + '.'):
            decision = verify.verify_certificate(cert, self.trust,
                                                 host=host)
            self.assertTrue(decision.allowed, (host, decision))

    @BOUNDED
    @given(name_like)
    def test_the_name_rules_refuse_with_bad_name_only(self, name):
        try:
            names.dns_name(name)
        except exception.PKIError as e:
            self.assertEqual('bad_name', e.code)
            return
        self.assertTrue(name.isascii() and not name.endswith('.'))
        self.assertNotIn('*', name)
        self.assertNotIn('_', name)

    @BOUNDED
    @given(name_like | st.text())
    def test_any_claimed_host_is_a_verdict_never_an_exception(self, host):
        decision = verify.verify_certificate(self.good.cert, self.trust,
                                             host=host)
        if decision.allowed:
            self.assertIn(host.lower(), ('node1', 'node1.', '127.0.0.1', ''))
        else:
            self.assertEqual('wrong_host', decision.code, decision.reason)


def with_clearance(pki, text):
    ou = x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                            'secmig-clearance=' + text)
    return pkiutil.build_leaf(pki.ca.cert, pki.ca_key(),
                              subject_extra=[ou])[0]


class ClearanceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        cls.trust = cls.pki.trust()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_digits_other_than_ascii_are_refused_not_read(self):
        for text in ('\u0663', '\uff13', '\u00b2', '\u09e9', '1\u0660',
                     '03', '+3', '-0', ' 3', '3 ', '3\n', '0x3', '101',
                     '1e1', ''):
            with self.subTest(text=text):
                cert = with_clearance(self.pki, text)
                with self.assertRaises(exception.PKIError) as ctx:
                    clearance.decode(cert)
                self.assertEqual('bad_clearance', ctx.exception.code)
                self.assertIn('ASCII decimal digits', str(ctx.exception))
                decision = verify.verify_certificate(
                    cert, self.trust, host='node1')
                self.assertEqual('bad_clearance', decision.code)

    def test_every_level_reads_back(self):
        for level in (0, 7, clearance.MAX_LEVEL):
            self.assertEqual(level, clearance.decode(
                with_clearance(self.pki, str(level))))

    @BOUNDED
    @given(st.text(max_size=6) | st.integers(-5, 200).map(str))
    def test_a_level_is_its_canonical_text_or_refused(self, text):
        cert = with_clearance(self.pki, text)
        canonical = (text.isascii() and text.isdigit()
                     and str(int(text)) == text
                     and int(text) <= clearance.MAX_LEVEL)
        try:
            level = clearance.decode(cert)
        except exception.PKIError as e:
            self.assertEqual('bad_clearance', e.code)
            self.assertFalse(canonical, text)
            return
        self.assertTrue(canonical, text)
        self.assertEqual(int(text), level)


if __name__ == '__main__':
    unittest.main()
