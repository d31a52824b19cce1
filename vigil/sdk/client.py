"""``vigil.sdk.Client``: record audit events from an app without ever waiting for the network.

    client = Client("https://vigil.example", "vk_…", spool_dir="/var/spool/myapp-vigil")
    client.record(action="user.login", actor_id="usr_42", context={"ip": ip})
    ...
    client.close()

``record`` gives the event its UUIDv7 id at once and only puts its JSON in a queue; a background thread
(:mod:`vigil.sdk.worker`) sends batches, retries, and keeps in the spool (:mod:`vigil.sdk.spool`) what the
server cannot take yet. Every retry and every replay sends the same id, so the server stores each event once.

The client reads too (``search``, ``get``, ``proof``, ``export``, ``verify``), on the caller's thread, through
a :class:`vigil.sdk.reader.Reader` made at the first read with the same url and key.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from typing import IO, Any

from vigil.model import MAX_REQUEST_EVENTS, StoredEvent
from vigil.sdk.api import InclusionProof, Page, Verified
from vigil.sdk.event import encode_event
from vigil.sdk.reader import Exported, Reader
from vigil.sdk.spool import Spool
from vigil.sdk.transport import Transport
from vigil.sdk.worker import ClientStats, Counters, Marker, Throttle, Worker

log = logging.getLogger("vigil.sdk")

EXIT_TIMEOUT = 5.0  # seconds the interpreter's exit may wait for a client that was never closed


class Client:
    """A non-blocking, batching, retrying client of one Vigil server and one API key (an ``ingest`` key).

    ``spool_dir``, when given, is a directory that this client alone uses (it is locked) to keep events
    through outages and restarts; without it, events wait in memory only, and are dropped (and counted) when
    ``max_queue`` of them wait already. ``compress`` gzips request bodies over 1 KiB (on the worker thread).
    ``vkey`` pins the verifier key that :meth:`verify` checks checkpoints with (else the server's is used).
    Reads need a key with the ``read`` (or ``auditor``) scope as well; a :class:`Reader` can have its own key.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        spool_dir: str | PathLike[str] | None = None,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 10.0,
        max_backoff: float = 60.0,
        compress: bool = True,
        vkey: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://; got {url!r}")
        _check_key(api_key)
        if not 1 <= batch_size <= MAX_REQUEST_EVENTS:
            raise ValueError(f"batch_size must be 1 to {MAX_REQUEST_EVENTS}; got {batch_size}")
        if max_queue < batch_size:
            raise ValueError(f"max_queue ({max_queue}) must be at least batch_size ({batch_size})")
        for name, value in (("flush_interval", flush_interval), ("timeout", timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be more than 0; got {value}")
        if not max_backoff >= 0:
            raise ValueError(f"max_backoff must be 0 or more; got {max_backoff}")
        self.url = url
        self.compress = compress
        self._api_key = api_key
        self._timeout = timeout
        self._vkey = vkey
        self._reader: Reader | None = None
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._queue: deque[bytes | Marker] = deque()
        self._counters = Counters()
        self._drop_warn = Throttle()
        self._lock = threading.Lock()
        self._closed = False
        self._close_result = False
        transport = Transport(
            url, api_key, timeout, compress
        )  # raises, with the install command, without httpx
        try:
            self._spool = Spool(spool_dir) if spool_dir is not None else None
        except BaseException:
            transport.close()
            raise
        self._worker = Worker(
            self._queue,
            transport,
            self._spool,
            self._counters,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            max_backoff=max_backoff,
        )
        self._wake = self._worker.wake
        self._worker.thread.start()
        atexit.register(self._at_exit)

    def record(
        self,
        action: str | None = None,
        *,
        actor: Mapping[str, Any] | None = None,
        actor_id: str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        outcome: str | None = None,
        category: str | None = None,
        context: Mapping[str, Any] | None = None,
        changes: Mapping[str, Sequence[Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str | None = None,
        reason: str | None = None,
        occurred_at: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Queue one event and return its id at once; no I/O on the caller's thread.

        The fields are those of the event (docs/events.md). ``actor_id="usr_42"`` is short for
        ``actor={"id": "usr_42"}``; ``occurred_at`` defaults to now; ``id`` to a new UUIDv7. Raises
        ``ValueError`` for an event the server could never store (no action or actor, a naive datetime, an
        unknown outcome or category, values that are not JSON). Secrets in ``metadata`` and ``changes`` are
        redacted here, with the server's rules, before the event leaves the process.
        """
        event_id, data = encode_event(
            action,
            actor,
            actor_id,
            targets,
            outcome,
            category,
            context,
            changes,
            metadata,
            message,
            reason,
            occurred_at,
            id,
        )
        q = self._queue
        if self._closed:
            self._drop("the client is closed")
        elif len(q) < self._max_queue:
            q.append(data)
            if len(q) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
        else:
            self._overflow(data)
        return event_id

    def _overflow(self, data: bytes) -> None:
        """The queue is full (the worker is stuck in a slow request): straight to the spool, else drop."""
        if self._spool is not None:
            try:
                self._spool.append([data], sync=False)  # the worker fsyncs it on its next turn
            except OSError as exc:
                self._drop(f"the queue is full and the spool cannot be written ({exc})")
            else:
                self._counters.add(spooled=1)
            return
        self._drop(f"the queue is full ({self._max_queue} events) and there is no spool_dir")

    def _drop(self, why: str) -> None:
        self._counters.add(dropped=1)
        if self._drop_warn.ready():
            log.warning("vigil: dropping events: %s (see client.stats.dropped)", why)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded before this call is acknowledged by the server or durably spooled.

        True when that happened within ``timeout`` seconds (None: no limit). Without a spool and with the
        server down, this waits for the server.
        """
        if self._closed:
            return self._close_result
        marker = Marker()
        with self._lock:
            self._worker.flushers += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.append(marker)
            self._wake.set()
            # wait in slices: a close() racing with this call may end the worker before it reaches the marker
            while not marker.event.wait(0.25 if deadline is None else min(0.25, deadline - time.monotonic())):
                if not self._worker.thread.is_alive() or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    return marker.event.is_set() and marker.ok
            return marker.ok
        finally:
            with self._lock:
                self._worker.flushers -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what is queued within ``timeout`` seconds, spool the rest, and stop the worker.

        True when nothing was lost: every event was acknowledged or is in the spool (a later client with the
        same ``spool_dir`` sends it). Calling it again does nothing.
        """
        with self._lock:
            if self._closed:
                return self._close_result
            self._closed = True
        atexit.unregister(self._at_exit)
        worker = self._worker
        worker.stop(time.monotonic() + timeout)
        worker.thread.join(timeout + 2.0)  # the last request has at most the time left as its timeout
        if worker.thread.is_alive():
            log.warning(
                "vigil: the SDK worker did not stop within %.1f s; unsent events may be lost", timeout
            )
            self._close_result = False
            return False
        ok = worker.result
        # events recorded while the worker was finishing
        late = [x for x in self._queue if isinstance(x, bytes)]
        self._queue.clear()
        if late:
            if self._spool is not None:
                try:
                    self._spool.append(late, sync=True)
                    self._counters.add(spooled=len(late))
                except OSError:
                    self._counters.add(dropped=len(late))
                    ok = False
            else:
                self._counters.add(dropped=len(late))
                ok = False
        worker.transport.close()
        if self._reader is not None:
            self._reader.close()
        if self._spool is not None:
            try:
                self._spool.close()
            except OSError as exc:
                log.error("vigil: could not close the spool: %s", exc)
                ok = False
        self._close_result = ok
        return ok

    def _at_exit(self) -> None:
        self.close(EXIT_TIMEOUT)

    def set_key(self, api_key: str) -> None:
        """Send (and read) with a new API key from now on, for a key that was revoked or rotated.

        Events that waited while the server refused the old key (401 or 403: they are never dead-lettered)
        are sent at once, without waiting for the rest of the backoff. The key decides the tenant: give a key
        of the same tenant.
        """
        _check_key(api_key)
        with self._lock:
            self._api_key = api_key
            self._worker.transport.set_key(api_key)
            if self._reader is not None:
                self._reader.set_key(api_key)
        self._worker.key_changed()

    # -- reads (on the caller's thread) ---------------------------------------------------------------------

    @property
    def reader(self) -> Reader:
        """The :class:`Reader` behind this client's reads (made at the first one)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._reader is None:
                self._reader = Reader(self.url, self._api_key, vkey=self._vkey, timeout=self._timeout)
            return self._reader

    def search(self, **filters: object) -> Iterator[StoredEvent]:
        """Every event matching the filters of ``GET /v1/events``, over all pages (see :meth:`Reader.search`)."""
        return self.reader.search(**filters)

    def search_pages(self, **filters: object) -> Iterator[Page]:
        """Every page of a search (see :meth:`Reader.search_pages`)."""
        return self.reader.search_pages(**filters)

    def get(self, event_id: str) -> StoredEvent:
        """One stored event by id (see :meth:`Reader.get`)."""
        return self.reader.get(event_id)

    def proof(self, event_id: str, *, tree_size: int | None = None) -> InclusionProof:
        """The event's inclusion proof (see :meth:`Reader.proof`)."""
        return self.reader.proof(event_id, tree_size=tree_size)

    def export(
        self, destination: str | PathLike[str] | IO[bytes], *, format: str = "ndjson", **filters: object
    ) -> Exported:
        """Stream an export of the log to a path or a binary file (see :meth:`Reader.export`)."""
        return self.reader.export(destination, format=format, **filters)

    def verify(self, event_id: str, *, tree_size: int | None = None, vkey: str | None = None) -> Verified:
        """Prove the event is in the log under a signed checkpoint (see :meth:`Reader.verify`)."""
        return self.reader.verify(event_id, tree_size=tree_size, vkey=vkey)

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        skipped = self._spool.skipped if self._spool is not None else 0
        return self._counters.snapshot(len(self._queue), skipped)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the key
        state = "closed" if self._closed else "open"
        return f"<vigil.sdk.Client {self.url} {state}, {len(self._queue)} queued>"


def _check_key(api_key: object) -> None:
    if not isinstance(api_key, str) or not api_key or any(c in api_key for c in "\r\n"):
        raise ValueError("api_key must be a non-empty string on one line (a key with the ingest scope)")
