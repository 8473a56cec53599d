"""Every kind of migration-policy rule, allowing and refusing."""

import os
import textwrap
import unittest

from secmig.policy import evaluate
from secmig.policy import facts
from secmig.policy import loader

NOW = 1_700_000_000.0
BASE = """\
version: 1
rules:
  admin: "role:admin"
  manager: "role:manager and project_id:%(target.project_id)s"
  watcher: "role:service and user_name:watcher"
rbac:
  api: "rule:admin or rule:manager"
  watcher: "rule:watcher"
"""


def policy(extra=''):
    return loader.loads(BASE + textwrap.dedent(extra), 'test.yaml')


def admin(trigger='api'):
    return facts.Request(trigger, {'user_id': 'ada', 'project_id': 'ops',
                                   'roles': ['admin', 'member']})


def manager(project='p1', trigger='api'):
    return facts.Request(trigger, {'user_id': 'max', 'project_id': project,
                                   'roles': ['manager', 'member']})


def watcher(trigger='watcher'):
    return facts.Request(trigger, {'user_id': 'w', 'user_name': 'watcher',
                                   'project_id': 'service',
                                   'roles': ['service']})


def instance(**kw):
    kw.setdefault('uuid', 'inst-1')
    kw.setdefault('project_id', 'p1')
    kw.setdefault('flavor_name', 'm1.small')
    return facts.InstanceFacts(**kw)


def host(name, **kw):
    kw.setdefault('certificate_valid', True)
    kw.setdefault('certificate_code', 'ok')
    kw.setdefault('tls_ready', True)
    kw.setdefault('availability_zone', 'az1')
    kw['aggregates'] = frozenset(kw.get('aggregates', ()))
    return facts.HostFacts(name, **kw)


class Case(unittest.TestCase):

    def decide(self, pol, request=None, inst=None, source=None, dest=None,
               now=NOW):
        decision = evaluate.evaluate(
            request or admin(), inst or instance(), source or host('cmp1'),
            dest or host('cmp2'), pol, now)
        self.assertEqual(pol.digest, decision.details['policy_digest'])
        return decision

    def assertAllowed(self, decision):
        self.assertTrue(decision.allowed, decision)
        self.assertEqual('ok', decision.code)
        return decision

    def assertRefused(self, decision, code, rule):
        self.assertFalse(decision.allowed, decision)
        self.assertEqual((code, rule),
                         (decision.code, decision.details['rule']), decision)
        return decision


class RbacTest(Case):

    def setUp(self):
        self.pol = policy()

    def test_admin_allowed_with_default_constraints(self):
        d = self.assertAllowed(self.decide(self.pol))
        self.assertEqual('rbac.api', d.details['rule'])
        self.assertEqual({'encryption': 'required', 'post_copy': False,
                          'max_bandwidth_mib': None},
                         d.details['constraints'])
        self.assertFalse(d.details['automatic'])

    def test_manager_of_the_instance_project_allowed(self):
        self.assertAllowed(self.decide(self.pol, manager('p1')))

    def test_manager_of_another_project_refused(self):
        d = self.assertRefused(self.decide(self.pol, manager('p2')),
                               'rbac_denied', 'rbac.api')
        self.assertIn('max', d.reason)

    def test_member_refused(self):
        member = facts.Request('api', {'user_id': 'm', 'project_id': 'p1',
                                       'roles': ['member']})
        self.assertRefused(self.decide(self.pol, member), 'rbac_denied',
                           'rbac.api')

    def test_no_credentials_refused(self):
        self.assertRefused(self.decide(self.pol, facts.Request('api', {})),
                           'rbac_denied', 'rbac.api')

    def test_credentials_the_rule_cannot_read_refused(self):
        pol = loader.loads(BASE.replace('rule:admin or rule:manager',
                                        'user.domain.name:ops'))
        odd = facts.Request('api', {'user': {'domain': 'a string'}})
        self.assertRefused(self.decide(pol, odd), 'rbac_error', 'rbac.api')
        good = facts.Request('api', {'user': {'domain': {'name': 'ops'}}})
        self.assertAllowed(self.decide(pol, good))

    def test_unknown_trigger_refused(self):
        self.assertRefused(self.decide(self.pol, admin('cron')),
                           'unknown_trigger', 'rbac')

    def test_watcher_trigger_needs_the_watcher_rule(self):
        self.assertRefused(self.decide(self.pol, admin('watcher')),
                           'rbac_denied', 'rbac.watcher')
        d = self.assertAllowed(self.decide(self.pol, watcher()))
        self.assertEqual('rbac.watcher', d.details['rule'])
        self.assertTrue(d.details['automatic'])

    def test_request_from_an_oslo_context(self):
        from oslo_context import context
        ctx = context.RequestContext(user_id='w1', project_id='service',
                                     roles=['service'], user_name='watcher',
                                     project_name='service')
        d = self.assertAllowed(self.decide(
            self.pol, facts.Request.from_context(ctx, 'watcher')))
        self.assertEqual('rbac.watcher', d.details['rule'])
        ctx.user_name = 'nova'
        self.assertRefused(self.decide(
            self.pol, facts.Request.from_context(ctx, 'watcher')),
            'rbac_denied', 'rbac.watcher')

    def test_watcher_service_is_not_an_api_requester(self):
        self.assertRefused(self.decide(self.pol, watcher('api')),
                           'rbac_denied', 'rbac.api')

    def test_rule_can_use_every_target_key(self):
        pol = loader.loads(textwrap.dedent("""\
            version: 1
            rbac:
              api: >-
                role:admin and flavor_name:%(flavor)s
                and host:%(destination)s and src:%(source)s
                and how:%(trigger)s and uid:%(user_id)s
                and iid:%(target.instance_id)s
              watcher: "!"
            """))
        creds = {'roles': ['admin'], 'flavor_name': 'm1.small',
                 'host': 'cmp2', 'src': 'cmp1', 'how': 'api', 'uid': 'u9',
                 'iid': 'inst-1'}
        self.assertAllowed(self.decide(pol, facts.Request('api', creds),
                                       instance(user_id='u9')))
        creds['host'] = 'cmp3'
        self.assertRefused(self.decide(pol, facts.Request('api', creds),
                                       instance(user_id='u9')),
                           'rbac_denied', 'rbac.api')


