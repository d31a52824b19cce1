"""POST /v1/events: per-event results, idempotent retries, and every bad-input status with its error body."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.ids import uuid7
from vigil.model import MAX_REQUEST_BYTES

Client = TestClient[Any]


def test_stores_events_and_answers_seq_and_leaf_hash(client: Client, keys: Keys) -> None:
    """Good events get contiguous seqs from 0 and the SHA-256 leaf hash of their canonical bytes."""
    r = client.post("/v1/events", json=[event(), event("user.logout")], headers=auth(keys.ingest))
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 0
    assert [x["seq"] for x in body["results"]] == [0, 1]
    assert all(len(bytes.fromhex(x["leaf_hash"])) == 32 for x in body["results"])


def test_one_bad_event_does_not_lose_the_good_ones(client: Client, keys: Keys) -> None:
    """A batch with a bad event stores the good ones and lists every problem of the bad one."""
    bad = {"action": "Not An Action", "actor": {"type": "robot"}, "outcome": "meh", "surprise": 1}
    r = client.post("/v1/events", json=[event(), bad, event("user.logout")], headers=auth(keys.ingest))
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["stored", "rejected", "stored"]
    fields = {e["field"] for e in res[1]["errors"]}
    assert {"action", "actor.id", "actor.type", "outcome", "surprise"} <= fields
    assert all(e["message"] for e in res[1]["errors"])


def test_all_rejected_is_422_with_every_event_listed(client: Client, keys: Keys) -> None:
    """When no event is acceptable the answer is 422 in the one error shape, per event."""
    r = client.post("/v1/events", json=[{"actor": {"id": "u"}}, {"action": "x.y"}], headers=auth(keys.ingest))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "validation_failed"
    assert [d["index"] for d in err["details"]] == [0, 1]
    assert err["details"][0]["errors"][0] == {"field": "action", "message": "required"}
    assert err["details"][1]["errors"][0] == {"field": "actor", "message": "required"}


def test_metadata_limits_are_reported_per_key(client: Client, keys: Keys) -> None:
    """Over 50 keys, a key over 40 characters and a value over 500 characters are each reported."""
    meta = {f"k{i}": "v" for i in range(51)}
    meta["x" * 41] = "v"
    meta["long"] = "v" * 501
    r = client.post("/v1/events", json=[event(metadata=meta)], headers=auth(keys.ingest))
    assert r.status_code == 422
    errors = r.json()["error"]["details"][0]["errors"]
    messages = " | ".join(e["message"] for e in errors)
    assert "at most 50 keys" in messages and "1 to 40 characters" in messages and "at most 500" in messages


def test_same_id_again_stores_nothing_new_and_returns_original_seq(
    client: Client, keys: Keys, store: Any
) -> None:
    """Retrying with the same client id is safe: original seq and hash, nothing appended."""
    eid = str(uuid7())
    first = client.post("/v1/events", json=[event(id=eid)], headers=auth(keys.ingest)).json()["results"][0]
    client.post("/v1/events", json=[event("user.logout")], headers=auth(keys.ingest))
    again = client.post("/v1/events", json=[event(id=eid), event(id=eid)], headers=auth(keys.ingest)).json()
    assert [x["status"] for x in again["results"]] == ["duplicate", "duplicate"]
    assert {x["seq"] for x in again["results"]} == {first["seq"]}
    assert again["results"][0]["leaf_hash"] == first["leaf_hash"]
    assert store.tree_size(keys.tenant_id) == 2


def test_duplicate_inside_one_batch_is_stored_once(client: Client, keys: Keys, store: Any) -> None:
    """The same id twice in one request is one event."""
    eid = str(uuid7())
    res = client.post("/v1/events", json=[event(id=eid), event(id=eid)], headers=auth(keys.ingest)).json()
    assert [x["status"] for x in res["results"]] == ["stored", "duplicate"]
    assert store.tree_size(keys.tenant_id) == 1


def test_an_id_outside_the_rule_is_rejected_in_words(client: Client, keys: Keys) -> None:
    """A client id must be a UUID or an opaque id of safe characters; the error says so in words."""
    r = client.post("/v1/events", json=[event(id="evt 1/2")], headers=auth(keys.ingest))
    assert r.status_code == 422
    err = r.json()["error"]["details"][0]["errors"][0]
    assert err["field"] == "id" and "must be a UUID" in err["message"] and "\\Z" not in err["message"]


def test_secrets_are_redacted_before_hashing(client: Client, keys: Keys) -> None:
    """Secret-named metadata and change values never reach storage."""
    meta = {
        "password": "hunter2",
        "API-Key": "abc",
        "session_cookie": "c",
        "auth": "Bearer xyz",
        "plan": "pro",
    }
    changes = {"client_secret": ["a", "b"], "name": ["x", "y"]}
    r = client.post("/v1/events", json=[event(metadata=meta, changes=changes)], headers=auth(keys.both))
    eid = r.json()["results"][0]["id"]
    stored = client.get(f"/v1/events/{eid}", headers=auth(keys.both)).json()
    assert stored["metadata"] == {
        "password": "[REDACTED:secret]",
        "API-Key": "[REDACTED:secret]",
        "session_cookie": "[REDACTED:secret]",
        "auth": "[REDACTED:secret]",
        "plan": "pro",
    }
    assert stored["changes"] == {
        "client_secret": ["[REDACTED:secret]", "[REDACTED:secret]"],
        "name": ["x", "y"],
    }
    assert "hunter2" not in json.dumps(stored)


def test_ndjson_is_accepted_and_a_bad_line_is_one_rejected_event(client: Client, keys: Keys) -> None:
    """NDJSON bodies are one event per line; a malformed line is rejected alone."""
    lines = [json.dumps(event()), "{not json", "", json.dumps(event("user.logout"))]
    r = client.post(
        "/v1/events",
        content="\n".join(lines).encode(),
        headers={**auth(keys.ingest), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["stored", "rejected", "stored"]
    assert "line 2" in res[1]["errors"][0]["message"]


def test_malformed_json_is_400_saying_where(client: Client, keys: Keys) -> None:
    """Broken JSON is a 400 whose message points at the byte."""
    r = client.post(
        "/v1/events",
        content=b'[{"action": "user.login",, }]',
        headers={**auth(keys.ingest), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert (
        err["type"] == "invalid_request" and "malformed JSON" in err["message"] and "byte" in err["message"]
    )


def test_body_that_is_neither_an_array_nor_an_object_is_400(client: Client, keys: Keys) -> None:
    """A JSON string or number instead of events is a clear 400 (one object is a batch of one)."""
    r = client.post("/v1/events", json="user.login", headers=auth(keys.ingest))
    assert r.status_code == 400
    assert "JSON array" in r.json()["error"]["message"]


def test_no_key_is_401(client: Client, keys: Keys) -> None:
    """No Authorization header, a malformed one, or an unknown key: 401."""
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, auth("vk_0123456789abcdef_" + "A" * 43)):
        r = client.post("/v1/events", json=[event()], headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["type"] == "unauthorized"


def test_wrong_scope_is_403(client: Client, keys: Keys) -> None:
    """A read-only key cannot ingest; an ingest-only key cannot read."""
    r = client.post("/v1/events", json=[event()], headers=auth(keys.read))
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
    r = client.get("/v1/events", headers=auth(keys.ingest))
    assert r.status_code == 403 and "read" in r.json()["error"]["message"]


def test_too_many_events_is_413(client: Client, keys: Keys) -> None:
    """More than 1,000 events in one request: 413."""
    r = client.post("/v1/events", json=[event()] * 1001, headers=auth(keys.ingest))
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "payload_too_large"


def test_too_many_bytes_is_413(client: Client, keys: Keys) -> None:
    """A body over 5 MiB: 413, before it is parsed."""
    r = client.post(
        "/v1/events",
        content=b"[" + b" " * MAX_REQUEST_BYTES + b"]",
        headers={**auth(keys.ingest), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "payload_too_large"


def test_event_over_64_kib_is_rejected(client: Client, keys: Keys) -> None:
    """A single event over 64 KiB is rejected with its size."""
    big = event(changes={f"f{i}": ["a" * 400, "b" * 400] for i in range(100)})
    r = client.post("/v1/events", json=[big, event()], headers=auth(keys.ingest))
    res = r.json()["results"]
    assert res[0]["status"] == "rejected" and "65536 bytes" in res[0]["errors"][0]["message"]
    assert res[1]["status"] == "stored"


def test_over_rate_limit_is_429_with_retry_after(settings: Any, store: Any, keys: Keys) -> None:
    """A tenant over its rate limit gets 429 and Retry-After; another tenant is unaffected."""
    from vigil.settings import Settings
    from vigil.web import create_app

    limited = Settings.load({**settings.values, "rate_limit": 10, "rate_burst": 10}, environ={})
    with TestClient(app=create_app(limited, store)) as c:
        assert c.post("/v1/events", json=[event()] * 10, headers=auth(keys.ingest)).status_code == 200
        r = c.post("/v1/events", json=[event()] * 5, headers=auth(keys.ingest))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["type"] == "rate_limited"
        assert c.post("/v1/events", json=[event()], headers=auth(keys.other_tenant)).status_code == 200


def test_tenant_comes_from_the_key_only(client: Client, keys: Keys) -> None:
    """An event cannot name a tenant: the key decides, so nothing can be written into another tenant."""
    r = client.post("/v1/events", json=[event(tenant="globex")], headers=auth(keys.ingest))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["errors"][0] == {"field": "tenant", "message": "unknown field"}


def test_concurrent_requests_share_commits_and_keep_seq_contiguous(
    client: Client, keys: Keys, store: Any
) -> None:
    """Many concurrent requests: every event gets a distinct seq, 0..n-1, no gaps."""
    from concurrent.futures import ThreadPoolExecutor

    def send(_: int) -> list[int]:
        r = client.post("/v1/events", json=[event()] * 20, headers=auth(keys.ingest))
        return [x["seq"] for x in r.json()["results"]]

    with ThreadPoolExecutor(8) as pool:
        seqs = [s for batch in pool.map(send, range(40)) for s in batch]
    assert sorted(seqs) == list(range(800))
    assert store.tree_size(keys.tenant_id) == 800


def test_other_media_types_are_415(client: Client, keys: Keys) -> None:
    """Only JSON and NDJSON bodies are taken; anything else is a clear 415."""
    r = client.post(
        "/v1/events",
        content=json.dumps([event()]).encode(),
        headers={**auth(keys.ingest), "Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["type"] == "unsupported_media_type"


def test_gzip_bodies_are_accepted(client: Client, keys: Keys) -> None:
    """Content-Encoding: gzip bodies are inflated before parsing."""
    import gzip

    body = gzip.compress(json.dumps([event(), event("user.logout")]).encode())
    r = client.post(
        "/v1/events",
        content=body,
        headers={**auth(keys.ingest), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2


def test_a_gzip_bomb_is_413_and_a_corrupt_one_400(client: Client, keys: Keys) -> None:
    """A small gzip body that inflates past 5 MiB is refused without inflating it all; garbage is a 400."""
    import gzip

    bomb = gzip.compress(b"[" + b" " * (MAX_REQUEST_BYTES + 10) + b"]")
    assert len(bomb) < 100_000
    headers = {**auth(keys.ingest), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    r = client.post("/v1/events", content=bomb, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"
    r = client.post("/v1/events", content=b"\x1f\x8bnot really gzip", headers=headers)
    assert r.status_code == 400 and "gzip" in r.json()["error"]["message"]
    r = client.post("/v1/events", content=b"[]", headers={**headers, "Content-Encoding": "br"})
    assert r.status_code == 415
