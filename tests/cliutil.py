"""Run the ``secmig`` command line in-process, as a test sees it."""

from secmig.cmd import main as cli
from secmig.demo.pki import run_cli as secmig  # noqa: F401

# Import every command module now, so that warnings printed by their
# imports do not end up in the first test's captured stderr.
cli.build_parser()