class SampleWatcherTest(Case):
    """The sample binds the Watcher service user to the service domain."""

    def setUp(self):
        self.pol = loader.load(os.path.join(
            os.path.dirname(__file__), '..', '..', 'etc', 'secmig',
            'migration-policy.yaml.sample'))

    def watcher_in(self, domain):
        return facts.Request('watcher', {
            'user_id': 'w-%s' % domain, 'user_name': 'watcher',
            'user_domain_id': domain, 'project_id': 'service',
            'roles': ['service']})

    def dest(self):
        return host('cmp2', clearance=1, aggregates=['secmig-enrolled'])

    def test_the_service_domain_watcher_moves_instances(self):
        d = self.assertAllowed(self.decide(
            self.pol, self.watcher_in('default'), dest=self.dest()))
        self.assertTrue(d.details['automatic'])

    def test_a_namesake_in_a_tenant_domain_is_refused(self):
        # A domain's admin can create a user called "watcher" in that
        # domain; the name alone must not make it the Watcher service.
        d = self.assertRefused(self.decide(
            self.pol, self.watcher_in('d-tenant'), dest=self.dest()),
            'rbac_denied', 'rbac.watcher')
        self.assertIn('w-d-tenant', d.reason)

    def test_a_request_without_a_domain_is_refused(self):
        request = self.watcher_in('default')
        del request.credentials['user_domain_id']
        self.assertRefused(self.decide(self.pol, request, dest=self.dest()),
                           'rbac_denied', 'rbac.watcher')


