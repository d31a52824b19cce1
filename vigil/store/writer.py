"""The one writer of a store: a thread that group-commits every append of every tenant.

Callers queue a job and wait on its future; the thread takes whatever is queued when it is free (up to
``commit_max`` events) and runs it in one transaction, then answers every caller. Nobody hears "stored" before
the commit. When a job of a group fails, the group is rolled back and each job is retried alone, so only the
guilty caller sees the error. Stores supply the transaction and the append; this class supplies the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vigil.errors import StorageError

if TYPE_CHECKING:
    from vigil.ingest.intake import Prepared
    from vigil.store.base import Appended

C = TypeVar("C")
T = TypeVar("T")


class _Job:
    __slots__ = ("events", "fn", "future", "tenant_id")

    def __init__(
        self, tenant_id: int, events: Sequence[Prepared] | None, fn: Callable[[Any], Any] | None
    ) -> None:
        self.tenant_id = tenant_id
        self.events = events
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class GroupCommitWriter(ABC, Generic[C]):
    """Mixin: the writer thread and the append API on top of a store's transaction primitives."""

    commit_max: int = 5000
    _closed: bool = False

    def _start_writer(self, conn: C) -> None:
        self._wconn = conn
        self._listeners: list[Callable[[set[int]], None]] = []
        self._queue: SimpleQueue[_Job | None] = SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="vigil-writer", daemon=True)
        self._writer.start()

    def _stop_writer(self) -> None:
        self._queue.put(None)
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
    def _submit(self, job: _Job) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise StorageError("the store is closed")
        self._queue.put(job)
        return job.future

    def write(self, fn: Callable[[C], T]) -> T:
        """Run ``fn(conn)`` on the writer thread inside a transaction; returns its result after commit."""
        result: T = self._submit(_Job(0, None, fn)).result()
        return result

    def append(self, tenant_id: int, events: Sequence[Prepared]) -> list[Appended]:
        result: list[Appended] = self._submit(_Job(tenant_id, events, None)).result()
        return result

    async def append_async(self, tenant_id: int, events: Sequence[Prepared]) -> list[Appended]:
        result: list[Appended] = await asyncio.wrap_future(self._submit(_Job(tenant_id, events, None)))
        return result

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener(tenant ids)`` on the writer thread after each commit that appended events.

        Followers in the same process (the detection engine) wake up at once instead of polling; it must be
        quick and must not write.
        """
        self._listeners.append(listener)

    def writer_alive(self) -> bool:
        return not self._closed and self._writer.is_alive()

    # the thread
    def _write_loop(self) -> None:
        queue = self._queue
        while True:
            job = queue.get()
            if job is None:
                return
            jobs = [job]
            count = len(job.events or ())
            stop = False
            while count < self.commit_max and not queue.empty():
                nxt = queue.get()
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                count += len(nxt.events or ())
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        conn = self._wconn
        try:
            self._begin(conn)
            results = [self._run(conn, job) for job in jobs]
            self._commit_tx(conn)
        except BaseException as exc:  # every failure must reach the callers, never kill the writer
            try:
                self._rollback(conn)
            finally:
                self._forget()
            if len(jobs) > 1:
                for job in jobs:  # retry alone, so one bad job fails only its own caller
                    self._commit([job])
                return
            jobs[0].future.set_exception(self._error(exc))
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
        if self._listeners:
            tenants = {job.tenant_id for job in jobs if job.events}
            if tenants:
                for listener in self._listeners:
                    listener(tenants)

    def _run(self, conn: C, job: _Job) -> Any:
        if job.fn is not None:
            return job.fn(conn)
        if job.events is None:
            raise StorageError("empty write job")
        return self._append_locked(conn, job.tenant_id, job.events)
