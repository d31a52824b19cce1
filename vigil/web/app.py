"""The HTTP API: thin routes over the store, the intake and the key ring.

Every error, ours or the framework's, leaves as ``{"error": {"type", "message", "details"?}}`` with the status
its class carries (see :mod:`vigil.errors`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, OpenAPIMediaType, Operation, RequestBody, SecurityScheme

import vigil
from vigil.auth import AuthThrottle, KeyRing, keep_flushing, require
from vigil.errors import (
    ClientError,
    Forbidden,
    IntegrityError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RequestTimeout,
    StorageFault,
    VigilError,
)
from vigil.ingest.decode import decode_content
from vigil.ingest.idempotency import Idempotency, idempotency_key
from vigil.ingest.intake import NDJSON, Prepared, prepare_event, prepare_request
from vigil.ingest.ratelimit import IngestLimits, RateLimiter, estimate_events
from vigil.ingest.redaction_rules import TenantRedaction
from vigil.ledger.checkpoints import Signer, check_tenant, load_signer, run_schedule
from vigil.model import (
    MAX_METADATA_VALUE_LEN,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_EVENTS,
    Actor,
    EventIn,
    IngestResponse,
    StoredEvent,
    Target,
    event_in_schema,
    stored_json,
)
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import PLATFORM_TENANT, ApiKey, Tenant
from vigil.store.detection import NewAlert
from vigil.web.access import access_log, note_key, trusted_proxies
from vigil.web.alert_routes import alert_routes
from vigil.web.common import (
    BEARER,
    ErrorBody,
    EventIdPath,
    Problem,
    errors,
    json_response,
    path_event_id,
    refuse_unknown_parameters,
    unions_as_any_of,
    with_options,
)
from vigil.web.fairness import ReadAudit, body_deadline
from vigil.web.ingest_answer import NoneTaken, append_and_answer
from vigil.web.key_routes import key_routes
from vigil.web.metrics import Metrics, metrics_routes
from vigil.web.search_routes import search_routes

if TYPE_CHECKING:
    from vigil.detect.engine import Engine
from vigil.web.ledger_routes import ledger_routes

log = logging.getLogger("vigil.web")

_body_schema, _components = event_in_schema()


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
                # one event per line: the array of events, written as lines (no WorkOS envelope)
                NDJSON: OpenAPIMediaType(schema=schema["anyOf"][0]),
            },
        )


_PREPARE_INLINE_BYTES = 64 * 1024  # about 90 events: up to 1 ms of intake work on the event loop


class App:
    """Wires the store, the key ring and the rate limiter into route handlers."""

    def __init__(self, settings: Settings, store: Store | None = None, own_store: bool = False) -> None:
        self.settings = settings
        self._store = store
        self.owns_store = store is None or own_store
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.ingest_limits = IngestLimits(
            self.limiter, RateLimiter(settings.rate_limit_bytes, settings.rate_burst_bytes, what="bytes")
        )
        self.read_limiter = RateLimiter(
            settings.search_rate_limit, settings.search_rate_burst, what="reads", per="API key"
        )
        rate = settings.export_rate_limit
        self.export_limiter = RateLimiter(rate / 60, rate, what="exports", per="API key", shown=f"{rate}/min")
        self.read_audit = ReadAudit(settings.read_audit_window, self._append_access)
        self.redaction = TenantRedaction.load(getattr(settings, "redaction_rules", "") or "")
        self._audit_task: asyncio.Task[None] | None = None
        self._keyring: KeyRing | None = None
        self._platform_id: int | None = None
        self.engine: Engine | None = None
        self._detecting: threading.Thread | None = None
        self._stop_detecting = threading.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._signer: Signer | None = None
        self._schedule: asyncio.Task[None] | None = None
        self._touching: asyncio.Task[None] | None = None
        self.integrity: dict[int, str] = {}
        """Tenants whose log contradicts the trusted state (id -> what was found): no writes, no checkpoints."""
        self.metrics = Metrics(self)
        skew = getattr(settings, "max_clock_skew", 300)
        self.max_skew_us = skew * 1_000_000 if skew else None
        self._idempotency: Idempotency | None = None
        self._tenant_names: dict[int, str] = {}

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database, self.settings, exclusive=True)
        return self._store

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            limit, window = self.settings.auth_failure_limit, self.settings.auth_failure_window
            self._keyring = KeyRing(self.store, throttle=AuthThrottle(limit, window))
        return self._keyring

    @property
    def idempotency(self) -> Idempotency:
        if self._idempotency is None:
            self._idempotency = Idempotency(self.store, getattr(self.settings, "idempotency_window", 86400))
        return self._idempotency

    async def check_organization(self, key: ApiKey, organization: str) -> None:
        """A WorkOS body's ``organization_id`` must name the key's own tenant, by its slug or its name: the key
        decides where events go, and an event meant for another organization must not land here."""
        if organization == key.tenant:
            return
        name = self._tenant_names.get(key.tenant_id)
        if name is None:
            name = (await asyncio.to_thread(self.store.get_tenant, key.tenant)).name
            self._tenant_names[key.tenant_id] = name
        if organization != name:
            raise Forbidden(
                f"organization_id {organization[:80]!r} is not this key's tenant ({key.tenant!r}, named {name!r}): "
                "the API key decides the tenant; use the key of that organization's tenant, or leave "
                "organization_id out"
            )

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
        if self.read_audit.window > 0:
            self._audit_task = asyncio.create_task(self.read_audit.run())
        self._touching = asyncio.create_task(keep_flushing(self.keyring))
        signer = self.signer
        await asyncio.to_thread(self.check_integrity)
        if self.settings.checkpoint_interval:
            self._schedule = asyncio.create_task(
                run_schedule(self.store, signer, self.settings.checkpoint_interval, self.integrity_failed)
            )
        if getattr(self.settings, "detect", False):
            from vigil.detect.loader import build_engine

            engine, _ = build_engine(self.store, self.settings)
            self.engine = engine
            self._detecting = threading.Thread(target=self._detect, name="vigil-detect", daemon=True)
            self._detecting.start()

    def check_integrity(self) -> None:
        """Prove every tenant's log extends the last checkpoint this server signed for it (at start)."""
        for tenant in self.store.list_tenants():
            try:
                check_tenant(self.store, self.signer, tenant)
            except IntegrityError as exc:
                self.integrity_failed(tenant, exc)

    def integrity_failed(self, tenant: Tenant, exc: IntegrityError) -> None:
        """Stop a tenant's writes and checkpoints, say why, and raise a P0 alert in its alert list."""
        first = tenant.id not in self.integrity
        self.integrity[tenant.id] = exc.message
        if not first:
            return
        log.critical("INTEGRITY FAILURE: %s; tenant %s takes no more writes", exc.message, tenant.slug)
        now = time.time_ns() // 1000
        alert = NewAlert(
            rule_id="vigil.integrity",
            title="The stored log contradicts the checkpoint this server signed",
            severity="P0",
            techniques=("T1565.001",),
            summary=exc.message,
            group={"tenant": tenant.slug},
            dedup_key=f"vigil.integrity:{tenant.slug}",
            evidence=(),
            first_us=now,
            last_us=now,
            suppress_us=86_400_000_000,
        )
        try:
            self.store.commit_detection(tenant.id, [alert])
        except VigilError:
            log.exception("could not store the integrity alert for tenant %s", tenant.slug)

    def refuse_if_compromised(self, tenant_id: int) -> None:
        problem = self.integrity.get(tenant_id)
        if problem is not None:
            raise IntegrityError(f"this tenant's log takes no writes until an operator looks: {problem}")

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
        if self._audit_task is not None:
            self._audit_task.cancel()
            await asyncio.gather(self._audit_task, return_exceptions=True)
        self.read_audit.flush(everything=True)  # the counted repeats reach the platform log before it closes
        if self._touching is not None:
            self._touching.cancel()
            await asyncio.gather(self._touching, return_exceptions=True)
            try:
                await asyncio.to_thread(self.keyring.flush)  # last uses noted since the last write
            except VigilError as exc:  # a store that fails now must not stop the shutdown
                log.warning("could not record when keys were last used: %s", exc.message)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.owns_store and self._store is not None:
            self._store.close()

    def auth(self, request: Request[Any, Any, Any], *scopes: str) -> ApiKey:
        host = request.client.host if request.client else None
        key = self.keyring.authenticate(request.headers.get("authorization"), AuthThrottle.source_of(host))
        note_key(request.scope, key)  # the access log names the key's tenant and id, never the key
        require(key, *scopes)
        if "read" in scopes:  # every read route: charged per key before the work (a search flood is refused)
            self.read_limiter.take(key.key_id)
        return key

    async def platform_id(self) -> int:
        if self._platform_id is None:
            self._platform_id = (await asyncio.to_thread(self.store.get_tenant, PLATFORM_TENANT)).id
        return self._platform_id

    def record_access(self, key: ApiKey, action: str, metadata: dict[str, Any]) -> None:
        """Record a read of a tenant's log in the platform log, without making the reader wait for it.

        Repeated identical reads by one key within ``read_audit_window`` become one entry with a count."""
        meta = {
            k: v[:MAX_METADATA_VALUE_LEN] if isinstance(v, str) else v
            for k, v in metadata.items()
            if v is not None
        }
        if self.read_audit.record(key, action, meta):
            self._append_access(key, action, meta)

    def _append_access(self, key: ApiKey, action: str, meta: dict[str, Any]) -> None:
        if self._platform_id is None:
            self.startup()
        now = time.time_ns() // 1000
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
        """The store answers a read and would take a write (on SQLite: the file is still the one opened,
        writable, with free space over the minimum), and every tenant's log extends its trusted state; load
        balancers route traffic here only then."""
        app.store.check()
        if app.integrity:
            problems = "; ".join(app.integrity.values())
            raise IntegrityError(f"{len(app.integrity)} tenant log(s) failed the integrity check: {problems}")
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
            **errors(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
            200: ResponseSpec(data_container=IngestResponse, description="A result per event"),
        },
    )
    async def ingest(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Append events to the caller's tenant log. Answers after they are durably committed.

        Each event gets a result: ``stored`` (with its ``seq`` and ``leaf_hash``), ``duplicate`` (the same event
        was already logged under its id; the original ``seq``), ``conflict`` (another event holds the id: its
        ``seq``, and nothing stored) or ``rejected`` (with every problem found). With an ``Idempotency-Key``
        header a retry of the same request gets the same answer (``Idempotent-Replayed: true``).
        """
        key = app.auth(request, "ingest")
        app.refuse_if_compromised(key.tenant_id)
        idem_key = idempotency_key(request.headers.get("idempotency-key"))
        # Charged before the work: the declared size before the body is read, then its size and an estimate of
        # its events before it is decoded; after decoding only what the estimate missed (a debt).
        try:
            app.ingest_limits.admit(key.tenant_id, _content_length(request))
        except VigilError as exc:  # refused on the declared size: the body is never read
            exc.close_connection = True
            raise
        body = decode_content(await request.body(), request.headers.get("content-encoding", ""))
        content_type = request.headers.get("content-type", "")
        estimate = estimate_events(body, content_type.split(";")[0].strip().lower() == NDJSON)
        app.ingest_limits.charge(key.tenant_id, len(body), estimate)
        received_us = time.time_ns() // 1000
        redactor = app.redaction.for_tenant(key.tenant)
        prepare = functools.partial(
            prepare_request,
            body,
            content_type,
            key.tenant,
            received_us,
            redactor,
            max_skew_us=app.max_skew_us,
            idempotency_key=idem_key,
        )
        # a big batch must not hold the event loop: others wait on it
        batch = await asyncio.to_thread(prepare) if len(body) > _PREPARE_INLINE_BYTES else prepare()
        good, bad = batch.good, batch.bad
        app.ingest_limits.settle(key.tenant_id, len(good) + len(bad) - estimate)
        if batch.organization is not None:
            await app.check_organization(key, batch.organization)
        claim = (
            None
            if idem_key is None
            else await app.idempotency.claim(key.tenant_id, idem_key, batch.fingerprint)
        )
        if claim is not None and claim.answer is not None:
            return json_response(claim.answer, headers={"Idempotent-Replayed": "true"})
        try:
            answer = await append_and_answer(app.store, key.tenant_id, good, bad, app.metrics.ingested)
            if claim is not None:
                await claim.keep(answer)
        finally:
            if claim is not None:
                claim.release()
        return json_response(answer)

    @get(
        "/v1/events/{event_id:str}",
        summary="Get one event",
        tags=["events"],
        security=BEARER,
        responses={
            **errors(400, 401, 403, 404, 429),
            200: ResponseSpec(data_container=StoredEvent, description="The event"),
        },
    )
    async def get_event(request: Request[Any, Any, Any], event_id: EventIdPath) -> Response[bytes]:
        """One event of the caller's tenant, with its ``seq`` and ``leaf_hash``; ``event_id`` is a UUID (any
        case) or a client's opaque id (exactly)."""
        key = app.auth(request, "read", "auditor")
        event_id = path_event_id(event_id)
        raw = await asyncio.to_thread(app.store.get_event, key.tenant_id, event_id)
        app.record_access(
            key, "audit_log.event.viewed", {"event_id": event_id[:64], "found": raw is not None}
        )
        if raw is None:
            raise NotFound(f"no event {event_id!r} in this tenant's log")
        return json_response(stored_json(*raw))

    def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        if isinstance(exc, NoneTaken):
            body = ErrorBody(
                Problem(
                    "conflict" if exc.conflict else "validation_failed",
                    exc.message,
                    [msgspec.to_builtins(r) for r in exc.results],
                )
            )
            return json_response(msgspec.json.encode(body), 409 if exc.conflict else 422)
        if isinstance(exc, VigilError):
            headers = {"Retry-After": str(int(exc.retry_after))} if isinstance(exc, RateLimited) else None
            if isinstance(exc, RequestTimeout) or exc.close_connection:
                # the rest of a trickled body is not worth waiting for; a refused one not worth reading
                headers = {**(headers or {}), "Connection": "close"}
            if not isinstance(exc, ClientError | StorageFault):  # a fault is logged once, where it is found
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
                get_event,
                *search_routes(app),
                *ledger_routes(app),
                *alert_routes(app),
                *key_routes(app),
                *metrics_routes(app),
            ]
        ),
        on_startup=[app.start],
        on_shutdown=[app.shutdown],
        exception_handlers={Exception: on_error},
        middleware=[body_deadline(settings.body_timeout)],
        guards=[refuse_unknown_parameters],
        openapi_config=openapi,
        request_max_body_size=MAX_REQUEST_BYTES,
        debug=False,
        state=State({"vigil": app}),
        logging_config=None,  # the framework's loggers print through the one handler (vigil.logs), not their own
    )
    # Around everything, unmatched paths included: the client address behind a trusted proxy, then the access
    # log and the request metrics.
    logged = access_log(asgi.asgi_handler, app.metrics.observe)
    asgi.asgi_handler = trusted_proxies(logged, settings.trusted_proxies)
    # The framework rebuilds component schemas from handler types; add the ones only the ingest body uses.
    doc = asgi.openapi_schema.components
    schemas: dict[str, Any] = doc.schemas if doc.schemas is not None else {}
    for name, component in _components.items():
        schemas[name] = component  # msgspec knows our structs best
    doc.schemas = schemas
    unions_as_any_of(schemas)
    unions_as_any_of(asgi.openapi_schema.paths)
    # One response spec names one media type; the export answers CSV, a JSON array and NDJSON too.
    paths = asgi.openapi_schema.paths or {}
    export_ok = paths["/v1/export"].get.responses["200"]  # type: ignore[union-attr,index]
    content = export_ok.content or {}  # type: ignore[union-attr]
    for media in ("text/csv", "application/x-ndjson"):
        content[media] = OpenAPIMediaType(schema={"type": "string"})  # type: ignore[arg-type]
    content["application/json"] = OpenAPIMediaType(
        schema={"type": "array", "items": {"$ref": "#/components/schemas/StoredEvent"}}  # type: ignore[arg-type]
    )
    return asgi


def _content_length(request: Request[Any, Any, Any]) -> int | None:
    try:
        return int(request.headers.get("content-length", ""))
    except ValueError:
        return None
