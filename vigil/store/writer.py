"""The one writer of a store: a thread that group-commits every append of every tenant, taking tenants in turn.

Callers queue a job and wait on its future. Each tenant has its own queue (a lane); when the thread is free it
takes, from every lane in turn, whatever is queued up to ``commit_share`` events per tenant while several
tenants are writing (and ``commit_max`` in all), runs it in one transaction, then answers every caller. So one
tenant's big batches never make another wait for more than one short commit: a job larger than a tenant's
share is committed in parts, over several group commits, and answered after its last part. A tenant may have
at most ``tenant_queue_max`` events waiting; a bounded append beyond that is refused at once with
:class:`~vigil.errors.QueueFull` (429, ``Retry-After``).

Nobody hears "stored" before the commit. When a job of a group fails, the group is rolled back and each part is
retried alone, so only the guilty caller sees the error (the earlier parts of a split job stay committed: a
retry with the same ids reports them ``duplicate``). Stores supply the transaction and the append; this class
supplies the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vigil.errors import QueueFull, StorageError

if TYPE_CHECKING:
    from vigil.ingest.intake import Prepared
    from vigil.store.base import Appended

C = TypeVar("C")
T = TypeVar("T")

_WRITES = -1  # the lane of write(fn) jobs (tenants, keys, cursors): it takes its turn like a tenant
_RECENT = 1.0  # seconds a tenant counts as active after its last append


class _Job:
    __slots__ = ("events", "fn", "future", "results", "taken", "tenant_id")

    def __init__(
        self, tenant_id: int, events: Sequence[Prepared] | None, fn: Callable[[Any], Any] | None
    ) -> None:
        self.tenant_id = tenant_id
        self.events = events
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.taken = 0  # events handed to a group so far
        self.results: list[Appended] = []

    @property
    def lane(self) -> int:
        return _WRITES if self.fn is not None else self.tenant_id


class _Part:
    """The events of one job that go into one group commit; ``last``: the job is answered after it."""

    __slots__ = ("events", "job", "last")

    def __init__(self, job: _Job, events: Sequence[Prepared] | None, last: bool) -> None:
        self.job = job
        self.events = events
        self.last = last


class GroupCommitWriter(ABC, Generic[C]):
    """Mixin: the writer thread and the append API on top of a store's transaction primitives."""

    commit_max: int = 5000
    commit_share: int = 100
    tenant_queue_max: int = 20000
    _closed: bool = False

    def configure_writer(self, settings: Any) -> None:
        """Take the group commit sizes and the per-tenant queue bound from the settings (defaults without)."""
        if settings is not None:
            self.commit_max = max(1, getattr(settings, "commit_max_events", self.commit_max))
            self.commit_share = max(1, getattr(settings, "commit_tenant_events", self.commit_share))
            self.tenant_queue_max = getattr(settings, "tenant_queue_events", self.tenant_queue_max)

    def _start_writer(self, conn: C) -> None:
        self._wconn = conn
        self._listeners: list[Callable[[set[int]], None]] = []
        self._cv = threading.Condition()
        self._lanes: dict[int, deque[_Job]] = {}  # insertion order is the turn order
        self._queued: dict[int, int] = {}  # tenant id -> events waiting (not yet committed)
        self._active: dict[int, float] = {}  # tenant id -> when it last had events taken (monotonic)
        self._stopping = False
        self._writer = threading.Thread(target=self._write_loop, name="vigil-writer", daemon=True)
        self._writer.start()

    def _stop_writer(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._writer.join(timeout=30)

    # what a store supplies
    @abstractmethod
    def _begin(self, conn: C) -> None: ...
    @abstractmethod
    def _commit_tx(self, conn: C) -> None: ...
    @abstractmethod
    def _rollback(self, conn: C) -> None: ...
    @abstractmethod
    def _append_locked(self, conn: C, tenant_id: int, events: Sequence[Prepared]) -> list[Appended]: ...
    @abstractmethod
    def _forget(self) -> None:
        """Drop in-memory state that may hold rolled-back writes (frontiers)."""

    def _error(self, exc: BaseException) -> BaseException:
        return exc

    # the API
    def _submit(self, job: _Job, bounded: bool = False) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise StorageError("the store is closed")
        n = len(job.events or ())
        with self._cv:
            waiting = self._queued.get(job.tenant_id, 0)
            # a request alone is always taken (else one larger than the bound could never pass)
            if bounded and self.tenant_queue_max and waiting and waiting + n > self.tenant_queue_max:
                raise QueueFull(
                    f"this tenant already has {waiting} events waiting to be written (at most "
                    f"{self.tenant_queue_max}); retry in 1 s",
                    retry_after=1,
                )
            self._lanes.setdefault(job.lane, deque()).append(job)
            if n:
                self._queued[job.tenant_id] = waiting + n
            self._cv.notify()
        return job.future

    def write(self, fn: Callable[[C], T]) -> T:
        """Run ``fn(conn)`` on the writer thread inside a transaction; returns its result after commit."""
        result: T = self._submit(_Job(0, None, fn)).result()
        return result

    def append(self, tenant_id: int, events: Sequence[Prepared]) -> list[Appended]:
        result: list[Appended] = self._submit(_Job(tenant_id, events, None)).result()
        return result

    async def append_async(
        self, tenant_id: int, events: Sequence[Prepared], *, bounded: bool = False
    ) -> list[Appended]:
        """Append after commit. ``bounded``: refuse with 429 when the tenant already has its most events
        waiting (ingest from outside); the server's own records (the access audit) are never refused."""
        future = self._submit(_Job(tenant_id, events, None), bounded)
        result: list[Appended] = await asyncio.wrap_future(future)
        return result

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener(tenant ids)`` on the writer thread after each commit that appended events.

        Followers in the same process (the detection engine) wake up at once instead of polling; it must be
        quick and must not write.
        """
        self._listeners.append(listener)

    def waiting_events(self) -> int:
        """Events queued for the writer and not yet committed, every tenant together (the ``/metrics`` gauge)."""
        with self._cv:
            return sum(self._queued.values())

    def writer_alive(self) -> bool:
        return not self._closed and self._writer.is_alive()

    # the thread
    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._lanes and not self._stopping:
                    self._cv.wait()
                if not self._lanes:  # stopping, and everything queued before is answered
                    return
                parts = self._take_group()
            self._commit(parts)

    def _take_group(self) -> list[_Part]:
        """One turn of every lane, each up to its share, in turn order; lanes served move to the back.

        The share is ``commit_share`` while more than one tenant has appended within the last second: then no
        commit holds the others for long. A tenant alone may fill a whole group commit (the fastest way to
        write), until another one shows up.
        """
        now = time.monotonic()
        active = self._active
        for lane_id in self._lanes:
            if lane_id != _WRITES:
                active[lane_id] = now
        for tenant in [t for t, at in active.items() if now - at > _RECENT]:
            del active[tenant]
        fair_share = self.commit_share if len(active) > 1 else self.commit_max
        parts: list[_Part] = []
        count = 0
        for lane_id in list(self._lanes):
            if count >= self.commit_max:
                break  # the lanes not reached keep their place at the front
            lane = self._lanes.pop(lane_id)
            share = min(fair_share, self.commit_max - count)
            while lane and share > 0:
                job = lane[0]
                if job.events is None:
                    parts.append(_Part(job, None, True))
                    lane.popleft()
                    share -= 1
                    count += 1
                    continue
                k = min(len(job.events) - job.taken, share)
                chunk = (
                    job.events
                    if job.taken == 0 and k == len(job.events)
                    else job.events[job.taken : job.taken + k]
                )
                job.taken += k
                last = job.taken >= len(job.events)
                if last:
                    lane.popleft()
                parts.append(_Part(job, chunk, last))
                share -= max(k, 1)
                count += max(k, 1)
            if lane:
                self._lanes[lane_id] = lane  # back of the turn order
        return parts

    def _commit(self, parts: list[_Part]) -> None:
        conn = self._wconn
        try:
            self._begin(conn)
            results = [self._run(conn, part) for part in parts]
            self._commit_tx(conn)
        except BaseException as exc:  # every failure must reach the callers, never kill the writer
            try:
                self._rollback(conn)
            finally:
                self._forget()
            if len(parts) > 1:
                for part in parts:  # retry alone, so one bad job fails only its own caller
                    self._commit([part])
                return
            self._fail(parts[0], self._error(exc))
            return
        tenants: set[int] = set()
        for part, result in zip(parts, results, strict=True):
            job = part.job
            if part.events is None:
                job.future.set_result(result)
                continue
            self._done_waiting(job.tenant_id, len(part.events))
            if part.events:
                tenants.add(job.tenant_id)
            if job.future.done():  # an earlier part failed: the caller has its answer
                continue
            if part.last and not job.results:
                job.future.set_result(result)  # the usual case: the whole job in one commit
                continue
            job.results.extend(result)
            if part.last:
                job.future.set_result(job.results)
        if self._listeners and tenants:
            for listener in self._listeners:
                listener(tenants)

    def _fail(self, part: _Part, exc: BaseException) -> None:
        """The part failed on its own: its caller gets the error, and the job's parts not yet taken are dropped."""
        job = part.job
        if part.events is not None:
            left = len(job.events or ()) - job.taken
            with self._cv:
                lane = self._lanes.get(job.lane)
                if lane and job in lane:
                    lane.remove(job)
                    if not lane:
                        del self._lanes[job.lane]
                job.taken = len(job.events or ())
            self._done_waiting(job.tenant_id, len(part.events) + left)
        if not job.future.done():
            job.future.set_exception(exc)

    def _done_waiting(self, tenant_id: int, n: int) -> None:
        with self._cv:
            left = self._queued.get(tenant_id, 0) - n
            if left > 0:
                self._queued[tenant_id] = left
            else:
                self._queued.pop(tenant_id, None)

    def _run(self, conn: C, part: _Part) -> Any:
        job = part.job
        if job.fn is not None:
            return job.fn(conn)
        if part.events is None:
            raise StorageError("empty write job")
        return self._append_locked(conn, job.tenant_id, part.events)
