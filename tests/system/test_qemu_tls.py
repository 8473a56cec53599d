"""Real QEMU live migrations over TLS with certificates from secmig's PKI.

Each test runs two QEMU processes on loopback: a destination started with
``-incoming defer`` and a source, both holding a ``tls-creds-x509`` object
with ``verify-peer=on`` over a certificate directory that ``secmig pki``
filled. Guests stay paused, so their memory cannot change under the test.

Where QEMU 7.2 with GnuTLS 3.7.9 reports each refusal, found by running
these migrations. Unless noted, the reason is only in the destination's
stderr, and the source's ``query-migrate`` is no evidence: it says
"failed" with "Cannot write to TLS channel: Input/output error", or even
"completed". The destination checks the peer's certificate after the
TLS 1.3 handshake, by which time a source with a small guest may have
written its whole stream into the socket buffers; without a return path
the source never learns that nothing was loaded. Only the destination's
status tells (libvirt's Finish phase asks the destination).

* source certificate from a foreign CA: the destination's stderr says
  "No certificate was found". The GnuTLS client offers only a
  certificate issued by one of the CA names the server asks for, so the
  foreign certificate never even leaves the source.
* forged CA with the real CA's name: the source does send it; the
  destination's stderr says "The certificate hasn't got a known issuer".
* revoked source certificate (``ca-crl.pem`` in the destination's
  directory): the destination's stderr says "The certificate has been
  revoked".
* expired source certificate: QEMU refuses to start with its own expired
  certificate ("The client certificate ... has expired", source stderr).
  Presented anyway by another TLS client, the destination's stderr says
  "The certificate is not trusted" (QEMU prints that generic text for
  GnuTLS' EXPIRED status).
* destination certificate not valid for the ``tls-hostname``: the source
  refuses; the reason is the source's ``query-migrate`` ``error-desc``
  (and its stderr): "Certificate does not match the hostname dst".
* plaintext source, TLS destination: the destination's stderr says "TLS
  handshake failed: An unexpected TLS packet was received".
"""

import datetime
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

from secmig.demo import qemu
from secmig.pki import ca as ca_mod
from secmig.pki import host as host_mod
from tests import pkiutil

GUEST_MIB = 64
PAGE = 4096
#: Guest-physical address of the canary; 16 MiB is plain RAM on ``pc``.
CANARY_ADDRESS = 0x1000000
CANARY_SIZE = 64 * PAGE
CA_NAME = 'secmig system-test CA'
#: The QEMU migration stream's magic and version (``QEVM``, 3).
QEVM = b'QEVM\x00\x00\x00\x03'
#: Bytes of each direction the relay keeps; far above a paused 64 MiB
#: guest's stream (mostly zero pages, sent as flags).
RELAY_LIMIT = 256 << 20
RELAY_TIMEOUT = 60

NO_QEMU = ('qemu-system-x86_64 is not installed (Debian: apt-get install '
           'qemu-system-x86); the QEMU TLS migration tests need it')


def pki(*args):
    """Run ``secmig pki ARGS`` as a subprocess; return its stdout."""
    result = subprocess.run(
        [sys.executable, '-m', 'secmig.cmd.main', 'pki'] + list(args),
        capture_output=True, text=True, timeout=60)
    if result.returncode:
        raise AssertionError('secmig pki %s failed: %s'
                             % (' '.join(args), result.stderr))
    return result.stdout.strip()


def enroll(base_dir, ca_dir, host, addresses=('127.0.0.1',)):
    """Enroll ``host`` the documented way; return its certificate dir."""
    cert_dir = os.path.join(base_dir, host)
    csr = os.path.join(base_dir, host + '.csr')
    cert = os.path.join(base_dir, host + '.pem')
    address_args = [arg for a in addresses for arg in ('--address', a)]
    token = os.path.join(base_dir, host + '.token')
    pki('token-create', '--ca-dir', ca_dir, '--host', host, '--out', token,
        *address_args)
    pki('host-key', '--host', host, '--cert-dir', cert_dir,
        '--out', csr, *address_args)
    pki('sign', '--ca-dir', ca_dir, '--csr', csr, '--token-file', token,
        '--out', cert)
    install(ca_dir, cert, cert_dir)
    return cert_dir


