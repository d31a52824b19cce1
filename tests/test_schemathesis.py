"""Schemathesis drives the served OpenAPI document against the app on each store: no generated input may
produce a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from pg import fresh_database
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from vigil.auth import create_key
from vigil.settings import Settings
from vigil.store import open_store
from vigil.web import create_app


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: object, value: object) -> bytes:
    """NDJSON bodies are the documented array of events, one JSON document per line."""
    items = value if isinstance(value, list) else [value]
    return b"\n".join(json.dumps(item).encode() for item in items)


# 413 is the documented answer for a batch over 1,000 events or 5 MiB; schemathesis's default list of
# "rejected" statuses leaves it out.
# NUL is refused in every string by design (docs/events.md) and JSON Schema has no word for "no NUL": generated
# strings leave it out.
_config = SchemathesisConfig.from_dict(
    {
        "generation": {"allow-x00": False},
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        },
    }
)


class _Forward:
    """The ASGI app schemathesis drives: it hands every request to the app on the store under test.

    The ``served`` fixture swaps in one app per store. Each runs its lifespan (signing key, checkpoint schedule,
    detection) as under ``vigil serve``, on the event loop schemathesis sends requests from: it starts with the
    app's first request and stops when the fixture ends. Schemathesis's own lifespan call, made once per process,
    is answered here.
    """

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.pending: Litestar | None = None
        self.running: tuple[asyncio.AbstractEventLoop, asyncio.Event, asyncio.Task[None]] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.pending is not None:
            app, self.pending = self.pending, None
            loop = asyncio.get_running_loop()
            started, stop = loop.create_future(), asyncio.Event()
            self.running = (loop, stop, loop.create_task(self._lifespan(app, started, stop)))
            await started  # raises when the startup fails
            self.app = app
        await self.app(scope, receive, send)

    @staticmethod
    async def _lifespan(app: Litestar, started: asyncio.Future[None], stop: asyncio.Event) -> None:
        try:
            async with app.lifespan():
                started.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    def serve(self, app: Litestar) -> None:
        """Hand requests to ``app`` from its first one on, which starts it."""
        self.pending = app

    def stop(self, app: Litestar) -> None:
        """Stop the app being served, if it started, and hand requests to ``app`` again."""
        self.pending, self.app, running, self.running = None, app, self.running, None
        if running is not None:
            loop, stop, task = running

            async def shut_down() -> None:
                stop.set()
                await task

            asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=60)


# Until the fixture swaps in an app on a store, an app that only renders the document answers: the document does
# not depend on the store, and this app never opens its own (were it to, /dev/null would fail loudly).
_document_only = create_app(Settings.load({"database": os.devnull}, environ={}))
_forward = _Forward(_document_only)
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", _forward, config=_config)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app on each store in turn (a SQLite file, then a fresh PostgreSQL database); yields an
    ingest,read key of tenant acme."""
    tmp = tmp_path_factory.mktemp("vigil-schema")
    databases = (
        contextmanager(fresh_database)() if request.param == "postgres" else nullcontext(str(tmp / "v.db"))
    )
    with databases as database:
        cfg = Settings.load(
            {
                "database": database,
                "signing_key": str(tmp / "signing-key"),
                "sqlite_synchronous": "NORMAL",
                "rate_limit": 0,
                "search_rate_limit": 0,  # the fuzzer reads far faster than a key may: let it reach the routes
                "export_rate_limit": 0,
                # "not after the server's clock" depends on the clock, which no static schema can say: generated
                # dates run to 9999, so the bound is off here (tests/web/test_ingest_shapes_api.py pins it)
                "max_clock_skew": 0,
            },
            environ={},
        )
        store = open_store(database, cfg)
        try:
            key = create_key(store, store.create_tenant("acme"), frozenset({"ingest", "read"}))[1]
            _forward.serve(create_app(cfg, store))
            try:
                yield key
            finally:
                _forward.stop(_document_only)
        finally:
            store.close()


_CROSS_PARAMETER = {
    ("GET", "/v1/checkpoints/consistency"),
    ("GET", "/v1/export"),
    ("GET", "/v1/events/{event_id}/proof"),
    ("GET", "/v1/checkpoints"),
}


_CHECKED_IN_FULL = {"since", "until", "ip", "q", "action"}


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_input_produces_a_server_error(case: schemathesis.Case, served: str) -> None:
    """Every operation answers generated input without a 5xx, and its answers match the document."""
    excluded = []
    if case.query and "cursor" in case.query:
        # A cursor is an opaque token the server hands out: any string fits the schema, few decode.
        excluded.append(positive_data_acceptance)
    if case.query and _CHECKED_IN_FULL & set(case.query):
        # Their shape is in the document, their validity only partly: since must be before until, 2026-02-31 and
        # 300.1.2.3 fit the patterns, and words must hold a letter or digit; the 400 says which rule broke.
        excluded.append(positive_data_acceptance)
    if (case.method, case.path) in _CROSS_PARAMETER:
        # These operations take values whose validity depends on each other and on the log's size
        # (first <= second <= size); schema-valid values may rightly get a 400 that says which rule broke.
        excluded.append(positive_data_acceptance)
    if case.method == "GET" and case.query:
        # Negative query mutations such as "a string became [true]" reach the server as the valid string
        # "true": on the wire they are not invalid, so this check cannot hold for string query parameters.
        excluded.append(negative_data_rejection)
    body_info = case.meta.components.get(ParameterLocation.BODY) if case.meta is not None else None
    negative_batch = (
        case.method == "POST" and body_info is not None and "negative" in str(body_info.mode).lower()
    )
    if negative_batch:
        # A batch is accepted event by event: the schema-invalid events of a 200 answer must be listed as
        # rejected (asserted below) while the valid ones are stored, so "reject the whole request" is wrong here.
        excluded.append(negative_data_rejection)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {served}"}, excluded_checks=excluded)
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"type", "message"}, response.text[:300]
    if negative_batch and response.status_code == 200:
        assert response.json()["rejected"] >= 1, (case.body, case.headers, case.meta)


def test_the_fuzzed_operations_include_ingest_and_search() -> None:
    """The run above drives the routes that read a stranger's bytes: ingest (JSON and NDJSON) and search."""
    operations = {(op.method.upper(), op.path): op for op in (r.ok() for r in schema.get_all_operations())}
    assert {("POST", "/v1/events"), ("GET", "/v1/events"), ("GET", "/v1/events/{event_id}")} <= set(
        operations
    )
    ingest = operations[("POST", "/v1/events")].definition.raw["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(ingest)
