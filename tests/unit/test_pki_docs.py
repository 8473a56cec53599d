"""The PKI's documents: they render, and their commands are valid.

Every ``secmig pki`` command line given in doc/pki.rst, in the compute
host guide doc/nova.rst and in ``secmig pki --help`` parses with the
command's own parser, so a renamed or removed option cannot stay in the
documents.
"""

import contextlib
import io
import os
import re
import shlex
import unittest

from docutils import core

from secmig.cmd import main
from secmig.cmd import pki as pki_cmd

_COMMAND = re.compile(r'^ {4,}(?:\S+\$ +)?(secmig pki .*)$')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _doc(name):
    with open(os.path.join(ROOT, 'doc', name)) as f:
        return f.read()


def pki_commands(text):
    """The ``secmig pki`` command lines of the literal blocks of ``text``.

    A command is indented by four spaces or more, maybe after a prompt
    (``ca$``); its continuation lines are joined, its redirection cut.
    """
    commands, current = [], None
    for line in text.splitlines():
        if current is None:
            match = _COMMAND.match(line)
            if not match:
                continue
            current = match.group(1)
        else:
            current += ' ' + line.strip()
        if current.endswith('\\'):
            current = current[:-1].rstrip()
            continue
        commands.append(current.split(' > ')[0])
        current = None
    return commands


class PKIDocsTest(unittest.TestCase):

    def test_pki_guide_is_valid_restructuredtext(self):
        errors = io.StringIO()
        core.publish_doctree(_doc('pki.rst'), settings_overrides={
            'warning_stream': errors, 'report_level': 2, 'halt_level': 5})
        self.assertEqual('', errors.getvalue())

    def test_every_documented_command_parses(self):
        sources = {'doc/pki.rst': _doc('pki.rst'),
                   'doc/nova.rst': _doc('nova.rst'),
                   'secmig pki --help': pki_cmd.__doc__}
        parser = main.build_parser()
        for source, text in sources.items():
            commands = pki_commands(text)
            self.assertTrue(commands, source)
            for command in commands:
                with self.subTest(source=source, command=command), \
                        contextlib.redirect_stderr(io.StringIO()) as err:
                    try:
                        parser.parse_args(shlex.split(command)[1:])
                    except SystemExit:
                        self.fail(err.getvalue())

    def test_the_guides_give_tokens_in_files(self):
        for source in ('pki.rst', 'nova.rst'):
            for command in pki_commands(_doc(source)):
                if ' sign ' in command:
                    self.assertIn('--token-file', command)
                    self.assertNotIn('--token ', command)
