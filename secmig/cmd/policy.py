"""``secmig policy``: check the migration policy and explain decisions.

Check a policy file before installing it (prints its digest; on error,
``FILE:LINE: problem`` and exit status 1)::

    secmig policy check /etc/secmig/migration-policy.yaml

See what the policy decides for given facts, which rule decided and the
constraints an allowed migration must respect (exit status 0 when
allowed, 1 when refused)::

    secmig policy explain --facts facts.json [--now EPOCH] [--json]

The facts file is a JSON object with ``request``, ``instance``,
``source``, ``destination`` and optionally ``now``; the policy guide
describes every key.
"""

import argparse
import json
import sys
import time

from secmig import exception
from secmig.pki import fileio
from secmig.policy import evaluate
from secmig.policy import facts as facts_mod
from secmig.policy import loader


def do_check(args, conf):
    path = args.file or conf.policy.policy_file
    try:
        policy = loader.load(path)
    except loader.PolicyError as e:
        print(e, file=sys.stderr)
        return 1
    print(policy.digest)
    return 0


def _read_facts(path):
    data = (sys.stdin.read() if path == '-'
            else fileio.read_bytes(path, 'facts file').decode('utf-8',
                                                              'replace'))
    try:
        return json.loads(data)
    except ValueError as e:
        raise exception.SecmigError('%s: not valid JSON: %s' % (path, e),
                                    code='bad_facts')


def _explain(decision, policy_path, policy):
    lines = [str(decision)]
    rule = decision.details.get('rule')
    line = policy.line_of(rule) if policy is not None and rule else None
    where = ' (%s:%d)' % (policy_path, line) if line else ''
    lines.append('rule: %s%s' % (rule, where))
    constraints = decision.details.get('constraints')
    if constraints:
        lines.append('constraints: ' + ', '.join(
            '%s=%s' % (key, 'no cap' if value is None else value)
            for key, value in sorted(constraints.items())))
    lines.append('policy digest: %s'
                 % (decision.details.get('policy_digest') or 'none'))
    return '\n'.join(lines)


def do_explain(args, conf):
    path = args.policy or conf.policy.policy_file
    request, instance, source, destination, now = facts_mod.from_dict(
        _read_facts(args.facts))
    if args.trigger:
        request = facts_mod.Request(args.trigger, request.credentials)
    if args.now is not None:
        now = args.now
    elif now is None:
        now = time.time()
    try:
        policy = loader.load(path)
    except loader.PolicyError as e:
        policy, decision = None, loader.unavailable(e)
    else:
        decision = evaluate.evaluate(request, instance, source, destination,
                                     policy, now)
    if args.json:
        print(json.dumps(decision.as_dict(), indent=1, sort_keys=True))
    else:
        print(_explain(decision, path, policy))
    return 0 if decision else 1


def add_parser(subparsers):
    policy = subparsers.add_parser(
        'policy', help='migration policy: check a file, explain decisions',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = policy.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    p = sub.add_parser('check', help='validate a policy file and print its '
                                     'digest')
    p.set_defaults(func=do_check)
    p.add_argument('file', nargs='?',
                   help='the policy file (default: [policy] policy_file)')

    p = sub.add_parser('explain', help='decide one migration from facts '
                                       'and say why')
    p.set_defaults(func=do_explain)
    p.add_argument('--policy',
                   help='the policy file (default: [policy] policy_file)')
    p.add_argument('--facts', required=True,
                   help='JSON file with the facts of the migration, or -')
    p.add_argument('--trigger', choices=facts_mod.TRIGGERS,
                   help='override the trigger given in the facts')
    p.add_argument('--now', type=float,
                   help='the current time as POSIX seconds (default: the '
                        'facts\' "now", else the clock)')
    p.add_argument('--json', action='store_true',
                   help='print the decision as JSON')