class AutomaticTest(Case):

    EXTRA = """\
        automatic:
          identify: "rule:watcher"
          opt_out:
            projects: [p-opted]
            flavors: [db.large]
        """

    def setUp(self):
        self.pol = policy(self.EXTRA)

    def test_disabled(self):
        pol = policy('automatic: {enabled: false}\n')
        self.assertRefused(self.decide(pol, watcher()),
                           'automatic_disabled', 'automatic.enabled')
        self.assertAllowed(self.decide(pol, admin()))

    def test_project_opt_out(self):
        inst = instance(project_id='p-opted')
        self.assertRefused(self.decide(self.pol, watcher(), inst),
                           'opted_out_project', 'automatic.opt_out.projects')
        self.assertAllowed(self.decide(self.pol, admin(), inst))

    def test_flavor_opt_out(self):
        inst = instance(flavor_name='db.large')
        self.assertRefused(self.decide(self.pol, watcher(), inst),
                           'opted_out_flavor', 'automatic.opt_out.flavors')
        self.assertAllowed(self.decide(self.pol, admin(), inst))

    def test_flavor_extra_spec_opt_out(self):
        inst = instance(flavor_extra_specs={'secmig:auto_migrate': 'false'})
        self.assertRefused(self.decide(self.pol, watcher(), inst),
                           'opted_out_flavor',
                           'automatic.opt_out.flavor_extra_spec')
        inst = instance(flavor_extra_specs={'secmig:auto_migrate': 'True'})
        self.assertAllowed(self.decide(self.pol, watcher(), inst))

    def test_instance_metadata_opt_out(self):
        for value in ('false', 'no', 'maybe', ''):
            inst = instance(metadata={'secmig:auto_migrate': value})
            self.assertRefused(self.decide(self.pol, watcher(), inst),
                               'opted_out_instance',
                               'automatic.opt_out.instance_metadata')
            self.assertAllowed(self.decide(self.pol, manager(), inst))
        inst = instance(metadata={'secmig:auto_migrate': 'yes'})
        self.assertAllowed(self.decide(self.pol, watcher(), inst))

    def test_identified_watcher_is_automatic_whatever_the_trigger(self):
        inst = instance(project_id='p-opted')
        self.assertRefused(self.decide(self.pol, watcher('api'), inst),
                           'opted_out_project', 'automatic.opt_out.projects')
        d = self.assertAllowed(self.decide(self.pol, watcher('api')))
        self.assertEqual(('rbac.watcher', 'watcher', True),
                         (d.details['rule'], d.details['trigger'],
                          d.details['automatic']))


class CooldownTest(Case):

    def setUp(self):
        self.pol = policy('cooldown: {seconds: 600, exempt: "rule:admin"}\n')

    def test_within_cooldown_refused(self):
        inst = instance(last_migrated_at=NOW - 100)
        d = self.assertRefused(self.decide(self.pol, manager(), inst),
                               'cooldown', 'cooldown.seconds')
        self.assertEqual(501, d.details['retry_after'])

    def test_after_cooldown_allowed(self):
        for last in (NOW - 600, NOW - 86400, None):
            self.assertAllowed(self.decide(
                self.pol, manager(), instance(last_migrated_at=last)))

    def test_exempt_rule(self):
        inst = instance(last_migrated_at=NOW - 1)
        self.assertAllowed(self.decide(self.pol, admin(), inst))

    def test_last_migration_in_the_future_refused(self):
        inst = instance(last_migrated_at=NOW + 3600)
        self.assertRefused(self.decide(self.pol, manager(), inst),
                           'cooldown', 'cooldown.seconds')

    def test_time_that_is_not_a_number_refused(self):
        inst = instance(last_migrated_at=float('nan'))
        self.assertRefused(self.decide(self.pol, manager(), inst),
                           'cooldown', 'cooldown.seconds')

    def test_no_cooldown_by_default(self):
        self.assertAllowed(self.decide(
            policy(), manager(), instance(last_migrated_at=NOW)))


class HostTest(Case):

    def setUp(self):
        self.pol = policy()

    def test_destination_certificate_invalid(self):
        dest = host('cmp2', certificate_valid=False,
                    certificate_code='revoked')
        d = self.assertRefused(self.decide(self.pol, dest=dest),
                               'destination_certificate_invalid',
                               'host_certificate')
        self.assertEqual('revoked', d.details['certificate_code'])

    def test_source_certificate_invalid(self):
        src = host('cmp1', certificate_valid=False,
                   certificate_code='expired')
        self.assertRefused(self.decide(self.pol, source=src),
                           'source_certificate_invalid', 'host_certificate')

    def test_unverified_host_is_refused_by_default(self):
        self.assertRefused(self.decide(self.pol,
                                       dest=facts.HostFacts('cmp2')),
                           'destination_certificate_invalid',
                           'host_certificate')

    def test_tls_not_ready(self):
        self.assertRefused(self.decide(self.pol,
                                       dest=host('cmp2', tls_ready=False)),
                           'destination_not_tls_ready',
                           'transport.encryption')
        self.assertRefused(self.decide(self.pol,
                                       source=host('cmp1', tls_ready=False)),
                           'source_not_tls_ready', 'transport.encryption')

    def test_from_verdict(self):
        from secmig.decision import Decision
        good = facts.HostFacts.from_verdict(
            'cmp2', Decision.allow('ok', clearance=3), True, ['a'], 'az1')
        self.assertEqual((3, True, 'ok', frozenset(['a'])),
                         (good.clearance, good.certificate_valid,
                          good.certificate_code, good.aggregates))
        bad = facts.HostFacts.from_verdict(
            'cmp2', Decision.refuse('expired', 'x', clearance=3), True)
        self.assertEqual((0, False, 'expired'),
                         (bad.clearance, bad.certificate_valid,
                          bad.certificate_code))


