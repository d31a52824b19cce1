"""Pieces every route module shares: the error body, response helpers, OpenAPI fragments."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Schema


class Problem(msgspec.Struct):
    type: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorBody(msgspec.Struct):
    error: Problem


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the given error statuses, all in the one error shape."""
    text = {
        400: "Malformed request",
        401: "No or unknown API key",
        403: "Key lacks the scope",
        404: "Not found",
        409: "Conflict",
        413: "Too large",
        415: "Neither JSON nor NDJSON",
        422: "Every event was rejected",
        429: "Over the rate limit",
        503: "Store not ready",
    }
    if 401 in statuses:  # whatever authenticates may answer 429: too many failed authentications (vigil.auth)
        statuses = (*statuses, 429)
    return {s: ResponseSpec(data_container=ErrorBody, description=text[s]) for s in statuses}


def json_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=data, status_code=status, media_type="application/json", headers=headers)


def with_options(handlers: list[Any]) -> list[Any]:
    """The handlers, preceded by an OPTIONS handler for every path that several handlers share.

    The framework's automatic OPTIONS answer lists only the methods of the first handler registered for a path,
    so its ``Allow`` header would hide the others.
    """
    methods: dict[str, set[str]] = {}
    for h in handlers:
        if isinstance(h, HTTPRouteHandler):
            for path in h.paths:
                methods.setdefault(path, set()).update(h.http_methods)
    extra = []
    for path, verbs in methods.items():
        if len(verbs) > 1:
            answer = _options_answer(", ".join(sorted(verbs | {"OPTIONS"})))
            extra.append(
                route(path, http_method="OPTIONS", include_in_schema=False, name=f"options:{path}")(answer)
            )
    return extra + handlers


def _options_answer(allow: str) -> Any:
    async def answer() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    return answer


def unions_as_any_of(node: Any) -> None:
    """Turn every ``oneOf`` the framework wrote for a union into ``anyOf``, in place, anywhere in ``node``.

    Our unions are never exclusive: an integer metadata value is also a JSON Schema ``number``, so under
    ``oneOf`` a stored event with one would not match the document that describes it.
    """
    if isinstance(node, Schema) and node.one_of is not None:
        node.any_of, node.one_of = [*(node.any_of or []), *node.one_of], None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):  # every spec object: paths, operations…
        for f in dataclasses.fields(node):
            unions_as_any_of(getattr(node, f.name))
    elif isinstance(node, dict):
        for value in node.values():
            unions_as_any_of(value)
    elif isinstance(node, list | tuple):
        for value in node:
            unions_as_any_of(value)
