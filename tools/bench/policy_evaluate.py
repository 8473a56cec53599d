"""Cost of a migration-policy decision, as the scheduler filter pays it.

Usage::

    .venv/bin/python tools/bench/policy_evaluate.py [--hosts 1000]
        [--rounds 5]

Loads ``etc/secmig/migration-policy.yaml.sample`` and decides one
migration against ``--hosts`` candidate destinations, as a scheduler
pass would: once with every check passing (the longest path), once
refused at the first check (RBAC); and compares with loading the policy
for every host (what evaluation would cost without rules compiled at
load). Prints the median of ``--rounds`` rounds, per host, and the
ratio of re-parsing to precompiled evaluation. Also prints the cost of
:meth:`PolicySource.get` (one ``stat``), of loading the file, and of one
RBAC rule through oslo.policy's check tree against the compiled
evaluator that combines the same leaves.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir))

from secmig.policy import evaluate  # noqa: E402
from secmig.policy import facts  # noqa: E402
from secmig.policy import loader  # noqa: E402
from secmig.policy import rules  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      os.pardir, os.pardir, 'etc', 'secmig',
                      'migration-policy.yaml.sample')
NOW = 1_700_000_000.0


def median_per_call(func, calls, rounds):
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()

    policy = loader.load(SAMPLE)
    operator = facts.Request('api', {'user_id': 'max', 'project_id': 'p1',
                                     'roles': ['admin']})
    member = facts.Request('api', {'user_id': 'mia', 'project_id': 'p1',
                                   'roles': ['member']})
    instance = facts.InstanceFacts(
        'inst-1', 'p1', 'u1', 'm1.small', {'secmig:level': 'confidential'},
        {}, {'secmig:level': 'internal'}, NOW - 86400)
    source = facts.HostFacts('cmp0', 3, True, 'ok', True,
                             frozenset(['secmig-enrolled']), 'az1')
    hosts = [facts.HostFacts('cmp%d' % i, 3, True, 'ok', True,
                             frozenset(['secmig-enrolled', 'hardened']),
                             'az%d' % (1 + i % 2))
             for i in range(1, args.hosts + 1)]
    assert evaluate.evaluate(operator, instance, source, hosts[0], policy,
                             NOW).allowed
    assert not evaluate.evaluate(member, instance, source, hosts[0], policy,
                                 NOW).allowed

    def scheduler_pass(request):
        def run():
            for host in hosts:
                evaluate.evaluate(request, instance, source, host, policy,
                                  NOW)
        return run

    def load_pass():
        for _ in range(max(1, len(hosts) // 20)):
            loader.load(SAMPLE)

    cached = loader.PolicySource(SAMPLE)

    def source_pass():
        for _ in hosts:
            cached.get()

    # The same RBAC rule through oslo.policy's own check tree, as an
    # Enforcer would evaluate it, and through the compiled evaluator.
    named = rules.compile_named({k: v.text for k, v in policy.rules.items()})
    _, tree = rules.compile_rule(policy.rbac['api'].text, named)
    target = rules.build_target({'project_id': 'p1'})
    creds = operator.credentials
    compiled = policy.rbac['api'].check
    assert tree(target, creds, None) and compiled(target, creds)

    def oslo_tree():
        for _ in hosts:
            tree(target, creds, None)

    def evaluator():
        for _ in hosts:
            compiled(target, creds)

    calls, rounds = len(hosts), args.rounds
    load = median_per_call(load_pass, max(1, calls // 20), rounds)
    allowed = median_per_call(scheduler_pass(operator), calls, rounds)
    refused = median_per_call(scheduler_pass(member), calls, rounds)
    stat = median_per_call(source_pass, calls, rounds)
    oslo = median_per_call(oslo_tree, calls, rounds)
    fast = median_per_call(evaluator, calls, rounds)
    print('policy load (parse, validate, compile): %8.1f us' % (load * 1e6))
    print('evaluate, allowed (all checks):         %8.1f us per host'
          % (allowed * 1e6))
    print('evaluate, refused at RBAC:              %8.1f us per host'
          % (refused * 1e6))
    print('PolicySource.get (unchanged file):      %8.1f us per call'
          % (stat * 1e6))
    print('scheduler pass over %d hosts:         %8.2f ms'
          % (calls, allowed * calls * 1e3))
    print('load per host / precompiled evaluate:   %8.0fx'
          % ((load + allowed) / allowed))
    print('rbac.api rule: oslo.policy tree %.1f us, compiled %.1f us '
          '(%.0fx)' % (oslo * 1e6, fast * 1e6, oslo / fast))


if __name__ == '__main__':
    main()
