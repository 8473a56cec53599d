"""``secmig audit``: verify, read, deliver and recover the audit journal.

::

    secmig audit verify /var/lib/secmig/audit/journal.jsonl \\
        --ca /etc/pki/qemu/ca-cert.pem --host cmp1
    secmig audit show /var/lib/secmig/audit/journal.jsonl --migration ID
    secmig audit deliver
    secmig audit recover

``verify`` exits 0 only when the journal is intact; otherwise it prints
the reason code and the first record concerned and exits 1.
"""

import datetime
import json
import os
import sys

from secmig.audit import events
from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import signing
from secmig.audit import verify as audit_verify
from secmig import exception
from secmig.pki import fileio
from secmig.pki import host as host_mod
from secmig.pki import keys
from secmig.pki import verify as pki_verify


def _anchor(args, conf):
    """Return ``(trust, pinned, host)`` for the verifier.

    The journal's host is ``--host``; else the name in the pinned
    certificate (``--cert``) or in this host's own certificate; else None
    (the journal's first certificate names it, which binds nothing).
    """
    if args.cert:
        certs = [keys.load_certificate(fileio.read_bytes(path,
                                                         'certificate'),
                                       path) for path in args.cert]
        return (None, {keys.fingerprint(c) for c in certs},
                args.host or signing.common_name(certs[0]))
    ca = args.ca or os.path.join(conf.pki.cert_dir, host_mod.CA_CERT)
    if not os.path.exists(ca):
        raise exception.SecmigError(
            'no trust anchor: %s does not exist; give the CA bundle that '
            'issued the host certificate (--ca) or the host certificate '
            'itself (--cert)' % ca, code='no_trust_anchor')
    return (pki_verify.TrustStore.from_files(ca, args.crl), None,
            args.host or _own_host(conf))


def _own_host(conf):
    """The name in this host's certificate, or None when it has none."""
    path = os.path.join(conf.pki.cert_dir, host_mod.SERVER_CERT)
    try:
        cert = keys.load_certificate(fileio.read_bytes(path, 'certificate'),
                                     path)
    except exception.SecmigError:
        return None
    return signing.common_name(cert)


def _when(text):
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise exception.SecmigError(
            '--at %r is not an ISO 8601 time (e.g. 2025-01-31T12:00:00Z)'
            % text, code='bad_argument') from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when


def do_verify(args, conf):
    if not os.path.isfile(args.journal):
        raise exception.SecmigError('%s is not a file' % args.journal,
                                    code='unreadable_file')
    trust, pinned, host = _anchor(args, conf)
    verdict = audit_verify.verify_journal(
        args.journal, trust=trust, pinned=pinned, host=host,
        now=_when(args.at) if args.at else None)
    if args.json:
        print(json.dumps(verdict.as_dict(), sort_keys=True))
    elif verdict:
        print('%s: %s' % (args.journal, verdict.reason))
    else:
        print('%s: NOT INTACT (%s) at record %s: %s'
              % (args.journal, verdict.code, verdict.details.get('record'),
                 verdict.reason))
    if host is None and not args.json:
        print('note: no host to bind the journal to (give --host): its own '
              'first certificate named it, so another host\'s journal '
              'would pass', file=sys.stderr)
    return 0 if verdict else 1


def _records(path, migration=None):
    try:
        f = open(path, 'rb')
    except OSError as e:
        raise exception.SecmigError('cannot read %s: %s'
                                    % (path, e.strerror),
                                    code='unreadable_file') from e
    with f:
        for raw in f:
            try:
                frame = lines.Frame(raw)
                if frame.kind not in lines.RECORD_KINDS:
                    continue
                body = frame.body()
            except lines.LineError as e:
                raise exception.SecmigError(
                    '%s: a line after the records shown is damaged (%s); '
                    'run "secmig audit verify"' % (path, e),
                    code='journal_tampered') from e
            if migration and body.get('migration_id') != migration:
                continue
            yield frame, body


def _summary(frame, body):
    """One line about a record; any body (the journal may be damaged)."""
    if frame.kind == 'recovered':
        if body.get('reason'):
            return ('%7d  %s  journal started over: the previous journal '
                    '(%s bytes) was set aside as %s: %s'
                    % (frame.seq, body.get('time'),
                       body.get('dropped_bytes'), body.get('saved_as'),
                       body.get('reason')))
        return ('%7d  %s  journal recovered: %s unsigned bytes after record '
                '%s set aside as %s' % (frame.seq, body.get('time'),
                                        body.get('dropped_bytes'),
                                        body.get('after_record'),
                                        body.get('saved_as')))
    event = _object(body.get('event'))
    decision = _object(_object(events.evidence_of(event)).get('decision'))
    text = '%7d  %s  %-17s %-7s migration=%s instance=%s' % (
        frame.seq, event.get('eventTime'), body.get('step'),
        body.get('outcome'), body.get('migration_id'),
        body.get('instance_uuid'))
    if decision:
        text += ' decision=%s: %s' % (decision.get('code'),
                                      decision.get('reason'))
    return text + ' id=%s' % body.get('id')


