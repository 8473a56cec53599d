"""Per-host cost of SecureMigrationFilter against Nova's in-tree filters.

Usage::

    .venv/bin/python tools/bench/scheduler_filter.py [--hosts 1000 10000]
        [--rounds 7] [--keys 16]

Builds a CA with secmig's PKI, one distinct certificate per host (signed
by that CA, with the extensions secmig's CA puts in every host
certificate; ``--keys`` distinct key pairs are shared among the hosts
because generating 10,000 keys only slows the set-up), real Nova
``HostState`` objects updated from ``ComputeNode`` objects (stats with
the certificate and TLS readiness), a service record and two of four
aggregates each (an availability zone and a tier).

For each host count it measures, in the same run and over the same
hosts, one scheduling pass (``filter_all``) of Nova's ``ComputeFilter``,
``AggregateInstanceExtraSpecsFilter`` and ``SecureMigrationFilter``
(a live migration of an instance of level ``internal``, requested by an
admin, every host eligible: the longest path). The secmig figure is the
steady state, every verdict kept; a fresh RequestSpec is used for every
pass, as the scheduler sees every request anew. Every pass measured alone
starts after a garbage collection.

Then the one-off passes of SecureMigrationFilter, each as a ratio to its
steady pass over the same hosts (the median of ``--rounds`` samples but
for the first pass, which happens once per filter):

* first pass: a scheduler just started, no certificate verified yet (the
  benchmark has no Nova database to read them from at start);
* while verifying: a pass while the background worker verifies them
  (the median of passes made ten times a second meanwhile);
* refresh, same CRL: the CA bundle and CRL read anew, unchanged;
* refresh, new CRL: the CA published a CRL revoking one more host;
* renewed certificate: one host publishes a certificate issued anew.

It also prints how long the background verification took (with no
request meanwhile, and with ten a second), and the memory the filter
keeps (``tracemalloc``, measured apart: it slows Python down) with the
process's peak resident set size.
"""

import argparse
import datetime
import gc
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir))

from cryptography import x509  # noqa: E402
from oslo_utils import timeutils  # noqa: E402

import nova.conf  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova.scheduler.filters import aggregate_instance_extra_specs  # noqa
from nova.scheduler.filters import compute_filter  # noqa: E402
from nova.scheduler import host_manager  # noqa: E402

from secmig.nova import filter as secmig_filter  # noqa: E402
from secmig.nova import stats as secmig_stats  # noqa: E402
from secmig.pki import ca as ca_mod  # noqa: E402
from secmig.pki import keys  # noqa: E402
from secmig import verdicts as verdicts_mod  # noqa: E402

CONF = nova.conf.CONF

POLICY = """
version: 1
rules:
  admin: "role:admin"
rbac:
  api: "rule:admin"
  watcher: "role:service and user_name:watcher"
mac:
  levels: {public: 0, internal: 1, secret: 3}
destinations:
  availability_zones: [az1, az2]
  aggregates: [tier-gold, tier-silver]
transport:
  encryption: required
"""


def host_certificates(ca, names, key_count):
    """PEM certificates for ``names``, as secmig's CA issues them."""
    ca_key = ca._key()
    pairs = [keys.generate_key() for _ in range(key_count)]
    return {name: host_certificate(ca, ca_key, name,
                                   pairs[index % key_count].public_key())
            for index, name in enumerate(names)}


def host_certificate(ca, ca_key, name, public_key):
    now = ca_mod.utcnow()
    cert = ca_mod.sign_host_certificate(
        ca.cert, ca_key, public_key, name, [name], [], 1, now,
        now + datetime.timedelta(days=30))
    return keys.cert_pem(cert).decode('ascii')


def aggregates():
    def aggregate(ident, name, metadata):
        return objects.Aggregate(id=ident, uuid='%08d-0000-0000-0000-%012d'
                                 % (ident, ident), name=name,
                                 hosts=[], metadata=metadata)
    return [aggregate(1, 'rack-a', {'availability_zone': 'az1'}),
            aggregate(2, 'rack-b', {'availability_zone': 'az2'}),
            aggregate(3, 'tier-gold', {'tier': 'gold'}),
            aggregate(4, 'tier-silver', {'tier': 'gold'})]


