"""Token buckets, charged before the work they pay for.

A :class:`RateLimiter` holds one bucket per key (a tenant id, an API key id): ``rate`` tokens per second, up to
``burst`` at once. :class:`IngestLimits` charges a tenant's ``POST /v1/events`` in bytes and in events *before*
the body is decoded, validated and hashed: first from ``Content-Length`` (before the body is even read), then
from the body's size and an estimate of its events (:func:`estimate_events`), and after decoding only the
difference the estimate missed. A flood over the limit therefore costs the server a header parse, not the
intake's work. A request larger than the burst can never succeed, so it gets 413 with the limit, never a
``Retry-After`` that would only bring it back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable

from vigil.errors import BatchTooLarge, RateLimited

MAX_BUCKETS = 10_000  # above this, full buckets (the same as no bucket) are dropped: memory stays bounded


class RateLimiter:
    """``rate`` tokens per second per key, up to ``burst``; ``rate`` 0 turns it off."""

    def __init__(
        self, rate: float, burst: float, *, what: str = "events", per: str = "tenant", shown: str = ""
    ) -> None:
        self.rate = float(rate)
        self.burst = float(max(burst, rate))
        self.what = what
        self.per = per
        self.shown = shown or f"{self.rate:g}/s"  # the rate as the message says it
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def tokens(self, key: Hashable, now: float) -> float:
        """Tokens the key has at ``now`` (negative: a debt left by work that cost more than its estimate)."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - last) * self.rate)

    def wait(self, key: Hashable, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are there (0: now)."""
        missing = n - self.tokens(key, now)
        return 0.0 if missing <= 0 else missing / self.rate

    def refuse(self, wait: float) -> RateLimited:
        seconds = max(1, math.ceil(wait))
        return RateLimited(
            f"{self.per} over its rate limit of {self.shown} {self.what}; retry in {seconds} s",
            retry_after=seconds,
        )

    def debit(self, key: Hashable, n: float, now: float) -> None:
        """Take ``n`` tokens whatever is left: below zero is a debt the next requests wait for."""
        self._buckets[key] = (self.tokens(key, now) - n, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._prune(now)

    def take(self, key: Hashable, n: float = 1, now: float | None = None) -> None:
        """Take ``n`` tokens, or raise 429 with the seconds until they are there."""
        if not self.enabled or n <= 0:
            return
        t = time.monotonic() if now is None else now
        if n > self.burst:
            raise BatchTooLarge.over(self.what, n, self.burst)
        wait = self.wait(key, n, t)
        if wait > 0:
            raise self.refuse(wait)
        self.debit(key, n, t)

    def _prune(self, now: float) -> None:
        for k in [k for k in self._buckets if self.tokens(k, now) >= self.burst]:
            del self._buckets[k]


class IngestLimits:
    """A tenant's ingest budget in events and bytes, charged before the intake runs."""

    def __init__(self, events: RateLimiter, nbytes: RateLimiter) -> None:
        self.events = events
        self.bytes = nbytes

    def admit(self, tenant_id: int, content_length: int | None, now: float | None = None) -> None:
        """Before the body is read: refuse at once a declared size over the burst (413) or over what the
        tenant has left (429). Takes nothing: the body may turn out shorter."""
        if content_length is None or not self.bytes.enabled:
            return
        t = time.monotonic() if now is None else now
        if content_length > self.bytes.burst:
            raise BatchTooLarge.over("bytes", content_length, self.bytes.burst)
        wait = self.bytes.wait(tenant_id, content_length, t)
        if wait > 0:
            raise self.bytes.refuse(wait)

    def charge(self, tenant_id: int, nbytes: int, events: int, now: float | None = None) -> None:
        """Before decoding: take ``nbytes`` and ``events`` (an estimate) together, or neither."""
        t = time.monotonic() if now is None else now
        waits = []
        for limiter, n in ((self.bytes, nbytes), (self.events, events)):
            if limiter.enabled and n > 0:
                if n > limiter.burst:
                    raise BatchTooLarge.over(limiter.what, n, limiter.burst)
                waits.append((limiter.wait(tenant_id, n, t), limiter))
        late = max(waits, key=lambda w: w[0], default=(0.0, self.events))
        if late[0] > 0:
            raise late[1].refuse(late[0])
        for limiter, n in ((self.bytes, nbytes), (self.events, events)):
            if limiter.enabled and n > 0:
                limiter.debit(tenant_id, n, t)

    def settle(self, tenant_id: int, extra_events: int, now: float | None = None) -> None:
        """After decoding: the events the estimate missed, as a debt (the work is done; refusing it now would
        waste it, and the next request pays)."""
        if extra_events > 0 and self.events.enabled:
            self.events.debit(tenant_id, extra_events, time.monotonic() if now is None else now)


def estimate_events(body: bytes, ndjson: bool) -> int:
    """The number of events in a body, counted without decoding it (a few GB/s).

    NDJSON: its non-blank lines. A JSON array: the ``"action"`` strings in it. JSON escapes every quote inside a
    string, so each one is a key or a whole value; every event has one, and a nested key or value named
    ``action`` only makes the estimate larger. An event that spells its key with escapes is found by the decoder,
    and :meth:`IngestLimits.settle` charges it then.
    """
    if ndjson:
        return max(1, body.count(b"\n") + (0 if body.endswith(b"\n") else 1) - body.count(b"\n\n"))
    return max(1, body.count(b'"action"'))
