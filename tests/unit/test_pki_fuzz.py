"""Bounded fuzzing of every PKI decoder of bytes another party controls.

Certificates (a peer's, a CA bundle), revocation lists, certificate
requests and renewal requests (a host's, at the CA) and token files are
mutated, at the PEM level and inside their DER, with a bias towards the
parts cryptography parses lazily (keys, names, extensions, revocation
entries). Each decoder, and each check behind it, raises only
``PKIError`` with one of its documented codes, or returns a refusal with
one: never another exception. Runs are bounded and derandomised.
"""

import os
import tempfile
import unittest

from cryptography import x509
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from secmig import exception
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import renewal
from secmig.pki import tokens
from secmig.pki import verify
from tests import fuzzutil
from tests import pkiutil

BOUNDED = fuzzutil.bounded(250)

LOAD_CODES = {'malformed_pem', 'truncated_pem', 'unsupported_key'}
#: The refusals verify_certificate documents.
VERDICT_CODES = {
    'weak_key', 'unsupported_key', 'self_signed_leaf', 'leaf_is_ca',
    'not_yet_valid', 'expired', 'expires_soon', 'foreign_ca', 'forged_ca',
    'wrong_key_usage', 'wrong_extended_key_usage', 'no_san', 'wrong_host',
    'crl_missing', 'crl_invalid', 'crl_stale', 'revoked', 'bad_clearance',
    'path_invalid'}
CSR_CODES = LOAD_CODES | {'csr_signature_invalid', 'weak_key',
                          'unsupported_key', 'csr_names_not_approved'}
RENEWAL_CODES = CSR_CODES | {'renewal_unproven', 'renewal_mismatch',
                             'foreign_ca', 'already_renewed', 'revoked',
                             'expired', 'bad_name', 'bad_address'}


def _der(obj):
    return obj.public_bytes(keys.serialization.Encoding.DER)


def regions(der, *parts):
    """``[(start, end)]``: all of ``der``, then each part found in it."""
    found = [(0, len(der))]
    for part in parts:
        start = der.find(part)
        if start >= 0 and part:
            found.append((start, start + len(part)))
    return found


@st.composite
def der_mutations(draw, der, spans):
    """``der`` with up to three bytes changed, inside one of ``spans``.

    A byte is replaced, inserted or deleted, or the rest cut off.
    """
    data = bytearray(der)
    start, end = draw(st.sampled_from(spans))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(start, max(start, min(end, len(data)) - 1)))
        kind = draw(st.sampled_from(('replace', 'replace', 'insert',
                                     'delete', 'cut')))
        if kind == 'replace' and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif kind == 'insert':
            data[i:i] = bytes([draw(st.integers(0, 255))])
        elif kind == 'delete':
            del data[i:i + 1]
        else:
            del data[i:]
    return bytes(data)


@st.composite
def pem_mutations(draw, pem):
    """``pem`` (text) with one byte changed, inserted, deleted or cut."""
    i = draw(st.integers(0, len(pem) - 1))
    kind = draw(st.sampled_from(('replace', 'insert', 'delete', 'cut')))
    byte = bytes([draw(st.integers(0, 255))])
    if kind == 'replace':
        return pem[:i] + byte + pem[i + 1:]
    if kind == 'insert':
        return pem[:i] + byte + pem[i:]
    if kind == 'delete':
        return pem[:i] + pem[i + 1:]
    return pem[:i]


def in_pem(label, der_strategy):
    return der_strategy.map(lambda der: keys.pem_block(label, der))


class PKIFuzzTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = pkiutil.TestPKI(cls.tmp.name)
        cls.node = cls.pki.enroll('node1')
        cls.pki.enroll('node2')
        cls.pki.revoke('node2')
        cls.trust = cls.pki.trust()
        cls.crl = keys.load_crl(cls.pki.crl_pem)
        cls.csr_pem = host_mod.make_key_and_csr(
            os.path.join(cls.tmp.name, 'csr'), 'node1',
            addresses=['127.0.0.1'])
        cls.request_pem = host_mod.make_renewal_request(cls.node.cert_dir)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assertCode(self, codes, error):
        self.assertIn(error.code, codes, str(error))

    # Certificates: a peer's, and the CA bundle --------------------------

    def check_certificate(self, pem):
        try:
            cert = keys.load_certificate(pem)
        except exception.PKIError as e:
            self.assertCode(LOAD_CODES, e)
            return
        for host in ('node1', None):
            decision = verify.verify_certificate(cert, self.trust, host=host)
            if not decision:
                self.assertIn(decision.code, VERDICT_CODES, decision.reason)
        try:
            host_mod.install(self.node.cert_dir, pem, self.pki.ca_cert_pem,
                             self.pki.crl_pem)
        except exception.PKIError as e:
            self.assertCode(VERDICT_CODES | {'key_mismatch'}, e)

    def cert_spans(self):
        cert = self.node.cert
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        return regions(_der(cert), keys.public_key_der(cert.public_key()),
                       cert.subject.public_bytes(), san.public_bytes(),
                       cert.tbs_certificate_bytes[-120:])

    def test_certificate_der(self):
        @BOUNDED
        @given(in_pem('CERTIFICATE', der_mutations(_der(self.node.cert),
                                                   self.cert_spans())))
        def run(pem):
            self.check_certificate(pem)
        run()

    def test_certificate_pem(self):
        @BOUNDED
        @given(pem_mutations(self.node.cert_pem))
        def run(pem):
            self.check_certificate(pem)
        run()

    def test_ca_bundle(self):
        ca = self.pki.ca.cert
        spans = regions(_der(ca), keys.public_key_der(ca.public_key()),
                        ca.tbs_certificate_bytes[-80:])

        @BOUNDED
        @given(in_pem('CERTIFICATE', der_mutations(_der(ca), spans)))
        def run(pem):
            path = os.path.join(self.tmp.name, 'bundle.pem')
            with open(path, 'wb') as f:
                f.write(pem)
            try:
                trust = verify.TrustStore.from_files(path)
            except exception.PKIError as e:
                self.assertCode(LOAD_CODES | {'bad_ca_bundle'}, e)
                return
            decision = verify.verify_certificate(self.node.cert, trust,
                                                 require_crl=False)
            if not decision:
                self.assertIn(decision.code, VERDICT_CODES, decision.reason)
        run()

    # Revocation lists ---------------------------------------------------

    def test_crl(self):
        der = _der(self.crl)
        spans = regions(der, self.crl.tbs_certlist_bytes[-200:])

        @BOUNDED
        @given(in_pem('X509 CRL', der_mutations(der, spans))
               | pem_mutations(self.pki.crl_pem))
        def run(pem):
            try:
                crl = keys.load_crl(pem)
            except exception.PKIError as e:
                self.assertCode(LOAD_CODES, e)
                return
            trust = verify.TrustStore([self.pki.ca.cert], [crl])
            for ident in self.pki.hosts.values():
                decision = verify.verify_certificate(ident.cert, trust)
                if not decision:
                    self.assertIn(decision.code, VERDICT_CODES,
                                  decision.reason)
        run()

    # Certificate requests, at the CA -----------------------------------

    def test_csr_at_the_ca(self):
        csr = keys.load_csr(self.csr_pem)
        der = _der(csr)
        spans = regions(der, keys.public_key_der(csr.public_key()),
                        csr.tbs_certrequest_bytes[-100:])
        token = [self.pki.ca.create_token('node1',
                                          addresses=['127.0.0.1'])]

        @BOUNDED
        @given(in_pem('CERTIFICATE REQUEST', der_mutations(der, spans))
               | pem_mutations(self.csr_pem))
        def run(pem):
            try:
                self.pki.ca.sign(pem, token[0])
            except exception.PKIError as e:
                self.assertCode(CSR_CODES, e)
                return
            token[0] = self.pki.ca.create_token('node1',
                                                addresses=['127.0.0.1'])
        run()

    # Renewal requests, at the CA ---------------------------------------

    def test_renewal_request(self):
        @BOUNDED
        @given(pem_mutations(self.request_pem))
        def run(pem):
            try:
                request = renewal.parse(pem)
                renewal.check(request)
            except exception.PKIError as e:
                self.assertCode(RENEWAL_CODES, e)
        run()

    def test_renewal_request_at_the_ca(self):
        blocks = keys.pem_blocks(self.request_pem)
        csr_der = blocks[1][1]

        def request(csr_der):
            return (keys.pem_block('CERTIFICATE', blocks[0][1])
                    + keys.pem_block('CERTIFICATE REQUEST', csr_der)
                    + keys.pem_block(renewal.SIGNATURE_BLOCK, blocks[2][1]))

        csr_mutations = der_mutations(csr_der, regions(csr_der)).filter(
            lambda der: der != csr_der).map(lambda der: request(der))
        signature = blocks[2][1]
        signature_mutations = der_mutations(
            signature, regions(signature)).filter(
                lambda der: der != signature).map(lambda der: request(
                    csr_der).replace(keys.pem_block(
                        renewal.SIGNATURE_BLOCK, signature),
                        keys.pem_block(renewal.SIGNATURE_BLOCK, der)))

        @settings(BOUNDED, max_examples=100)
        @given(csr_mutations | signature_mutations)
        def run(data):
            try:
                self.pki.ca.renew(data, revoke_old=False)
            except exception.PKIError as e:
                self.assertCode(RENEWAL_CODES, e)
                return
            self.fail('a renewal request altered in its CSR or signature '
                      'was accepted')
        run()

    # Token files and PEM framing ---------------------------------------

    @BOUNDED
    @given(st.binary(max_size=300)
           | st.text(max_size=80).map(lambda t: t.encode('utf-8')))
    def test_token_file(self, data):
        try:
            token = tokens.read_token(data)
        except exception.PKIError as e:
            self.assertEqual('bad_token_file', e.code)
            return
        self.assertTrue(token.isascii() and token.isprintable())
        self.assertNotIn(' ', token)

    @BOUNDED
    @given(st.binary(max_size=200)
           | st.lists(st.sampled_from([
               b'-----BEGIN CERTIFICATE-----', b'-----END CERTIFICATE-----',
               b'-----BEGIN X509 CRL-----', b'MIIB', b'====', b'\r', b'',
               b'-----END X509 CRL-----']), max_size=8).map(b'\n'.join))
    def test_pem_framing(self, data):
        for decode in (keys.pem_blocks, keys.load_certificates,
                       keys.load_crl, keys.load_csr, renewal.parse):
            try:
                decode(data)
            except exception.PKIError as e:
                self.assertCode(LOAD_CODES, e)


if __name__ == '__main__':
    unittest.main()
