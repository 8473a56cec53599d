#!/usr/bin/env python3
"""Benchmark: one full mutual host handshake, in process.

Each iteration runs the three messages of ``secmig.auth.handshake``
between two hosts, both sides included: message encoding and strict
decoding, three signatures, three signature checks and two full
certificate verifications (path, revocation list, host name). It prints
p50 and p99 over ``--count`` handshakes per host key type and the
ratios against ECDSA P-256. CA and hosts use the same key type.

Ed25519 hosts are enrolled with an ECDSA P-256 CA (path validation does
not accept Ed25519 CA keys). The script also times the handshake's own
signatures alone (three signs and three verifications, no certificate
checks) for every type, and, with P-256 hosts, the handshake answered
through the source's ``AnsweringHost`` while the handshakes of other
destinations wait for the same instance (its auth3 is checked against
each of them).

Usage: tools/bench/handshake.py [--count N] [--key-types T,T,...]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


from secmig.auth import answering
from secmig.auth import binding as binding_mod
from secmig.auth import credentials
from secmig.auth import handshake
from secmig.auth import replay
from secmig.auth import signing
from secmig import conf as secmig_conf
from secmig.pki import ca as ca_mod
from secmig.pki import host as host_mod
from secmig.pki import keys

ED25519 = 'ed25519'
BINDING = binding_mod.Binding(
    'bench-1', '8d0b8f0e-6f3c-4c59-9a7e-1f0e2b6a7c11', 'src', 'dst',
    'sha256:' + 'ab' * 32)


def enroll(ca, base, host, key_type):
    """Enroll ``host`` with secmig's own CA; return its credentials."""
    cert_dir = os.path.join(base, host)
    token = ca.create_token(host, addresses=['127.0.0.1'])
    csr = host_mod.make_key_and_csr(cert_dir, host, addresses=['127.0.0.1'],
                                    key_type=key_type)
    ca_dir = ca.ca_dir
    with open(os.path.join(ca_dir, ca_mod.CA_CERT), 'rb') as f:
        ca_pem = f.read()
    with open(os.path.join(ca_dir, ca_mod.CA_CRL), 'rb') as f:
        crl_pem = f.read()
    host_mod.install(cert_dir, ca.sign(csr, token), ca_pem, crl_pem)
    return credentials.load(cert_dir, host)


def setup(base, key_type, others=0):
    """(source creds, destination creds, trust, other destinations)."""
    ca_type = keys.DEFAULT_KEY_TYPE if key_type == ED25519 else key_type
    ca = ca_mod.CertificateAuthority.create(os.path.join(base, 'ca'),
                                            'bench CA', key_type=ca_type)
    src, dst = (enroll(ca, base, h, key_type) for h in ('src', 'dst'))
    extra = [enroll(ca, base, 'other%d' % i, key_type)
             for i in range(others)]
    return (src, dst, credentials.load_trust(os.path.join(base, 'src')),
            extra)


def one_handshake(src, dst, trust, conf, cache):
    initiator = handshake.Initiator(src, trust, BINDING, conf)
    responder = handshake.Responder(dst, trust, conf, cache)
    msg2, decision = responder.respond(initiator.start(), BINDING)
    if msg2 is None:
        return decision
    msg3, decision = initiator.finish(msg2)
    if msg3 is None:
        return decision
    return responder.confirm(msg3)


def answered_handshake(source, src, dst, trust, conf, migration):
    """dst's handshake with ``source``; returns src's final decision."""
    binding = binding_mod.Binding(migration, BINDING.instance_uuid,
                                  'src', dst.host, BINDING.policy_digest)
    initiator = handshake.Initiator(dst, trust, binding, conf)
    msg2, decision = source.hello(src, trust, migration,
                                  BINDING.instance_uuid,
                                  BINDING.policy_digest, initiator.start())
    if msg2 is None:
        return decision
    msg3, decision = initiator.finish(msg2)
    if msg3 is None:
        return decision
    return source.confirm(BINDING.instance_uuid, msg3)