def host_states(names, pems):
    aggs = aggregates()
    now = timeutils.utcnow()
    service = {'disabled': False, 'forced_down': False,
               'last_seen_up': now, 'created_at': now, 'updated_at': now,
               'binary': 'nova-compute'}
    states = []
    for index, name in enumerate(names):
        state = host_manager.HostState(name, name, 'cell1')
        compute = objects.ComputeNode(
            uuid='00000000-0000-0000-0000-%012d' % index, host=name,
            hypervisor_hostname=name, memory_mb=65536, free_ram_mb=32768,
            local_gb=1000, free_disk_gb=500, local_gb_used=500,
            disk_available_least=500, vcpus=32, vcpus_used=8,
            updated_at=None, numa_topology=None, pci_device_pools=None,
            host_ip='192.0.2.1', hypervisor_type='QEMU',
            hypervisor_version=7002000, cpu_info='{}',
            supported_hv_specs=[], metrics='[]',
            cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
            disk_allocation_ratio=1.0,
            stats={secmig_stats.CERT: pems[name],
                   secmig_stats.TLS: 'ready', 'num_instances': '4'})
        state.update(compute=compute, service=service,
                     aggregates=[aggs[index % 2], aggs[2 + index % 2]])
        states.append(state)
    return states


def request_spec(context):
    flavor = objects.Flavor(
        name='m1.small', flavorid='1', memory_mb=512, vcpus=1, root_gb=1,
        ephemeral_gb=0, swap=0, extra_specs={
            'secmig:level': 'internal',
            'aggregate_instance_extra_specs:tier': 'gold'})
    return objects.RequestSpec(
        context, instance_uuid='11111111-2222-3333-4444-555555555555',
        project_id=context.project_id, user_id=context.user_id,
        flavor=flavor, image=objects.ImageMeta(properties=objects
                                               .ImageMetaProps()),
        ignore_hosts=['source'], num_instances=1)


def per_host(filters, hosts, specs):
    """Median seconds per host of one ``filter_all`` pass of each filter.

    The filters take turns within each round, so that the load of the
    machine weighs on all of them alike.
    """
    samples = [[] for _ in filters]
    for spec in specs:
        for filter_obj, times in zip(filters, samples):
            seconds, passed = timed_pass(filter_obj, hosts, spec)
            times.append(seconds / len(hosts))
            if passed != len(hosts):
                raise SystemExit('%s passed %d of %d hosts: the benchmark '
                                 'expects every host to pass'
                                 % (type(filter_obj).__name__, passed,
                                    len(hosts)))
    return [statistics.median(times) for times in samples]


def timed_pass(filter_obj, hosts, spec, collect=True):
    """Seconds of one pass, and the number of hosts passed.

    With ``collect``, the pass starts after a garbage collection, so that
    a single pass does not pay for the garbage of the set-up or of the
    passes before it.
    """
    if collect:
        gc.collect()
    start = time.perf_counter()
    passed = len(list(filter_obj.filter_all(hosts, spec)))
    return time.perf_counter() - start, passed


def write_crl(ca, cert_dir, revoked):
    """A CRL from the CA revoking the serials ``revoked``, installed."""
    ca_key = ca._key()
    now = ca_mod.utcnow()
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now - datetime.timedelta(minutes=5))
               .next_update(now + datetime.timedelta(days=7)))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now).build())
    crl = builder.sign(ca_key, keys.signature_hash(ca_key))
    with open(os.path.join(cert_dir, ca_mod.CA_CRL), 'wb') as f:
        f.write(crl.public_bytes(keys.serialization.Encoding.PEM))


def publish(host, pem):
    """``host`` publishes ``pem``, as its next resource report does."""
    host.stats = dict(host.stats, **{secmig_stats.CERT: pem})