class MacTest(Case):

    EXTRA = """\
        mac:
          levels: {public: 0, internal: 1, secret: 3}
        """

    def setUp(self):
        self.pol = policy(self.EXTRA)

    def test_flavor_level_above_clearance_refused(self):
        inst = instance(flavor_extra_specs={'secmig:level': '2'})
        d = self.assertRefused(self.decide(self.pol, inst=inst,
                                           dest=host('cmp2', clearance=1)),
                               'insufficient_clearance', 'mac')
        self.assertEqual((2, 1), (d.details['instance_level'],
                                  d.details['destination_clearance']))

    def test_clearance_equal_to_level_allowed(self):
        inst = instance(flavor_extra_specs={'secmig:level': '2'})
        d = self.assertAllowed(self.decide(self.pol, inst=inst,
                                           dest=host('cmp2', clearance=2)))
        self.assertEqual(2, d.details['instance_level'])

    def test_image_property_level(self):
        inst = instance(image_properties={'secmig_level': 'secret'})
        self.assertRefused(self.decide(self.pol, inst=inst,
                                       dest=host('cmp2', clearance=2)),
                           'insufficient_clearance', 'mac')
        self.assertAllowed(self.decide(self.pol, inst=inst,
                                       dest=host('cmp2', clearance=3)))

    def test_tenant_raises_level(self):
        inst = instance(flavor_extra_specs={'secmig:level': '1'},
                        metadata={'secmig:level': 'Secret'})
        self.assertRefused(self.decide(self.pol, inst=inst,
                                       dest=host('cmp2', clearance=2)),
                           'insufficient_clearance', 'mac')

    def test_tenant_cannot_lower_level(self):
        inst = instance(flavor_extra_specs={'secmig:level': '3'},
                        metadata={'secmig:level': 'public'})
        d = self.assertRefused(self.decide(self.pol, inst=inst,
                                           dest=host('cmp2', clearance=1)),
                               'insufficient_clearance', 'mac')
        self.assertEqual({'flavor': 3, 'image': None, 'tenant': 0},
                         d.details['level_origins'])

    def test_default_level(self):
        pol = policy('mac: {default_level: 2}\n')
        self.assertRefused(self.decide(pol, dest=host('cmp2', clearance=1)),
                           'insufficient_clearance', 'mac')
        self.assertAllowed(self.decide(pol, dest=host('cmp2', clearance=2)))

    def test_value_that_is_not_a_level_refused(self):
        cases = (({'flavor_extra_specs': {'secmig:level': 'high'}},
                  'mac.flavor_extra_spec'),
                 ({'image_properties': {'secmig_level': '101'}},
                  'mac.image_property'),
                 ({'metadata': {'secmig:level': '-1'}},
                  'mac.instance_metadata'))
        for kw, rule in cases:
            self.assertRefused(self.decide(self.pol, inst=instance(**kw),
                                           dest=host('cmp2', clearance=100)),
                               'bad_instance_level', rule)

    def test_configured_keys(self):
        pol = policy('mac: {flavor_extra_spec: "trait:lvl"}\n')
        inst = instance(flavor_extra_specs={'trait:lvl': '4',
                                            'secmig:level': '0'})
        self.assertRefused(self.decide(pol, inst=inst,
                                       dest=host('cmp2', clearance=3)),
                           'insufficient_clearance', 'mac')


