"""Run the ``secmig`` command line in-process, as a test sees it."""

import contextlib
import io

from secmig.cmd import main as cli

# Import every command module now, so that warnings printed by their
# imports do not end up in the first test's captured stderr.
cli.build_parser()


def secmig(*argv):
    """Run ``secmig ARGV``; return ``(status, stdout, stderr)``.

    Usage errors (argparse exits) come back as their exit status.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()