def write_conf(tmp, ca):
    cert_dir = os.path.join(tmp, 'controller')
    os.makedirs(cert_dir)
    for name in (ca_mod.CA_CERT, ca_mod.CA_CRL):
        with open(os.path.join(ca.ca_dir, name), 'rb') as src, \
                open(os.path.join(cert_dir, name), 'wb') as dst:
            dst.write(src.read())
    policy = os.path.join(tmp, 'migration-policy.yaml')
    with open(policy, 'w') as f:
        f.write(POLICY)
    path = os.path.join(tmp, 'secmig.conf')
    with open(path, 'w') as f:
        f.write('[pki]\ncert_dir = %s\nverdict_refresh_interval = 3600\n'
                '[policy]\npolicy_file = %s\n' % (cert_dir, policy))
    return path, cert_dir


class Run:
    """The figures of one host count."""

    def __init__(self, ca, cert_dir, hosts, context, rounds):
        self.ca, self.cert_dir = ca, cert_dir
        self.hosts, self.context, self.rounds = hosts, context, rounds

    def spec(self):
        return request_spec(self.context)

    def start(self):
        """The first pass, passes while verifying, time to verify all."""
        secure = secmig_filter.SecureMigrationFilter()
        gc.collect()
        start = time.perf_counter()
        first, passed = timed_pass(secure, self.hosts, self.spec(), False)
        self.first, self.first_passed = first, passed
        during = []
        while secure._verdicts.pending():
            # Ten requests a second meanwhile (a collection before each
            # would hold the worker up: the median takes care of them).
            time.sleep(max(0.0, 0.1 - during[-1] if during else 0.1))
            during.append(timed_pass(secure, self.hosts, self.spec(),
                                     False)[0])
        secure._verdicts.wait()
        self.verifying = time.perf_counter() - start
        self.during = statistics.median(during) if during else None
        self.during_count = len(during)
        return secure

    def steady(self, secure):
        compute = compute_filter.ComputeFilter()
        extra = (aggregate_instance_extra_specs
                 .AggregateInstanceExtraSpecsFilter())
        self.costs = per_host((compute, extra, secure), self.hosts,
                              [self.spec() for _ in range(self.rounds)])

    def one_offs(self, secure):
        verdicts = secure._verdicts
        same, new_crl, renewed = [], [], []
        revoked = []
        key = keys.generate_key().public_key()
        ca_key = self.ca._key()
        for index in range(self.rounds):
            verdicts._refreshed_at = None
            same.append(timed_pass(secure, self.hosts, self.spec())[0])
            # The CA revokes one more host (the last ones, in turn).
            host = self.hosts[-1 - index]
            revoked.append(keys.load_certificate(
                host.stats[secmig_stats.CERT].encode()).serial_number)
            write_crl(self.ca, self.cert_dir, revoked)
            verdicts._refreshed_at = None
            seconds, passed = timed_pass(secure, self.hosts, self.spec())
            if passed != len(self.hosts) - len(revoked):
                raise SystemExit('a new CRL revoking %d hosts left %d of '
                                 '%d' % (len(revoked), passed,
                                         len(self.hosts)))
            new_crl.append(seconds)
            # The refusals a new CRL queues again are verified.
            verdicts.wait()
            # One host publishes a certificate issued anew.
            publish(self.hosts[index], host_certificate(
                self.ca, ca_key, self.hosts[index].host, key))
            seconds, passed = timed_pass(secure, self.hosts, self.spec())
            if passed != len(self.hosts) - len(revoked):
                raise SystemExit('a renewed certificate was not accepted')
            renewed.append(seconds)
        self.same = statistics.median(same)
        self.new_crl = statistics.median(new_crl)
        self.renewed = statistics.median(renewed)

    def idle(self):
        """Seconds to verify every certificate with no request meanwhile."""
        secure = secmig_filter.SecureMigrationFilter()
        start = time.perf_counter()
        list(secure.filter_all(self.hosts, self.spec()))
        secure._verdicts.wait()
        self.verifying_idle = time.perf_counter() - start

    def memory(self):
        """Bytes a filter keeps once every certificate is verified."""
        gc.collect()
        tracemalloc.start()
        secure = secmig_filter.SecureMigrationFilter()
        list(secure.filter_all(self.hosts, self.spec()))
        secure._verdicts.wait()
        gc.collect()
        self.kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return secure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--keys', type=int, default=16)
    args = parser.parse_args()
    # No Nova database here: the filter cannot read what compute nodes
    # publish at start, and would say so at every construction.
    logging.getLogger(secmig_filter.__name__).setLevel(logging.ERROR)
    objects.register_all()
    context = nova_context.RequestContext('admin-user', 'admin-project',
                                          roles=['admin'], is_admin=True)
    with tempfile.TemporaryDirectory() as tmp:
        ca = ca_mod.CertificateAuthority.create(os.path.join(tmp, 'ca'),
                                                'bench CA')
        names = ['cmp%05d' % i for i in range(max(args.hosts))]
        start = time.perf_counter()
        pems = host_certificates(ca, names, args.keys)
        print('issued %d host certificates in %.1f s'
              % (len(names), time.perf_counter() - start))
        path, cert_dir = write_conf(tmp, ca)
        CONF.set_override('config_file', path, group='secmig')
        # The hosts' services reported when their states were built.
        CONF.set_override('service_down_time', 3600)
        runs = []
        for count in args.hosts:
            write_crl(ca, cert_dir, [])
            run = Run(ca, cert_dir, host_states(names[:count], pems),
                      context, args.rounds)
            secure = run.start()
            run.steady(secure)
            run.one_offs(secure)
            del secure
            run.idle()
            run.memory()
            runs.append(run)
    report(runs)


