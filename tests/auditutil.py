"""Read an audit journal the way a test asserts on it."""

import json
import os


def journal_steps(path):
    """``[(step, outcome, decision code)]`` of the events in a journal.

    An absent journal has no steps.
    """
    steps = []
    if not os.path.exists(path):
        return steps
    with open(path) as f:
        for line in f:
            body = json.loads(line).get('body', {})
            if 'step' in body:
                reason = body['event'].get('reason', {})
                steps.append((body['step'], body['outcome'],
                              reason.get('reasonCode')))
    return steps


def journal_evidence(path, step):
    """The evidence of each ``step`` event in a journal, in order."""
    found = []
    with open(path) as f:
        for line in f:
            body = json.loads(line).get('body', {})
            if body.get('step') != step:
                continue
            for attachment in body['event'].get('attachments', []):
                if attachment.get('name') == 'secmig.evidence':
                    found.append(attachment['content'])
    return found


class Attacker:
    """Someone who can write a journal's files but holds no key.

    Every change goes through the files, as an attacker's would.
    """

    def __init__(self, path):
        self.path = path

    def lines(self):
        with open(self.path, 'rb') as f:
            return f.readlines()

    def write(self, raw_lines):
        with open(self.path, 'wb') as f:
            f.write(b''.join(raw_lines))

    def append(self, *raw_lines):
        with open(self.path, 'ab') as f:
            f.write(b''.join(raw_lines))

    def forge(self, kind, body, after=None):
        """A line of ``kind`` chained after line ``after`` (default last)."""
        from secmig.audit import lines

        frame = lines.Frame(after or self.lines()[-1])
        line, _h = lines.encode(frame.seq + 1, frame.h, kind, body)
        return line

    def forge_batch(self, signer='ab' * 32, sig='Zm9yZ2Vk', events=1):
        """Forged events and a checkpoint naming ``signer``; not written."""
        out = []
        for n in range(events):
            out.append(self.forge('event', {'id': 'forged-%d' % n,
                                            'step': 'authorised',
                                            'outcome': 'success'},
                                  after=out[-1] if out else None))
        first = _seq(out[0])
        out.append(self.forge('checkpoint', {
            'first': first, 'last': _seq(out[-1]),
            'time': '2020-01-01T00:00:00+00:00', 'signer': signer,
            'sig': sig}, after=out[-1]))
        return out

    def forge_signed(self, signer, key_time=None, events=1, after=None):
        """Events and a checkpoint signed with ``signer`` (a HostSigner).

        For a party holding some key (another host's, or an old one of
        this host): ``key_time`` also puts a key record dated so before
        them. Not written.
        """
        from secmig.audit import lines

        out = [after] if after else []
        if key_time is not None:
            out.append(self.forge('key', {
                'time': key_time, 'cert': signer.cert_pem,
                'fingerprint': signer.fingerprint,
                'subject': signer.subject}, after=out[-1] if out else None))
        for n in range(events):
            out.append(self.forge('event', {'id': 'forged-%d' % n},
                                  after=out[-1] if out else None))
        last = lines.Frame(out[-1])
        body = {'first': _seq(out[1 if after else 0]), 'last': last.seq,
                'time': key_time or '2020-01-01T00:00:00+00:00',
                'signer': signer.fingerprint}
        body['sig'] = signer.sign(lines.signed_message(last.seq + 1, last.h,
                                                       body))
        out.append(self.forge('checkpoint', body, after=out[-1]))
        return out[1:] if after else out

    def read(self, suffix):
        with open(self.path + suffix, 'rb') as f:
            return f.read()

    def put(self, suffix, data):
        with open(self.path + suffix, 'wb') as f:
            f.write(data)

    def remove(self, suffix):
        os.unlink(self.path + suffix)


def _seq(raw):
    return json.loads(raw)['seq']


def run_cli(*argv):
    """``secmig`` with ``argv``: ``(status, stdout, stderr)``."""
    import contextlib
    import io

    from secmig.cmd import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main.main(list(argv))
    return status, out.getvalue(), err.getvalue()
