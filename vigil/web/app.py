"""The HTTP API: thin routes over the store, the intake and the key ring.

Every error, ours or the framework's, leaves as ``{"error": {"type", "message", "details"?}}`` with the status
its class carries (see :mod:`vigil.errors`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, OpenAPIMediaType, Operation, RequestBody, SecurityScheme
from litestar.params import FromPath, Parameter

import vigil
from vigil.auth import KeyRing, require
from vigil.errors import (
    ClientError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
    VigilError,
)
from vigil.ingest.intake import NDJSON, Prepared, prepare_batch, prepare_event, to_us
from vigil.ingest.ratelimit import RateLimiter
from vigil.ingest.redaction_rules import TenantRedaction
from vigil.ledger.checkpoints import Signer, load_signer, run_schedule
from vigil.model import (
    MAX_METADATA_VALUE_LEN,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_EVENTS,
    Actor,
    EventIn,
    EventResult,
    IngestResponse,
    StoredEvent,
    Target,
    event_in_schema,
    stored_json,
)
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import PLATFORM_TENANT, ApiKey, Page, SearchQuery
from vigil.web.alert_routes import alert_routes
from vigil.web.common import (
    BEARER,
    ErrorBody,
    Problem,
    errors,
    json_response,
    unions_as_any_of,
    with_options,
)

if TYPE_CHECKING:
    from vigil.detect.engine import Engine
from vigil.web.ledger_routes import ledger_routes

log = logging.getLogger("vigil.web")

_body_schema, _components = event_in_schema()


class SearchPage(msgspec.Struct):
    data: list[StoredEvent]
    next_cursor: str | None
    snapshot_seq: int


class Health(msgspec.Struct):
    status: str
    version: str


@dataclass
class _IngestOperation(Operation):
    """``POST /v1/events`` reads its body itself (per-event errors), so its OpenAPI body is declared here."""

    def __post_init__(self) -> None:
        schema: Any = (
            _body_schema  # a plain JSON Schema dict; the spec objects pass dicts through as they are
        )
        self.request_body = RequestBody(
            required=True,
            description=f"Up to {MAX_REQUEST_EVENTS} events and {MAX_REQUEST_BYTES} bytes: a JSON array, or "
            f"the same events one per line with Content-Type: {NDJSON}.",
            content={
                "application/json": OpenAPIMediaType(schema=schema),
                NDJSON: OpenAPIMediaType(schema=schema),
            },
        )


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_SEARCH_PARAMS = frozenset(
    {
        "actor_id",
        "action",
        "target_type",
        "target_id",
        "outcome",
        "category",
        "since",
        "until",
        "q",
        "order",
        "limit",
        "cursor",
    }
)


class App:
    """Wires the store, the key ring and the rate limiter into route handlers."""

    def __init__(self, settings: Settings, store: Store | None = None, own_store: bool = False) -> None:
        self.settings = settings
        self._store = store
        self.owns_store = store is None or own_store
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.redaction = TenantRedaction.load(getattr(settings, "redaction_rules", "") or "")
        self._keyring: KeyRing | None = None
        self._platform_id: int | None = None
        self.engine: Engine | None = None
        self._detecting: threading.Thread | None = None
        self._stop_detecting = threading.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._signer: Signer | None = None
        self._schedule: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database, self.settings)
        return self._store

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            self._keyring = KeyRing(self.store)
        return self._keyring

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = load_signer(self.settings)
        return self._signer

    def startup(self) -> None:
        self._platform_id = self.store.get_tenant(PLATFORM_TENANT).id

    async def start(self) -> None:
        """Open the store, load (or create) the signing key, start the checkpoint schedule and detection: fail
        closed (a rule that cannot be loaded stops the start)."""
        self.startup()
        signer = self.signer
        if self.settings.checkpoint_interval:
            self._schedule = asyncio.create_task(
                run_schedule(self.store, signer, self.settings.checkpoint_interval)
            )
        if getattr(self.settings, "detect", False):
            from vigil.detect.loader import build_engine

            engine, _ = build_engine(self.store, self.settings)
            self.engine = engine
            self._detecting = threading.Thread(target=self._detect, name="vigil-detect", daemon=True)
            self._detecting.start()

    def _detect(self) -> None:
        if self.engine is None:
            return
        try:
            self.engine.start()  # replays the rules' windows: may take a while on a big log
        except Exception:
            log.exception("detection could not start")
            return
        self.engine.follow(self._stop_detecting)

    async def shutdown(self) -> None:
        self._stop_detecting.set()
        if self.engine is not None:
            self.engine.wake()
        if self._detecting is not None:
            await asyncio.to_thread(self._detecting.join, 30)
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.owns_store and self._store is not None:
            self._store.close()

    def auth(self, request: Request[Any, Any, Any], *scopes: str) -> ApiKey:
        key = self.keyring.authenticate(request.headers.get("authorization"))
        require(key, *scopes)
        return key

    def record_access(self, key: ApiKey, action: str, metadata: dict[str, Any]) -> None:
        """Record a read of a tenant's log in the platform log, without making the reader wait for it."""
        if self._platform_id is None:
            self.startup()
        now = time.time_ns() // 1000
        meta = {
            k: v[:MAX_METADATA_VALUE_LEN] if isinstance(v, str) else v
            for k, v in metadata.items()
            if v is not None
        }
        ev = EventIn(
            action=action,
            category="data_access",
            actor=Actor(id=key.key_id, type="api_key", name=key.name),
            targets=[Target(type="tenant", id=key.tenant)],
            metadata=meta,
        )
        prepared = prepare_event(ev, PLATFORM_TENANT, now)
        if not isinstance(prepared, Prepared):
            log.error("could not record access %s: %s", action, prepared.errors)
            return
        task = asyncio.ensure_future(self.store.append_async(self._platform_id or 0, [prepared]))
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording an access in the platform log failed: %s", task.exception())


