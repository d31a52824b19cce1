"""GET /metrics, scraped through the real app and read with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support import Keys, auth, event

from vigil.auth import create_key
from vigil.ids import uuid7_text
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT
from vigil.web import create_app

Client = TestClient[Any]


def _scrape(client: Client, key: str | None) -> dict[str, list[Any]]:
    r = client.get("/metrics", headers=auth(key) if key else None)
    assert r.status_code == 200, r.text
    kind = r.headers["content-type"]
    assert kind.startswith("text/plain; version=") and kind.count("charset=utf-8") == 1, kind
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def _value(samples: list[Any], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return float(found[0])


@pytest.fixture
def metrics_key(store: Store, keys: Keys) -> str:
    return create_key(store, store.get_tenant(PLATFORM_TENANT), frozenset({"metrics"}), "prometheus")[1]


def test_a_scrape_shows_ingest_latency_queue_and_tenant_figures(
    client: Client, keys: Keys, metrics_key: str
) -> None:
    """After a batch of two stored, one duplicate and one rejected event: the counters, the ingest histogram,
    the writer queue, the log size, the detection lag and the unsigned events, per tenant and over all."""
    first = event(id=uuid7_text(), occurred_at="2026-01-01T00:00:00Z")  # a retry is byte for byte the same
    r = client.post("/v1/events", json=[first, event(), {"action": "x"}], headers=auth(keys.ingest))
    assert r.status_code == 200
    assert client.post("/v1/events", json=[first], headers=auth(keys.ingest)).status_code == 200
    m = _scrape(client, metrics_key)
    events = m["vigil_ingest_events"]
    assert _value(events, "vigil_ingest_events_total", result="stored") == 2
    assert _value(events, "vigil_ingest_events_total", result="duplicate") == 1
    assert _value(events, "vigil_ingest_events_total", result="rejected") == 1
    latency = m["vigil_http_request_duration_seconds"]
    assert (
        _value(latency, "vigil_http_request_duration_seconds_count", method="POST", route="/v1/events") == 2
    )
    requests = m["vigil_http_requests"]
    assert _value(requests, "vigil_http_requests_total", method="POST", route="/v1/events", status="200") == 2
    assert _value(m["vigil_writer_queue_events"], "vigil_writer_queue_events") == 0
    assert _value(m["vigil_tenant_log_events"], "vigil_tenant_log_events", tenant="acme") == 2
    # detection is off in these tests: every committed event is still ahead of the engine's cursor
    assert (
        _value(m["vigil_tenant_detection_lag_events"], "vigil_tenant_detection_lag_events", tenant="acme")
        == 2
    )
    assert _value(m["vigil_tenant_unsigned_events"], "vigil_tenant_unsigned_events", tenant="acme") == 2
    assert _value(m["vigil_log_events"], "vigil_log_events") >= 2  # the platform log holds the audit too
    assert _value(m["vigil_integrity_failures"], "vigil_integrity_failures") == 0
    assert "process_cpu_seconds" in m or "python_info" in m


def test_a_checkpoint_shows_as_its_age_and_no_unsigned_events(
    client: Client, store: Store, keys: Keys, metrics_key: str
) -> None:
    """Signing a checkpoint brings the tenant's unsigned events to 0 and starts its checkpoint age."""
    acme = store.get_tenant("acme")
    _, admin = create_key(store, acme, frozenset({"admin", "ingest"}))
    client.post("/v1/events", json=[event(), event()], headers=auth(admin))
    assert client.post("/v1/checkpoints", headers=auth(admin)).status_code == 201
    m = _scrape(client, metrics_key)
    assert _value(m["vigil_tenant_unsigned_events"], "vigil_tenant_unsigned_events", tenant="acme") == 0
    age = _value(
        m["vigil_tenant_checkpoint_age_seconds"], "vigil_tenant_checkpoint_age_seconds", tenant="acme"
    )
    assert 0 <= age < 60
    assert "acme" in [s.labels["tenant"] for s in m["vigil_tenant_checkpoint_age_seconds"]]


def test_metrics_need_a_platform_key_with_the_metrics_scope(
    client: Client, store: Store, keys: Keys, metrics_key: str
) -> None:
    """By default (metrics=key) no key is 401, a tenant's key or a platform key without the scope 403."""
    assert client.get("/metrics").status_code == 401
    _, tenant_metrics = create_key(store, store.get_tenant("acme"), frozenset({"metrics"}))
    _, platform_admin = create_key(store, store.get_tenant(PLATFORM_TENANT), frozenset({"admin"}))
    assert client.get("/metrics", headers=auth(tenant_metrics)).status_code == 403
    assert client.get("/metrics", headers=auth(platform_admin)).status_code == 403
    assert client.get("/metrics", headers=auth(metrics_key)).status_code == 200


@pytest.mark.settings(metrics="open")
def test_open_metrics_need_no_key(client: Client) -> None:
    """metrics=open serves anyone who reaches the port."""
    assert "vigil_tenants" in _scrape(client, None)


@pytest.mark.settings(metrics="off")
def test_metrics_off_removes_the_route(client: Client) -> None:
    """metrics=off: /metrics is a 404 and not in the OpenAPI document."""
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]


@pytest.fixture
def two_series(settings: Settings, store: Store) -> Iterator[Client]:
    bounded = Settings.load({**settings.values, "metrics": "open", "metrics_tenants": 2}, environ={})
    with TestClient(app=create_app(bounded, store)) as c:
        yield c


def test_per_tenant_series_are_bounded_and_the_total_covers_all(two_series: Client, store: Store) -> None:
    """With metrics_tenants=2 and five tenants, each per-tenant family has the two largest; the unlabelled
    series still sums every tenant."""
    for i, slug in enumerate(["t-a", "t-b", "t-c", "t-d", "t-e"]):
        _, key = create_key(store, store.create_tenant(slug), frozenset({"ingest"}))
        assert two_series.post("/v1/events", json=[event()] * (i + 1), headers=auth(key)).status_code == 200
    m = _scrape(two_series, None)
    per = m["vigil_tenant_log_events"]
    assert sorted((s.labels["tenant"], s.value) for s in per) == [("t-d", 4), ("t-e", 5)]
    total = _value(m["vigil_log_events"], "vigil_log_events")
    assert total == 15 + store.tree_size(store.get_tenant(PLATFORM_TENANT).id)
    assert len(m["vigil_tenant_detection_lag_events"]) == 2


def test_metrics_scope_is_listed_in_the_openapi_document(client: Client) -> None:
    """The route is documented, with its bearer auth, among the ops routes."""
    doc = client.get("/schema/openapi.json").json()
    op = doc["paths"]["/metrics"]["get"]
    assert op["security"] == [{"bearer": []}] and "ops" in op["tags"]
