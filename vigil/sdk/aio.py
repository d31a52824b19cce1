"""``vigil.sdk.AsyncClient``: the same client for asyncio apps.

``record`` is the threaded client's: it only queues, so it never blocks the event loop. ``flush`` and
``aclose`` wait in a worker thread (``asyncio.to_thread``), so the loop keeps running while they do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from os import PathLike
from typing import Any

from vigil.sdk.client import Client
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
    ) -> None:
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
        return await asyncio.to_thread(self._client.close, timeout)

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
