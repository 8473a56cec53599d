"""Processes of the one-machine cloud: start, wait for, stop.

Every service runs detached in its own session with its output in a log
file and its pid in a pid file, so that ``cloud.py down`` (another
process, maybe after a crash) can stop it. Every wait is bounded and
fails with the tail of the service's log.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class CloudError(Exception):
    """A step of the cloud's set-up failed; the message says which."""


def tail(path, lines=40):
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return '(no log: %s)' % e
    return '\n'.join(text.splitlines()[-lines:])


def run(cmd, log, env=None, timeout=600, input=None):
    """Run a command to completion, its output appended to ``log``."""
    with open(log, 'ab') as out:
        out.write(('$ %s\n' % ' '.join(cmd)).encode())
        out.flush()
        try:
            subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                           env=env, timeout=timeout, check=True,
                           input=input.encode() if input else None)
        except subprocess.TimeoutExpired:
            what = '%s did not finish within %d s' % (cmd[0], timeout)
        except subprocess.CalledProcessError as e:
            what = '%s failed (exit %d)' % (' '.join(cmd), e.returncode)
        else:
            return
    msg = '%s; end of %s:\n%s' % (what, log, tail(log))
    raise CloudError(msg)


def spawn(name, cmd, state_dir, env=None):
    """Start ``cmd`` detached; its pid in ``state_dir/name.pid``."""
    log = os.path.join(state_dir, 'log', name + '.log')
    with open(log, 'ab') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    with open(os.path.join(state_dir, name + '.pid'), 'w') as f:
        f.write('%d %s\n' % (proc.pid, start_time(proc.pid)))
    return Service(name, proc.pid, log)


def start_time(pid):
    """When ``pid`` started (clock ticks since boot), or None.

    With the pid it names a process uniquely, so that a pid file left by
    an earlier run never stops a process that reuses its number.
    """
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def command_name(pid):
    try:
        with open('/proc/%d/comm' % pid) as f:
            return f.read().strip()
    except OSError:
        return None


class Service:
    """A started process and its log."""

    def __init__(self, name, pid, log):
        self.name = name
        self.pid = pid
        self.log = log

    def alive(self):
        return alive(self.pid)

    def fail(self, what):
        msg = '%s: %s; end of %s:\n%s' % (
            self.name, what, self.log, tail(self.log))
        raise CloudError(msg)

    def wait_for(self, ready, what, timeout):
        """Poll ``ready()`` until true; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                self.fail('exited while waiting for %s' % what)
            try:
                if ready():
                    return
            except Exception:  # noqa: S110 - not ready yet
                pass
            if time.monotonic() > deadline:
                self.fail('no %s within %d s' % (what, timeout))
            time.sleep(0.5)

    def wait_http(self, url, timeout=120):
        self.wait_for(lambda: http_answers(url), 'answer from %s' % url,
                      timeout)

    def wait_log(self, text, timeout=120):
        self.wait_for(lambda: text in tail(self.log, 400),
                      '"%s" in its log' % text, timeout)


def http_answers(url):
    """True when ``url`` answers HTTP at all (any status)."""
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def port_open(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stop_pid(pid, timeout=20, group=True):
    """SIGTERM (the process group when ``group``), then SIGKILL."""
    def send(sig):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        send(signal.SIGKILL)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_pidfile(path, names=None, **kwargs):
    """Stop the process a pid file names (if it still runs); drop the file.

    The process must be the one the file was written for: the start time
    :func:`spawn` wrote matches, or (for a daemon's own pid file) its
    command name is in ``names``.
    """
    try:
        with open(path) as f:
            fields = f.read().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return False
    if len(fields) > 1:
        ours = fields[1] == start_time(pid)
    else:
        ours = names is not None and command_name(pid) in names
    if ours:
        stop_pid(pid, **kwargs)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # the daemon removed it as it stopped
    return True
