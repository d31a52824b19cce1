"""Routes that find events: the search, one entity's history, and the filter parameters the export shares."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, Parameter

from vigil.errors import InvalidRequest
from vigil.filters import FILTERS, MAX_LENGTH, PATTERNS, given, make_query
from vigil.model import StoredEvent, stored_json
from vigil.store.base import Page, SearchQuery
from vigil.web.common import BEARER, errors, json_response

if TYPE_CHECKING:
    from vigil.web.app import App

MAX_SIZE = 1 << 40  # a log holds at most 2**40 events (seq is 40 bits of the row id)
_MAX_US = 1 << 62  # far beyond any time an event can carry (years 1 to 9999 are about ±2**58 µs)


def _text(name: str) -> Any:
    # the pattern only documents the shape: the framework would refuse a mismatch before our check, whose
    # message says what is wrong
    extra = {"pattern": PATTERNS[name]} if name in PATTERNS else None
    return Parameter(description=FILTERS[name], max_length=MAX_LENGTH.get(name, 256), schema_extra=extra)


# The filter parameters, one definition for the search and the export (the names are FILTERS').
ActorId = Annotated[str | None, _text("actor_id")]
ActorName = Annotated[str | None, _text("actor_name")]
ActorEmail = Annotated[str | None, _text("actor_email")]
Action = Annotated[str | None, _text("action")]
TargetType = Annotated[str | None, _text("target_type")]
TargetId = Annotated[str | None, _text("target_id")]
OutcomeParam = Annotated[
    Literal["success", "failure", "denied", "error"] | None, Parameter(description=FILTERS["outcome"])
]
CategoryParam = Annotated[
    Literal["activity", "audit", "data_access", "change", "system"] | None,
    Parameter(description=FILTERS["category"]),
]
Ip = Annotated[str | None, _text("ip")]
Since = Annotated[str | None, _text("since")]
Until = Annotated[str | None, _text("until")]
Words = Annotated[str | None, _text("q")]


class SearchPage(msgspec.Struct):
    data: list[StoredEvent]
    next_cursor: str | None
    snapshot_seq: int


def cursor_encode(tenant_id: int, order: str, after: tuple[int, int], snapshot: int) -> str:
    """The opaque cursor after a page: the tenant, the order, the keyset position and the snapshot."""
    data: dict[str, int | str] = {"t": tenant_id, "o": order, "s": after[1], "n": snapshot}
    if order == "newest":
        data["u"] = after[0]  # newest pages by (occurred time, seq)
    raw = msgspec.json.encode(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def cursor_decode(cursor: str, tenant_id: int, order: str) -> tuple[tuple[int, int], int]:
    """(keyset position, snapshot) of a cursor this server gave out for this tenant and order; 400 otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = msgspec.json.decode(raw, type=dict[str, int | str])
        seq, snap, t, o = data["s"], data["n"], data["t"], data["o"]
        at = data["u"] if order == "newest" else 0
    except (binascii.Error, ValueError, KeyError, msgspec.DecodeError):
        raise InvalidRequest("cursor is not one this server gave out") from None
    if t != tenant_id or o != order:
        raise InvalidRequest("cursor belongs to another query (tenant or order differ)")
    if not isinstance(seq, int) or not isinstance(snap, int) or not isinstance(at, int):
        raise InvalidRequest("cursor is not one this server gave out")
    if (
        not 0 <= seq <= snap < MAX_SIZE or not -_MAX_US < at < _MAX_US
    ):  # forged: a store's integers are 64 bits
        raise InvalidRequest("cursor is not one this server gave out")
    return (at, seq), snap


def with_cursor(query: SearchQuery, cursor: str | None, tenant_id: int) -> SearchQuery:
    """``query`` continued after ``cursor`` (unchanged without one)."""
    if not cursor:
        return query
    after, snapshot = cursor_decode(cursor, tenant_id, query.order)
    return dataclasses.replace(query, after=after, snapshot=snapshot)


def page_response(tenant_id: int, order: str, page: Page) -> Response[bytes]:
    """A search page in the API's shape, events spliced from their stored bytes."""
    nxt = cursor_encode(tenant_id, order, page.next, page.snapshot) if page.next else None
    data = b",".join(stored_json(*e) for e in page.events)
    return json_response(
        b'{"data":['
        + data
        + b'],"next_cursor":'
        + msgspec.json.encode(nxt)
        + b',"snapshot_seq":%d}' % page.snapshot
    )


def search_routes(app: App) -> list[Any]:
    """The search and entity-history handlers, bound to ``app``."""

    @get(
        "/v1/events",
        summary="Search events",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403, 429),
            200: ResponseSpec(data_container=SearchPage, description="A page of events"),
        },
    )
    async def search(
        request: Request[Any, Any, Any],
        actor_id: ActorId = None,
        actor_name: ActorName = None,
        actor_email: ActorEmail = None,
        action: Action = None,
        target_type: TargetType = None,
        target_id: TargetId = None,
        outcome: OutcomeParam = None,
        category: CategoryParam = None,
        ip: Ip = None,
        since: Since = None,
        until: Until = None,
        q: Words = None,
        order: Annotated[
            Literal["newest", "seq"],
            Parameter(
                description="newest: by occurred_at, latest first (seq breaks ties); seq: log (arrival) order"
            ),
        ] = "newest",
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page", max_length=512)
        ] = None,
    ) -> Response[bytes]:
        """Search the caller's tenant log. Filters combine; pages stay stable while new events arrive."""
        key = app.auth(request, "read", "auditor")
        values = {
            "actor_id": actor_id,
            "actor_name": actor_name,
            "actor_email": actor_email,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "outcome": outcome,
            "category": category,
            "ip": ip,
            "since": since,
            "until": until,
            "q": q,
        }
        query = with_cursor(make_query(values, order=order, limit=limit), cursor, key.tenant_id)
        page = await asyncio.to_thread(app.store.search, key.tenant_id, query)
        app.record_access(key, "audit_log.searched", {**given(values), "results": len(page.events)})
        return page_response(key.tenant_id, order, page)

    @get(
        "/v1/entities/{entity_type:str}/{entity_id:str}/history",
        summary="History of one entity",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403, 429),
            200: ResponseSpec(data_container=SearchPage, description="The entity's events, newest first"),
        },
    )
    async def entity_history(
        request: Request[Any, Any, Any],
        entity_type: FromPath[str],
        entity_id: FromPath[str],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page", max_length=512)
        ] = None,
    ) -> Response[bytes]:
        """Who created, changed, viewed or deleted this entity, and when: every event that names it as a target,
        latest occurred_at first."""
        key = app.auth(request, "read", "auditor")
        if len(entity_type) > 64 or len(entity_id) > 256:
            raise InvalidRequest("entity type is at most 64 characters and id at most 256")
        query = SearchQuery(target_type=entity_type, target_id=entity_id, limit=limit)
        page = await asyncio.to_thread(
            app.store.search, key.tenant_id, with_cursor(query, cursor, key.tenant_id)
        )
        app.record_access(
            key,
            "audit_log.entity.viewed",
            {"target_type": entity_type, "target_id": entity_id, "results": len(page.events)},
        )
        return page_response(key.tenant_id, "newest", page)

    return [search, entity_history]
