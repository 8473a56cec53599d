"""What crosses the loopback wire: the first bytes of TCP connections.

The compute hosts share the machine's network (host networking), so a
migration stream from one host's QEMU to another's travels over ``lo``.
:class:`FirstBytes` records, for every TCP connection to a given address
and port range, the first payloads the client sent. A TLS stream starts
with a handshake record (``0x16 0x03``), a plaintext QEMU migration
stream with ``QEVM``. A block migration's NBD connection negotiates in
clear first, as the NBD protocol does: the client's flags, then its
first option, which must be ``NBD_OPT_STARTTLS``, then a TLS handshake.
Needs root (a packet socket).
"""

import socket
import struct
import threading
import time

ETH_P_ALL = 0x0003
#: libvirt's default port range for incoming migrations and NBD disks.
MIGRATION_PORTS = range(49152, 49216)
TLS_HANDSHAKE = b'\x16\x03'
QEMU_PLAINTEXT = b'QEVM'
#: An NBD client's first option, asking for TLS (option 5).
NBD_STARTTLS = b'IHAVEOPT\x00\x00\x00\x05'


class FirstBytes(threading.Thread):
    """Capture first payloads to ``address``:``ports`` until stopped."""

    def __init__(self, address, ports, keep=3, max_seconds=600):
        super().__init__(daemon=True)
        self.address = socket.inet_aton(address)
        self.ports = ports
        self.keep = keep
        self.max_seconds = max_seconds
        #: (client port, server port) -> the first ``keep`` payloads
        self.first = {}
        self._halt = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                   socket.htons(ETH_P_ALL))
        self._sock.bind(('lo', 0))
        self._sock.settimeout(0.2)

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                frame = self._sock.recv(65535)
            except socket.timeout:
                continue
            self._record(frame)
        self._sock.close()

    def _record(self, frame):
        # Ethernet header (14 bytes, all zero on lo), then IPv4.
        if len(frame) < 34 or frame[12:14] != b'\x08\x00':
            return
        ip = frame[14:]
        ihl = (ip[0] & 0x0f) * 4
        if ip[9] != socket.IPPROTO_TCP or ip[16:20] != self.address:
            return
        tcp = ip[ihl:]
        sport, dport = struct.unpack('!HH', tcp[:4])
        if dport not in self.ports:
            return
        total = struct.unpack('!H', ip[2:4])[0]
        seq = struct.unpack('!I', tcp[4:8])[0]
        payload = ip[ihl + (tcp[12] >> 4) * 4:total]
        seen = self.first.setdefault((sport, dport), {})
        # lo shows each segment twice (sent and received): key by seq.
        if payload and len(seen) < self.keep:
            seen.setdefault(seq, bytes(payload[:32]))

    def stop(self):
        """Stop; ``{(client port, port): [payload, ...]}`` in order."""
        self._halt.set()
        self.join(5)
        return {conn: [seen[seq] for seq in sorted(seen)]
                for conn, seen in self.first.items() if seen}


def encrypted(payloads):
    """Whether a connection's first payloads show a TLS stream."""
    if payloads[0].startswith(TLS_HANDSHAKE):
        return True
    # NBD: 4 bytes of client flags, STARTTLS, then the TLS handshake.
    return (len(payloads) == 3 and len(payloads[0]) == 4
            and payloads[1].startswith(NBD_STARTTLS)
            and payloads[2].startswith(TLS_HANDSHAKE))
