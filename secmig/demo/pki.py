"""The demo's site PKI, built only with ``secmig pki`` commands.

:class:`CliPKI` runs the same commands an operator types (in-process,
through :func:`secmig.cmd.main.main`) and keeps each command line, so
the demo can show them. Its attributes are the ones
:class:`secmig.nova.cloud.SecmigCloudMixin` reads.
"""

import contextlib
import io
import os

from secmig.cmd import main as cli
from secmig import exception
from secmig.pki import ca as ca_mod
from secmig.pki import host as host_mod


def run_cli(*argv):
    """Run ``secmig ARGV`` in-process; return ``(status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


class CliPKI:
    """A CA in ``base_dir/ca``; host directories in ``base_dir/<host>``.

    Every method raises :class:`~secmig.exception.SecmigError` naming the
    command when a ``secmig pki`` command fails.
    """

    def __init__(self, base_dir, ca_name='secmig demo CA'):
        self.base_dir = base_dir
        self.ca_dir = os.path.join(base_dir, 'ca')
        self.hosts = {}
        self.revoked = set()
        self.commands = []
        self._run('ca-create', '--ca-dir', self.ca_dir, '--name', ca_name)

    def _run(self, *argv):
        argv = ('pki',) + argv
        self.commands.append('secmig ' + ' '.join(argv))
        status, out, err = run_cli(*argv)
        if status != 0:
            raise exception.SecmigError(
                '"secmig %s" failed (%s): %s'
                % (' '.join(argv), status, (err or out).strip()),
                code='demo_pki_failed')
        return out

    def enroll(self, name, clearance=0, address='127.0.0.1'):
        """Token on the CA, key and CSR on the host, sign, install."""
        cert_dir = os.path.join(self.base_dir, name)
        csr = os.path.join(self.base_dir, name + '.csr')
        cert = os.path.join(self.base_dir, name + '.pem')
        token = os.path.join(self.base_dir, name + '.token')
        self._run('token-create', '--ca-dir', self.ca_dir, '--host', name,
                  '--address', address, '--clearance', str(clearance),
                  '--out', token)
        self._run('host-key', '--host', name, '--cert-dir', cert_dir,
                  '--address', address, '--out', csr)
        self._run('sign', '--ca-dir', self.ca_dir, '--csr', csr,
                  '--token-file', token, '--out', cert)
        # No libvirtd runs here, and this process's QEMU reads the key.
        self._run('install', '--cert', cert, '--ca', self.ca_cert_path,
                  '--crl', self.crl_path, '--cert-dir', cert_dir,
                  '--no-libvirt', '--owner', str(os.getuid()),
                  '--group', str(os.getgid()))
        self.hosts[name] = clearance
        return cert_dir

    def revoke(self, name):
        """Revoke ``name``'s certificate and give every host the new CRL."""
        self._run('revoke', '--ca-dir', self.ca_dir, '--cert',
                  os.path.join(self.base_dir, name + '.pem'))
        self.revoked.add(name)
        for host in self.hosts:
            path = os.path.join(self.base_dir, host, host_mod.CA_CRL)
            with open(path, 'wb') as f:
                f.write(self.crl_pem)

    def verify(self, name):
        """``secmig pki verify`` of ``name``'s certificate: (ok, text)."""
        cert_dir = os.path.join(self.base_dir, name)
        status, out, err = run_cli(
            'pki', 'verify', os.path.join(cert_dir, host_mod.SERVER_CERT),
            '--ca', self.ca_cert_path, '--crl', self.crl_path)
        return status == 0, (out + err).strip()

    def cert_dir(self, name):
        return os.path.join(self.base_dir, name)

    @property
    def ca_cert_path(self):
        return os.path.join(self.ca_dir, ca_mod.CA_CERT)

    @property
    def crl_path(self):
        return os.path.join(self.ca_dir, ca_mod.CA_CRL)

    @property
    def ca_cert_pem(self):
        with open(self.ca_cert_path, 'rb') as f:
            return f.read()

    @property
    def crl_pem(self):
        with open(self.crl_path, 'rb') as f:
            return f.read()
