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
steady state, with the verdict cache warm; a fresh RequestSpec is used
for every pass, as the scheduler sees every request anew. The one-off
costs are printed too: the first pass (every certificate verified), a
pass with a verdict refresh due and the CA and CRL unchanged, and one
after the CA published a new CRL (every certificate verified again).

Prints the median per-host cost in microseconds and the ratios to
ComputeFilter.
"""

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir))

from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
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
from secmig.pki import clearance  # noqa: E402
from secmig.pki import keys  # noqa: E402

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
    now = ca_mod.utcnow()
    pairs = [keys.generate_key() for _ in range(key_count)]
    pems = {}
    for index, name in enumerate(names):
        public_key = pairs[index % key_count].public_key()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([
                       x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                          'secmig'),
                       clearance.attribute(1),
                       x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca.cert.subject)
                   .public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=30)))
        builder = ca_mod.host_extensions_builder(
            builder, public_key, ca.cert, [name], [], 1)
        cert = builder.sign(ca_key, keys.signature_hash(ca_key))
        pems[name] = keys.cert_pem(cert).decode('ascii')
    return pems


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
            start = time.perf_counter()
            passed = len(list(filter_obj.filter_all(hosts, spec)))
            times.append((time.perf_counter() - start) / len(hosts))
            if passed != len(hosts):
                raise SystemExit('%s passed %d of %d hosts: the benchmark '
                                 'expects every host to pass'
                                 % (type(filter_obj).__name__, passed,
                                    len(hosts)))
    return [statistics.median(times) for times in samples]


def timed_pass(secure, hosts, context):
    """Seconds of one pass of ``secure`` with a verdict refresh due."""
    secure._verdicts._refreshed_at = None
    start = time.perf_counter()
    list(secure.filter_all(hosts, request_spec(context)))
    return time.perf_counter() - start


def publish_crl(ca, cert_dir):
    """A new CRL from the CA, installed where the filter reads it."""
    ca.publish_crl()
    with open(os.path.join(ca.ca_dir, ca_mod.CA_CRL), 'rb') as src, \
            open(os.path.join(cert_dir, ca_mod.CA_CRL), 'wb') as dst:
        dst.write(src.read())


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
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--keys', type=int, default=16)
    args = parser.parse_args()
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
        CONF.set_override('config_file', write_conf(tmp, ca),
                          group='secmig')
        rows = []
        for count in args.hosts:
            hosts = host_states(names[:count], pems)
            specs = [request_spec(context) for _ in range(args.rounds + 1)]
            compute = compute_filter.ComputeFilter()
            extra = (aggregate_instance_extra_specs
                     .AggregateInstanceExtraSpecsFilter())
            secure = secmig_filter.SecureMigrationFilter()
            start = time.perf_counter()
            list(secure.filter_all(hosts, specs[-1]))
            warm = time.perf_counter() - start
            unchanged = timed_pass(secure, hosts, context)
            publish_crl(ca, os.path.join(tmp, 'controller'))
            changed = timed_pass(secure, hosts, context)
            costs = per_host((compute, extra, secure), hosts,
                             specs[:args.rounds])
            rows.append((count, costs, (warm, unchanged, changed)))
    print('%7s %14s %14s %14s %8s %8s' % (
        'hosts', 'Compute us/h', 'AggrExtra us/h', 'secmig us/h',
        'Aggr/C', 'secmig/C'))
    for count, (c, a, s), _ in rows:
        print('%7d %14.2f %14.2f %14.2f %7.2fx %7.2fx' % (
            count, c * 1e6, a * 1e6, s * 1e6, a / c, s / c))
    print('One-off costs of SecureMigrationFilter (seconds per pass):')
    print('%7s %12s %18s %18s' % ('hosts', 'first pass', 'refresh, same CRL',
                                  'refresh, new CRL'))
    for count, _, (warm, unchanged, changed) in rows:
        print('%7d %12.2f %18.2f %18.2f' % (count, warm, unchanged, changed))


if __name__ == '__main__':
    main()
