"""Loading the policy file: the sample, bad files, digests, reloading."""

import os
import re
import tempfile
import textwrap
import unittest

from secmig.policy import digest
from secmig.policy import facts
from secmig.policy import loader

SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                      'secmig', 'migration-policy.yaml.sample')
GOOD = """\
version: 1
rbac:
  api: "role:admin"
  watcher: "!"
"""


class TempDir(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def write(self, text, name='policy.yaml', mode='w'):
        path = os.path.join(self.dir, name)
        with open(path, mode) as f:
            f.write(text)
        return path


class SampleTest(unittest.TestCase):

    def test_sample_is_valid_and_realistic(self):
        pol = loader.load(SAMPLE)
        self.assertRegex(pol.digest, '^[0-9a-f]{64}$')
        self.assertEqual({'admin', 'project_manager', 'watcher_service'},
                         set(pol.rules))
        self.assertIsNotNone(pol.automatic.identify)
        self.assertEqual('required', pol.transport.encryption)
        self.assertEqual(3, pol.mac.levels['secret'])
        self.assertEqual(3, pol.destinations.by_level[0].min_level)
        self.assertEqual(36, pol.line_of('rbac.api'))
        self.assertEqual(pol.line_of('mac'), pol.line_of('mac.nothing'))


class BadFileTest(TempDir):

    def assertBad(self, text, line, problem, code='policy_invalid'):
        path = self.write(textwrap.dedent(text))
        with self.assertRaises(loader.PolicyError) as cm:
            loader.load(path)
        error = cm.exception
        self.assertEqual(code, error.code)
        self.assertEqual(line, error.line, str(error))
        self.assertTrue(str(error).startswith('%s:%d: ' % (path, line)),
                        str(error))
        self.assertRegex(error.problem, problem)
        return error

    def test_missing_file(self):
        path = os.path.join(self.dir, 'absent.yaml')
        with self.assertRaises(loader.PolicyError) as cm:
            loader.load(path)
        self.assertEqual('policy_missing', cm.exception.code)
        self.assertEqual('%s: no such file' % path, str(cm.exception))

    def test_unreadable_file(self):
        # A directory cannot be read as a file, even by root.
        with self.assertRaises(loader.PolicyError) as cm:
            loader.load(self.dir)
        self.assertEqual('policy_unreadable', cm.exception.code)
        self.assertIn('%s: cannot read: ' % self.dir, str(cm.exception))

    def test_not_utf8(self):
        path = self.write(b'version: 1\n# caf\xe9\n', mode='wb')
        with self.assertRaises(loader.PolicyError) as cm:
            loader.load(path)
        self.assertEqual(('policy_unreadable', 2),
                         (cm.exception.code, cm.exception.line))

    def test_yaml_syntax_error(self):
        self.assertBad("""\
            version: 1
            rbac:
              api: "role:admin
              watcher: "!"
            """, 4, 'not valid YAML', code='policy_syntax')
        self.assertBad('version: 1\nrbac: [a, b\n', 3, 'not valid YAML',
                       code='policy_syntax')

    def test_empty_file(self):
        self.assertBad('# nothing\n', 1, 'empty')

    def test_top_level_not_a_mapping(self):
        self.assertBad('- version\n', 1, 'the policy must be a mapping')

    def test_unknown_top_level_key(self):
        self.assertBad(GOOD + 'transports: {}\n', 5,
                       "unknown key 'transports'")

    def test_unknown_nested_key(self):
        self.assertBad(GOOD + 'automatic:\n  opt_out:\n    project: [x]\n',
                       7, "unknown key 'automatic.opt_out.project'")

    def test_duplicate_key(self):
        self.assertBad(GOOD + 'cooldown: {seconds: 1}\ncooldown: {}\n', 6,
                       "duplicate key 'cooldown'")

    def test_missing_required(self):
        self.assertBad('version: 1\nrbac: {api: "@"}\n', 2,
                       "missing required key 'rbac.watcher'")
        self.assertBad('version: 1\n', 1, "missing required key 'rbac'")

    def test_wrong_types(self):
        self.assertBad(GOOD + 'cooldown:\n  seconds: "600"\n', 6,
                       'cooldown.seconds must be an integer, not a string')
        self.assertBad(GOOD + 'cooldown:\n  seconds: true\n', 6,
                       'must be an integer, not a boolean')
        self.assertBad(GOOD + 'automatic:\n  enabled: "no"\n', 6,
                       'automatic.enabled must be true or false')
        self.assertBad(GOOD + 'destinations:\n  aggregates: lab\n', 6,
                       'must be a list of strings')
        self.assertBad(GOOD + 'destinations:\n  aggregates: [~]\n', 6,
                       'must be a string, not empty')
        self.assertBad(GOOD + 'mac: [1]\n', 5,
                       'mac must be a mapping, not a list')

    def test_out_of_range(self):
        self.assertBad(GOOD + 'cooldown:\n  seconds: -1\n', 6,
                       'from 0 to 2592000, not -1')
        self.assertBad(GOOD + 'mac:\n  levels: {top: 101}\n', 6,
                       'mac.levels.top must be from 0 to 100')
        self.assertBad(GOOD + 'transport:\n  max_bandwidth_mib: 99999999\n',
                       6, 'from 0 to 1048576')
        self.assertBad(GOOD.replace('version: 1', 'version: 2'), 1,
                       'unsupported policy version 2')

    def test_bad_choices(self):
        self.assertBad(GOOD + 'transport:\n  encryption: none\n', 6,
                       'transport.encryption must be one of required')
        self.assertBad(GOOD + 'transport:\n  post_copy: maybe\n', 6,
                       'must be one of allowed, forbidden')

    def test_unknown_level_name(self):
        self.assertBad(GOOD + 'mac:\n  levels: {low: 0}\n'
                       '  default_level: high\n', 7, "unknown level 'high'")

    def test_bad_rule_syntax(self):
        self.assertBad("""\
            version: 1
            rbac:
              api: "role:admin or (role:manager and"
              watcher: "!"
            """, 3, 'rbac.api: .*not valid oslo.policy syntax')

    def test_bad_rules(self):
        cases = (
            ('"role:admin or admin"', "'admin' is not a check"),
            ('"http://example.com/check"', 'network'),
            ('"rule:nowhere"', 'rule:nowhere, which is not defined'),
            ('"project_id:%(tenant)s"', r'unknown key %\(tenant\)s'),
            ('"project_id:%(project_id)d"', r'only %\(key\)s'),
            ('"\'admin\'"', 'quoted string'),
            ('""', 'cooldown.exempt must be a non-empty string'),
        )
        for rule, problem in cases:
            self.assertBad(GOOD + 'cooldown:\n  exempt: %s\n' % rule, 6,
                           problem)

    def test_named_rule_errors_name_the_rule_line(self):
        self.assertBad(GOOD + 'rules:\n  a: "role:x"\n  b: "role:"\n'
                       '  c: "not"\n', 8, 'rules.c: .*not valid')
        self.assertBad(GOOD + 'rules:\n  a: "rule:b"\n  b: "rule:c"\n'
                       '  c: "rule:a or role:admin"\n', 6,
                       'rules.a: rules a -> b -> c -> a reference each '
                       'other in a cycle')


class DigestTest(unittest.TestCase):

    def test_form_does_not_change_the_digest(self):
        a = loader.loads(GOOD + 'cooldown: {seconds: 60}\n')
        b = loader.loads(textwrap.dedent("""\
            # a comment
            cooldown:
              seconds: 60     # one minute
            rbac:
              watcher: '!'
              api:    role:admin
            version: 1
            transport: {post_copy: forbidden}
            """))
        self.assertEqual(a.digest, b.digest)
        self.assertEqual(digest.compute(a), a.digest)

    def test_meaning_changes_the_digest(self):
        base = loader.loads(GOOD).digest
        for extra in ('cooldown: {seconds: 61}\n',
                      'transport: {post_copy: allowed}\n',
                      'automatic: {opt_out: {projects: [p]}}\n'):
            self.assertNotEqual(base, loader.loads(GOOD + extra).digest,
                                extra)
        self.assertNotEqual(base, loader.loads(
            GOOD.replace('role:admin', 'role:admin or role:manager')).digest)

    def test_canonical_form_is_json(self):
        self.assertTrue(re.match(rb'^\{"automatic":', digest.canonical(
            loader.loads(GOOD))))


class PolicySourceTest(TempDir):

    def test_reload_and_fail_closed(self):
        path = self.write(GOOD)
        source = loader.PolicySource(path)
        first = source.get()
        self.assertIs(first, source.get())

        self.write(GOOD + 'cooldown: {seconds: 30}\n')
        second = source.get()
        self.assertEqual(30, second.cooldown.seconds)
        self.assertNotEqual(first.digest, second.digest)

        self.write(GOOD + 'cooldown: {seconds: thirty}\n')
        for _ in range(2):
            with self.assertRaises(loader.PolicyError) as cm:
                source.get()
            self.assertEqual(5, cm.exception.line)

        decision = source.decide(
            facts.Request('api', {'roles': ['admin']}),
            facts.InstanceFacts('i', 'p'), facts.HostFacts('a'),
            facts.HostFacts('b'), 0)
        self.assertEqual(('policy_unavailable', 5, 'policy_invalid'),
                         (decision.code, decision.details['line'],
                          decision.details['error_code']))

        os.unlink(path)
        with self.assertRaises(loader.PolicyError) as cm:
            source.get()
        self.assertEqual('policy_missing', cm.exception.code)

        self.write(GOOD)
        self.assertEqual(first.digest, source.get().digest)

    def test_decide_under_a_good_policy(self):
        source = loader.PolicySource(self.write(GOOD))
        host = facts.HostFacts('b', certificate_valid=True, tls_ready=True)
        decision = source.decide(
            facts.Request('api', {'roles': ['admin']}),
            facts.InstanceFacts('i', 'p'), host, host, 0)
        self.assertEqual('ok', decision.code)
        self.assertEqual(source.get().digest,
                         decision.details['policy_digest'])
