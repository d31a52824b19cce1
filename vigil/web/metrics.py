"""``GET /metrics``: the server's figures in the Prometheus text format, with the standard client library.

What is counted as it happens: HTTP requests and their durations by route (ingest latency is the
``route="/v1/events", method="POST"`` series), and ingested events by result. What is read at scrape time, from
the store: the writer's queue, and per tenant the log size, the detection lag (events committed that detection
has not processed yet), the events not yet under a signed checkpoint and the age of the newest checkpoint.

Per-tenant series are bounded: each per-tenant family shows at most ``metrics_tenants`` tenants, those with the
largest value (the biggest logs, the worst lag, the oldest checkpoints), and an unlabelled series beside it sums
(or, for ages, takes the maximum over) every tenant. A thousand tenants thus cost a few hundred series, and an
alert on the unlabelled series still sees every tenant.

Who may read it is the ``metrics`` setting: ``key`` (the default) needs a key of the platform tenant with the
``metrics`` scope, since the figures name every tenant; ``open`` serves anyone who reaches the port (bind it to
loopback or block ``/metrics`` at the proxy); ``off`` removes the route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import vigil
from vigil.errors import Forbidden
from vigil.store.base import PLATFORM_TENANT
from vigil.store.writer import GroupCommitWriter
from vigil.web.common import BEARER, errors

if TYPE_CHECKING:
    from vigil.model import EventResult
    from vigil.store.base import Store
    from vigil.web.app import App

MODES = ("off", "open", "key")
# The library's content type without its charset: the framework appends "; charset=utf-8" to text types itself.
_MEDIA_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]
# Seconds; ingest answers after the commit is on disk, so its tail sits in the tens of milliseconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class TenantFigures:
    """One tenant's figures at scrape time."""

    slug: str
    events: int
    detection_lag: int
    unsigned: int
    checkpoint_age: float | None  # seconds since its newest checkpoint was signed; None: no checkpoint yet


def tenant_figures(store: Store, now: float | None = None) -> list[TenantFigures]:
    """Every tenant's figures, read from the store (a handful of small reads per tenant)."""
    now = time.time() if now is None else now
    out = []
    for t in store.list_tenants():
        size = store.tree_size(t.id)
        cp = store.checkpoint(t.id)
        age = None
        if cp is not None:
            age = max(0.0, now - datetime.fromisoformat(cp.created_at).timestamp())
        out.append(
            TenantFigures(
                t.slug,
                size,
                max(0, size - store.detect_cursor(t.id)),
                size - (cp.size if cp is not None else 0),
                age,
            )
        )
    return out


def _worst(
    figures: Sequence[TenantFigures], value: Callable[[TenantFigures], float | None], most: int
) -> list[tuple[str, float]]:
    """The ``most`` tenants with the largest value (ties by slug), skipping tenants without one."""
    known = [(f.slug, v) for f in figures if (v := value(f)) is not None]
    return sorted(known, key=lambda sv: (-sv[1], sv[0]))[:most]


class _StoreCollector(Collector):
    """The figures read at scrape time."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        store = app.store
        most = int(getattr(app.settings, "metrics_tenants", 100))
        figures = tenant_figures(store)
        yield _gauge(
            "vigil_build_info", "The running Vigil's version (always 1).", 1, version=vigil.__version__
        )
        yield _gauge("vigil_tenants", "Tenants, the platform tenant included.", len(figures))
        if isinstance(store, GroupCommitWriter):
            yield _gauge(
                "vigil_writer_queue_events",
                "Events queued for the writer and not yet committed (every tenant).",
                store.waiting_events(),
            )
        yield _gauge(
            "vigil_integrity_failures",
            "Tenants whose log contradicts the trusted state: they take no writes until an operator looks.",
            len(app.integrity),
        )
        families: list[tuple[str, str, Callable[[TenantFigures], float | None], str]] = [
            ("log_events", "Events in the tenant's log", lambda f: f.events, "sum"),
            (
                "detection_lag_events",
                "Events committed that the detection engine has not processed yet",
                lambda f: f.detection_lag,
                "sum",
            ),
            (
                "unsigned_events",
                "Events not yet covered by a signed checkpoint",
                lambda f: f.unsigned,
                "sum",
            ),
            (
                "checkpoint_age_seconds",
                "Seconds since the tenant's newest checkpoint was signed (tenants with one)",
                lambda f: f.checkpoint_age,
                "max",
            ),
        ]
        for name, text, value, combine in families:
            values = [v for f in figures if (v := value(f)) is not None]
            total = (sum(values) if combine == "sum" else max(values)) if values else 0
            every = "over every tenant" if combine == "sum" else "the largest over every tenant"
            yield _gauge(f"vigil_{name}", f"{text}: {every}.", total)
            per = GaugeMetricFamily(
                f"vigil_tenant_{name}",
                f"{text}; only the {most} tenants with the largest values (setting metrics_tenants).",
                labels=["tenant"],
            )
            for slug, v in _worst(figures, value, most):
                per.add_metric([slug], v)
            yield per


def _gauge(name: str, text: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


class Metrics:
    """The server's registry: counters updated as requests pass, and the store's figures read at scrape time.

    Each app has its own registry (never the library's global one), so several apps in one process (tests, a
    server and a worker) do not count into each other."""

    def __init__(self, app: App) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vigil_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vigil_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template (POST /v1/events: ingest latency, "
            "up to the durable commit).",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "vigil_ingest_events",
            "Events received on POST /v1/events, by result: stored, duplicate, rejected (and any other status "
            "the intake answers).",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(app))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request (the access middleware calls it)."""
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)

    def ingested(self, results: Iterable[EventResult | None]) -> None:
        """Count the per-event results of one ingest request."""
        counts: dict[str, int] = {}
        for r in results:
            if r is not None:
                counts[r.status] = counts.get(r.status, 0) + 1
        for status, n in counts.items():
            self.events.labels(status).inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_routes(app: App) -> list[Any]:
    """``GET /metrics``, unless the ``metrics`` setting is ``off``."""
    mode = getattr(app.settings, "metrics", "key")
    if mode == "off":
        return []

    @get(
        "/metrics",
        summary="Prometheus metrics",
        tags=["ops"],
        security=BEARER if mode == "key" else None,
        sync_to_thread=True,  # the scrape reads every tenant's figures from the store
        responses={
            **(errors(401, 403) if mode == "key" else {}),
            200: ResponseSpec(
                data_container=str, description="Prometheus text exposition format", media_type="text/plain"
            ),
        },
    )
    def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The server's figures for Prometheus (see ``docs/deployment.md``, "Metrics"). With the ``metrics``
        setting at ``key``: a key of the platform tenant with the ``metrics`` scope."""
        if mode == "key":
            key = app.auth(request, "metrics")
            if key.tenant != PLATFORM_TENANT:
                raise Forbidden(
                    f"metrics name every tenant: only a key of the platform tenant ({PLATFORM_TENANT}) may read them"
                )
        return Response(app.metrics.exposition(), media_type=_MEDIA_TYPE)

    return [metrics]
