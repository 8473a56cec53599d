"""Property-based tests of every decoder of bytes others may write.

A journal's lines, its head and its delivery cursor can be written by
anyone with access to the files. Whatever their bytes: the line and
file decoders raise only their documented errors, the verifier returns
a verdict with a documented code and calls no altered journal intact,
the writer refuses with ``journal_tampered`` (never an unexpected
error) and never makes an altered journal verify, and the deliverer and
``secmig audit show`` raise only ``SecmigError``. Runs are bounded and
derandomised so that the suite is repeatable.
"""

import json
import os
import shutil
import tempfile
import unittest

from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from secmig.audit import delivery
from secmig.audit import events
from secmig.audit import journal
from secmig.audit import lines
from secmig.audit import sidefiles
from secmig.audit import signing
from secmig.audit import trail
from secmig.audit import verify
from secmig import exception
from tests import auditutil
from tests import fuzzutil
from tests import pkiutil

BOUNDED = fuzzutil.bounded(120)

#: The codes verify.py documents.
VERIFY_CODES = {'malformed', 'truncated', 'deleted', 'reordered',
                'inserted', 'edited', 'broken_chain', 'unsigned_tail',
                'bad_signature', 'unknown_signer', 'superseded_signer',
                'wrong_host', 'untrusted_signer', 'head_missing', 'bad_head',
                'head_mismatch', 'bad_cursor'}

json_values = fuzzutil.json_values(finite=True)
mutations = fuzzutil.mutations


@st.composite
def line_changes(draw, raw_lines):
    """The lines with one dropped, duplicated, or two swapped."""
    out = list(raw_lines)
    i = draw(st.integers(0, len(out) - 1))
    kind = draw(st.sampled_from(('drop', 'duplicate', 'swap')))
    if kind == 'drop':
        del out[i]
    elif kind == 'duplicate':
        out.insert(draw(st.integers(0, len(out))), out[i])
    else:
        j = draw(st.integers(0, len(out) - 1).filter(lambda j: j != i))
        out[i], out[j] = out[j], out[i]
    return out


@st.composite
def rechained(draw, raw_lines):
    """One line's body changed, every later hash recomputed (no key).

    The frame and the hashes are right, so the rules behind them are
    what refuse it.
    """
    i = draw(st.integers(0, len(raw_lines) - 1))
    frame = lines.Frame(raw_lines[i])
    body = frame.body()
    name = draw(st.sampled_from(sorted(body) + ['extra']))
    if draw(st.booleans()) and name in body:
        del body[name]
    else:
        body[name] = draw(json_values.filter(
            lambda v: v != body.get(name)))
    kind = draw(st.sampled_from((frame.kind, frame.kind, 'key', 'event',
                                 'checkpoint', 'recovered', 'other')))
    out = list(raw_lines[:i])
    prev = lines.Frame(out[-1]).h if out else lines.GENESIS
    for seq, (k, b) in enumerate(
            [(kind, body)] + [(f.kind, f.body()) for f in map(
                lines.Frame, raw_lines[i + 1:])], i + 1):
        line, prev = lines.encode(seq, prev, k, b)
        out.append(line)
    return out


cursors = (st.binary(max_size=200)
           | json_values.map(lambda v: json.dumps(v).encode())
           | st.fixed_dictionaries({
               'seq': st.integers(-3, 2 ** 70) | json_values,
               'offset': st.integers(-3, 2 ** 70) | json_values,
               'id': st.text(max_size=8) | json_values}).map(
                   lambda v: json.dumps(v).encode()))


