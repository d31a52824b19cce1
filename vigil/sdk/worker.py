"""The client's background thread: it batches queued events, POSTs them, retries, and spills to the spool.

Events flow one way::

    record() ──► queue (memory, bounded) ──► batch ──► POST /v1/events ──► stored / duplicate / rejected
                   │ full                      │ 5xx, 408, 429, timeout, no connection,   (rejected: to the
                   ▼                           ▼ 401/403 (the key), 404/405 (the url):     dead-letter file)
                 spool (disk) ◄────────────────┘ backoff with full jitter (or the server's Retry-After)
                   │                             and the batch moves to the spool
                   └──► read back first, once the server answers again (and at the next start)

A refused key never costs an event: the events wait (in the spool, or in memory without one) and go as soon as
``Client.set_key`` gives a new key, or a new client with a good key takes the spool over.

One thread does all of it, so there is at most one request in flight, batches keep the order the queue
gave them, and a flush marker put in the queue is reached only after everything queued before it.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import msgspec

from vigil.model import MAX_REQUEST_BYTES
from vigil.sdk.deadletter import DeadLetter
from vigil.sdk.deadletter import encode as encode_letter
from vigil.sdk.event import event_summary
from vigil.sdk.spool import Spool
from vigil.sdk.transport import Answer, Transport, retry_delay

log = logging.getLogger("vigil.sdk")

MAX_BATCH_BYTES = MAX_REQUEST_BYTES * 4 // 5  # stay well under the server's 5 MiB per request
SPILL_CHUNK = 1000  # events per spool append (one fsync each) when the queue moves to disk
WARN_EVERY = 60.0  # seconds between two warnings of one kind


class Marker:
    """Put in the queue by ``flush()``; done once everything queued before it is acknowledged or spooled."""

    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False

    def done(self, ok: bool) -> None:
        self.ok = ok
        self.event.set()


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What a client did since it started. Counts are of events unless said otherwise."""

    queued: int = 0  # waiting in memory now
    attempts: int = 0  # sent in a request, answered or not (a retried event counts once per attempt)
    stored: int = 0  # the server confirmed it stored them
    duplicates: int = 0  # the server had them already (a retry or a replay of an acknowledged event)
    rejected: int = 0  # the server refused them for a reason of their own (invalid); dead-lettered
    dead_lettered: int = 0  # written to the dead-letter file (rejected, or a final 4xx for their batch)
    retries: int = 0  # requests that failed in a way worth retrying (5xx, 408, 429, timeout, no connection)
    key_refused: int = 0  # requests answered 401/403: the key was refused; their events wait for a new one
    spooled: int = 0  # written to the disk spool
    replayed: int = 0  # read back from a spool left by an earlier client
    skipped: int = 0  # torn or garbled spool records, skipped
    dropped: int = 0  # lost: the queue was full, or close() came before delivery, and there was no spool

    @property
    def sent(self) -> int:
        """Deprecated name of :attr:`attempts` (it never meant "delivered": see :attr:`stored`)."""
        warnings.warn(
            "ClientStats.sent is deprecated: it counts attempts; use .attempts (or .stored for delivered events)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.attempts


class Counters:
    """The mutable counts behind :class:`ClientStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {f.name: 0 for f in fields(ClientStats) if f.name != "queued"}

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._counts[name] += n

    def snapshot(self, queued: int, skipped: int) -> ClientStats:
        with self._lock:
            return ClientStats(queued=queued, **{**self._counts, "skipped": skipped})


class Throttle:
    """True at most once every ``every`` seconds: for warnings that would otherwise flood the app's log."""

    def __init__(self, every: float = WARN_EVERY) -> None:
        self.every = every
        self._last = -every

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last = now
        return True


class _Batch:
    """Events of one request; ``segments[i]`` is the spool segment event ``i`` was read from, or None."""

    __slots__ = ("datas", "segments")

    def __init__(self, datas: list[bytes], segments: list[int | None]) -> None:
        self.datas = datas
        self.segments = segments

    def volatile(self) -> bool:
        """Some of its events exist only in memory."""
        return None in self.segments


class Worker:
    """The thread behind a :class:`vigil.sdk.Client`; the client only appends to ``queue`` and sets ``wake``."""

    def __init__(
        self,
        queue: deque[bytes | Marker],
        transport: Transport,
        spool: Spool | None,
        counters: Counters,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        max_backoff: float,
    ) -> None:
        self.queue = queue
        self.transport = transport
        self.spool = spool
        self.counters = counters
        self.batch_size = batch_size
        self.max_bytes = MAX_BATCH_BYTES  # both shrink when the server says a batch is over its burst (413)
        self.flush_interval = flush_interval
        self.high_water = max(batch_size, max_queue // 2)
        self.max_backoff = max_backoff
        self.wake = threading.Event()  # a batch is full, a flush waits, or close() was called
        self.stopping = threading.Event()
        self.interrupt = threading.Event()  # ends a backoff early: close(), or a new key
        self.flushers = 0  # flush() calls waiting now (changed by the client under its lock)
        self.deadline = 0.0
        self.result = False  # after the thread ends: nothing was lost at close
        self._held: _Batch | None = None  # a batch to send again after the backoff
        self._after: list[Marker] = []  # markers reached behind the batch in flight or held
        self._attempt = 0  # consecutive failed attempts
        self._next_attempt = 0.0  # monotonic time before which nothing is sent
        self._new_key = False  # set by key_changed(): the next attempt goes at once
        self._retry_warn = Throttle()
        self._key_warn = Throttle()
        self._spool_warn = Throttle()
        self.thread = threading.Thread(target=self._run, name="vigil-sdk", daemon=True)

    def stop(self, deadline: float) -> None:
        """Ask the thread to deliver or spool what it can before ``deadline`` (monotonic), then end."""
        self.deadline = deadline
        self.stopping.set()
        self.wake.set()
        self.interrupt.set()

    def key_changed(self) -> None:
        """The client has a new key (the transport sends with it already): end the backoff and try now."""
        self._new_key = True
        self.wake.set()
        self.interrupt.set()

    # -- the loop ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception:  # the thread must outlive any bug: the app's events depend on it
                log.exception("vigil: the SDK worker failed; it carries on")
                self.stopping.wait(0.5)
        try:
            self.result = self._finish()
        except Exception:
            log.exception("vigil: the SDK worker failed while closing")
            self.result = False

    def _step(self) -> None:
        if self.spool is not None:
            self.spool.sync()  # events spilled by the app's threads (queue full) become durable here
        if self._new_key:
            self._new_key = False
            self._attempt, self._next_attempt = 0, 0.0
        now = time.monotonic()
        if now < self._next_attempt:
            self._wait_for_retry(self._next_attempt - now)
            return
        batch, self._held = self._held, None
        if batch is None:
            batch = self._take(wait=True)
        if batch is not None:
            self._deliver(self._fit(batch))

    def _wait_for_retry(self, remaining: float) -> None:
        """Backoff: with a spool, move what arrives to disk meanwhile (and answer flushes); without, sleep."""
        if self.spool is not None and self._spill_queue():
            self.wake.clear()
            if not self.queue and not self.stopping.is_set():
                self.wake.wait(min(remaining, self.flush_interval))
        else:
            self.interrupt.wait(remaining)
            self.interrupt.clear()

    def _finish(self) -> bool:
        """close(): deliver until the deadline without backoff waits, then spool (or count as dropped) the
        rest. True when nothing was dropped."""
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                break
            if now < self._next_attempt:
                if self.spool is not None or self._next_attempt >= self.deadline:
                    break  # with a spool, waiting gains nothing: everything left goes to disk below
                time.sleep(self._next_attempt - now)
                continue
            batch, self._held = self._held, None
            if batch is None:
                batch = self._take(wait=False)
            if batch is None:
                break
            batch = self._fit(batch)
            timeout = max(0.1, min(self.transport.timeout, self.deadline - now))
            if not self._deliver(batch, timeout) and self.spool is not None:
                break
        return self._leave()

    def _leave(self) -> bool:
        """What was not delivered by close(): to the spool, or dropped and counted."""
        held, self._held = self._held, None
        if self.spool is not None:
            try:
                if held is not None and held.volatile():
                    self._append([d for d, s in zip(held.datas, held.segments, strict=True) if s is None])
                self._release_markers()
                if self._spill_queue():
                    self.spool.sync()
                    return True
            except OSError as exc:
                log.error("vigil: could not spool the undelivered events at close: %s", exc)
            return False
        left = [x for x in self.queue if not isinstance(x, Marker)]
        lost = len(left) + (0 if held is None else len(held.datas))
        for m in self._after + [x for x in self.queue if isinstance(x, Marker)]:
            m.done(lost == 0)
        self._after = []
        self.queue.clear()
        if lost:
            self.counters.add(dropped=lost)
            log.warning("vigil: %d events were not delivered before close() and there is no spool_dir", lost)
        return lost == 0

    # -- batches -------------------------------------------------------------------------------------------

    def _take(self, *, wait: bool) -> _Batch | None:
        """The next batch: the spool's backlog first (in order), then the queue, waiting for it to fill up to
        ``flush_interval`` seconds."""
        spool = self.spool
        if spool is not None:
            urgent = self.flushers > 0 or self.stopping.is_set()
            if spool.backlog():
                if urgent:
                    self._spill_queue()  # flush() is answered by the spool; the backlog may take a while
                records = spool.read(self.batch_size, self.max_bytes)
                if records:
                    replayed = sum(1 for n, _ in records if n < spool.first_new)
                    if replayed:
                        self.counters.add(replayed=replayed)
                    return _Batch([d for _, d in records], [n for n, _ in records])
            if len(self.queue) > self.high_water:
                self._spill_queue()  # the server is slower than the app: keep memory bounded
                return None
        q = self.queue
        if wait and len(q) < self.batch_size and not self.flushers:
            self.wake.clear()
            if len(q) < self.batch_size and not self.flushers and not self.stopping.is_set():
                self.wake.wait(self.flush_interval)
        datas: list[bytes] = []
        nbytes = 0
        while q:
            x = q.popleft()
            if isinstance(x, Marker):
                if datas:
                    self._after.append(x)  # done once this batch is
                    break
                self._settle(x)
                continue
            if datas and nbytes + len(x) > self.max_bytes:
                q.appendleft(x)
                break
            datas.append(x)
            nbytes += len(x)
            if len(datas) >= self.batch_size:
                break
        return _Batch(datas, [None] * len(datas)) if datas else None

    def _deliver(self, batch: _Batch, timeout: float | None = None) -> bool:
        """POST one batch and act on the answer. False when it must be tried again."""
        n = len(batch.datas)
        answer = self.transport.post(b"[" + b",".join(batch.datas) + b"]", timeout)
        self.counters.add(attempts=n)
        if answer.kind in ("retry", "key"):
            self._failed(batch, answer)
            return False
        if answer.kind == "split" and n > 1:
            self._shrink(batch, answer)
            return True
        self._attempt = 0
        self._next_attempt = 0.0
        settled = [s for s in batch.segments if s is not None]
        if answer.kind in ("refused", "split"):  # a split of one event: it can never pass
            self._dead_letter([(d, answer.error, None) for d in batch.datas], answer.status)
        else:
            by_index = {r.index: r for r in answer.results}
            stored = duplicates = 0
            rejected: list[tuple[bytes, str, list[dict[str, Any]] | None]] = []
            missing: list[tuple[bytes, int | None]] = []
            for i, (data, seg) in enumerate(zip(batch.datas, batch.segments, strict=True)):
                r = by_index.get(i)
                if r is None:
                    missing.append((data, seg))
                elif r.status == "stored":
                    stored += 1
                elif r.status == "duplicate":
                    duplicates += 1
                else:  # rejected, or a status this client does not know (a conflict): never stored
                    rejected.append((data, r.status, r.errors))
            self.counters.add(stored=stored, duplicates=duplicates, rejected=len(rejected))
            if rejected:
                if self.spool is not None:  # without one, the dead-letter log line below says it all, once
                    for data, status, errors in rejected:
                        log.warning(
                            "vigil: the server %s event %s: %s",
                            status if status == "rejected" else f"answered {status!r} for",
                            event_summary(data),
                            errors,
                        )
                self._dead_letter(rejected, answer.status)
            if missing:
                # the answer left some events out: nothing says they are stored, so they go round again
                keep = _Batch([d for d, _ in missing], [s for _, s in missing])
                settled = _without(settled, keep.segments)
                self._failed(
                    keep, Answer("retry", answer.status, f"the answer left out {len(missing)} events")
                )
        if self.spool is not None and settled:
            self.spool.settle(settled)
        self._release_markers()
        return True

    def _fit(self, batch: _Batch) -> _Batch:
        """The part of ``batch`` within the batch limits; the rest is held, to go next (in order)."""
        keep, nbytes = 0, 2
        for data in batch.datas:
            if keep and (keep >= self.batch_size or nbytes + len(data) + 1 > self.max_bytes):
                break
            keep += 1
            nbytes += len(data) + 1
        if keep == len(batch.datas):
            return batch
        rest = _Batch(batch.datas[keep:], batch.segments[keep:])
        self._held = rest if self._held is None else _join(rest, self._held)
        return _Batch(batch.datas[:keep], batch.segments[:keep])

    def _shrink(self, batch: _Batch, answer: Answer) -> None:
        """413 batch_too_large: smaller batches from now on, and this one again at once, in parts."""
        n, nbytes = len(batch.datas), sum(len(d) + 1 for d in batch.datas) + 1
        events = answer.max_events if answer.max_events and answer.max_events < n else n // 2
        self.batch_size = max(1, min(self.batch_size, events))
        if answer.max_bytes is not None:
            limit = answer.max_bytes if answer.max_bytes < nbytes else nbytes // 2
            self.max_bytes = max(1, min(self.max_bytes, limit))
        log.warning(
            "vigil: the server refused a batch of %d events as too large (%s); sending at most %d events "
            "and %d bytes per request from now on",
            n,
            answer.error,
            self.batch_size,
            self.max_bytes,
        )
        self._held = batch if self._held is None else _join(batch, self._held)

    def _failed(self, batch: _Batch, answer: Answer) -> None:
        """A retryable failure (or a refused key): back off, and with a spool move the batch's in-memory
        events to disk."""
        self._attempt += 1
        delay = retry_delay(self._attempt, answer.retry_after, self.max_backoff)
        self._next_attempt = time.monotonic() + delay
        if answer.kind == "key":
            self.counters.add(key_refused=1)
            if self._key_warn.ready():
                log.error(
                    "vigil: the server refused the API key (%s); %d events wait %s and are sent again in "
                    "%.1f s, or at once after client.set_key(new_key); none is dead-lettered",
                    answer.error,
                    len(batch.datas),
                    "in the spool" if self.spool is not None else "in memory",
                    delay,
                )
        else:
            self.counters.add(retries=1)
            if self._retry_warn.ready():
                log.warning(
                    "vigil: %d events not delivered (%s); retrying in %.1f s%s",
                    len(batch.datas),
                    answer.error,
                    delay,
                    " (spooling meanwhile)" if self.spool is not None else "",
                )
        if self.spool is not None and batch.volatile():
            volatile = [d for d, s in zip(batch.datas, batch.segments, strict=True) if s is None]
            try:
                self._append(volatile)
            except OSError as exc:
                if self._spool_warn.ready():
                    log.error("vigil: could not write to the spool (%s); keeping the batch in memory", exc)
                self._held = batch if self._held is None else _join(batch, self._held)
                return
            pairs = [(d, s) for d, s in zip(batch.datas, batch.segments, strict=True) if s is not None]
            # the spilled events are read back from the spool in turn; only those read from it wait here
            batch = _Batch([d for d, _ in pairs], [s for _, s in pairs])
        if batch.datas:
            self._held = batch if self._held is None else _join(batch, self._held)  # before a split's rest
        self._release_markers()

    # -- spool and markers ---------------------------------------------------------------------------------

    def _append(self, datas: list[bytes]) -> None:
        if self.spool is not None and datas:
            self.spool.append(datas, sync=True)
            self.counters.add(spooled=len(datas))

    def _spill_queue(self) -> bool:
        """Move everything queued to the spool, in order, answering flush markers on the way. False when the
        spool could not be written (what was not written stays queued)."""
        q = self.queue
        while q:
            chunk: list[bytes] = []
            markers: list[Marker] = []
            while q and len(chunk) < SPILL_CHUNK:
                x = q.popleft()
                if isinstance(x, Marker):
                    markers.append(x)
                    break
                chunk.append(x)
            try:
                self._append(chunk)
                if markers and self.spool is not None:
                    self.spool.sync()
            except OSError as exc:
                q.extendleft(reversed([*chunk, *markers]))
                if self._spool_warn.ready():
                    log.error("vigil: could not write to the spool (%s); events stay in memory", exc)
                return False
            for m in markers:
                self._settle(m)
        return True

    def _settle(self, marker: Marker) -> None:
        """A marker reached with nothing before it in flight: done, unless a held batch is only in memory."""
        if self._held is not None and self._held.volatile():
            self._after.append(marker)
            return
        if self.spool is not None:
            self.spool.sync()
        marker.done(True)

    def _release_markers(self) -> None:
        if not self._after or (self._held is not None and self._held.volatile()):
            return
        if self.spool is not None:
            self.spool.sync()
        markers, self._after = self._after, []
        for m in markers:
            m.done(True)

    def _dead_letter(
        self, items: list[tuple[bytes, str, list[dict[str, Any]] | None]], status: int | None
    ) -> None:
        """Events the server refused for a reason of their own, as (event, error, per-event errors): to
        ``dead-letter.ndjson``, or the log when there is no spool."""
        at = datetime.now(UTC).isoformat()
        lines = [
            encode_letter(DeadLetter(at, status, error, msgspec.Raw(data), errors or None))
            for data, error, errors in items
        ]
        error = items[0][1] if len({e for _, e, _ in items}) == 1 else "see each event"
        self.counters.add(dead_lettered=len(items))
        if self.spool is not None:
            try:
                self.spool.dead_letter(lines)
                log.error(
                    "vigil: %d events refused by the server (%s); kept in dead-letter.ndjson (send them again "
                    "with `vigil sdk replay-dead-letters` once their cause is fixed)",
                    len(items),
                    error,
                )
                return
            except OSError as exc:
                log.error("vigil: could not write the dead-letter file: %s", exc)
        log.error(
            "vigil: %d events refused by the server (%s) and no dead-letter file to keep them:\n%s",
            len(items),
            error,
            b"\n".join(lines).decode("utf-8", "replace"),
        )


def _join(first: _Batch, then: _Batch) -> _Batch:
    return _Batch(first.datas + then.datas, first.segments + then.segments)


def _without(settled: list[int], keep: list[int | None]) -> list[int]:
    """``settled`` less one occurrence of each segment number in ``keep`` (those records are not done)."""
    out = list(settled)
    for s in keep:
        if s is not None:
            out.remove(s)
    return out
