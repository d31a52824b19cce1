"""Who sent a request and what became of it: the client address behind a trusted reverse proxy, and one access
log line (and the request metrics) per request.

Both wrap the whole application, so they see every request, including those no route matched. The access line
holds the method, the path, the query with only harmless values (``limit=50``, ``order=seq``; any other value,
a search word or a cursor, shows as ``***``), the status, the duration, the client address and, once the route
authenticated it, the key's tenant and id. It never holds a header: not the Authorization header, not a key
(a key pasted into a path or a query by mistake is cut to its public id).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, quote

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from vigil.store.base import ApiKey

log = logging.getLogger("vigil.access")

KEY_NOTE = "vigil.key"
"""Where a route notes the key it authenticated (in the scope's state), for the access line."""

# Query parameters whose values say nothing about anyone and hold no secret: logged as they are (escaped).
SAFE_VALUES = frozenset(
    {
        "limit",
        "order",
        "format",
        "severity",
        "outcome",
        "category",
        "rule",
        "tenant",
        "action",
        "since",
        "until",
        "from_seq",
        "to_seq",
        "tree_size",
        "first",
        "second",
        "size",
        "target_type",
    }
)
_KEY_TEXT = re.compile(r"(vk_[0-9a-f]{16}_)[A-Za-z0-9_-]+")
_MAX_PATH = 300
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Observer = Callable[[str, str, int, float], None]
"""Told (method, route template, status, seconds) of each request: the request metrics."""


def note_key(scope: Scope, key: ApiKey) -> None:
    """Remember which key a request authenticated with (tenant and public id only), for its access line."""
    scope.setdefault("state", {})[KEY_NOTE] = (key.tenant, key.key_id)


_URL_SAFE = "/:@!$&'()*+,;=-._~%?[]"
_PLAIN = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~%?\[\]-]*")


def _printable(text: str, limit: int) -> str:
    """``text`` with anything that could break a log line percent-escaped, and cut to ``limit`` characters."""
    out = text if _PLAIN.fullmatch(text) else quote(text, safe=_URL_SAFE)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def logged_target(scope: Scope) -> str:
    """The request's path and query as the access log shows them (see the module docstring)."""
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    raw = bytes(raw).split(b"?", 1)[0]  # some servers leave the query in raw_path: it is logged below, masked
    path = _printable(_KEY_TEXT.sub(r"\1***", raw.decode("latin-1")), _MAX_PATH)
    query = scope.get("query_string", b"")
    if not query:
        return path
    parts = []
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)[:30]:
        shown = _KEY_TEXT.sub(r"\1***", value)[:100] if name in SAFE_VALUES else "***"
        parts.append(f"{quote(name[:40], safe='')}={quote(shown, safe=':*,.-_')}")
    return f"{path}?{'&'.join(parts)}"


def access_log(app: ASGIApp, observe: Observer | None = None) -> ASGIApp:
    """ASGI middleware: one ``vigil.access`` line at INFO per HTTP request, and ``observe`` told of each."""

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            seconds = time.perf_counter() - started
            method = str(cast("dict[str, Any]", scope).get("method", "?"))
            if observe is not None:
                route = cast("dict[str, Any]", scope).get("path_template") or "unmatched"
                observe(method if method in _METHODS else "other", route, status, seconds)
            if log.isEnabledFor(logging.INFO):
                _log_line(scope, method, status, seconds)

    return logged


def _log_line(scope: Scope, method: str, status: int, seconds: float) -> None:
    tenant, key_id = scope.get("state", {}).get(KEY_NOTE, (None, None))
    client = scope.get("client")
    target = logged_target(scope)
    method = _printable(method, 16)
    log.info(
        "%s %s %d",
        method,
        target,
        status,
        extra={
            "_shown": ("method", "path", "status"),
            "method": method,
            "path": target,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "tenant": tenant,
            "key_id": key_id,
        },
    )


def trusted_proxies(app: ASGIApp, proxies: str) -> ASGIApp:
    """ASGI middleware: behind a proxy of ``proxies`` (the ``trusted_proxies`` setting, checked and normalised by
    :mod:`vigil.settings`), the client is the address the proxy put in ``X-Forwarded-For`` (and the scheme its
    ``X-Forwarded-Proto``); from any other peer those headers are ignored, so a client cannot choose the address
    its requests are counted and audited under. No proxies: the headers are always ignored."""
    networks = [n.strip() for n in proxies.split(",") if n.strip()]
    if not networks:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    # uvicorn's own middleware: it takes the right-most address not itself a trusted proxy, as RFC 7239 advises
    return cast("ASGIApp", ProxyHeadersMiddleware(cast("Any", app), trusted_hosts=networks))
