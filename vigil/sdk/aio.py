"""``vigil.sdk.AsyncClient``: the same client for asyncio apps.

``record`` is the threaded client's: it only queues, so it never blocks the event loop. ``flush`` and
``aclose`` wait in a worker thread (``asyncio.to_thread``), so the loop keeps running while they do. Reads
(``search``, ``get``, ``proof``, ``export``, ``verify``) go through a :class:`vigil.sdk.reader.AsyncReader`
(httpx's ``AsyncClient``) made at the first read, on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from typing import IO, Any

from vigil.model import StoredEvent
from vigil.sdk.api import InclusionProof, Page, Verified
from vigil.sdk.client import Client
from vigil.sdk.reader import AsyncReader, Exported
from vigil.sdk.worker import ClientStats


class AsyncClient:
    """An asyncio-friendly :class:`vigil.sdk.Client`: same arguments, same guarantees.

    async with AsyncClient(url, key, spool_dir="spool") as vigil:
        vigil.record(action="user.login", actor_id="usr_42")
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
        self._vkey = vkey
        self._api_key = api_key  # for the reader, made later
        self._timeout = timeout
        self._reader: AsyncReader | None = None
        self._closed = False
        self._client = Client(
            url,
            api_key,
            spool_dir,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            timeout=timeout,
            max_backoff=max_backoff,
            compress=compress,
            vkey=vkey,
        )

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
        """Queue one event and return its id; never waits (see :meth:`vigil.sdk.Client.record`)."""
        return self._client.record(
            action,
            actor=actor,
            actor_id=actor_id,
            targets=targets,
            outcome=outcome,
            category=category,
            context=context,
            changes=changes,
            metadata=metadata,
            message=message,
            reason=reason,
            occurred_at=occurred_at,
            id=id,
        )

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait, without blocking the loop, until what was recorded before is acknowledged or spooled."""
        return await asyncio.to_thread(self._client.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> bool:
        """Deliver or spool what is queued, then stop (see :meth:`vigil.sdk.Client.close`)."""
        self._closed = True
        if self._reader is not None:
            await self._reader.aclose()
        return await asyncio.to_thread(self._client.close, timeout)

    def set_key(self, api_key: str) -> None:
        """Send and read with a new key from now on (see :meth:`vigil.sdk.Client.set_key`)."""
        self._client.set_key(api_key)
        self._api_key = api_key
        if self._reader is not None:
            self._reader.set_key(api_key)

    # -- reads, on the loop -----------------------------------------------------------------------------------

    @property
    def reader(self) -> AsyncReader:
        """The :class:`AsyncReader` behind this client's reads (made at the first one)."""
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._reader is None:
            url = self._client.url
            self._reader = AsyncReader(url, self._api_key, vkey=self._vkey, timeout=self._timeout)
        return self._reader

    def search(self, **filters: object) -> AsyncIterator[StoredEvent]:
        """Every matching event over all pages: ``async for event in client.search(action="user.*")``."""
        return self.reader.search(**filters)

    def search_pages(self, **filters: object) -> AsyncIterator[Page]:
        """Every page of a search: ``async for page in client.search_pages(...)``."""
        return self.reader.search_pages(**filters)

    async def get(self, event_id: str) -> StoredEvent:
        """One stored event by id."""
        return await self.reader.get(event_id)

    async def proof(self, event_id: str, *, tree_size: int | None = None) -> InclusionProof:
        """The event's inclusion proof."""
        return await self.reader.proof(event_id, tree_size=tree_size)

    async def export(
        self, destination: str | PathLike[str] | IO[bytes], *, format: str = "ndjson", **filters: object
    ) -> Exported:
        """Stream an export of the log to a path or a binary file."""
        return await self.reader.export(destination, format=format, **filters)

    async def verify(
        self, event_id: str, *, tree_size: int | None = None, vkey: str | None = None
    ) -> Verified:
        """Prove the event is in the log under a signed checkpoint (raises ``VerificationError`` if not)."""
        return await self.reader.verify(event_id, tree_size=tree_size, vkey=vkey)

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    @property
    def client(self) -> Client:
        """The threaded client underneath (for code that is not async)."""
        return self._client

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
