"""The ``secmig`` command: one entry point, one subcommand group per area.

Each group module exposes ``add_parser(subparsers)``; the handler it sets
with ``set_defaults(func=...)`` receives ``(args, conf)`` and returns the
exit status. A :class:`~secmig.exception.SecmigError` becomes one line on
stderr and exit status 1; a usage error exits 2 (argparse's convention).
"""

import argparse
import importlib
import sys

from secmig import conf as secmig_conf
from secmig import exception

#: Subcommand groups, in the order ``--help`` lists them.
GROUPS = ('secmig.cmd.pki', 'secmig.cmd.policy', 'secmig.cmd.audit',
          'secmig.cmd.demo')


def build_parser():
    parser = argparse.ArgumentParser(
        prog='secmig',
        description='Secure live migration for OpenStack: host identity, '
                    'migration policy and audit tools.')
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='PATH',
        help='secmig configuration file (repeatable); options not given '
             'on the command line are read from it')
    subparsers = parser.add_subparsers(dest='group', metavar='GROUP')
    subparsers.required = True
    for name in GROUPS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        conf = secmig_conf.new_conf(default_config_files=args.config_file)
        return args.func(args, conf) or 0
    except exception.SecmigError as e:
        print('secmig: error: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('secmig: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
