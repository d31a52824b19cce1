"""Reading a tenant's log from Python: search every page, get one event, its proof, an export, and a verify
that proves an event is in the log, with :class:`Reader` (sync) and :class:`AsyncReader` (asyncio), as httpx
has ``Client`` and ``AsyncClient``.

    with Reader("https://vigil.example", "vk_…") as log:       # a key with the read (or auditor) scope
        for event in log.search(action="user.*", since=datetime(2026, 11, 1, tzinfo=UTC)):
            print(event.seq, event.action, event.actor.id)
        log.export("november.ndjson", format="ndjson", since=datetime(2026, 11, 1, tzinfo=UTC))
        log.verify(event_id)                                   # raises VerificationError unless proven

``vigil.sdk.Client`` and ``AsyncClient`` carry one of these (same url and key) and offer the same methods.
Filters are passed through to ``GET /v1/events`` and ``GET /v1/export`` by name (docs/api.md), so the server
decides what they mean and refuses the ones it does not know (``InvalidRequest``); errors are those of
:mod:`vigil.errors`. Reads that meet 429 or 503 wait for ``Retry-After`` (up to ``max_wait`` seconds) and try
again, as they do after a lost connection, up to ``retries`` times.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast
from urllib.parse import quote

import msgspec

from vigil.ledger.trust import resolve_vkey
from vigil.model import StoredEvent
from vigil.sdk.api import (
    InclusionProof,
    Page,
    ServerUnreachable,
    Verified,
    check_proof,
    clean_vkey,
    error_from,
    filter_value,
    query_params,
)
from vigil.sdk.transport import USER_AGENT, import_httpx, parse_retry_after, retry_delay

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})
CHUNK = 1 << 16

_page = msgspec.json.Decoder(Page)
_event = msgspec.json.Decoder(StoredEvent)
_proof = msgspec.json.Decoder(InclusionProof)
_FILENAME = re.compile(r'filename="([^"]{1,255})"')


@dataclass(frozen=True)
class Exported:
    """What :meth:`Reader.export` wrote: ``bytes`` of ``format`` (to ``path``, when it was given one)."""

    path: str | None
    bytes: int
    format: str
    content_type: str
    filename: str | None  # the name the server suggests (Content-Disposition)


class _Base:
    """What both readers keep: the url, the key, the retry policy and the verifier key."""

    def __init__(
        self, url: str, api_key: str, vkey: str | None, timeout: float, retries: int, max_wait: float
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://; got {url!r}")
        _check_key(api_key)
        if not timeout > 0:
            raise ValueError(f"timeout must be more than 0; got {timeout}")
        if retries < 0 or not max_wait >= 0:
            raise ValueError("retries and max_wait must be 0 or more")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_wait = max_wait
        self._authorization = f"Bearer {api_key}"
        self._pinned = vkey  # resolved (a key, @file, path or URL) on first use
        self._vkey: str | None = None
        self._httpx = import_httpx()

    def set_key(self, api_key: str) -> None:
        """Read with this key from the next request on."""
        _check_key(api_key)
        self._authorization = f"Bearer {api_key}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def _wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds before the next attempt after ``response`` (None: the connection failed), or None when
        the answer is final or the retries are spent."""
        if attempt > self.retries:
            return None
        if response is None:
            return retry_delay(attempt, None, self.max_wait or 0.0)
        if response.status_code not in RETRY_STATUSES:
            return None
        after = parse_retry_after(response.headers.get("retry-after"))
        if after is not None and after > self.max_wait:
            return None  # the server asks for longer than a read should block: its error says when
        return retry_delay(attempt, after, self.max_wait or 0.0)

    def _unreachable(self, path: str, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(f"could not read {self.url}{path}: {type(exc).__name__}: {exc}")

    def _fail(self, response: httpx.Response, content: bytes) -> Exception:
        after = parse_retry_after(response.headers.get("retry-after"))
        return error_from(response.status_code, content, after)

    def _pinned_vkey(self, override: str | None) -> str | None:
        """``override`` or the pinned key, resolved (``ConfigError`` when it is no key); None when neither."""
        value = override if override is not None else self._pinned
        return None if value is None else resolve_vkey(value)


def _check_key(api_key: object) -> None:
    if not isinstance(api_key, str) or not api_key or any(c in api_key for c in "\r\n"):
        raise ValueError("api_key must be a non-empty string on one line")


def _event_path(event_id: str, suffix: str = "") -> str:
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("event_id must be a non-empty string")
    return f"/v1/events/{quote(event_id, safe='')}{suffix}"


def _proof_params(tree_size: int | None) -> dict[str, str]:
    return {} if tree_size is None else {"tree_size": filter_value("tree_size", tree_size)}


def _binary(destination: object) -> IO[bytes]:
    if isinstance(destination, io.TextIOBase) or not hasattr(destination, "write"):
        raise TypeError("export() writes bytes: give it a path, or a file opened in binary mode ('wb')")
    return cast("IO[bytes]", destination)


def _partial(path: Path) -> IO[bytes]:
    """A temporary file beside ``path``: an export that fails never leaves a file that looks whole."""
    return tempfile.NamedTemporaryFile(
        "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
    )


def _exported(path: Path | None, n: int, fmt: str, response: httpx.Response) -> Exported:
    match = _FILENAME.search(response.headers.get("content-disposition", ""))
    return Exported(
        str(path) if path is not None else None,
        n,
        fmt,
        response.headers.get("content-type", ""),
        match.group(1) if match else None,
    )


class Reader(_Base):
    """A synchronous reader of one tenant's log (the key's). ``transport`` is handed to ``httpx.Client``
    (a ``httpx.WSGITransport``, a mock in your tests); ``vkey`` pins the key checkpoints must be signed by."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        vkey: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, vkey, timeout, retries, max_wait)
        self._http: httpx.Client = self._httpx.Client(
            base_url=self.url,
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
        )

    def _get(self, path: str, params: dict[str, str] | None = None, *, auth: bool = True) -> bytes:
        """The body of a 200 answer to GET ``path``; anything else raises its :mod:`vigil.errors` error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self._http.get(path, params=params, headers=self._headers() if auth else None)
            except self._httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise self._unreachable(path, exc) from None
                time.sleep(wait)
                continue
            if r.status_code == 200:
                return r.content
            wait = self._wait(attempt, r)
            if wait is None:
                raise self._fail(r, r.content)
            time.sleep(wait)

    def search_pages(self, **filters: object) -> Iterator[Page]:
        """Every page of ``GET /v1/events`` with these filters, following ``next_cursor`` to the last."""
        params = query_params(filters)  # checked now, not at the first next()
        return self._pages(params)

    def _pages(self, params: dict[str, str]) -> Iterator[Page]:
        while True:
            page = _page.decode(self._get("/v1/events", params))
            yield page
            if not page.next_cursor:
                return
            params = {**params, "cursor": page.next_cursor}

    def search(self, **filters: object) -> Iterator[StoredEvent]:
        """Every event matching the filters (those of ``GET /v1/events``: ``action="user.*"``,
        ``actor_id=``, ``since=datetime(…)``, ``order="seq"`` …), all pages, in the server's order."""
        pages = self.search_pages(**filters)
        return (event for page in pages for event in page.data)

    def get(self, event_id: str) -> StoredEvent:
        """One event by id, with its ``seq`` and ``leaf_hash``; ``NotFound`` when the log has none."""
        return _event.decode(self._get(_event_path(event_id)))

    def proof(self, event_id: str, *, tree_size: int | None = None) -> InclusionProof:
        """The event's inclusion proof (default tree: the newest checkpoint that covers it)."""
        return _proof.decode(self._get(_event_path(event_id, "/proof"), _proof_params(tree_size)))

    def verifier_key(self) -> str:
        """The key checkpoints are checked with: the pinned one, else the server's (fetched once)."""
        if self._vkey is None:
            pinned = self._pinned_vkey(None)
            self._vkey = pinned or clean_vkey(self._get("/v1/checkpoints/key", auth=False).decode())
        return self._vkey

    def verify(self, event_id: str, *, tree_size: int | None = None, vkey: str | None = None) -> Verified:
        """Prove the event is in the tenant's log under a checkpoint signed by the log's key (``vkey``, the
        reader's pinned key, else the server's); raises ``vigil.verifier.VerificationError`` otherwise."""
        key = (self._pinned_vkey(vkey) if vkey is not None else None) or self.verifier_key()
        raw = self._get(_event_path(event_id))
        proof = self.proof(event_id, tree_size=tree_size)
        pinned = vkey is not None or self._pinned is not None
        return check_proof(raw, proof, key, key_pinned=pinned, event_id=event_id)

    def export(
        self, destination: str | PathLike[str] | IO[bytes], *, format: str = "ndjson", **filters: object
    ) -> Exported:
        """Stream ``GET /v1/export`` (``format`` and the search filters) to a path or a binary file, in
        chunks: memory stays flat. A path is written whole or not at all."""
        params = {"format": filter_value("format", format), **query_params(filters)}
        if not isinstance(destination, str | PathLike):
            return self._export(params, _binary(destination), None, format)
        path = Path(destination)
        tmp = _partial(path)
        try:
            with tmp:
                result = self._export(params, tmp, path, format)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, path)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
        return result

    def _export(self, params: dict[str, str], out: IO[bytes], path: Path | None, fmt: str) -> Exported:
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._http.stream("GET", "/v1/export", params=params, headers=self._headers()) as r:
                    if r.status_code != 200:
                        content = r.read()
                        wait = self._wait(attempt, r)
                        if wait is None:
                            raise self._fail(r, content)
                    else:
                        n = 0
                        try:
                            for chunk in r.iter_bytes(CHUNK):
                                out.write(chunk)
                                n += len(chunk)
                        except self._httpx.TransportError as exc:
                            raise ServerUnreachable(
                                f"the export broke off after {n} bytes ({type(exc).__name__}: {exc}); "
                                "what was written is incomplete"
                            ) from None
                        return _exported(path, n, fmt, r)
            except self._httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise self._unreachable("/v1/export", exc) from None
            time.sleep(wait)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncReader(_Base):
    """The asyncio reader: the methods of :class:`Reader`, awaited (``search`` is an async iterator).
    ``transport`` is handed to ``httpx.AsyncClient`` (``httpx.ASGITransport(app)`` serves an ASGI app)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        vkey: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, vkey, timeout, retries, max_wait)
        self._http: httpx.AsyncClient = self._httpx.AsyncClient(
            base_url=self.url,
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
        )

    async def _get(self, path: str, params: dict[str, str] | None = None, *, auth: bool = True) -> bytes:
        attempt = 0
        while True:
            attempt += 1
            try:
                r = await self._http.get(path, params=params, headers=self._headers() if auth else None)
            except self._httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise self._unreachable(path, exc) from None
                await asyncio.sleep(wait)
                continue
            if r.status_code == 200:
                return r.content
            wait = self._wait(attempt, r)
            if wait is None:
                raise self._fail(r, r.content)
            await asyncio.sleep(wait)

    def search_pages(self, **filters: object) -> AsyncIterator[Page]:
        """Every page of ``GET /v1/events`` with these filters: ``async for page in reader.search_pages()``."""
        return self._pages(query_params(filters))

    async def _pages(self, params: dict[str, str]) -> AsyncIterator[Page]:
        while True:
            page = _page.decode(await self._get("/v1/events", params))
            yield page
            if not page.next_cursor:
                return
            params = {**params, "cursor": page.next_cursor}

    def search(self, **filters: object) -> AsyncIterator[StoredEvent]:
        """Every matching event, all pages: ``async for event in reader.search(action="user.*")``."""
        return self._events(self.search_pages(**filters))

    async def _events(self, pages: AsyncIterator[Page]) -> AsyncIterator[StoredEvent]:
        async for page in pages:
            for event in page.data:
                yield event

    async def get(self, event_id: str) -> StoredEvent:
        """One event by id (see :meth:`Reader.get`)."""
        return _event.decode(await self._get(_event_path(event_id)))

    async def proof(self, event_id: str, *, tree_size: int | None = None) -> InclusionProof:
        """The event's inclusion proof (see :meth:`Reader.proof`)."""
        return _proof.decode(await self._get(_event_path(event_id, "/proof"), _proof_params(tree_size)))

    async def verifier_key(self) -> str:
        """The pinned verifier key, else the server's (fetched once)."""
        if self._vkey is None:
            pinned = await asyncio.to_thread(self._pinned_vkey, None)  # a key file or URL: blocking I/O
            if pinned is None:
                pinned = clean_vkey((await self._get("/v1/checkpoints/key", auth=False)).decode())
            self._vkey = pinned
        return self._vkey

    async def verify(
        self, event_id: str, *, tree_size: int | None = None, vkey: str | None = None
    ) -> Verified:
        """Prove the event is in the log (see :meth:`Reader.verify`)."""
        key = await asyncio.to_thread(self._pinned_vkey, vkey) if vkey is not None else None
        key = key or await self.verifier_key()
        raw = await self._get(_event_path(event_id))
        proof = await self.proof(event_id, tree_size=tree_size)
        pinned = vkey is not None or self._pinned is not None
        return check_proof(raw, proof, key, key_pinned=pinned, event_id=event_id)

    async def export(
        self, destination: str | PathLike[str] | IO[bytes], *, format: str = "ndjson", **filters: object
    ) -> Exported:
        """Stream an export to a path or a binary file (see :meth:`Reader.export`)."""
        params = {"format": filter_value("format", format), **query_params(filters)}
        if not isinstance(destination, str | PathLike):
            return await self._export(params, _binary(destination), None, format)
        path = Path(destination)
        tmp = await asyncio.to_thread(_partial, path)
        try:
            with tmp:
                result = await self._export(params, tmp, path, format)
                tmp.flush()
                await asyncio.to_thread(os.fsync, tmp.fileno())
            await asyncio.to_thread(os.replace, tmp.name, path)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
        return result

    async def _export(self, params: dict[str, str], out: IO[bytes], path: Path | None, fmt: str) -> Exported:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._http.stream(
                    "GET", "/v1/export", params=params, headers=self._headers()
                ) as r:
                    if r.status_code != 200:
                        content = await r.aread()
                        wait = self._wait(attempt, r)
                        if wait is None:
                            raise self._fail(r, content)
                    else:
                        n = 0
                        try:
                            async for chunk in r.aiter_bytes(CHUNK):
                                out.write(chunk)  # a chunk to a local file: page cache, not worth a thread
                                n += len(chunk)
                        except self._httpx.TransportError as exc:
                            raise ServerUnreachable(
                                f"the export broke off after {n} bytes ({type(exc).__name__}: {exc}); "
                                "what was written is incomplete"
                            ) from None
                        return _exported(path, n, fmt, r)
            except self._httpx.TransportError as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise self._unreachable("/v1/export", exc) from None
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