def report(runs):
    print('\nSteady pass, per host (microseconds), every verdict kept:')
    print('%7s %12s %12s %12s %8s %8s' % (
        'hosts', 'Compute', 'AggrExtra', 'secmig', 'Aggr/C', 'secmig/C'))
    for run in runs:
        c, a, s = run.costs
        print('%7d %12.2f %12.2f %12.2f %7.2fx %7.2fx' % (
            len(run.hosts), c * 1e6, a * 1e6, s * 1e6, a / c, s / c))
    print('\nOne-off passes of SecureMigrationFilter (milliseconds, and '
          'x its steady pass):')
    columns = ('first pass', 'while verifying', 'refresh, same CRL',
               'refresh, new CRL', 'renewed cert')
    print('%7s %10s' % ('hosts', 'steady') + ''.join(
        ' %19s' % c for c in columns))
    for run in runs:
        steady = run.costs[2] * len(run.hosts)
        cells = [run.first, run.during, run.same, run.new_crl, run.renewed]
        print('%7d %10.2f' % (len(run.hosts), steady * 1e3) + ''.join(
            ' %19s' % ('-' if v is None else '%8.2f %8.2fx'
                       % (v * 1e3, v / steady)) for v in cells))
    print('\nFirst pass: %s hosts passed (verified in the request, at most '
          '%d), the others refused as certificate_pending.'
          % (', '.join(str(r.first_passed) for r in runs),
             verdicts_mod.INLINE))
    print('\nBackground verification after a start (seconds: no request '
          'meanwhile; ten a second), and memory kept:')
    print('%7s %8s %12s %8s %12s %12s %12s' % (
        'hosts', 'idle', 'per 1,000', '10/s', 'per 1,000', 'filter MiB',
        'KiB / host'))
    for run in runs:
        count = len(run.hosts)
        print('%7d %8.2f %12.2f %8.2f %12.2f %12.1f %12.2f' % (
            count, run.verifying_idle, run.verifying_idle / count * 1000,
            run.verifying, run.verifying / count * 1000,
            run.kept / 2 ** 20, run.kept / 1024 / count))
    print('\npeak resident set size of this process: %.0f MiB (Nova host '
          'states, certificates and all)'
          % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == '__main__':
    main()