def _cursor_encode(tenant_id: int, order: str, seq: int, snapshot: int) -> str:
    raw = msgspec.json.encode({"t": tenant_id, "o": order, "s": seq, "n": snapshot})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cursor_decode(cursor: str, tenant_id: int, order: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = msgspec.json.decode(raw, type=dict[str, int | str])
        seq, snap, t, o = data["s"], data["n"], data["t"], data["o"]
    except (binascii.Error, ValueError, KeyError, msgspec.DecodeError):
        raise InvalidRequest("cursor is not one this server gave out") from None
    if t != tenant_id or o != order or not isinstance(seq, int) or not isinstance(snap, int):
        raise InvalidRequest("cursor belongs to another query (tenant or order differ)")
    return seq, snap


def _page_response(tenant_id: int, order: str, page: Page) -> Response[bytes]:
    """A search page in the API's shape, events spliced from their stored bytes."""
    nxt = _cursor_encode(tenant_id, order, page.next[1], page.snapshot) if page.next else None
    data = b",".join(stored_json(*e) for e in page.events)
    return json_response(
        b'{"data":['
        + data
        + b'],"next_cursor":'
        + msgspec.json.encode(nxt)
        + b',"snapshot_seq":%d}' % page.snapshot
    )


def decode_content(body: bytes, encoding: str) -> bytes:
    """The request body with its Content-Encoding (identity or gzip) undone, never past the request limit.

    The limit holds for the inflated bytes: a small compressed body cannot expand into a large one (a zip bomb).
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send gzip or nothing")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"the gzip body is corrupt: {exc}") from None
    if len(out) > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the request body inflates to more than {MAX_REQUEST_BYTES} bytes")
    if not inflater.eof:
        raise InvalidRequest("the gzip body is truncated")
    return out


def create_app(
    settings: Settings | None = None, store: Store | None = None, own_store: bool = False
) -> Litestar:
    """The ASGI application. Opens the store named by the settings unless one is given; closes it on shutdown
    when it opened it or ``own_store`` says so."""
    settings = settings or Settings.load()
    app = App(settings, store, own_store)

    @get("/healthz", summary="Liveness", tags=["ops"], sync_to_thread=False)
    def healthz() -> Health:
        """The process is up."""
        return Health("ok", vigil.__version__)

    @get(
        "/readyz",
        summary="Readiness",
        tags=["ops"],
        sync_to_thread=True,
        responses=errors(503),
    )
    def readyz() -> Health:
        """The store answers a read; load balancers route traffic here only then."""
        app.store.check()
        return Health("ready", vigil.__version__)

    @post(
        "/v1/events",
        summary="Record events",
        tags=["events"],
        security=BEARER,
        operation_class=_IngestOperation,
        request_max_body_size=MAX_REQUEST_BYTES,
        status_code=200,
        responses={
            **errors(400, 401, 403, 413, 415, 422, 429),
        },
    )
    async def ingest(request: Request[Any, Any, Any]) -> IngestResponse:
        """Append events to the caller's tenant log. Answers after they are durably committed.

        Each event gets a result: ``stored`` (with its ``seq`` and ``leaf_hash``), ``duplicate`` (the id was
        already logged; the original ``seq``) or ``rejected`` (with every problem found).
        """
        key = app.auth(request, "ingest")
        body = decode_content(await request.body(), request.headers.get("content-encoding", ""))
        received_us = time.time_ns() // 1000
        good, bad = prepare_batch(
            body,
            request.headers.get("content-type", ""),
            key.tenant,
            received_us,
            app.redaction.for_tenant(key.tenant),
        )
        app.limiter.take(key.tenant_id, len(good) + len(bad))
        results: list[EventResult | None] = [None] * (len(good) + len(bad))
        for r in bad:
            results[r.index] = EventResult(r.index, "rejected", id=r.id, errors=r.errors)
        if not good:
            raise _AllRejected(results)
        appended = await app.store.append_async(key.tenant_id, good)
        for p, a in zip(good, appended, strict=True):
            results[p.index] = EventResult(
                p.index,
                "duplicate" if a.duplicate else "stored",
                id=p.id,
                seq=a.seq,
                leaf_hash=a.leaf.hex(),
            )
        return IngestResponse(len(good), len(bad), [r for r in results if r is not None])

    @get(
        "/v1/events",
        summary="Search events",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403),
            200: ResponseSpec(data_container=SearchPage, description="A page of events"),
        },
    )
    async def search(
        request: Request[Any, Any, Any],
        actor_id: Annotated[
            str | None, Parameter(description="Only events by this actor", max_length=256)
        ] = None,
        action: Annotated[
            str | None,
            Parameter(description="Exact action, or a prefix ending in .* (user.*)", max_length=130),
        ] = None,
        target_type: Annotated[
            str | None, Parameter(description="Events with a target of this type", max_length=64)
        ] = None,
        target_id: Annotated[
            str | None, Parameter(description="Events with a target of this id", max_length=256)
        ] = None,
        outcome: Annotated[Literal["success", "failure", "denied", "error"] | None, Parameter()] = None,
        category: Annotated[
            Literal["activity", "audit", "data_access", "change", "system"] | None, Parameter()
        ] = None,
        since: Annotated[datetime | None, Parameter(description="occurred_at >= since (RFC 3339)")] = None,
        until: Annotated[datetime | None, Parameter(description="occurred_at < until (RFC 3339)")] = None,
        q: Annotated[
            str | None,
            Parameter(description="Words in the message or metadata (all must match)", max_length=512),
        ] = None,
        order: Annotated[
            Literal["newest", "seq"],
            Parameter(description="newest: most recently logged first; seq: log order"),
        ] = "newest",
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page", max_length=512)
        ] = None,
    ) -> Response[bytes]:
        """Search the caller's tenant log. Filters combine; pages stay stable while new events arrive."""
        key = app.auth(request, "read", "auditor")
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        unknown = sorted({k for k, _ in parse_qsl(raw_query, keep_blank_values=True)} - _SEARCH_PARAMS)
        if unknown:
            raise InvalidRequest(
                f"unknown query parameters: {', '.join(map(repr, unknown))[:200]}; "
                f"known: {', '.join(sorted(_SEARCH_PARAMS))}"
            )
        if action is not None and action.endswith("*") and not action.endswith(".*"):
            raise InvalidRequest("an action prefix ends in .* (for example user.*)")
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                value.tzinfo is None or not _RFC3339.match(request.query_params.get(name, ""))
            ):
                raise InvalidRequest(
                    f"{name} must be an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z"
                )
        after, snapshot = _cursor_decode(cursor, key.tenant_id, order) if cursor else (None, None)
        query = SearchQuery(
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            category=category,
            since_us=to_us(since) if since else None,
            until_us=to_us(until) if until else None,
            text=q,
            order=order,
            limit=limit,
            after=(0, after) if after is not None else None,
            snapshot=snapshot,
        )
        page = await asyncio.to_thread(app.store.search, key.tenant_id, query)
        app.record_access(
            key,
            "audit_log.searched",
            {
                "actor_id": actor_id,
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "outcome": outcome,
                "category": category,
                "q": q,
                "results": len(page.events),
            },
        )
        return _page_response(key.tenant_id, order, page)

    @get(
        "/v1/events/{event_id:str}",
        summary="Get one event",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403, 404),
            200: ResponseSpec(data_container=StoredEvent, description="The event"),
        },
    )
    async def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> Response[bytes]:
        """One event of the caller's tenant, with its ``seq`` and ``leaf_hash``."""
        key = app.auth(request, "read", "auditor")
        raw = await asyncio.to_thread(app.store.get_event, key.tenant_id, event_id)
        app.record_access(
            key, "audit_log.event.viewed", {"event_id": event_id[:64], "found": raw is not None}
        )
        if raw is None:
            raise NotFound(f"no event {event_id!r} in this tenant's log")
        return json_response(stored_json(*raw))

    @get(
        "/v1/entities/{entity_type:str}/{entity_id:str}/history",
        summary="History of one entity",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403),
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
        """Who created, changed, viewed or deleted this entity, and when: every event that names it as a target."""
        key = app.auth(request, "read", "auditor")
        if len(entity_type) > 64 or len(entity_id) > 256:
            raise InvalidRequest("entity type is at most 64 characters and id at most 256")
        after, snapshot = _cursor_decode(cursor, key.tenant_id, "newest") if cursor else (None, None)
        query = SearchQuery(
            target_type=entity_type,
            target_id=entity_id,
            limit=limit,
            after=(0, after) if after is not None else None,
            snapshot=snapshot,
        )
        page = await asyncio.to_thread(app.store.search, key.tenant_id, query)
        app.record_access(
            key,
            "audit_log.entity.viewed",
            {"target_type": entity_type, "target_id": entity_id, "results": len(page.events)},
        )
        return _page_response(key.tenant_id, "newest", page)

    def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        if isinstance(exc, _AllRejected):
            body = ErrorBody(
                Problem(
                    "validation_failed",
                    "every event of the request was rejected",
                    [msgspec.to_builtins(r) for r in exc.results if r is not None],
                )
            )
            return json_response(msgspec.json.encode(body), 422)
        if isinstance(exc, VigilError):
            headers = {"Retry-After": str(int(exc.retry_after))} if isinstance(exc, RateLimited) else None
            if not isinstance(exc, ClientError):
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            return json_response(msgspec.json.encode(exc.body()), exc.status, headers)
        if isinstance(exc, ValidationException):
            details = [
                {"field": str(e.get("key", "")), "message": str(e.get("message", ""))}
                for e in (exc.extra if isinstance(exc.extra, list) else [])
            ]
            err = InvalidRequest("invalid query or path parameter", details=details)
            return json_response(msgspec.json.encode(err.body()), 400)
        if isinstance(exc, HTTPException):
            code = {
                401: "unauthorized",
                403: "forbidden",
                404: "not_found",
                405: "method_not_allowed",
                413: "payload_too_large",
            }.get(exc.status_code, "bad_request")
            if exc.status_code == 413:
                detail = f"the request body is over {MAX_REQUEST_BYTES} bytes"
            else:
                detail = str(exc.detail)
            shape = {
                "error": {"type": code if exc.status_code < 500 else "internal_error", "message": detail}
            }
            return json_response(msgspec.json.encode(shape), exc.status_code, dict(exc.headers or {}))
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return json_response(
            msgspec.json.encode(
                {"error": {"type": "internal_error", "message": "internal error; see the server log"}}
            ),
            500,
        )

    openapi = OpenAPIConfig(
        title="Vigil",
        version=vigil.__version__,
        description="Tamper-evident, multi-tenant audit logs. Authenticate with `Authorization: Bearer <key>`.",
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        path="/schema",
    )

    asgi = Litestar(
        route_handlers=with_options(
            [
                healthz,
                readyz,
                ingest,
                search,
                get_event,
                entity_history,
                *ledger_routes(app),
                *alert_routes(app),
            ]
        ),
        on_startup=[app.start],
        on_shutdown=[app.shutdown],
        exception_handlers={Exception: on_error},
        openapi_config=openapi,
        request_max_body_size=MAX_REQUEST_BYTES,
        debug=False,
        state=State({"vigil": app}),
    )
    # The framework rebuilds component schemas from handler types; add the ones only the ingest body uses.
    doc = asgi.openapi_schema.components
    schemas: dict[str, Any] = doc.schemas if doc.schemas is not None else {}
    for name, component in _components.items():
        schemas[name] = component  # msgspec knows our structs best
    doc.schemas = schemas
    unions_as_any_of(schemas)
    unions_as_any_of(asgi.openapi_schema.paths)
    # One response spec names one media type; the export answers NDJSON too.
    paths = asgi.openapi_schema.paths or {}
    export_ok = paths["/v1/export"].get.responses["200"]  # type: ignore[union-attr,index]
    content = export_ok.content or {}  # type: ignore[union-attr]
    content["application/x-ndjson"] = OpenAPIMediaType(schema={"type": "string"})  # type: ignore[arg-type]
    return asgi


class _AllRejected(ClientError):
    status = 422

    def __init__(self, results: list[EventResult | None]) -> None:
        super().__init__("every event of the request was rejected")
        self.results = results
