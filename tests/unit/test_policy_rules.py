"""RBAC rules: strict parsing and evaluation with oslo.policy's checks."""

import unittest

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from secmig.policy import rules

leaves = st.sampled_from([
    '@', '!', 'role:admin', 'role:Manager', 'role:%(trigger)s',
    'project_id:%(project_id)s', 'project_id:%(target.project_id)s',
    'user_name:watcher', 'is_admin:True', 'True:%(trigger)s',
    "'api':%(trigger)s", 'a.b:x', 'a.b.c:%(flavor)s', 'roles:member',
    'rule:admin', 'rule:owner'])


def expressions(max_leaves=8):
    def extend(children):
        return st.one_of(
            st.tuples(children, st.sampled_from(['and', 'or']), children)
            .map(' '.join),
            children.map(lambda c: 'not ' + c),
            children.map(lambda c: '(%s)' % c))
    return st.recursive(leaves, extend, max_leaves=max_leaves)


credentials = st.fixed_dictionaries({}, optional={
    'roles': st.lists(st.sampled_from(['admin', 'manager', 'member', 'api',
                                       'watcher']), max_size=3),
    'project_id': st.sampled_from(['p1', 'p2']),
    'user_name': st.sampled_from(['watcher', 'ada']),
    'is_admin': st.booleans(),
    'a': st.one_of(st.fixed_dictionaries({'b': st.sampled_from(['x', 'y'])}),
                   st.lists(st.fixed_dictionaries(
                       {'b': st.fixed_dictionaries(
                           {'c': st.sampled_from(['m1', 'm2'])})}),
                       max_size=2)),
})
targets = st.builds(
    lambda project, trigger, flavor: rules.build_target(
        {'project_id': project, 'trigger': trigger, 'flavor': flavor}),
    st.sampled_from(['p1', 'p2']), st.sampled_from(['api', 'watcher']),
    st.sampled_from(['m1', 'm2']))
NAMED = rules.compile_named({'admin': 'role:admin',
                             'owner': 'project_id:%(project_id)s'})


class ParseTest(unittest.TestCase):

    def test_normalised_text(self):
        normal, _ = rules.compile_rule(
            'role:admin   or (role:manager and project_id:%(project_id)s)',
            {})
        self.assertEqual('(role:admin or (role:manager and '
                         'project_id:%(project_id)s))', normal)

    def test_errors(self):
        cases = {
            'role:admin or': 'not valid oslo.policy syntax',
            'role:a role:b': 'not valid oslo.policy syntax',
            '(role:a': 'not valid oslo.policy syntax',
            'admin': "'admin' is not a check",
            ':x': "':x' is not a check",
            'https://policy/check': 'network',
            'rule:ghost': 'rule:ghost, which is not defined',
            'x:%(flavour)s': r'unknown key %(flavour)s',
            'x:50%': r'only %(key)s substitutions',
            '"admin"': 'quoted string',
            '  ': 'empty rule',
            '%(x:y': 'is not a valid check',
        }
        for text, problem in cases.items():
            with self.assertRaises(rules.RuleError, msg=text) as cm:
                rules.compile_rule(text, {})
            self.assertIn(problem, str(cm.exception), text)

    def test_oslo_policy_does_not_log_for_rejected_rules(self):
        with self.assertNoLogs('oslo_policy', 'DEBUG'):
            for text in ('role:admin or', 'admin', 'not'):
                with self.assertRaises(rules.RuleError):
                    rules.compile_rule(text, {})

    def test_cycle(self):
        with self.assertRaises(rules.RuleError) as cm:
            rules.compile_named({'a': 'rule:b', 'b': 'role:x or rule:a'})
        self.assertIn('a -> b -> a', str(cm.exception))
        self.assertEqual('a', cm.exception.name)

    def test_references_are_inlined(self):
        named = rules.compile_named({'admin': 'role:admin',
                                     'ops': 'rule:admin or role:ops'})
        self.assertEqual('(rule:admin or role:ops)', named['ops'][0])
        check = rules.evaluator(named['ops'][1])
        self.assertTrue(check({}, {'roles': ['Admin']}))
        self.assertFalse(check({}, {'roles': ['member']}))


class EvaluatorTest(unittest.TestCase):

    @settings(max_examples=300, deadline=None)
    @given(expressions(), credentials, targets)
    def test_same_answer_as_oslo_policy(self, text, creds, target):
        _, tree = rules.compile_rule(text, NAMED)
        try:
            expected = bool(tree(target, creds, None))
        except (TypeError, AttributeError):
            # oslo.policy cannot descend into a string or a number: the
            # compiled rule must fail the same way, not answer.
            expected = TypeError
        try:
            got = rules.evaluator(tree)(target, creds)
        except (TypeError, AttributeError):
            got = TypeError
        self.assertEqual(expected, got, text)


class BoundsTest(unittest.TestCase):
    """Rules a hostile or careless file may hold load fast or not at all."""

    def test_doubling_chain_of_named_rules_is_refused(self):
        texts = {'r0': 'role:admin'}
        texts.update(('r%d' % i, 'rule:r%d or rule:r%d' % (i - 1, i - 1))
                     for i in range(1, 25))
        with self.assertRaises(rules.RuleError) as cm:
            rules.compile_named(texts)
        self.assertIn('once the rules it references are written out',
                      str(cm.exception))
        self.assertEqual('r13', cm.exception.name)

    def test_deep_nesting_is_refused_not_raised(self):
        for text in ('(role:a and ' * 3000 + 'role:b' + ')' * 3000,
                     'not ' * 3000 + 'role:a',
                     '(role:a or ' * 60 + 'role:b' + ')' * 60):
            with self.assertRaises(rules.RuleError) as cm:
                rules.parse(text)
            self.assertIn('nests and/or/not more than', str(cm.exception))

    def test_deep_nesting_through_named_rules_is_refused(self):
        texts = {'r0': 'role:admin'}
        texts.update(('r%d' % i, 'not rule:r%d' % (i - 1))
                     for i in range(1, 80))
        with self.assertRaises(rules.RuleError) as cm:
            rules.compile_named(texts)
        self.assertIn('deep once the rules it references',
                      str(cm.exception))

    def test_rules_within_the_bounds_still_compile(self):
        texts = {'r0': 'role:admin'}
        texts.update(('r%d' % i, 'rule:r%d or rule:r%d' % (i - 1, i - 1))
                     for i in range(1, 12))
        compiled = rules.compile_named(texts)
        check = rules.evaluator(compiled['r11'][1])
        self.assertTrue(check({}, {'roles': ['admin']}))
        self.assertFalse(check({}, {'roles': ['member']}))