def install(ca_dir, cert, cert_dir):
    pki('install', '--cert', cert,
        '--ca', os.path.join(ca_dir, ca_mod.CA_CERT),
        '--crl', os.path.join(ca_dir, ca_mod.CA_CRL), '--cert-dir', cert_dir,
        # QEMU runs as this process; no libvirtd reads /etc/pki here.
        '--no-libvirt', '--owner', str(os.getuid()),
        '--group', str(os.getgid()))


def cert_dir_with(path, identity_dir, *ca_files):
    """A QEMU cert dir with the key pair of ``identity_dir``.

    ``ca-cert.pem`` is the concatenation of ``ca_files``: QEMU checks its
    own certificate against it at start, and its peer's.
    """
    os.makedirs(path)
    for name in (host_mod.SERVER_CERT, host_mod.SERVER_KEY,
                 host_mod.CLIENT_CERT, host_mod.CLIENT_KEY):
        shutil.copy(os.path.join(identity_dir, name), path)
    with open(os.path.join(path, host_mod.CA_CERT), 'wb') as bundle:
        for ca_file in ca_files:
            with open(ca_file, 'rb') as f:
                bundle.write(f.read())
    return path


def canary_pages(canary):
    return [canary[i:i + PAGE] for i in range(0, len(canary), PAGE)]


class Relay:
    """Forward one TCP connection on loopback and record what it carries.

    :attr:`upstream` holds the bytes the source sent (up to
    ``RELAY_LIMIT``); call :meth:`close` before reading it.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.upstream = bytearray()
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(RELAY_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        with client, socket.create_connection(
                ('127.0.0.1', self.target_port), RELAY_TIMEOUT) as server:
            client.settimeout(RELAY_TIMEOUT)
            back = threading.Thread(target=self._pump,
                                    args=(server, client, None), daemon=True)
            back.start()
            self._pump(client, server, self.upstream)
            back.join(RELAY_TIMEOUT)

    @staticmethod
    def _pump(reader, writer, record):
        while True:
            try:
                data = reader.recv(1 << 16)
                if not data:
                    break
                if record is not None and len(record) < RELAY_LIMIT:
                    record += data[:RELAY_LIMIT - len(record)]
                writer.sendall(data)
            except OSError:
                break
        try:
            writer.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.listener.close()
        self.thread.join(RELAY_TIMEOUT)


@unittest.skipUnless(qemu.qemu_binary(), NO_QEMU)
class QemuMigrationTestCase(unittest.TestCase):
    """A CA and two hosts, ``src`` and ``dst``, enrolled via the CLI."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.base_dir = tempfile.mkdtemp(prefix='secmig-qemu-')
        cls.addClassCleanup(shutil.rmtree, cls.base_dir, True)
        cls.ca_dir = os.path.join(cls.base_dir, 'ca')
        cls.ca_cert = os.path.join(cls.ca_dir, ca_mod.CA_CERT)
        pki('ca-create', '--ca-dir', cls.ca_dir, '--name', CA_NAME)
        cls.src_dir = enroll(cls.base_dir, cls.ca_dir, 'src')
        cls.dst_dir = enroll(cls.base_dir, cls.ca_dir, 'dst')
        cls.canary = os.urandom(CANARY_SIZE)
        cls.canary_file = os.path.join(cls.base_dir, 'canary.bin')
        with open(cls.canary_file, 'wb') as f:
            f.write(cls.canary)

    def setUp(self):
        super().setUp()
        self.workdir = tempfile.mkdtemp(prefix='secmig-qemu-run-')
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def guest(self, name, tls_dir, **kwargs):
        """Start a paused guest; it is shut down when the test ends."""
        guest = qemu.Guest(self.workdir, name, memory_mib=GUEST_MIB,
                           tls_dir=tls_dir, **kwargs)
        self.addCleanup(guest.close)
        return guest.start()

    def pair(self, src_dir=None, dst_dir=None):
        """Start a destination and a source; return (source, destination).

        The destination waits for an incoming migration; the source has
        the canary in its RAM.
        """
        destination = self.guest('dst', dst_dir or self.dst_dir,
                                 endpoint='server', incoming=True)
        source = self.guest('src', src_dir or self.src_dir,
                            loads=[(self.canary_file, CANARY_ADDRESS)])
        return source, destination

    def dump(self, guest):
        """The whole guest RAM, as seen through the monitor."""
        return guest.pmemsave(0, GUEST_MIB << 20, os.path.join(
            self.workdir, guest.name + '.mem'))


