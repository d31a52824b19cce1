"""What keeps one client from taking the server from the others: a deadline on request bodies, and a read audit
that a read flood cannot grow without bound.

The rate limits themselves are token buckets (:mod:`vigil.ingest.ratelimit`), charged by the routes before the
work; the writer takes tenants in turn (:mod:`vigil.store.writer`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from vigil.errors import RequestTimeout

MAX_COALESCING = 10_000  # distinct reads held at once; past it the oldest are written out early


def body_deadline(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware: a request's whole body must arrive within ``seconds`` of the request reaching the app,
    else :class:`RequestTimeout` (408, connection closed). A client that trickles its body would otherwise hold
    a connection and a task for as long as it likes. Once the body is in, ``receive`` is left alone (a
    streamed answer listens on it for the client going away)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        if seconds <= 0:
            return app

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            complete = False

            async def timed_receive() -> ReceiveMessage:
                nonlocal complete
                if complete:
                    return await receive()
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise RequestTimeout(
                        f"the request body did not arrive within {seconds:g} s; the connection is closed"
                    ) from None
                if message.get("type") != "http.request" or not message.get("more_body", False):
                    complete = True
                return message

            await app(scope, timed_receive, send)

        return guarded

    return middleware


@dataclass
class _Series:
    """Identical reads by one key: the first is recorded at once; the ones after it are counted here."""

    key: Any
    action: str
    metadata: dict[str, Any]
    started: float  # monotonic
    repeats: int = 0
    first_at: str = ""
    last_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ReadAudit:
    """Coalesces repeated identical reads by one key within ``window`` seconds.

    Every read is accounted for: the first of a series goes to the platform log at once (``record`` returns
    True), the identical ones after it within the window are counted and written as one entry with
    ``metadata.repeats`` (and the first and last times) when the window closes, when too many series are held,
    or at shutdown. A flood of identical reads thus costs the platform log two entries per window and key.
    """

    def __init__(self, window: float, emit: Callable[[Any, str, dict[str, Any]], None]) -> None:
        self.window = window
        self._emit = emit
        self._series: dict[bytes, _Series] = {}

    def record(self, key: Any, action: str, metadata: dict[str, Any], now: float | None = None) -> bool:
        """Account for one read; True when the caller must record it now (the first of its series)."""
        if self.window <= 0:
            return True
        t = time.monotonic() if now is None else now
        sig = msgspec.json.encode([key.key_id, action, sorted(metadata.items())])
        series = self._series.get(sig)
        if series is not None and t - series.started < self.window:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            series.repeats += 1
            series.first_at = series.first_at or stamp
            series.last_at = stamp
            return False
        if series is not None:
            self._close(sig)
        self._series[sig] = _Series(key, action, metadata, t)
        if len(self._series) > MAX_COALESCING:
            self._close(next(iter(self._series)))
        return True

    def flush(self, now: float | None = None, *, everything: bool = False) -> None:
        """Write out the series whose window has closed (all of them with ``everything``)."""
        t = time.monotonic() if now is None else now
        for sig in [s for s, x in self._series.items() if everything or t - x.started >= self.window]:
            self._close(sig)

    def _close(self, sig: bytes) -> None:
        series = self._series.pop(sig)
        if series.repeats:
            meta = {
                **series.metadata,
                "repeats": series.repeats,
                "repeats_from": series.first_at,
                "repeats_to": series.last_at,
            }
            self._emit(series.key, series.action, meta)

    async def run(self) -> None:
        """Close the windows as they end (a task of the server)."""
        while True:
            await asyncio.sleep(max(self.window / 2, 0.05))
            self.flush()
