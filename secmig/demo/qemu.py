"""Drive real QEMU processes for migration tests and benchmarks.

A :class:`Guest` is one ``qemu-system-x86_64`` process with no disk, no
display and no devices (``-nodefaults``), controlled over QMP on a unix
socket. It can hold a ``tls-creds-x509`` object pointing at a certificate
directory in QEMU's layout (``ca-cert.pem``, ``server-*.pem``,
``client-*.pem``, optional ``ca-crl.pem``) with ``verify-peer=on``, and
it can preload a file into guest RAM (``-device loader``) so that tests
can recognise guest memory on the wire and after migration.

Every wait is bounded; :meth:`Guest.close` always ends the process it
started (``quit`` over QMP, then SIGKILL). Nothing here is a mock.
"""

import json
import os
import shutil
import socket
import subprocess
import time

QEMU = 'qemu-system-x86_64'
#: Seconds a QMP command may take before the guest is considered hung.
QMP_TIMEOUT = 30
#: Seconds a test migration may take before it is cancelled.
MIGRATION_TIMEOUT = 120
#: Terminal states of ``query-migrate``.
FINAL_STATES = ('completed', 'failed', 'cancelled')


class QMPError(Exception):
    """A QMP command answered with an error (``desc`` is QEMU's text)."""

    def __init__(self, command, error):
        self.command = command
        self.error_class = error.get('class')
        self.desc = error.get('desc', '')
        super().__init__('%s: %s' % (command, self.desc))


def qemu_binary():
    """Path of qemu-system-x86_64, or None when it is not installed."""
    return shutil.which(QEMU)


