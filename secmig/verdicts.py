"""Verdicts on host certificates, kept per certificate and CA.

A verdict is what :func:`secmig.pki.verify.verify_certificate` says about
the certificate a host publishes. Verifying costs signature checks, so
:class:`CertificateVerdicts` verifies a certificate once, under the CA
that issued it, and keeps the verdict for as long as its inputs hold:

* an accepting verdict carries the certificate's validity window (its
  start, and its end less the expiry margin), checked against the clock
  on every use, and the serial and issuing CA it depends on;
* a new revocation list is checked against the kept verdicts by serial
  number: a listed certificate is verified again (and refused, with the
  revocation's date and reason), the others keep their verdicts; a new
  CA bundle keeps the verdicts of the CAs still in it;
* the CA bundle's and revocation lists' own windows (a CA's expiry, a
  list's next update) are checked once per request;
* the verdict on a host that requests have stopped asking about (a
  host that left the cloud) is dropped at a refresh once the latest
  request is ``forget_after`` seconds past the host's last lookup; a
  cloud with no request for that long keeps every verdict.

A request never waits for bulk verification. A certificate not seen
before is verified by a background worker (a thread: a green thread when
eventlet has patched ``threading``), which defers to requests in progress.
A request may verify a few itself (:data:`INLINE`, for hosts that just
appeared or renewed) when the worker has no backlog; it refuses every
other such host with ``certificate_pending`` until the worker has judged
it. A host is never passed on a certificate that has not been verified.
"""

import collections
import datetime
import functools
import logging
import os
import threading
import time
import weakref

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from secmig.decision import Decision
from secmig import exception
from secmig.pki import keys
from secmig.pki import verify

LOG = logging.getLogger(__name__)

#: Certificates a request may verify itself before it leaves the rest to
#: the worker: enough for the hosts a small cloud adds or renews at once.
INLINE = 8

#: Seconds the worker waits for requests in progress before it verifies
#: one more certificate anyway.
PATIENCE = 0.02

#: The verdict on a host whose certificate is waiting for the worker.
PENDING = Decision.refuse(
    'certificate_pending', 'the certificate the host publishes has not '
    'been verified yet; it is being verified in the background and the '
    'host is refused until then')

_DEFAULT_MARGIN = 3600
_DER = serialization.Encoding.DER
_UNBOUNDED = float('inf')


class _Verdict:
    """A kept verdict on the certificate ``pem`` of one host."""

    __slots__ = ('pem', 'answer', 'not_before', 'until', 'issuer', 'serial',
                 'used')

    def __init__(self, pem, decision, key, not_before=0.0, until=_UNBOUNDED,
                 issuer=None, serial=None):
        self.pem = pem
        #: ``(Decision, key)``, as :meth:`Reader.lookup` returns it
        self.answer = (decision, key)
        #: the window in which an accepting verdict holds (POSIX times)
        self.not_before = not_before
        self.until = until
        #: DER bytes of the issuing CA (None for a refusal)
        self.issuer = issuer
        self.serial = serial
        #: when a request last read it (POSIX time)
        self.used = None