def time_answered(src, dst, trust, conf, others, count):
    """Percentiles of dst's answered handshake, ``others`` waiting."""
    samples = []
    for i in range(count):
        source = answering.AnsweringHost('src', conf)
        for other in others:
            binding = binding_mod.Binding(
                'bench-%d' % i, BINDING.instance_uuid, 'src', other.host,
                BINDING.policy_digest)
            source.hello(src, trust, binding.migration_id,
                         BINDING.instance_uuid, BINDING.policy_digest,
                         handshake.Initiator(other, trust, binding,
                                             conf).start())
        start = time.perf_counter()
        decision = answered_handshake(source, src, dst, trust, conf,
                                      'bench-%d' % i)
        samples.append(time.perf_counter() - start)
        if not decision:
            raise RuntimeError('no handshake completes: %s' % decision)
    return percentiles(samples)


def percentiles(samples):
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def time_handshakes(src, dst, trust, conf, count):
    cache = replay.ReplayCache(count + 16, 60000)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        decision = one_handshake(src, dst, trust, conf, cache)
        samples.append(time.perf_counter() - start)
        if not decision:
            return decision, None
    return decision, percentiles(samples)


def time_signatures(src, dst, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        for signer, verifier in ((src, dst), (dst, src), (src, dst)):
            sig = signing.sign(signer.key, b'x' * 48)
            if not signing.verify(signer.cert.public_key(), sig, b'x' * 48):
                raise RuntimeError('signature does not verify')
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def table(title, rows, base, first='key type', against='P-256'):
    print(title)
    print('  %-10s %10s %10s %10s %10s'
          % (first, 'p50 ms', 'p99 ms', 'p50/' + against, 'p99/' + against))
    for key_type, figures in rows:
        if figures is None:
            print('  %-10s %10s' % (key_type, 'n/a'))
            continue
        p50, p99 = figures
        ratio = ('%10.2f %10.2f' % (p50 / base[0], p99 / base[1])
                 if base else '%10s %10s' % ('-', '-'))
        print('  %-10s %10.3f %10.3f %s' % (key_type, p50, p99, ratio))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=1000)
    parser.add_argument('--key-types', default='ec-p256,ed25519,rsa-3072')
    parser.add_argument('--waiting', type=int, default=8,
                        help='other destinations waiting at the source')
    args = parser.parse_args(argv)
    types = args.key_types.split(',')
    conf = secmig_conf.new_conf()
    full, sig_only, notes = [], [], []
    with tempfile.TemporaryDirectory() as base:
        src, dst, trust, others = setup(os.path.join(base, 'answering'),
                                        'ec-p256', args.waiting)
        answered = [('%d' % n, time_answered(
            src, dst, trust, conf, others[:n], args.count))
            for n in sorted({0, args.waiting})]
        for key_type in types:
            src, dst, trust, _ = setup(os.path.join(base, key_type),
                                       key_type)
            decision, figures = time_handshakes(src, dst, trust, conf,
                                                args.count)
            if figures is None:
                notes.append('%s: no handshake completes: %s (%s)'
                             % (key_type, decision.code,
                                decision.details.get('pki_code')))
            full.append((key_type, figures))
            sig_only.append((key_type, time_signatures(src, dst,
                                                       args.count)))
    base_full = dict(full).get('ec-p256')
    base_sig = dict(sig_only).get('ec-p256')
    print('secmig handshake benchmark: %d handshakes per key type, '
          'Python %s' % (args.count, sys.version.split()[0]))
    table('full mutual handshake (3 messages, both sides, certificate '
          'verification included)', full, base_full)
    table('handshake signatures only (3 signs + 3 verifications)',
          sig_only, base_sig)
    table('ec-p256 handshake answered by the source\'s AnsweringHost, '
          'other destinations waiting for the instance', answered,
          answered[0][1], first='others', against='none')
    for note in notes:
        print('note: ' + note)
    return 0


if __name__ == '__main__':
    sys.exit(main())
