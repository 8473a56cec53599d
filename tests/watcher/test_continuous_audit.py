"""SecureHotspot run by Watcher's own continuous audit handler.

Watcher's database (its test fixture), its ``ContinuousAuditHandler``
and its weight planner run the strategy as the decision engine does,
against the tier's real Gnocchi; only the strategy selector is replaced,
to hand Watcher a strategy wired to that Gnocchi and to a Watcher model
of the test cluster (there is no Nova to collect one from).

A CONTINUOUS audit that fails is dropped by Watcher for good; these
tests run one across a Gnocchi outage, missing meters and a policy
error, and check that it stays scheduled, proposes nothing while it
cannot judge, and plans again once it can: evidence before each
migration, at most two migrations at once.
"""

import datetime
import json
import os
import time
import uuid

from tests.watcher import strategy_util as su  # noqa: I100 (first)

from unittest import mock

from oslo_config import cfg
from oslo_messaging import conffixture
from watcher.common import context as watcher_context
from watcher.common import service
from watcher.decision_engine.audit import continuous
from watcher.decision_engine.strategy.selection import default as selection
from watcher import notifications
from watcher import objects
from watcher.tests import base as watcher_base
from watcher.tests.local_fixtures import conf_fixture
from watcher.tests.local_fixtures import db as db_fixture
from watcher.tests.unit.objects import utils as obj_utils

from secmig.watcher import history as history_mod
from tests import gnocchi_fixture as gf

MB = 1e6
CPUS = 4
PARAMS = dict(window=600, granularity=60, stale_after=180, min_points=3,
              link_gbps=1.0)
HOT = ('a-hot1', 'a-hot2', 'a-hot3')
COOL = ('a-cool1', 'a-cool2', 'a-cool3')


def guest(host, **kwargs):
    return gf.Guest(str(uuid.uuid4()), host, **kwargs)


class WatcherDbTestCase(watcher_base.WatcherBaseTestCase):
    """Watcher's configuration, a fake message bus and its database."""

    def setUp(self):
        super().setUp()
        self.useFixture(conf_fixture.ConfFixture(cfg.CONF))
        self.useFixture(conffixture.ConfFixture(cfg.CONF)).transport_url = (
            'fake:/')
        self.useFixture(db_fixture.WatcherDatabase())
        service.Singleton._instances.clear()
        self.addCleanup(service.Singleton._instances.clear)
        self.context = watcher_context.RequestContext(
            is_admin=True, user_id='watcher', project_id='service')