class _Trust:
    """One reading of the CA bundle and revocation lists."""

    def __init__(self, store, error, require_crl):
        self.store = store
        #: the refusal of every host while the store cannot be read
        self.refusal = None
        if store is None:
            self.refusal = Decision.refuse(
                'trust_unavailable', 'the CA certificate or revocation '
                'list cannot be read: %s' % error)
            self.identity, self.until = None, _UNBOUNDED
            return
        self.identity = (tuple(ca.public_bytes(_DER) for ca in store.ca_certs),
                         tuple(crl.public_bytes(_DER) for crl in store.crls))
        times = [ca.not_valid_after_utc for ca in store.ca_certs]
        times += [crl.next_update_utc for crl in store.crls
                  if crl.next_update_utc is not None]
        #: when the store stops vouching: a CA expires, a list goes stale
        self.until = min(times).timestamp()
        self._require_crl = require_crl

    @functools.cached_property
    def cas(self):
        """CA DER -> the serials its lists revoke, or None.

        None when that CA's verdicts must be verified again: its lists
        are missing (and required), or not signed by it.
        """
        return {der: _revoked_serials(ca, self.store.crls, self._require_crl)
                for der, ca in zip(self.identity[0], self.store.ca_certs)}

    def issuer_of(self, cert):
        """DER of the CA in the store that issued ``cert`` (verified)."""
        named = [(der, ca) for der, ca in zip(self.identity[0],
                                              self.store.ca_certs)
                 if ca.subject == cert.issuer]
        if len(named) == 1:
            return named[0][0]
        for der, ca in named:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return der
        return None

    def closed(self, now):
        """The refusal of every host at ``now``, or None."""
        if self.refusal is not None or now < self.until:
            return self.refusal
        stale = [crl.next_update_utc for crl in self.store.crls
                 if crl.next_update_utc is not None
                 and crl.next_update_utc.timestamp() <= now]
        if stale:
            return Decision.refuse(
                'crl_stale', 'the revocation list expired on %s; publish '
                'a fresh one with "secmig pki crl"' % min(stale).isoformat())
        expired = min(ca.not_valid_after_utc for ca in self.store.ca_certs)
        return Decision.refuse(
            'ca_expired', 'a trusted CA certificate expired on %s'
            % expired.isoformat())


def _revoked_serials(ca, crls, require_crl):
    lists = [crl for crl in crls if crl.issuer == ca.subject]
    if not lists and require_crl:
        return None
    serials = set()
    for crl in lists:
        try:
            if not crl.is_signature_valid(ca.public_key()):
                return None
        except (TypeError, ValueError, UnsupportedAlgorithm):
            return None
        serials.update(entry.serial_number for entry in crl)
    return frozenset(serials)