class DestinationsTest(Case):

    def test_availability_zones(self):
        pol = policy('destinations: {availability_zones: [az1, az2]}\n')
        self.assertAllowed(self.decide(pol, dest=host('cmp2')))
        for zone in ('az3', None):
            self.assertRefused(
                self.decide(pol, dest=host('cmp2', availability_zone=zone)),
                'availability_zone_not_allowed',
                'destinations.availability_zones')

    def test_same_availability_zone(self):
        pol = policy('destinations: {same_availability_zone: true}\n')
        self.assertAllowed(self.decide(pol))
        self.assertRefused(
            self.decide(pol, dest=host('cmp2', availability_zone='az2')),
            'availability_zone_changed',
            'destinations.same_availability_zone')

    def test_aggregates(self):
        pol = policy('destinations: {aggregates: [enrolled, lab]}\n')
        self.assertAllowed(self.decide(
            pol, dest=host('cmp2', aggregates=['other', 'lab'])))
        self.assertRefused(self.decide(pol, dest=host('cmp2')),
                           'aggregate_not_allowed', 'destinations.aggregates')

    def test_by_level(self):
        pol = policy("""\
            mac: {levels: {secret: 3}}
            destinations:
              by_level:
                - {min_level: 2, aggregates: [restricted]}
                - {min_level: secret, aggregates: [hardened]}
            """)
        low = instance()
        mid = instance(flavor_extra_specs={'secmig:level': '2'})
        high = instance(flavor_extra_specs={'secmig:level': '3'})
        plain = host('cmp2', clearance=5)
        restricted = host('cmp2', clearance=5, aggregates=['restricted'])
        both = host('cmp2', clearance=5,
                    aggregates=['restricted', 'hardened'])
        self.assertAllowed(self.decide(pol, inst=low, dest=plain))
        self.assertRefused(self.decide(pol, inst=mid, dest=plain),
                           'aggregate_not_allowed_for_level',
                           'destinations.by_level[0]')
        self.assertAllowed(self.decide(pol, inst=mid, dest=restricted))
        self.assertRefused(self.decide(pol, inst=high, dest=restricted),
                           'aggregate_not_allowed_for_level',
                           'destinations.by_level[1]')
        self.assertAllowed(self.decide(pol, inst=high, dest=both))


class ConstraintsTest(Case):

    def test_post_copy_allowed(self):
        pol = policy('transport: {post_copy: allowed}\n')
        d = self.assertAllowed(self.decide(pol))
        self.assertIs(True, d.details['constraints']['post_copy'])

    def test_post_copy_only_up_to_a_level(self):
        pol = policy('transport: {post_copy: allowed, '
                     'post_copy_max_level: 1}\n')
        one = instance(flavor_extra_specs={'secmig:level': '1'})
        two = instance(flavor_extra_specs={'secmig:level': '2'})
        dest = host('cmp2', clearance=2)
        self.assertIs(True, self.decide(pol, inst=one, dest=dest)
                      .details['constraints']['post_copy'])
        self.assertIs(False, self.decide(pol, inst=two, dest=dest)
                      .details['constraints']['post_copy'])

    def test_bandwidth_caps(self):
        pol = policy('transport: {max_bandwidth_mib: 800, '
                     'automatic_max_bandwidth_mib: 200}\n')
        self.assertEqual(800, self.decide(pol).details['constraints']
                         ['max_bandwidth_mib'])
        self.assertEqual(200, self.decide(pol, watcher()).details
                         ['constraints']['max_bandwidth_mib'])
        pol = policy('transport: {automatic_max_bandwidth_mib: 200}\n')
        self.assertIsNone(self.decide(pol).details['constraints']
                          ['max_bandwidth_mib'])
        self.assertEqual(200, self.decide(pol, watcher()).details
                         ['constraints']['max_bandwidth_mib'])

    def test_encryption_always_required(self):
        d = self.assertAllowed(self.decide(policy()))
        self.assertEqual('required', d.details['constraints']['encryption'])


class FailClosedTest(Case):

    def test_wrongly_typed_facts_refuse(self):
        pol = policy()
        with self.assertLogs('secmig.policy.evaluate', 'ERROR'):
            d = evaluate.evaluate(admin(), None, host('cmp1'), host('cmp2'),
                                  pol, NOW)
        self.assertFalse(d.allowed)
        self.assertEqual(('evaluation_error', 'evaluate'),
                         (d.code, d.details['rule']))

    def test_unavailable_policy_refuses(self):
        error = loader.PolicyError('/etc/p.yaml', 'unknown key', 7)
        d = loader.unavailable(error)
        self.assertFalse(d.allowed)
        self.assertEqual('policy_unavailable', d.code)
        self.assertIn('/etc/p.yaml:7: unknown key', d.reason)
        self.assertEqual(('/etc/p.yaml', 7, 'policy_invalid', None),
                         (d.details['file'], d.details['line'],
                          d.details['error_code'],
                          d.details['policy_digest']))
