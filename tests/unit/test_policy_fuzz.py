"""A policy file is text an operator (or whoever can write it) controls.

Whatever its bytes, loading it gives a policy or raises ``PolicyError``
with a line number; nothing else escapes, so the policy source can keep
its contract of refusing every migration on a bad file. Runs are bounded
and derandomised.
"""

import os
import tempfile
import unittest

from hypothesis import given
from hypothesis import strategies as st

from secmig.policy import loader
from tests import fuzzutil

BOUNDED = fuzzutil.bounded(300)
SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                      'secmig', 'migration-policy.yaml.sample')
with open(SAMPLE) as f:
    SAMPLE_LINES = f.read().splitlines(keepends=True)

# Fragments YAML gives meaning to, and values of every YAML type.
yaml_bits = st.sampled_from([
    ':', ': ', '- ', '  ', '\t', '{', '}', '[', ']', '&a ', '*a', '!!str ',
    '!!python/object:os.system ', '? ', '|', '>', '"', "'", '#', '%YAML',
    '---', '...', '<<: *a', '~', 'null', 'true', '1e309', '-1', '0x10',
    '2027-01-01', '.nan', '.inf', 'rule:admin', '%(target.x)s', '\x00',
    '\u2028', '\ufeff', 'é'])


@st.composite
def mutated_sample(draw):
    """The sample with a few lines replaced, deleted or cut."""
    lines = list(SAMPLE_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(['replace', 'delete', 'cut', 'insert']))
        if how == 'delete':
            del lines[i]
        elif how == 'cut':
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        else:
            text = ''.join(draw(st.lists(yaml_bits | st.text(max_size=6),
                                         max_size=8)))
            if how == 'replace':
                lines[i] = text + '\n'
            else:
                lines.insert(i, text + '\n')
        if not lines:
            break
    return ''.join(lines)


class PolicyFileFuzzTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = os.path.join(tmp.name, 'policy.yaml')

    def assertLoadsOrRefused(self, data):
        with open(self.path, 'wb') as f:
            f.write(data)
        try:
            policy = loader.load(self.path)
        except loader.PolicyError as e:
            self.assertTrue(str(e).startswith(self.path + ':'), str(e))
            self.assertIn(e.code, ('policy_invalid', 'policy_syntax',
                                   'policy_unreadable'))
            return None
        self.assertRegex(policy.digest, '^[0-9a-f]{64}$')
        return policy

    @BOUNDED
    @given(mutated_sample())
    def test_mutated_sample(self, text):
        self.assertLoadsOrRefused(text.encode('utf-8', 'surrogatepass'))

    @BOUNDED
    @given(st.lists(yaml_bits | st.text(max_size=10), max_size=30))
    def test_yaml_fragments(self, parts):
        self.assertLoadsOrRefused(
            ''.join(parts).encode('utf-8', 'surrogatepass'))

    @BOUNDED
    @given(st.binary(max_size=200))
    def test_any_bytes(self, data):
        self.assertLoadsOrRefused(data)

    def test_python_objects_are_not_constructed(self):
        text = ('version: 1\nrbac:\n  api: !!python/object/apply:os.system '
                '["touch %s.pwned"]\n  watcher: "!"\n' % self.path)
        self.assertIsNone(self.assertLoadsOrRefused(text.encode()))
        self.assertFalse(os.path.exists(self.path + '.pwned'))

    def test_alias_expansion_is_refused_or_bounded(self):
        # The "billion laughs": aliases of aliases, each doubling.
        lines = ['a0: &a0 ["x"]']
        for i in range(1, 30):
            lines.append('a%d: &a%d [*a%d, *a%d]' % (i, i, i - 1, i - 1))
        with self.assertRaises(loader.PolicyError) as cm:
            loader.loads('version: 1\n' + '\n'.join(lines) + '\n')
        self.assertEqual('policy_invalid', cm.exception.code)
        self.assertIn('a0', str(cm.exception))