def kvm_usable():
    """True when /dev/kvm opens read-write (else QEMU runs under TCG)."""
    try:
        os.close(os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


class QMP:
    """A minimal synchronous QMP client on a unix socket.

    Asynchronous events are kept in :attr:`events`; :meth:`execute`
    returns the ``return`` member of the answer or raises
    :class:`QMPError`.
    """

    def __init__(self, path, timeout=QMP_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = self.sock.makefile('rb')
        self.events = []
        greeting = self._read()
        if 'QMP' not in greeting:
            raise QMPError('greeting', {'desc': repr(greeting)})
        self.execute('qmp_capabilities')

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError('QEMU closed the QMP socket')
        return json.loads(line)

    def execute(self, command, **arguments):
        message = {'execute': command}
        if arguments:
            message['arguments'] = arguments
        self.sock.sendall(json.dumps(message).encode() + b'\n')
        while True:
            answer = self._read()
            if 'event' in answer:
                self.events.append(answer)
            elif 'error' in answer:
                raise QMPError(command, answer['error'])
            elif 'return' in answer:
                return answer['return']

    def close(self):
        self.reader.close()
        self.sock.close()


class Guest:
    """One QEMU process with a QMP monitor.

    :param workdir: directory for the QMP socket and the stderr log.
    :param name: short name, used in file names.
    :param memory_mib: guest RAM.
    :param tls_dir: certificate directory; adds ``tls-creds-x509``
        object ``tls0`` with ``verify-peer=on``.
    :param endpoint: ``server`` (destination) or ``client`` (source).
    :param incoming: start paused, waiting for ``migrate-incoming``.
    :param loads: ``(path, guest_physical_address)`` pairs copied into
        guest RAM before the guest starts.
    """

    def __init__(self, workdir, name, memory_mib=64, tls_dir=None,
                 endpoint='client', incoming=False, loads=()):
        self.name = name
        self.qmp_path = os.path.join(workdir, name + '.qmp')
        self.stderr_path = os.path.join(workdir, name + '.stderr')
        self.argv = self._argv(memory_mib, tls_dir, endpoint, incoming,
                               loads)
        self.process = None
        self.qmp = None

    def _argv(self, memory_mib, tls_dir, endpoint, incoming, loads):
        accel = 'kvm' if kvm_usable() else 'tcg'
        argv = [qemu_binary() or QEMU, '-name', self.name,
                '-accel', accel, '-cpu', 'qemu64', '-m', str(memory_mib),
                '-nographic', '-nodefaults', '-S',
                '-chardev', 'socket,id=qmp,path=%s,server=on,wait=off'
                % self.qmp_path,
                '-mon', 'chardev=qmp,mode=control']
        if tls_dir:
            argv += ['-object', 'tls-creds-x509,id=tls0,dir=%s,'
                     'endpoint=%s,verify-peer=on' % (tls_dir, endpoint)]
        for path, address in loads:
            argv += ['-device', 'loader,file=%s,addr=%#x,force-raw=on'
                     % (path, address)]
        if incoming:
            argv += ['-incoming', 'defer']
        return argv

    def start(self, timeout=QMP_TIMEOUT):
        """Start QEMU and connect to its monitor; returns self.

        Raises RuntimeError with QEMU's stderr when QEMU exits at start
        (for example because it refuses its own certificate); the process
        is gone whatever goes wrong.
        """
        with open(self.stderr_path, 'wb') as err:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        try:
            self._connect(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self, timeout):
        deadline = time.monotonic() + timeout
        while self.qmp is None:
            if self.process.poll() is not None:
                raise RuntimeError('%s exited with %s: %s' % (
                    self.name, self.process.returncode, self.stderr()))
            try:
                self.qmp = QMP(self.qmp_path)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise TimeoutError('%s: no QMP socket after %ss'
                                       % (self.name, timeout))
                time.sleep(0.05)

    def execute(self, command, **arguments):
        return self.qmp.execute(command, **arguments)

    def hmp(self, command_line):
        """Run a human monitor command; returns its text output."""
        return self.execute('human-monitor-command',
                            **{'command-line': command_line})

    def pmemsave(self, address, size, path):
        """Dump guest physical memory to ``path``; returns the bytes."""
        output = self.hmp('pmemsave %d %d "%s"' % (address, size, path))
        if output.strip():
            raise QMPError('pmemsave', {'desc': output.strip()})
        with open(path, 'rb') as f:
            return f.read()

    def incoming_status(self, timeout=10):
        """The destination's migration status, or ``exited N``.

        A destination whose incoming stream breaks off after the TLS
        handshake exits (QEMU ends the process when loading fails).
        """
        try:
            return self.execute('query-migrate').get('status', 'none')
        except (OSError, ValueError):
            return 'exited %s' % self.process.wait(timeout)

    def stderr(self):
        """What QEMU wrote to stderr so far (errors, TLS refusals)."""
        try:
            with open(self.stderr_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except FileNotFoundError:
            return ''

    def wait_for_stderr(self, text, timeout=10):
        """Return stderr once it contains ``text``, or after ``timeout``.

        QEMU logs a refused TLS session when it tears the session down,
        which can be a moment after the peer has seen the failure.
        """
        deadline = time.monotonic() + timeout
        while text not in self.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stderr()

    def close(self, timeout=10):
        """Quit QEMU; kill it if it does not exit within ``timeout``."""
        if self.process is None:
            return
        if self.qmp is not None:
            try:
                self.execute('quit')
            except (OSError, ValueError, QMPError):
                pass  # already gone or hung: killed below
            self.qmp.close()
            self.qmp = None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()


def listen_incoming(destination, tls=True, host='127.0.0.1'):
    """Make the destination listen on an ephemeral port; return the port.

    With ``tls`` the incoming stream must be TLS with the ``tls0``
    credentials (QEMU refuses a plaintext stream then).
    """
    destination.execute('migrate-set-parameters',
                        **{'tls-creds': 'tls0' if tls else ''})
    destination.execute('migrate-incoming', uri='tcp:%s:0' % host)
    addresses = destination.execute('query-migrate')['socket-address']
    return int(addresses[0]['port'])


def migrate(source, port, tls_hostname=None, host='127.0.0.1',
            timeout=MIGRATION_TIMEOUT, max_bandwidth=None):
    """Migrate ``source`` to ``host:port``; return the final query-migrate.

    ``tls_hostname`` turns TLS on (credentials ``tls0``) and names the
    host the destination's certificate must be valid for. The status is
    ``completed`` or ``failed`` (with ``error-desc``); a migration still
    running after ``timeout`` seconds is cancelled and TimeoutError
    raised. ``max_bandwidth`` is in bytes per second (QEMU's default cap
    is 128 MiB/s).
    """
    parameters = {'tls-creds': '', 'tls-hostname': ''}
    if tls_hostname is not None:
        parameters = {'tls-creds': 'tls0', 'tls-hostname': tls_hostname}
    if max_bandwidth is not None:
        parameters['max-bandwidth'] = max_bandwidth
    source.execute('migrate-set-parameters', **parameters)
    source.execute('migrate', uri='tcp:%s:%d' % (host, port))
    deadline = time.monotonic() + timeout
    while True:
        info = source.execute('query-migrate')
        if info.get('status') in FINAL_STATES:
            # Statistics can lag the status change by one read.
            return source.execute('query-migrate')
        if time.monotonic() > deadline:
            source.execute('migrate_cancel')
            raise TimeoutError('migration still %s after %ss'
                               % (info.get('status'), timeout))
        time.sleep(0.05)


def wait_incoming(destination, timeout=MIGRATION_TIMEOUT):
    """Wait until the destination's incoming migration ends; return it."""
    deadline = time.monotonic() + timeout
    while True:
        info = destination.execute('query-migrate')
        if info.get('status') in FINAL_STATES:
            return info
        if time.monotonic() > deadline:
            raise TimeoutError('incoming migration still %s after %ss'
                               % (info.get('status'), timeout))
        time.sleep(0.05)


def encrypted_migration(workdir, source_dir, destination_dir,
                        destination_name, memory_mib=64):
    """One TLS migration between two paused guests on loopback.

    ``source_dir`` and ``destination_dir`` are certificate directories in
    QEMU's layout (as ``secmig pki install`` writes them);
    ``destination_name`` is the name the destination's certificate must
    carry. Returns ``(source's final query-migrate, destination's
    status)``; both guests are gone when it returns.
    """
    destination = Guest(workdir, 'demo-dst', memory_mib, destination_dir,
                        endpoint='server', incoming=True)
    source = Guest(workdir, 'demo-src', memory_mib, source_dir,
                   endpoint='client')
    with destination, source:
        port = listen_incoming(destination)
        info = migrate(source, port, tls_hostname=destination_name)
        if info.get('status') == 'completed':
            wait_incoming(destination)
        return info, destination.incoming_status()