class AuditFuzzTest(unittest.TestCase):
    """One genuine journal (two batches, one record delivered) to alter."""

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix='secmig-audit-fuzz-')
        cls.pki = pkiutil.TestPKI(os.path.join(cls.base, 'pki'))
        cls.host = cls.pki.enroll('cmp1')
        cls.trust = cls.pki.trust()
        cls.signer = signing.HostSigner.from_cert_dir(cls.host.cert_dir)
        path = os.path.join(cls.base, 'genuine', 'journal.jsonl')
        j = journal.Journal(path, cls.signer, fsync='record')
        audit = trail.AuditTrail(j)
        for step in ('requested', 'refused'):
            audit.record(step, 'm', 'i', 'success')
        j.close()
        with open(path, 'rb') as f:
            cls.raw = f.readlines()  # key, event, ckpt, event, ckpt
        cls.journal = b''.join(cls.raw)
        cls.head = cls.raw[-1]
        cls.cursor = json.dumps({
            'seq': 2, 'offset': len(cls.raw[0]) + len(cls.raw[1]),
            'id': lines.Frame(cls.raw[1]).body()['id']}).encode()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def files(self, journal_bytes=None, head=None, cursor=None):
        """A new directory with these files (genuine by default)."""
        directory = tempfile.mkdtemp(dir=self.base)
        path = os.path.join(directory, 'journal.jsonl')
        for suffix, data, default in (
                ('', journal_bytes, self.journal),
                (journal.HEAD_SUFFIX, head, self.head),
                (journal.CURSOR_SUFFIX, cursor, self.cursor)):
            with open(path + suffix, 'wb') as f:
                f.write(default if data is None else data)
        return path

    def verdict(self, path):
        verdict = verify.verify_journal(path, trust=self.trust, host='cmp1')
        self.assertIn(verdict.code, VERIFY_CODES | {'intact'}, verdict)
        return verdict

    def assertRefused(self, path):
        verdict = self.verdict(path)
        self.assertFalse(verdict, verdict)
        self.assertIn(verdict.code, VERIFY_CODES, verdict)

    def writer(self, path):
        j = journal.Journal(path, self.signer)
        j.sync = lambda fd: None  # content, not durability, is tested
        self.addCleanup(j.close)
        return trail.AuditTrail(j)

    def append(self, audit):
        """Record once: True, or False when refused as documented."""
        try:
            audit.record('copied', 'm', 'i', 'success')
        except exception.SecmigError as e:
            self.assertIn(e.code, ('journal_tampered', 'stale_host_key'), e)
            if e.code == 'journal_tampered':
                self.assertIn(e.decision.code, VERIFY_CODES, e)
            return False
        return True

    def show(self, path):
        status, _out, _err = auditutil.run_cli('audit', 'show', path)
        self.assertIn(status, (0, 1))

    def deliver(self, path):
        class Sender:
            def send(self, record_id, event_type, payload):
                json.dumps(payload)  # it must be serialisable

        try:
            delivery.Outbox(path, Sender()).deliver_or_raise()
        except exception.SecmigError as e:
            self.assertIn(e.code, ('bad_cursor', 'bad_head',
                                   'journal_tampered'), e)

    # The originals, without which the properties mean nothing --------

    def test_originals_are_accepted(self):
        path = self.files()
        self.assertTrue(self.verdict(path))
        self.show(path)
        self.deliver(path)
        self.assertTrue(self.append(self.writer(path)))
        self.assertTrue(self.verdict(path))

    # Lines --------------------------------------------------------------

    @BOUNDED
    @given(st.binary(max_size=600))
    @example(lines.encode(1, lines.GENESIS, 'event', {})[0].replace(
        b'"body":{}', b'"body":{"a":' + b'[' * 30000 + b']' * 30000 + b'}'))
    @example(b'{"seq":' + b'9' * 5000 + lines.encode(
        1, lines.GENESIS, 'event', {})[0][8:])
    @example(lines.encode(1, lines.GENESIS, 'event', {})[0].replace(
        b'"body":{}', b'"body":{"a":NaN,"a":1}'))
    def test_any_bytes_as_a_line(self, raw):
        self.decode_line(raw)

    @BOUNDED
    @given(st.integers(0, 4).flatmap(
        lambda i: mutations(AuditFuzzTest.raw[i])))
    def test_altered_lines(self, raw):
        self.decode_line(raw)

    def decode_line(self, raw):
        try:
            frame = lines.Frame(raw)
        except lines.LineError:
            return
        try:
            body = frame.body()
        except lines.LineError:
            return
        self.assertIsInstance(body, dict)
        events.evidence_of(body.get('event'))

    # The journal --------------------------------------------------------

    @BOUNDED
    @given(st.deferred(lambda: mutations(AuditFuzzTest.journal)))
    def test_altered_journal(self, data):
        path = self.files(journal_bytes=data)
        self.assertRefused(path)
        self.show(path)
        self.deliver(path)
        self.writer_never_launders(path)

    @BOUNDED
    @given(st.deferred(lambda: line_changes(AuditFuzzTest.raw)))
    def test_lines_dropped_duplicated_or_swapped(self, raw_lines):
        path = self.files(journal_bytes=b''.join(raw_lines))
        self.assertRefused(path)
        self.writer_never_launders(path)

    @BOUNDED
    @given(st.deferred(lambda: rechained(AuditFuzzTest.raw)))
    def test_rechained_without_the_key(self, raw_lines):
        path = self.files(journal_bytes=b''.join(raw_lines),
                          head=raw_lines[-1])
        self.assertRefused(path)
        self.show(path)
        self.deliver(path)
        self.writer_never_launders(path)

    def writer_never_launders(self, path):
        """A writer refuses, or appends and the journal still fails."""
        if self.append(self.writer(path)):
            self.assertRefused(path)

    # The head and the cursor ---------------------------------------------

    @BOUNDED
    @given(st.binary(max_size=600)
           | st.deferred(lambda: mutations(AuditFuzzTest.head)))
    def test_any_head(self, head):
        path = self.files(head=head)
        try:
            sidefiles.read_head(path)
        except sidefiles.SideFileError:
            pass
        if head != self.head:
            self.assertRefused(path)
            self.assertFalse(self.append(self.writer(path)))
        self.deliver(path)

    @BOUNDED
    @given(cursors)
    @example(b'[' * 30000)
    @example(b'{"seq": 1e999, "offset": 0, "id": "x"}')
    def test_any_cursor(self, cursor):
        path = self.files(cursor=cursor)
        try:
            parsed = sidefiles.read_cursor(path)
        except sidefiles.SideFileError:
            parsed = None
        verdict = self.verdict(path)
        if parsed is None or parsed.seq > 5:
            self.assertFalse(verdict, verdict)
        self.deliver(path)
        self.append(self.writer(path))
