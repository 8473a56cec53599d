"""``secmig policy check`` and ``secmig policy explain`` in-process."""

import json
import os
import tempfile
import unittest

from secmig.policy import loader
from tests.cliutil import secmig

SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                      'secmig', 'migration-policy.yaml.sample')
FACTS = {
    'request': {'trigger': 'api',
                'credentials': {'user_id': 'max', 'project_id': 'p1',
                                'roles': ['manager']}},
    'instance': {'uuid': 'inst-1', 'project_id': 'p1',
                 'flavor_name': 'm1.small',
                 'flavor_extra_specs': {'secmig:level': 'secret'},
                 'metadata': {}, 'last_migrated_at': None},
    'source': {'name': 'cmp1', 'clearance': 3, 'certificate_valid': True,
               'certificate_code': 'ok', 'tls_ready': True,
               'aggregates': ['secmig-enrolled'],
               'availability_zone': 'az1'},
    'destination': {'name': 'cmp2', 'clearance': 2,
                    'certificate_valid': True, 'certificate_code': 'ok',
                    'tls_ready': True, 'aggregates': ['secmig-enrolled'],
                    'availability_zone': 'az2'},
    'now': 1700000000,
}


class PolicyCommandTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        # The sample with the variation it documents: project managers
        # may move their project's instances (the requester below is one).
        with open(SAMPLE) as f:
            text = f.read()
        self.policy = self.write('policy.yaml', text.replace(
            '  api: "rule:admin"\n',
            '  api: "rule:admin or rule:project_manager"\n'))
        self.digest = loader.load(self.policy).digest

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def facts(self, **changes):
        data = json.loads(json.dumps(FACTS))
        for dotted, value in changes.items():
            section, key = dotted.split('__')
            data[section][key] = value
        return self.write('facts.json', json.dumps(data))

    def test_check_valid_prints_digest(self):
        status, out, err = secmig('policy', 'check', SAMPLE)
        self.assertEqual((0, loader.load(SAMPLE).digest + '\n', ''),
                         (status, out, err))

    def test_check_invalid_prints_file_line_problem(self):
        path = self.write('p.yaml', 'version: 1\nrbac:\n  api: "@"\n'
                          '  watcher: "!"\n  wacher: "!"\n')
        status, out, err = secmig('policy', 'check', path)
        self.assertEqual((1, ''), (status, out))
        self.assertEqual("%s:5: unknown key 'rbac.wacher' (expected one "
                         "of: api, watcher)\n" % path, err)

    def test_check_missing_file(self):
        path = os.path.join(self.dir, 'absent.yaml')
        status, _, err = secmig('policy', 'check', path)
        self.assertEqual((1, '%s: no such file\n' % path), (status, err))

    def test_check_uses_the_configured_file(self):
        conf = self.write('secmig.conf',
                          '[policy]\npolicy_file = %s\n' % self.policy)
        status, out, _ = secmig('--config-file', conf, 'policy', 'check')
        self.assertEqual((0, self.digest + '\n'), (status, out))

    def test_sample_refuses_a_project_manager(self):
        status, out, _ = secmig('policy', 'explain', '--policy', SAMPLE,
                                '--facts', self.facts())
        self.assertEqual(1, status)
        self.assertTrue(out.startswith(
            'refused (rbac_denied): the requester (user max, project p1) '
            'may not request an API migration'), out)
        self.assertIn('rule: rbac.api (%s:36)' % SAMPLE, out)

    def test_explain_refused(self):
        status, out, _ = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', self.facts())
        self.assertEqual(1, status)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith('refused (insufficient_clearance)'
                                            ': destination cmp2 has '
                                            'clearance 2, below the level 3'),
                        out)
        self.assertEqual('rule: mac (%s:63)' % self.policy, lines[1])
        self.assertEqual('policy digest: ' + self.digest, lines[2])

    def test_explain_allowed_with_constraints(self):
        facts = self.facts(destination__clearance=3,
                           destination__aggregates=['secmig-enrolled',
                                                    'hardened'])
        status, out, _ = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', facts)
        self.assertEqual(0, status, out)
        self.assertIn('allowed (ok): instance inst-1 may migrate from cmp1 '
                      'to cmp2', out)
        self.assertIn('rule: rbac.api (%s:36)' % self.policy, out)
        self.assertIn('constraints: encryption=required, '
                      'max_bandwidth_mib=1000, post_copy=False', out)

    def test_explain_json_and_overrides(self):
        facts = self.facts(destination__clearance=3,
                           destination__aggregates=['secmig-enrolled',
                                                    'hardened'],
                           instance__last_migrated_at=1699999900)
        status, out, _ = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', facts, '--json')
        self.assertEqual(1, status)
        self.assertEqual(('cooldown', 'cooldown.seconds'),
                         (json.loads(out)['code'],
                          json.loads(out)['details']['rule']))
        status, out, _ = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', facts, '--json',
                                '--now', '1700001000')
        decision = json.loads(out)
        self.assertEqual((0, True, 'ok'),
                         (status, decision['allowed'], decision['code']))
        self.assertEqual(self.digest, decision['details']['policy_digest'])
        status, out, _ = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', facts, '--json',
                                '--now', '1700001000', '--trigger',
                                'watcher')
        self.assertEqual(('rbac_denied', 'rbac.watcher'),
                         (json.loads(out)['code'],
                          json.loads(out)['details']['rule']))

    def test_explain_with_a_broken_policy_refuses(self):
        path = self.write('p.yaml', 'version: 1\nrbac: {api: "role:"}\n')
        status, out, _ = secmig('policy', 'explain', '--policy', path,
                                '--facts', self.facts(), '--json')
        decision = json.loads(out)
        self.assertEqual((1, 'policy_unavailable', 2),
                         (status, decision['code'],
                          decision['details']['line']))

    def test_explain_bad_facts(self):
        path = self.facts(instance__flavor_extra_specs={'secmig:level': 2})
        status, _, err = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', path)
        self.assertEqual(1, status)
        self.assertIn('facts: instance.flavor_extra_specs: keys and values '
                      'must be strings', err)
        status, _, err = secmig('policy', 'explain', '--policy', self.policy,
                                '--facts', self.write('f.json', '{'))
        self.assertEqual(1, status)
        self.assertIn('not valid JSON', err)
