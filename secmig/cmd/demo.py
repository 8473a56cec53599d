"""``secmig demo``: the whole secure-migration story on one machine.

::

    secmig demo [--workdir DIR] [--metrics auto|gnocchi|embedded]
                [--skip-qemu]

Runs real Nova services in-process with secmig, the Watcher strategy in a
child process, a metric store and (where installed) QEMU, prints each
step and a summary, and exits 1 if any step did not behave as shown.
See :mod:`secmig.demo.story`.
"""

import tempfile


def do_demo(args, conf):
    # Imported here: the story imports Nova, which only this command needs.
    from secmig.demo import story
    workdir = args.workdir or tempfile.mkdtemp(prefix='secmig-demo-')
    results = story.Story(workdir, metrics=args.metrics,
                          qemu=not args.skip_qemu).run()
    return 1 if any(r.status == 'FAILED' for r in results) else 0


def add_parser(subparsers):
    p = subparsers.add_parser(
        'demo', help='run the end-to-end demo: PKI, Nova, Watcher, QEMU, '
                     'audit')
    p.add_argument('--workdir', help='where certificates, journals and '
                   'logs go (default: a new temporary directory, kept)')
    p.add_argument('--metrics', choices=('auto', 'gnocchi', 'embedded'),
                   default='auto',
                   help='metric store: a real Gnocchi (needs PostgreSQL), '
                        'the embedded store, or Gnocchi when PostgreSQL '
                        'answers (default)')
    p.add_argument('--skip-qemu', action='store_true',
                   help='skip the real QEMU migration')
    p.set_defaults(func=do_demo)
