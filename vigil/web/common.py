"""Pieces every route module shares: the error body, response helpers, OpenAPI fragments."""

from __future__ import annotations

import dataclasses
import weakref
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Response, route
from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.params import ParameterKwarg, PathParameter

from vigil.errors import InvalidRequest
from vigil.ids import EVENT_ID_PATTERN, EVENT_ID_RULE, MAX_EVENT_ID_LEN, event_id


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
        408: "The request body did not arrive in time",
        409: "Conflict",
        413: "Too large (a batch over the tenant's burst: split it)",
        415: "Neither JSON nor NDJSON",
        422: "Every event was rejected",
        429: "Over the rate limit",
        503: "Store not ready",
    }
    if 401 in statuses:  # whatever authenticates may answer 429: too many failed authentications (vigil.auth)
        statuses = (*statuses, 429)
    return {s: ResponseSpec(data_container=ErrorBody, description=text[s]) for s in statuses}


EventIdPath = Annotated[
    str,
    PathParameter(
        description="The event's id: a UUID (any case) or the client's opaque id (exactly as sent)",
        # documented only: the route checks it itself, to say the rule in words (path_event_id)
        schema_extra={"pattern": EVENT_ID_PATTERN[:-2] + "$", "minLength": 1, "maxLength": MAX_EVENT_ID_LEN},
    ),
]


def path_event_id(text: str) -> str:
    """An event id from a URL path, as the log keeps it (a UUID lower-cased); 400 saying the rule otherwise."""
    eid = event_id(text)
    if eid is None:
        raise InvalidRequest(f"event_id {text[:140]!r} is not an event id: it {EVENT_ID_RULE}")
    return eid


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


# by the handler's function: the framework hands guards a fresh copy of the handler object on each request
_declared: weakref.WeakKeyDictionary[Any, tuple[frozenset[str], frozenset[str]]] = weakref.WeakKeyDictionary()


def _query_parameters(handler: BaseRouteHandler) -> tuple[frozenset[str], frozenset[str]]:
    """(every query parameter ``handler`` declares, those of them that may repeat), read from its signature."""
    cached = _declared.get(handler.fn)
    if cached is not None:
        return cached
    names: set[str] = set()
    many: set[str] = set()
    dependencies = set(handler.resolve_dependencies())
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in RESERVED_KWARGS or name in dependencies:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            name = kwarg.query or name
        names.add(name)
        if field.is_non_string_collection:
            many.add(name)
    cached = _declared[handler.fn] = (frozenset(names), frozenset(many))
    return cached


def refuse_unknown_parameters(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard on every route: a query parameter the route does not declare, or a single-valued one given twice,
    is a 400 that names it, never silently ignored (a misspelt filter would otherwise widen a search)."""
    raw = connection.scope.get("query_string", b"")
    if not raw:
        return
    known, many = _query_parameters(handler)
    known = known - set(connection.path_params)  # a path parameter is not a query parameter of the same name
    seen: set[str] = set()
    unknown: set[str] = set()
    for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name not in known:
            unknown.add(name)
        elif name in seen and name not in many:
            raise InvalidRequest(f"the query parameter {name!r} is given more than once")
        seen.add(name)
    if unknown:
        listed = ", ".join(repr(n[:40]) for n in sorted(unknown)[:10])
        accepted = ", ".join(sorted(known)) or "none"
        raise InvalidRequest(f"unknown query parameters: {listed}; this route takes: {accepted}")
