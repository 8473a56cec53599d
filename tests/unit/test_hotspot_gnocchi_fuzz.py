"""Gnocchi's answers are untrusted input to the hotspot reader.

Whatever a Gnocchi endpoint answers (any JSON, a well-formed answer with
one field altered, bytes that are not JSON), :class:`AggregatesReader`
returns observations or raises ``GnocchiQueryError``; nothing else
escapes into the Watcher strategy. The reader talks to a real
gnocchiclient ``Client`` (its aggregates API parses the answers first);
only the keystoneauth session under it is a stand-in, answering every
request with the same bytes: the point is to send what a real Gnocchi
never would. Runs are bounded and derandomised.
"""

import json
import math
import unittest

from gnocchiclient.v1 import client as gclient
from keystoneauth1 import session as ksa_session
import requests

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from secmig.hotspot import detect
from secmig.hotspot import gnocchi_query
from secmig.hotspot import model

BOUNDED = settings(max_examples=300, deadline=None, database=None,
                   derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
STAMP = '2027-01-15T07:50:00+00:00'
LATER = '2027-01-15T07:55:00+00:00'
HOSTS = [model.HostInfo('cmp1', cpus=4, link_bps=125e6)]
VMS = [model.VmInfo('r1', 'cmp1'), model.VmInfo('vm1', 'cmp1')]
THRESHOLDS = detect.Thresholds(window=600, granularity=300, min_points=1)

_leaf = (st.none() | st.booleans() | st.integers()
         | st.floats(allow_nan=True, allow_infinity=True)
         | st.text(max_size=30) | st.just(STAMP) | st.just(LATER))
json_values = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(
        ['measures', 'references', 'id', 'host_name', 'instance_id',
         'cpu', 'memory.resident', 'mean']), inner, max_size=4),
    max_leaves=16)


def good_answer(details):
    """An answer as Gnocchi 4.7 gives it, for one resource."""
    answer = {'measures': {'r1': {
        'cpu': {'mean': [[STAMP, 300.0, 1e12], [LATER, 300.0, 1.3e12]]},
        'memory.resident': {'mean': [[STAMP, 300.0, 512.0]]},
        'compute.node.cpu.percent': {'mean': [[STAMP, 300.0, 40.0]]}}}}
    if details:
        answer['references'] = [{'id': 'r1', 'host_name': 'cmp1',
                                 'instance_id': 'vm1'}]
    return answer


@st.composite
def altered(draw):
    """A good answer with one value, anywhere in it, replaced."""
    answer = good_answer(draw(st.booleans()))
    node, path = answer, []
    while isinstance(node, (dict, list)) and node:
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        key = draw(st.sampled_from(list(keys)))
        path.append(key)
        if draw(st.booleans()):
            break
        node = node[key]
    target = answer
    for key in path[:-1]:
        target = target[key]
    if path:
        target[path[-1]] = draw(json_values)
    return answer


class AnsweringSession(ksa_session.Session):
    """A keystoneauth session that answers every request with ``body``.

    ``body`` is serialised as JSON unless it is a string, sent as is.
    """

    def __init__(self, body, status=200):
        super().__init__()
        self.body = body
        self.status = status

    def request(self, url, method, **kwargs):
        response = requests.Response()
        response.status_code = self.status
        response.url = url
        response.headers['Content-Type'] = 'application/json'
        text = (self.body if isinstance(self.body, str)
                else json.dumps(self.body))
        response._content = text.encode('utf-8', 'surrogatepass')
        return response


def read(body, status=200):
    client = gclient.Client(session=AnsweringSession(body, status))
    reader = gnocchi_query.AggregatesReader(client)
    return reader.fetch(['vm1'], ['cmp1'], 600, 300, now=NOW)


class GnocchiAnswerFuzzTest(unittest.TestCase):

    def assertReadOrRefused(self, body):
        try:
            obs = read(body)
        except gnocchi_query.GnocchiQueryError as e:
            self.assertIn(e.code, ('gnocchi_bad_answer', 'gnocchi_error'))
            return None
        for by_kind in list(obs.vm.values()) + list(obs.host.values()):
            for series in by_kind.values():
                for t, v in series:
                    self.assertTrue(math.isfinite(t) and math.isfinite(v))
        # Whatever the reader accepts, detection takes.
        report = detect.detect(HOSTS, VMS, obs, THRESHOLDS)
        self.assertLessEqual(set(report.hot_hosts), {'cmp1'})
        return obs

    def test_a_good_answer_is_read(self):
        obs = read(good_answer(details=True))
        self.assertEqual({'cpu', 'resident'}, set(obs.vm['r1']))
        # 3e11 ns of CPU in 300 s: one core
        self.assertEqual(((NOW - 300, 1.0),), obs.vm['r1']['cpu'])
        self.assertEqual({'cpu_pct'}, set(obs.host['cmp1']))

    @BOUNDED
    @given(json_values)
    def test_any_json(self, body):
        self.assertReadOrRefused(body)

    @BOUNDED
    @given(altered())
    def test_one_value_altered(self, body):
        self.assertReadOrRefused(body)

    @BOUNDED
    @given(st.text(max_size=60))
    def test_any_text(self, body):
        self.assertReadOrRefused(body)

    def test_not_json_is_refused_as_such(self):
        with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
            read('<html>proxy error</html>')
        self.assertEqual('gnocchi_bad_answer', cm.exception.code)
        self.assertIn('JSONDecodeError', str(cm.exception))

    def test_a_value_that_is_not_a_number_is_refused(self):
        for value in ('12', None, True, float('nan'), float('inf')):
            answer = good_answer(details=True)
            answer['measures']['r1']['cpu']['mean'][0][2] = value
            with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
                read(answer)
            self.assertEqual('gnocchi_bad_answer', cm.exception.code)
            self.assertIn('not a finite number', str(cm.exception))

    def test_a_bad_timestamp_is_refused(self):
        answer = good_answer(details=True)
        answer['measures']['r1']['cpu']['mean'][0][0] = 'yesterday'
        with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
            read(answer)
        self.assertEqual('gnocchi_bad_answer', cm.exception.code)
        self.assertIn('yesterday', str(cm.exception))

    def test_an_error_answer_that_is_not_gnocchis_is_refused(self):
        # gnocchiclient reads a JSON error body as a mapping
        with self.assertRaises(gnocchi_query.GnocchiQueryError) as cm:
            read('"description: out of order"', status=500)
        self.assertEqual('gnocchi_bad_answer', cm.exception.code)
        self.assertIn('AttributeError', str(cm.exception))
