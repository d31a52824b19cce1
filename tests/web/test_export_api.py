"""GET /v1/export: CSV, JSON and NDJSON with exactly the search's filters, seq and leaf hash on every event,
safe CSV, streamed, a hole in the log an error, and every export recorded in the platform log."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import time
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil import export as export_module
from vigil.export import CSV_COLUMNS
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT, SearchQuery
from vigil.web import create_app

Client = TestClient[Any]


def _fill(client: Client, keys: Keys) -> list[dict[str, Any]]:
    batch = [
        event(
            "user.login",
            actor={"id": "usr_alice", "name": "Alice", "email": "alice@acme.example"},
            occurred_at="2026-11-01T09:00:00Z",
            context={"ip": "203.0.113.7"},
        ),
        event(
            "user.login",
            actor={"id": "usr_bob", "name": "Bob"},
            outcome="failure",
            occurred_at="2026-11-01T09:05:00Z",
            context={"ip": "198.51.100.2"},
        ),
        event(
            "invoice.created",
            actor={"id": "usr_alice"},
            category="change",
            occurred_at="2026-11-02T10:00:00Z",
            targets=[{"type": "invoice", "id": "inv_1"}],
            metadata={"amount": 1200},
        ),
        event(
            "report.exported",
            actor={"id": "usr_bob", "name": '=HYPERLINK("http://x.example")'},
            occurred_at="2026-11-03T10:00:00Z",
            message='Bob said "hi", then\nleft',
            metadata={"note": "+1 -1 @all", "format": "csv"},
        ),
    ]
    r = client.post("/v1/events", json=batch, headers=auth(keys.both))
    assert r.json()["accepted"] == 4, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_every_format_carries_seq_and_leaf_hash(client: Client, keys: Keys) -> None:
    """csv, json (one array) and ndjson each give every event with its seq and leaf hash, in seq order, with
    their media type and a file name."""
    results = _fill(client, keys)
    want = [(r["seq"], r["leaf_hash"]) for r in results]
    nd = client.get("/v1/export?format=ndjson", headers=auth(keys.read))
    assert nd.headers["content-type"] == "application/x-ndjson"
    assert [(e["seq"], e["leaf_hash"]) for e in map(json.loads, nd.content.splitlines())] == want
    js = client.get("/v1/export?format=json", headers=auth(keys.read))
    assert js.headers["content-type"].startswith("application/json")
    assert [(e["seq"], e["leaf_hash"]) for e in js.json()] == want
    cs = client.get("/v1/export?format=csv", headers=auth(keys.read))
    assert cs.headers["content-type"].startswith("text/csv")
    assert 'filename="acme-0-4.csv"' in cs.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(cs.text, newline="")))
    assert [(int(r["seq"]), r["leaf_hash"]) for r in rows] == want


def test_csv_is_rfc_4180_flattened_and_defuses_formulas(client: Client, keys: Keys) -> None:
    """The header is the documented columns; lines end in CRLF and quotes are doubled; actor and context are
    flattened, targets and metadata are JSON text; a cell starting with = + - @ gets a leading quote."""
    _fill(client, keys)
    raw = client.get("/v1/export?format=csv", headers=auth(keys.read)).content
    assert raw.startswith(",".join(CSV_COLUMNS).encode() + b"\r\n")
    assert b'"Bob said ""hi"", then\nleft"' in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    alice, _, invoice, report = rows
    assert (alice["actor.email"], alice["context.ip"], alice["outcome"]) == (
        "alice@acme.example",
        "203.0.113.7",
        "success",
    )
    assert json.loads(invoice["targets"]) == [{"type": "invoice", "id": "inv_1"}]
    assert json.loads(invoice["metadata"]) == {"amount": 1200}
    assert report["actor.name"] == '\'=HYPERLINK("http://x.example")'
    assert report["message"] == 'Bob said "hi", then\nleft'
    assert json.loads(report["metadata"]) == {"format": "csv", "note": "+1 -1 @all"}  # JSON text: safe as is
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


@pytest.mark.parametrize(
    "query",
    [
        "actor_id=usr_bob",
        "action=user.*",
        "ip=203.0.113.0/24",
        "actor_name=ALICE",
        "since=2026-11-02&until=2026-11-03",
        "outcome=failure",
        "target_type=invoice&target_id=inv_1",
        "q=hi",
    ],
)
def test_export_takes_exactly_the_search_filters(client: Client, keys: Keys, query: str) -> None:
    """An export with filters holds what the same search finds, in seq order."""
    _fill(client, keys)
    found = client.get(f"/v1/events?order=seq&{query}", headers=auth(keys.read)).json()["data"]
    exported = client.get(f"/v1/export?format=ndjson&{query}", headers=auth(keys.read))
    assert exported.status_code == 200, exported.text
    assert [json.loads(line) for line in exported.content.splitlines()] == found
    assert found  # each query finds something


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("format=ndjson&actor=usr_bob", "unknown query parameters: 'actor'"),
        ("format=csv&since=yesterday", "since 'yesterday' is not a time"),
        ("format=json&ip=300.1.2.3", "ip '300.1.2.3'"),
        ("format=bundle&actor_id=usr_bob", "a bundle is a contiguous slice"),
        ("format=xlsx", ""),
    ],
)
def test_a_filter_the_export_cannot_apply_is_a_400(client: Client, keys: Keys, query: str, says: str) -> None:
    """A misspelt or malformed filter, or a filter on a bundle, is refused: never the whole log with a 200."""
    _fill(client, keys)
    r = client.get(f"/v1/export?{query}", headers=auth(keys.read))
    assert r.status_code == 400, r.text
    assert says in r.json()["error"]["message"]


def test_an_export_of_a_log_with_a_hole_fails(
    client: Client, keys: Keys, store: Store, settings: Settings
) -> None:
    """With an event missing from the middle of the log, every unfiltered format answers an error, never a
    log that looks whole."""
    _fill(client, keys)
    _delete(settings.database, keys.tenant_id, 1)
    for fmt in ("ndjson", "csv", "json"):
        r = client.get(f"/v1/export?format={fmt}", headers=auth(keys.read))
        assert r.status_code == 503, r.text
        assert "not all in the store" in r.json()["error"]["message"]


def _delete(database: str, tenant_id: int, seq: int) -> None:
    """Remove one event as someone with the database could (the append-only guard lifted)."""
    if "://" not in database:
        conn = sqlite3.connect(database)
        (guard,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_no_delete'").fetchone()
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE rid = ?", ((tenant_id << 40) | seq,))
        conn.execute(guard)
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(database) as pg:
        s = f"tenant_{tenant_id}"
        pg.execute(f"ALTER TABLE {s}.events DISABLE TRIGGER append_only")
        pg.execute(f"DELETE FROM {s}.events WHERE seq = %s", (seq,))
        pg.execute(f"ALTER TABLE {s}.events ENABLE ALWAYS TRIGGER append_only")


def test_every_export_is_recorded_as_a_read(client: Client, keys: Keys, store: Store) -> None:
    """An export leaves audit_log.exported in the platform log, with its format, range and filters."""
    _fill(client, keys)
    assert client.get("/v1/export?format=csv&actor_id=usr_bob", headers=auth(keys.read)).status_code == 200
    platform = store.get_tenant(PLATFORM_TENANT).id
    for _ in range(100):
        page = store.search(platform, SearchQuery(action="audit_log.exported"))
        if page.events:
            break
        time.sleep(0.02)
    (recorded,) = [json.loads(body) for _, _, body in page.events]
    assert recorded["metadata"] == {"format": "csv", "from_seq": 0, "to_seq": 4, "actor_id": "usr_bob"}
    assert recorded["targets"] == [{"type": "tenant", "id": "acme"}]


def test_the_export_is_streamed_page_by_page(
    settings: Settings, store: Store, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer leaves in chunks while the log is still being read: the first chunk is sent after the first
    page is read and before the last one is, so memory holds a page, not the log."""
    with TestClient(app=create_app(settings, store)) as c:
        for _ in range(4):
            c.post("/v1/events", json=[event(message=f"e{i}") for i in range(100)], headers=auth(keys.both))
    monkeypatch.setattr(export_module, "CHUNK", 50)  # 8 pages of 50 instead of one of 10,000
    reads: list[int] = []
    real = store.read_range

    def counted(tenant_id: int, start: int, end: int) -> Any:
        reads.append(start)
        return real(tenant_id, start, end)

    monkeypatch.setattr(store, "read_range", counted)
    asgi = create_app(settings, store)
    sent: list[tuple[int, int]] = []  # (reads done, body bytes) per body message

    async def call() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/export",
            "raw_path": b"/v1/export",
            "query_string": b"format=ndjson",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {keys.read}".encode()), (b"host", b"test")],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        status = 0
        asked = False
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()  # the client stays connected until the whole answer is in
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    sent.append((len(reads), len(message["body"])))
                if not message.get("more_body"):
                    finished.set()

        await asgi(scope, receive, send)  # type: ignore[arg-type]
        await asyncio.sleep(0.1)  # the access record is appended in the background
        return status

    assert asyncio.run(call()) == 200
    assert len(reads) == 8 and len(sent) == 8
    assert sent[0][0] < len(reads)  # the first chunk left before the last page was read
    assert sum(n for _, n in sent) > 0


def test_the_documented_csv_columns_are_the_columns() -> None:
    """docs/api.md lists the CSV columns in the order the export writes them."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    listed = doc.split("The columns, in order:", 1)[1].split("\n\n", 2)[1]
    assert [c.strip().strip("`.") for c in listed.replace("\n", " ").split(",")] == CSV_COLUMNS
