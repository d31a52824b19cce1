"""No tenant starves another, seen from the attacker's side: a flooding tenant is refused before the intake does
any work, a batch over the burst is a 413 that says the limit, a search or export flood is refused per key, and a
read flood leaves two platform-log entries per window instead of one per read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

import vigil.web.app as web_app
from vigil.settings import Settings
from vigil.store.base import PLATFORM_TENANT
from vigil.web import create_app

Client = TestClient[Any]


@pytest.fixture
def intake_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the requests that reach the intake (decode, validate, hash)."""
    calls: list[int] = []
    real = web_app.prepare_request

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(web_app, "prepare_request", counting)
    return calls


def _client(settings: Settings, store: Any, **values: Any) -> Client:
    return TestClient(app=create_app(Settings.load({**settings.values, **values}, environ={}), store))


@pytest.fixture
def limited(settings: Settings, store: Any) -> Iterator[Client]:
    with _client(settings, store, rate_limit=100, rate_burst=100) as c:
        yield c


def test_a_flood_over_the_limit_never_reaches_the_intake(
    limited: Client, keys: Keys, intake_calls: list[int]
) -> None:
    """Once a tenant has used its burst, its requests get 429 with Retry-After without being decoded; another
    tenant is served as before."""
    assert limited.post("/v1/events", json=[event()] * 100, headers=auth(keys.ingest)).status_code == 200
    assert len(intake_calls) == 1
    for _ in range(20):
        r = limited.post("/v1/events", json=[event()] * 50, headers=auth(keys.ingest))
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
    assert len(intake_calls) == 1  # the flood cost no intake work
    assert limited.post("/v1/events", json=[event()], headers=auth(keys.other_tenant)).status_code == 200


def test_a_batch_over_the_burst_is_413_with_the_limit(
    limited: Client, keys: Keys, intake_calls: list[int]
) -> None:
    """101 events against a burst of 100 can never pass: 413 batch_too_large naming the limit, no Retry-After,
    and the tenant's budget is untouched."""
    r = limited.post("/v1/events", json=[event()] * 101, headers=auth(keys.ingest))
    assert r.status_code == 413 and "Retry-After" not in r.headers
    err = r.json()["error"]
    assert err["type"] == "batch_too_large" and "at most 100 events" in err["message"]
    assert err["details"] == [{"limit": "events", "max": 100, "got": 101}]
    assert intake_calls == []
    assert limited.post("/v1/events", json=[event()] * 100, headers=auth(keys.ingest)).status_code == 200