class CertificateVerdicts:
    """Verdicts on the certificates hosts publish, by host name.

    :param load_trust: returns the current
        :class:`~secmig.pki.verify.TrustStore` (read anew on refresh);
        may raise :class:`~secmig.exception.SecmigError`, which refuses
        every host (``trust_unavailable``) until a refresh succeeds
    :param refresh_interval: seconds between two refreshes
        (:meth:`refresh_due`)
    :param forget_after: seconds between a host's last lookup and the
        latest request's after which a refresh drops the host's verdict
    :param clock: returns the current POSIX time
    :param background: verify queued certificates in a worker thread;
        when False they wait for :meth:`verify_queued`
    :param verify_kwargs: passed to :func:`~secmig.pki.verify.
        verify_certificate` (margin, min_rsa_bits, require_crl)

    Requests read verdicts through a :meth:`reader`, which never verifies
    more than ``inline`` certificates; :meth:`verdict` verifies what it
    needs on the caller's thread, for callers with no request waiting.
    """

    def __init__(self, load_trust, refresh_interval=60, clock=time.time,
                 background=True, forget_after=86400, **verify_kwargs):
        self._load_trust = load_trust
        self.refresh_interval = refresh_interval
        self.forget_after = forget_after
        self._clock = clock
        self._background = background
        self._verify_kwargs = verify_kwargs
        self._margin = verify_kwargs.get('margin', _DEFAULT_MARGIN)
        self._require_crl = verify_kwargs.get('require_crl', True)
        self._entries = {}
        self._keys = {}
        self._trust = None
        self._refreshed_at = None
        #: host -> certificate to verify, and the hosts in order
        self._queued = {}
        self._order = collections.deque()
        self._new = 0
        #: the time of the latest request (:class:`Reader`)
        self._last_read = None
        self._pending = (PENDING, self._key(PENDING))
        #: ids of the readers in use: requests in progress
        self._serving = set()
        self._init_threading()
        _CACHES.add(self)

    def _init_threading(self):
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._worker = None

    def _after_fork(self):
        """In a forked child: fresh locks, and a worker for the queue.

        The parent's worker and the requests it was serving do not exist
        here; what the worker had taken from the queue and not kept yet
        is queued again.
        """
        self._init_threading()
        self._serving.clear()
        self._order = collections.deque(self._queued)
        if self._background and self._queued:
            self._start_worker()

    # -- the trust store --------------------------------------------------

    def refresh_due(self):
        return (self._refreshed_at is None or self._clock()
                - self._refreshed_at >= self.refresh_interval)

    def refresh(self):
        """Read the CA bundle and revocation lists anew.

        No certificate is verified here. When they changed, kept verdicts
        are checked against them by issuing CA and serial: a verdict whose
        CA left the bundle, whose revocation lists no longer vouch for it,
        or whose serial is now revoked is dropped, and its host judged
        again as a host not seen before; refusals are queued to be
        verified again in the background, and stand until then. When
        they did not change, only refusals time can lift
        (``not_yet_valid``) are queued. Verdicts last read
        ``forget_after`` seconds or more before the latest request are
        dropped (not counted). Returns the number of verdicts dropped or
        queued.
        """
        try:
            store, error = self._load_trust(), None
        except exception.SecmigError as e:
            store, error = None, e
        trust = _Trust(store, error, self._require_crl)
        with self._lock:
            previous = self._trust
            self._refreshed_at = self._clock()
            if self._last_read is not None:
                self._forget(self._last_read - self.forget_after)
            if (previous is not None and trust.store is not None
                    and trust.identity == previous.identity):
                changed = False
            else:
                changed = previous is not None and trust.store is not None
                self._trust = trust
            count = self._apply(trust) if changed else 0
            for host, entry in self._entries.items():
                if entry.issuer is None and entry.pem and (
                        changed or entry.answer[0].code == 'not_yet_valid'):
                    count += self._enqueue(host, entry.pem, new=False)
            if self._background and self._order and self._worker is None:
                self._start_worker()
        return count

    def _forget(self, before):
        """Drop the verdicts last read by ``before`` (under the lock)."""
        for host in [host for host, entry in self._entries.items()
                     if entry.used <= before]:
            del self._entries[host]

    def _apply(self, trust):
        """Drop the kept acceptances ``trust`` no longer vouches for."""
        dropped = [host for host, entry in self._entries.items()
                   if entry.issuer is not None
                   and (trust.cas.get(entry.issuer) is None
                        or entry.serial in trust.cas[entry.issuer])]
        for host in dropped:
            del self._entries[host]
        return len(dropped)

    def _current_trust(self):
        if self._trust is None:
            self.refresh()
        return self._trust

    # -- verdicts ---------------------------------------------------------

    def reader(self, now=None, inline=INLINE):
        """A :class:`Reader` for one request, at ``now`` (POSIX time)."""
        return Reader(self, self._clock() if now is None else now, inline)

    def verdict(self, host, pem):
        """The verification Decision for ``host`` publishing ``pem``.

        Verifies on the caller's thread when no kept verdict applies.
        """
        with self.reader(inline=_UNBOUNDED) as reader:
            return reader.lookup(host, pem)[0]

    def _key(self, decision):
        key = (decision.allowed, decision.code,
               int(decision.details.get('clearance', 0))
               if decision.allowed else 0)
        return self._keys.setdefault(key, key)

    def _judge(self, host, pem, trust):
        """A :class:`_Verdict` on ``pem``: the one place that verifies."""
        if not pem:
            decision = Decision.refuse(
                'not_enrolled', '%s publishes no certificate' % host)
            return _Verdict(pem, decision, self._key(decision))
        try:
            cert = keys.load_certificate(pem.encode('ascii'), host)
        except (exception.SecmigError, UnicodeError) as e:
            decision = Decision.refuse(getattr(e, 'code', 'malformed_pem'),
                                       str(e))
            return _Verdict(pem, decision, self._key(decision))
        now = self._clock()
        decision = verify.verify_certificate(
            cert, trust.store, host=host,
            now=_utc(now), **self._verify_kwargs)
        issuer = trust.issuer_of(cert) if decision.allowed else None
        if decision.allowed and issuer is None:
            # Verification found the issuer; should it ever not, an
            # acceptance no revocation list could reach is not kept.
            decision = Decision.refuse(
                'forged_ca', 'no trusted CA of the name %s signed it'
                % cert.issuer.rfc4514_string())
        if issuer is None:
            return _Verdict(pem, decision, self._key(decision))
        return _Verdict(pem, decision, self._key(decision),
                        cert.not_valid_before_utc.timestamp(),
                        cert.not_valid_after_utc.timestamp() - self._margin,
                        issuer, cert.serial_number)

    def _keep(self, host, entry, trust):
        """Keep ``entry`` unless the trust store or the host moved on."""
        with self._lock:
            queued = self._queued.get(host)
            if self._trust is trust and queued in (None, entry.pem):
                entry.used = self._clock()
                self._entries[host] = entry
                if queued is not None:
                    del self._queued[host]

    # -- the background worker --------------------------------------------

    def _enqueue(self, host, pem, new=True):
        """Queue ``host``'s certificate (under the lock); 1 if queued."""
        if self._queued.get(host) == pem:
            return 0
        if host not in self._queued:
            self._order.append(host)
        self._queued[host] = pem
        self._new += new
        if self._background and self._worker is None:
            self._start_worker()
        return 1

    def _enqueue_all(self, missing):
        """Queue ``{host: pem}``, none of which has a verdict that holds."""
        with self._lock:
            fresh = [host for host in missing if host not in self._queued]
            self._order.extend(fresh)
            self._queued.update(missing)
            self._new += len(fresh)
            if self._background and self._worker is None:
                self._start_worker()

    def submit(self, published):
        """Queue the certificates of ``{host: pem}`` no verdict holds for.

        They are verified in the background. For a caller that learns
        what hosts publish outside a request (a scheduler starting), and
        for :class:`Reader`.
        """
        now = self._clock()
        with self._lock:
            for host, pem in published.items():
                entry = self._entries.get(host)
                if pem and (entry is None or entry.pem != pem
                            or not entry.not_before <= now < entry.until):
                    self._enqueue(host, pem)

    def _start_worker(self):
        self._worker = threading.Thread(
            target=self._work, name='secmig-verdicts', daemon=True)
        self._worker.start()

    def _work(self):
        started, count = time.monotonic(), 0
        while True:
            self._defer_to_requests()
            if self.verify_queued(1):
                count += 1
                continue
            with self._lock:
                if self._order and self._trust.store is not None:
                    continue  # queued since verify_queued looked
                new, self._new = self._new, 0
                self._worker = None
                # Logged before waiters wake, so they find it logged.
                self._report(count, new, time.monotonic() - started)
                self._idle.notify_all()
            break

    def _report(self, count, new, seconds):
        """Log how a run of the worker ended (under the lock)."""
        if self._queued:
            LOG.warning("secmig: certificate verification stopped with %d "
                        "host certificates pending: %s", len(self._queued),
                        self._trust.refusal.reason)
        elif new:
            LOG.info("secmig: certificate verification finished: %d host "
                     "certificates verified in %.1f s; none pending",
                     count, seconds)
        elif count:
            LOG.debug("secmig: %d refused host certificates verified "
                      "again", count)

    def _defer_to_requests(self):
        """Sleep while a request reads verdicts, up to :data:`PATIENCE`.

        Sleeping lets requests have the interpreter (and, under eventlet,
        the hub) to themselves; the bound keeps verification going when
        requests never stop.
        """
        time.sleep(0)
        deadline = time.monotonic() + PATIENCE
        while self._serving and time.monotonic() < deadline:
            time.sleep(0.001)

    def verify_queued(self, limit=None):
        """Verify up to ``limit`` queued certificates (all: None) here.

        Returns the number verified.
        """
        done = 0
        while limit is None or done < limit:
            trust = self._current_trust()
            with self._lock:
                if trust.store is None or not self._order:
                    break
                host = self._order.popleft()
                pem = self._queued.get(host)
            if pem is None:
                continue
            self._keep(host, self._judge(host, pem, trust), trust)
            with self._lock:
                if host in self._queued:
                    # The host published another certificate meanwhile, or
                    # the trust store changed: verify again.
                    self._order.append(host)
            done += 1
        return done

    def pending(self):
        """The number of certificates waiting for verification."""
        return len(self._queued)

    def wait(self, timeout=None):
        """Wait until no worker runs; True unless ``timeout`` ran out.

        The worker stops when the queue is empty, or when the trust store
        cannot be read (the queue then waits for a refresh that can).
        """
        with self._idle:
            return self._idle.wait_for(
                lambda: self._worker is None, timeout)


