"""The README renders without errors (it is the operator's first page)."""

import io
import os
import unittest

from docutils import core

from secmig.policy import loader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class ReadmeTest(unittest.TestCase):

    def test_readme_is_valid_restructuredtext(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            source = f.read()
        errors = io.StringIO()
        core.publish_doctree(source, settings_overrides={
            'warning_stream': errors, 'report_level': 2, 'halt_level': 5})
        self.assertEqual('', errors.getvalue())

    def test_readme_gives_the_ci_test_command(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            readme = f.read()
        with open(os.path.join(ROOT, '.ci', 'run')) as f:
            ci = f.read()
        self.assertIn('    tools/run-tests.sh\n', readme)
        self.assertIn('exec tools/run-tests.sh\n', ci)


class ReadmePolicyTest(unittest.TestCase):

    def test_the_readme_policy_example_is_valid(self):
        with open(os.path.join(ROOT, 'README.rst')) as f:
            text = f.read()
        start = text.index('      version: 1\n')
        block = []
        for line in text[start:].splitlines():
            if line and not line.startswith('      '):
                break
            block.append(line[6:])
        policy = loader.loads('\n'.join(block), 'README.rst')
        self.assertEqual(500, policy.transport.max_bandwidth_mib)
        self.assertEqual(900, policy.cooldown.seconds)