def test_ndjson_lines_are_counted_before_decoding(
    limited: Client, keys: Keys, intake_calls: list[int]
) -> None:
    """An NDJSON body is charged by its lines: 101 lines against a burst of 100 is a 413 before the intake."""
    body = "\n".join(json.dumps(event()) for _ in range(101)) + "\n"
    headers = {**auth(keys.ingest), "Content-Type": "application/x-ndjson"}
    r = limited.post("/v1/events", content=body, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["details"][0]["got"] == 101
    assert intake_calls == []


def test_events_the_estimate_missed_are_charged_after_decoding(limited: Client, keys: Keys) -> None:
    """Keys spelled with escapes hide events from the estimate; the decoder counts them and the tenant pays
    them as a debt, so the next request waits."""
    one = json.dumps(event()).replace('"action"', '"\\u0061ction"')
    body = "[" + ",".join([one] * 90) + "]"
    r = limited.post(
        "/v1/events", content=body, headers={**auth(keys.ingest), "Content-Type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 90
    r = limited.post("/v1/events", json=[event()] * 20, headers=auth(keys.ingest))
    assert r.status_code == 429


def test_bytes_are_limited_too(settings: Settings, store: Any, keys: Keys, intake_calls: list[int]) -> None:
    """A body over the tenant's byte burst is a 413 naming the byte limit; a tenant out of bytes gets 429."""
    with _client(settings, store, rate_limit_bytes=2000, rate_burst_bytes=2000) as c:
        r = c.post("/v1/events", json=[event()] * 20, headers=auth(keys.ingest))
        assert r.status_code == 413 and r.json()["error"]["details"][0]["limit"] == "bytes"
        assert c.post("/v1/events", json=[event()] * 8, headers=auth(keys.ingest)).status_code == 200
        r = c.post("/v1/events", json=[event()] * 8, headers=auth(keys.ingest))
        assert r.status_code == 429 and "bytes" in r.json()["error"]["message"]
        assert len(intake_calls) == 1


def test_a_search_flood_is_refused_per_key(settings: Settings, store: Any, keys: Keys) -> None:
    """A key over its read rate gets 429 with Retry-After on every read route; another key of the same tenant
    still reads, and ingest is not affected."""
    with _client(settings, store, search_rate_limit=5, search_rate_burst=5) as c:
        for _ in range(5):
            assert c.get("/v1/events", headers=auth(keys.read)).status_code == 200
        for path in (
            "/v1/events?q=x",
            "/v1/events/nope",
            "/v1/entities/doc/d1/history",
            "/v1/checkpoints/latest",
        ):
            r = c.get(path, headers=auth(keys.read))
            assert r.status_code == 429, path
            assert int(r.headers["Retry-After"]) >= 1 and "API key" in r.json()["error"]["message"]
        assert c.get("/v1/events", headers=auth(keys.both)).status_code == 200
        assert c.post("/v1/events", json=[event()], headers=auth(keys.ingest)).status_code == 200


def test_an_export_flood_is_refused_per_key(settings: Settings, store: Any, keys: Keys) -> None:
    """Exports have their own smaller budget per key: the third export within the minute gets 429."""
    with _client(settings, store, export_rate_limit=2) as c:
        c.post("/v1/events", json=[event()] * 3, headers=auth(keys.ingest))
        for _ in range(2):
            assert c.get("/v1/export?format=ndjson", headers=auth(keys.read)).status_code == 200
        r = c.get("/v1/export?format=ndjson", headers=auth(keys.read))
        assert r.status_code == 429 and "2/min exports" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/export?format=ndjson", headers=auth(keys.both)).status_code == 200


def _platform_reads(store: Any, action: str) -> list[dict[str, Any]]:
    platform = store.get_tenant(PLATFORM_TENANT).id
    rows = store.read_range(platform, 0, store.tree_size(platform))
    return [e for e in (json.loads(body) for _, _, body in rows) if e["action"] == action]


def test_a_read_flood_is_recorded_as_one_entry_with_a_count(
    settings: Settings, store: Any, keys: Keys
) -> None:
    """Thirty identical searches by one key: the first is recorded at once, the other 29 as one entry with
    repeats=29; a different search, or another key, is its own entry. Every read is accounted for."""
    with _client(settings, store, search_rate_limit=0) as c:
        for _ in range(30):
            assert c.get("/v1/events?action=user.login", headers=auth(keys.read)).status_code == 200
        c.get("/v1/events?action=user.logout", headers=auth(keys.read))
        c.get("/v1/events?action=user.login", headers=auth(keys.both))
    searched = _platform_reads(store, "audit_log.searched")
    mine = [
        e for e in searched if e["metadata"].get("action") == "user.login" and e["actor"]["id"] in keys.read
    ]
    assert len(mine) == 2
    assert "repeats" not in mine[0]["metadata"]
    assert mine[1]["metadata"]["repeats"] == 29
    assert mine[1]["metadata"]["repeats_from"] <= mine[1]["metadata"]["repeats_to"]
    assert len(searched) == 4  # + the other search + the other key
    assert sum(e["metadata"].get("repeats", 1) for e in searched) == 32  # each read counted once


def test_without_a_window_every_read_is_its_own_entry(settings: Settings, store: Any, keys: Keys) -> None:
    """read_audit_window 0: one platform-log entry per read, as before."""
    with _client(settings, store, search_rate_limit=0, read_audit_window=0) as c:
        for _ in range(5):
            c.get("/v1/events?action=user.login", headers=auth(keys.read))
    assert len(_platform_reads(store, "audit_log.searched")) == 5


def test_a_series_closes_when_its_window_ends() -> None:
    """After the window, the counted repeats are written and the next identical read is recorded at once."""
    from vigil.web.fairness import ReadAudit

    class Key:
        key_id = "k1"

    emitted: list[dict[str, Any]] = []
    audit = ReadAudit(10, lambda key, action, meta: emitted.append(meta))
    assert audit.record(Key(), "audit_log.searched", {"q": "x"}, now=0.0)
    assert not audit.record(Key(), "audit_log.searched", {"q": "x"}, now=5.0)
    assert not audit.record(Key(), "audit_log.searched", {"q": "x"}, now=9.0)
    audit.flush(now=9.5)
    assert emitted == []
    assert audit.record(Key(), "audit_log.searched", {"q": "x"}, now=10.0)  # a new series, recorded now
    assert [m["repeats"] for m in emitted] == [2]
    assert not audit.record(Key(), "audit_log.searched", {"q": "x"}, now=11.0)
    audit.flush(now=20.0)
    assert [m["repeats"] for m in emitted] == [2, 1]
    audit.flush(now=40.0)
    assert len(emitted) == 2  # a series without repeats leaves nothing more