class ContinuousAuditTest(WatcherDbTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gnocchi = gf.shared_gnocchi()
        cls.site = su.Site()
        cls.addClassCleanup(cls.site.cleanup)
        cls.now = time.time()
        meters = dict(net_in=5 * MB, net_out=5 * MB, swap_out=0.0,
                      mem_free=6000.0)
        hosts = ([gf.Host(h, cpu_pct=90.0, **meters) for h in HOT]
                 + [gf.Host(h, cpu_pct=10.0, **meters) for h in COOL])
        cls.guests = [guest(h, cpu=1.8) for h in HOT for _ in range(2)]
        cls.guests += [guest(h, cpu=0.4) for h in COOL]
        gf.publish(cls.gnocchi, hosts, cls.guests, cls.now, 900, poll=60,
                   granularity=60)
        # z- publishes nothing: 4 one-vCPU VMs fill each 4-CPU host, so
        # no host can be judged
        cls.silent = [guest(h) for h in ('z-1', 'z-2') for _ in range(4)]
        cls.site.enroll(*(HOT + COOL + ('z-1', 'z-2')))

    def setUp(self):
        super().setUp()
        for name in ('audit', 'action_plan', 'action'):
            patcher = mock.patch.object(notifications, name, autospec=True)
            patcher.start()
            self.addCleanup(patcher.stop)
        cfg.CONF.set_override('host', 'decision-engine-1')
        # Gnocchi down: two attempts each, no wait between them
        cfg.CONF.set_override('query_max_retries', 2, 'watcher_datasources')
        cfg.CONF.set_override('query_interval', 0, 'watcher_datasources')
        goal = obj_utils.create_test_goal(self.context, id=1,
                                          name='workload_balancing')
        strategy = obj_utils.create_test_strategy(
            self.context, name='secmig_hotspot', goal_id=goal.id)
        template = obj_utils.create_test_audit_template(
            self.context, goal_id=goal.id, strategy_id=strategy.id)
        self.audit = obj_utils.create_test_audit(
            self.context, uuid=str(uuid.uuid4()), goal_id=goal.id,
            strategy_id=strategy.id, audit_template_id=template.id,
            audit_type=objects.audit.AuditType.CONTINUOUS.value,
            interval='600', parameters=dict(PARAMS), goal=goal,
            hostname='decision-engine-1')
        self.guests_now = self.guests
        self.conf = self.site.conf()
        self.placement = {}
        selector = mock.patch.object(
            selection.DefaultStrategySelector, 'select',
            side_effect=self.new_strategy)
        selector.start()
        self.addCleanup(selector.stop)

    def new_strategy(self):
        hosts = sorted({g.host for g in self.guests_now})
        strategy = su.make_strategy(
            self.site, su.build_model(hosts, self.guests_now,
                                      node_vcpus=CPUS),
            self.gnocchi.client(), self.now + 1)
        strategy.secmig_conf = self.conf
        strategy.history_source = None  # Watcher's own database
        strategy.placement_source = lambda: self.placement
        return strategy

    def run_period(self):
        """One period of the audit, as Watcher's scheduler runs it.

        Returns the audit as Watcher's database holds it afterwards.
        """
        continuous.ContinuousAuditHandler.execute_audit(self.audit,
                                                        self.context)
        return objects.Audit.get_by_uuid(self.context, self.audit.uuid)

    def plans(self):
        return objects.ActionPlan.list(
            self.context, filters={'audit_uuid': self.audit.uuid})

    def actions(self, plan):
        return objects.Action.list(
            self.context, filters={'action_plan_uuid': plan.uuid})

    def recommended(self):
        [plan] = [p for p in self.plans()
                  if p.state == objects.action_plan.State.RECOMMENDED]
        return plan, self.actions(plan)

    def assertStillScheduled(self, audit):
        """The audit is ONGOING and Watcher's scheduler keeps its job.

        The state is checked first, from Watcher's database: Watcher's
        handler removes the job of an audit it finds inactive, so asking
        it about a FAILED audit touches the job store.
        """
        self.assertNotEqual(
            objects.audit.State.FAILED, audit.state,
            'Watcher marked the CONTINUOUS audit FAILED after the period '
            '(%d action plan(s)): it would never run again'
            % len(self.plans()))
        self.assertEqual(objects.audit.State.ONGOING, audit.state,
                         'the CONTINUOUS audit is no longer ONGOING')
        handler = continuous.ContinuousAuditHandler()
        self.assertFalse(handler._is_audit_inactive(audit))
        self.assertIsNotNone(audit.next_run_time)

    def assertReportedFailure(self, code):
        """The period's plan: one nop saying why, no migration."""
        _, actions = self.recommended()
        self.assertEqual(['nop'], [a.action_type for a in actions])
        message = json.loads(actions[0].input_parameters['message'])
        self.assertEqual(('audit_failed', code),
                         (message['secmig'], message['code']))
        return message

    def test_audit_keeps_running_across_a_gnocchi_outage(self):
        self.addCleanup(self.gnocchi.start_api)
        self.gnocchi.stop_api()
        # Given Gnocchi down, when a period runs
        audit = self.run_period()
        # Then the audit is still scheduled, and proposes nothing
        self.assertStillScheduled(audit)
        message = self.assertReportedFailure('gnocchi_unreachable')
        self.assertIn('2 attempts', message['reason'])
        # two host requests, each sent twice
        self.assertEqual(4, message['requests'])
        # When Gnocchi is back, the next period plans the moves
        self.gnocchi.start_api()
        self.assertStillScheduled(self.run_period())
        states = sorted(p.state for p in self.plans())
        self.assertEqual([objects.action_plan.State.CANCELLED,
                          objects.action_plan.State.RECOMMENDED], states)
        _, actions = self.recommended()
        self.assertEqual(3, len([a for a in actions
                                 if a.action_type == 'migrate']))

    def test_each_migration_after_its_evidence_two_at_a_time(self):
        self.run_period()
        _, actions = self.recommended()
        self.assertEqual(3, len([a for a in actions
                                 if a.action_type == 'migrate']))
        self.assertEvidenceFirstAndTwoAtOnce(actions)

    def assertEvidenceFirstAndTwoAtOnce(self, actions):
        by_uuid = {a.uuid: a for a in actions}

        def ancestors(action):
            seen, todo = set(), list(action.parents)
            while todo:
                parent = todo.pop()
                if parent not in seen:
                    seen.add(parent)
                    todo.extend(by_uuid[parent].parents)
            return seen

        migrations = [a for a in actions if a.action_type == 'migrate']
        for migrate in migrations:
            before = ancestors(migrate)
            evidence = [json.loads(by_uuid[u].input_parameters['message'])
                        for u in before
                        if by_uuid[u].action_type == 'nop']
            self.assertIn(migrate.input_parameters['resource_id'],
                          [e.get('instance') for e in evidence])
        # migrations not ordered between them run at once: two at most
        for migrate in migrations:
            unordered = [m for m in migrations
                         if migrate.uuid not in ancestors(m)
                         and m.uuid not in ancestors(migrate)]
            self.assertLessEqual(len(unordered), 2, unordered)
        self.assertTrue(any(
            len([m for m in migrations if m.uuid not in ancestors(x)
                 and x.uuid not in ancestors(m)]) == 2
            for x in migrations))

    def test_audit_keeps_running_without_any_meter(self):
        self.guests_now = self.silent
        self.assertStillScheduled(self.run_period())
        message = self.assertReportedFailure('metrics_missing')
        self.assertIn('2 of 2 host(s) cannot be judged', message['reason'])

    def test_audit_keeps_running_across_a_policy_error(self):
        self.conf.set_override('policy_file', os.path.join(
            self.site.dir, 'absent.yaml'), group='policy')
        self.assertStillScheduled(self.run_period())
        self.assertReportedFailure('policy_missing')

    def test_a_one_shot_audit_still_fails(self):
        self.audit.audit_type = objects.audit.AuditType.ONESHOT.value
        self.audit.save()
        self.guests_now = self.silent
        handler = continuous.ContinuousAuditHandler()
        handler.execute(self.audit, self.context)
        audit = objects.Audit.get_by_uuid(self.context, self.audit.uuid)
        self.assertEqual(objects.audit.State.FAILED, audit.state)
        self.assertEqual([], self.plans())

    def test_history_is_read_for_the_window_only(self):
        plan = obj_utils.create_test_action_plan(
            self.context, audit_id=self.audit.id, uuid=str(uuid.uuid4()))
        now = datetime.datetime.utcnow()
        recent, old = str(uuid.uuid4()), str(uuid.uuid4())
        rows = [(recent, 'migrate', 'SUCCEEDED', 600),
                (recent, 'migrate', 'PENDING', 60),
                (recent, 'nop', 'SUCCEEDED', 60)]
        rows += [(old, 'migrate', 'SUCCEEDED', 90000)] * 3
        for number, (resource, kind, state, age) in enumerate(rows, 1):
            obj_utils.create_test_action(
                self.context, id=number, uuid=str(uuid.uuid4()),
                action_plan_id=plan.id, action_type=kind, state=state,
                input_parameters={'resource_id': resource},
                updated_at=now - datetime.timedelta(seconds=age))
        returned = []
        listing = objects.Action.list

        def counted(*args, **kwargs):
            result = listing(*args, **kwargs)
            returned.extend(result)
            return result

        with mock.patch.object(objects.Action, 'list', side_effect=counted):
            history = history_mod.from_watcher_db(
                self.context, time.time() - 86400)
        # Then the database returned the window's counted actions only
        self.assertEqual(2, len(returned))
        self.assertEqual([recent], list(history))
        self.assertAlmostEqual(time.time() - 600, history[recent][0],
                               delta=5)

    def test_recent_moves_in_watchers_database_hold_vms_back(self):
        self.run_period()
        _, actions = self.recommended()
        # the applier ran the plan's migrations
        moved = []
        for action in actions:
            if action.action_type == 'migrate':
                action.state = objects.action.State.SUCCEEDED
                action.save()
                moved.append(action.input_parameters['resource_id'])
        self.run_period()
        _, actions = self.recommended()
        # the VMs left on the hot hosts move now; those moved stay put
        again = [a.input_parameters['resource_id'] for a in actions
                 if a.action_type == 'migrate']
        self.assertEqual(3, len(again))
        self.assertFalse(set(again) & set(moved))
        report = [json.loads(a.input_parameters['message'])
                  for a in actions if a.action_type == 'nop']
        self.assertEqual([], [r for r in report
                              if r['secmig'] == 'audit_failed'])
