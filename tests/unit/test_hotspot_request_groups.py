"""How the VMs of one host request are grouped into instance requests."""

import unittest

from secmig.hotspot import gnocchi_query


def groups(wanted):
    """``{kinds: ids}`` for ``{id: kinds}``, as the reader sends them."""
    by_kinds = {}
    for vm_id, kinds in wanted.items():
        by_kinds.setdefault(frozenset(kinds), []).append(vm_id)
    return {tuple(sorted(k)): ids for k, ids in
            gnocchi_query._merge_subsets(by_kinds).items()}


class MergeSubsetsTest(unittest.TestCase):

    def test_a_part_is_read_with_the_smallest_set_that_holds_it(self):
        # the VMs of a network hotspot need only their dirty rate: they
        # are read with those of a CPU hotspot (the first of the two
        # sets that hold theirs, by name), not in a request of their own
        self.assertEqual(
            {('cpu', 'dirty'): ['c1', 'n1'],
             ('dirty', 'resident'): ['s1']},
            groups({'c1': {'cpu', 'dirty'}, 'n1': {'dirty'},
                    's1': {'resident', 'dirty'}}))

    def test_one_request_when_some_vm_needs_every_kind(self):
        self.assertEqual(
            {('cpu', 'dirty', 'resident'): ['a', 'b', 'c', 'd']},
            groups({'a': {'cpu', 'dirty', 'resident'}, 'b': {'cpu', 'dirty'},
                    'c': {'cpu'}, 'd': {'resident', 'dirty'}}))

    def test_at_most_two_requests_whatever_the_kinds_wanted(self):
        # Each VM wants a part of cpu, resident and dirty; dirty, when
        # its meter is named, is wanted by every VM read. Any mix of
        # such VMs makes two requests at most.
        kinds = ('cpu', 'resident', 'dirty')
        subsets = [frozenset(k for i, k in enumerate(kinds) if mask >> i & 1)
                   for mask in range(1, 8)]
        for dirty_named in (True, False):
            family = [s for s in subsets if ('dirty' in s) == dirty_named]
            for mix in range(1, 2 ** len(family)):
                wanted = {'vm%d' % i: s for i, s in enumerate(family)
                          if mix >> i & 1}
                merged = groups(wanted)
                self.assertLessEqual(len(merged), 2, merged)
                # every VM is read, for at least what it wanted
                read = {i: set(k) for k, ids in merged.items() for i in ids}
                self.assertEqual(set(wanted), set(read))
                for vm_id, want in wanted.items():
                    self.assertLessEqual(want, read[vm_id])

    def test_sets_apart_stay_apart(self):
        self.assertEqual({('cpu',): ['a'], ('resident',): ['b']},
                         groups({'a': {'cpu'}, 'b': {'resident'}}))