class TLSMigrationTest(QemuMigrationTestCase):
    """verify-peer=on admits exactly the hosts secmig's CA vouches for."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base, ca_dir = cls.base_dir, cls.ca_dir
        # A host whose certificate was revoked after enrollment keeps its
        # old CRL; the destination gets the new one, as an operator
        # distributes it after `secmig pki revoke`.
        cls.revoked_dir = enroll(base, ca_dir, 'stolen')
        pki('revoke', '--ca-dir', ca_dir, '--cert',
            os.path.join(base, 'stolen.pem'), '--reason', 'key-compromise')
        install(ca_dir, os.path.join(base, 'dst.pem'), cls.dst_dir)
        # A valid host of the same CA that is not "dst".
        cls.other_dir = enroll(base, ca_dir, 'other')
        cls.expired_dir = cls._expired_identity()
        foreign = pkiutil.TestPKI(os.path.join(base, 'foreign'),
                                  ca_name='secmig foreign CA').enroll('src')
        cls.foreign_dir = cert_dir_with(
            os.path.join(base, 'foreign-src'), foreign.cert_dir,
            os.path.join(foreign.cert_dir, host_mod.CA_CERT), cls.ca_cert)
        cls.forged_pki = pkiutil.TestPKI(os.path.join(base, 'forged'),
                                         ca_name=CA_NAME)
        forged = cls.forged_pki.enroll('src')
        cls.forged_dir = cert_dir_with(
            os.path.join(base, 'forged-src'), forged.cert_dir,
            os.path.join(forged.cert_dir, host_mod.CA_CERT), cls.ca_cert)

    @classmethod
    def _expired_identity(cls):
        """``src`` signed by the real CA two days ago for one day.

        `secmig pki install` rightly refuses an expired certificate, so
        the files are laid out by hand.
        """
        ca = ca_mod.CertificateAuthority(cls.ca_dir)
        past = ca_mod.utcnow() - datetime.timedelta(days=2)
        cert_dir = os.path.join(cls.base_dir, 'expired-src')
        token = ca.create_token('src', addresses=['127.0.0.1'], now=past)
        csr = host_mod.make_key_and_csr(cert_dir, 'src',
                                        addresses=['127.0.0.1'])
        cert = ca.sign(csr, token, days=1, now=past)
        for name in (host_mod.SERVER_CERT, host_mod.CLIENT_CERT):
            with open(os.path.join(cert_dir, name), 'wb') as f:
                f.write(cert)
        shutil.copy(cls.ca_cert, cert_dir)
        return cert_dir

    def migrate_pair(self, src_dir=None, dst_dir=None, tls_hostname='dst'):
        """Migrate to a TLS destination; return (info, destination).

        The source uses TLS unless ``tls_hostname`` is None.
        """
        source, destination = self.pair(src_dir, dst_dir)
        port = qemu.listen_incoming(destination)
        info = qemu.migrate(source, port, tls_hostname=tls_hostname)
        self.assertIn(info['status'], ('failed', 'completed'), info)
        return info, destination

    def assertDestinationRefuses(self, reason, src_dir=None,
                                 tls_hostname='dst'):
        """The destination logs ``reason`` and loads nothing.

        The source's own status is no evidence either way: it can report
        ``completed`` for a refused migration (see the module docstring).
        """
        _, destination = self.migrate_pair(src_dir,
                                           tls_hostname=tls_hostname)
        self.assertIn(reason, destination.wait_for_stderr(reason))
        self.assertNotEqual('completed', destination.incoming_status())

    def test_tls_migration_copies_guest_memory(self):
        source, destination = self.pair()
        port = qemu.listen_incoming(destination)

        info = qemu.migrate(source, port, tls_hostname='dst')

        self.assertEqual('completed', info['status'], info)
        self.assertEqual('completed',
                         qemu.wait_incoming(destination)['status'])
        source_ram, destination_ram = self.dump(source), self.dump(destination)
        self.assertEqual(
            self.canary,
            destination_ram[CANARY_ADDRESS:CANARY_ADDRESS + CANARY_SIZE])
        self.assertTrue(source_ram == destination_ram,
                        'guest RAM differs after migration')

    def test_source_from_foreign_ca_refused(self):
        self.assertDestinationRefuses(
            'Verify failed: No certificate was found', self.foreign_dir)

    def test_source_from_forged_ca_with_same_name_refused(self):
        self.assertEqual(self.forged_pki.ca.cert.subject,
                         ca_mod.CertificateAuthority(self.ca_dir).cert.subject)
        self.assertDestinationRefuses(
            "The certificate hasn't got a known issuer", self.forged_dir)

    def test_revoked_source_refused(self):
        self.assertDestinationRefuses('The certificate has been revoked',
                                      self.revoked_dir)

    def test_source_does_not_start_with_expired_certificate(self):
        source = qemu.Guest(self.workdir, 'src', tls_dir=self.expired_dir)
        self.addCleanup(source.close)

        with self.assertRaises(RuntimeError) as caught:
            source.start()

        self.assertIn('client-cert.pem has expired', str(caught.exception))

    def test_expired_certificate_presented_to_destination_refused(self):
        """The destination refuses an expired certificate it is shown.

        Python's ssl module stands in for a source without QEMU's
        self-check (a tampered host): it presents the expired
        certificate; the destination completes the handshake, checks the
        peer and hangs up.
        """
        destination = self.guest('dst', self.dst_dir, endpoint='server',
                                 incoming=True)
        port = qemu.listen_incoming(destination)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.ca_cert)
        context.load_cert_chain(
            os.path.join(self.expired_dir, host_mod.CLIENT_CERT),
            os.path.join(self.expired_dir, host_mod.CLIENT_KEY))

        with socket.create_connection(('127.0.0.1', port),
                                      RELAY_TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname='dst') as tls:
                try:
                    tls.sendall(QEVM)
                    reply = tls.recv(16)
                except OSError:
                    reply = b''

        self.assertEqual(b'', reply)
        reason = 'The certificate is not trusted'
        self.assertIn(reason, destination.wait_for_stderr(reason))
        self.assertNotEqual('completed', destination.incoming_status())

    def test_destination_not_matching_tls_hostname_refused(self):
        info, destination = self.migrate_pair(dst_dir=self.other_dir,
                                              tls_hostname='dst')

        self.assertEqual('failed', info['status'], info)
        self.assertEqual('Certificate does not match the hostname dst',
                         info.get('error-desc'))
        self.assertNotEqual('completed', destination.incoming_status())

    def test_plaintext_source_refused_by_tls_destination(self):
        self.assertDestinationRefuses(
            'TLS handshake failed: An unexpected TLS packet was received',
            tls_hostname=None)


class MigrationWireTest(QemuMigrationTestCase):
    """What a migration stream exposes to someone on the network."""

    def migrate_through_relay(self, tls):
        source, destination = self.pair()
        port = qemu.listen_incoming(destination, tls=tls)
        relay = Relay(port)
        self.addCleanup(relay.close)

        info = qemu.migrate(source, relay.port,
                            tls_hostname='dst' if tls else None)

        self.assertEqual('completed', info['status'], info)
        self.assertEqual('completed',
                         qemu.wait_incoming(destination)['status'])
        relay.close()
        self.assertGreater(len(relay.upstream), CANARY_SIZE)
        return bytes(relay.upstream)

    def test_plaintext_stream_carries_guest_memory(self):
        stream = self.migrate_through_relay(tls=False)

        self.assertTrue(stream.startswith(QEVM), stream[:16])
        for page in canary_pages(self.canary):
            self.assertIn(page, stream)

    def test_tls_stream_carries_no_guest_memory(self):
        stream = self.migrate_through_relay(tls=True)

        self.assertEqual(b'\x16\x03', stream[:2])  # TLS handshake record
        self.assertNotIn(QEVM, stream)
        for page in canary_pages(self.canary):
            # 16 bytes of random data do not occur in ciphertext by chance.
            self.assertNotIn(page[:16], stream)