class Reader:
    """Verdicts for one request; use it as a context manager.

    :meth:`lookup` answers from kept verdicts. A host whose certificate
    has none is verified here while ``inline`` lasts and no more than
    :data:`INLINE` certificates wait for the worker; otherwise it is
    refused as ``certificate_pending``, and queued for the worker when
    the request ends (all at once: the request takes the cache's lock
    once, not once per host, so that the worker and it do not take
    turns).
    """

    __slots__ = ('_cache', '_entries', '_trust', 'now', 'inline', '_closed',
                 '_missing')

    def __init__(self, cache, now, inline):
        self._cache = cache
        self._entries = cache._entries
        self._trust = cache._current_trust()
        self.now = now
        self.inline = inline
        if cache._last_read is None or now > cache._last_read:
            cache._last_read = now
        closed = self._trust.closed(now)
        self._closed = (None if closed is None
                        else (closed, cache._key(closed)))
        self._missing = {}

    def __enter__(self):
        self._cache._serving.add(id(self))
        return self

    def __exit__(self, *exc_info):
        self._cache._serving.discard(id(self))
        if self._missing:
            self._cache._enqueue_all(self._missing)
            self._missing = {}

    def lookup(self, host, pem):
        """``(verdict, key)`` for ``host`` publishing certificate ``pem``.

        ``verdict`` is the verification Decision; ``key`` is a hashable
        summary of it (validity, code, clearance), the same object for
        alike verdicts.
        """
        entry = self._entries.get(host)
        if (entry is not None and entry.pem is pem and self._closed is None
                and entry.not_before <= self.now < entry.until):
            entry.used = self.now
            return entry.answer
        return self._lookup(host, pem, entry)

    def _lookup(self, host, pem, entry):
        if entry is not None:
            entry.used = self.now
        if self._closed is not None:
            return self._closed
        if (entry is not None and entry.pem == pem
                and entry.not_before <= self.now < entry.until):
            # The host reported again: keep its current copy of the text,
            # not an old one, and find it the fast way next time.
            entry.pem = pem
            return entry.answer
        cache = self._cache
        if pem and (self.inline < 1 or self.inline != _UNBOUNDED
                    and len(cache._queued) > INLINE):
            # Left to the worker, and to it alone while it has a backlog
            # (but for a caller with no request waiting: :meth:`verdict`).
            self._missing[host] = pem
            return cache._pending
        if pem:
            self.inline -= 1
        entry = cache._judge(host, pem, self._trust)
        cache._keep(host, entry, self._trust)
        return entry.answer


def _utc(posix):
    return datetime.datetime.fromtimestamp(posix, datetime.timezone.utc)


_CACHES = weakref.WeakSet()


def _after_fork():
    for cache in list(_CACHES):
        cache._after_fork()


os.register_at_fork(after_in_child=_after_fork)