def _object(value):
    return value if isinstance(value, dict) else {}


def do_show(args, conf):
    count = 0
    for frame, body in _records(args.journal, args.migration):
        count += 1
        if args.json:
            print(json.dumps({'seq': frame.seq, 'hash': frame.h,
                              'record': body}, sort_keys=True))
        else:
            print(_summary(frame, body))
    if not count and args.migration:
        print('no record of migration %s in %s'
              % (args.migration, args.journal), file=sys.stderr)
        return 1
    return 0


def do_deliver(args, conf):
    # Imported here: oslo.messaging is slow to import and warns about
    # eventlet on stderr, which no other secmig command should pay for.
    from secmig.audit import delivery
    from secmig.audit import transport

    path = args.journal or conf.audit.journal_path
    outbox = transport.outbox_from_conf(
        conf, path, args.host or _own_host(conf) or os.uname().nodename)
    try:
        sent, pending = outbox.deliver_or_raise()
    except delivery.DeliveryError as e:
        print('delivered %d records; stopped: %s'
              % (outbox.delivered, e), file=sys.stderr)
        return 1
    if pending is None:
        print('another process is delivering %s' % path)
        return 0
    print('delivered %d records; none pending' % sent)
    return 0


def do_recover(args, conf):
    path = args.journal or conf.audit.journal_path
    signer = signing.HostSigner.from_cert_dir(conf.pki.cert_dir)
    if os.path.exists(path):
        trust = signer.trust()
        verdict = audit_verify.verify_journal(
            path, trust=trust, pinned=None if trust else {signer.fingerprint},
            host=signer.common_name)
        if verdict:
            raise exception.SecmigError(
                '%s: %s; nothing to set aside' % (path, verdict.reason),
                code='journal_intact')
        reason = '%s at record %s: %s' % (
            verdict.code, verdict.details.get('record'), verdict.reason)
    elif any(os.path.exists(path + suffix)
             for suffix in (journal.HEAD_SUFFIX, journal.CURSOR_SUFFIX)):
        reason = 'the journal was missing; its head or cursor remained'
    else:
        raise exception.SecmigError('%s: no journal; nothing to set aside'
                                    % path, code='unreadable_file')
    writer = journal.Journal(path, signer)
    try:
        aside, seq = writer.start_over(reason)
    finally:
        writer.close()
    print('%s: set aside as %s (%s)' % (path, aside, reason))
    print('a new journal begins: record %d names the one set aside; '
          'records of the old journal not yet delivered can be sent with '
          '"secmig audit deliver --journal %s"' % (seq, aside))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'audit', help='verify, read, deliver and recover the audit journal',
        description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    p = sub.add_parser(
        'verify', help='check a journal end to end; exit 0 only if intact')
    p.add_argument('journal', metavar='JOURNAL')
    p.add_argument('--ca', metavar='PATH',
                   help='CA bundle the signing certificates must chain to '
                        '(default: ca-cert.pem in [pki] cert_dir)')
    p.add_argument('--crl', metavar='PATH',
                   help='revocation list: a revoked signing certificate '
                        'fails verification')
    p.add_argument('--cert', metavar='PATH', action='append',
                   help='accept exactly this signing certificate instead '
                        'of a CA (repeat it for each key the host had)')
    p.add_argument('--host', metavar='NAME',
                   help='the host the journal belongs to: every signing '
                        'certificate must name it (default: the name in '
                        '--cert, else in this host\'s own certificate)')
    p.add_argument('--at', metavar='TIME',
                   help='ISO 8601 time at which the newest signing '
                        'certificate must be valid (default: now); for '
                        'a journal archived before its key expired')
    p.add_argument('--all-signatures', action='store_true',
                   help='accepted for older scripts: every checkpoint\'s '
                        'signature is always checked')
    p.add_argument('--json', action='store_true',
                   help='print the verdict as JSON')
    p.set_defaults(func=do_verify)

    p = sub.add_parser('show', help='list records in journal order (no '
                                    'integrity check: run verify for that)')
    p.add_argument('journal', metavar='JOURNAL')
    p.add_argument('--migration', metavar='ID',
                   help='only the records of this migration')
    p.add_argument('--json', action='store_true',
                   help='one JSON object per record')
    p.set_defaults(func=do_show)

    p = sub.add_parser(
        'deliver', help='send records not yet delivered as notifications')
    p.add_argument('--journal', metavar='PATH',
                   help='default: [audit] journal_path')
    p.add_argument('--host', help='publisher host name (default: this '
                                  'host\'s name)')
    p.set_defaults(func=do_deliver)

    p = sub.add_parser(
        'recover', help='set aside a journal that is not intact and begin a '
                        'new one (nothing is deleted)')
    p.add_argument('--journal', metavar='PATH',
                   help='default: [audit] journal_path')
    p.set_defaults(func=do_recover)
