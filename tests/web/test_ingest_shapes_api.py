"""POST /v1/events with events as users already have them: their own ids (found again by GET and proof), a
conflict for another event under a taken id, WorkOS's documented request with its Idempotency-Key, nested
metadata named by key, and events from the future refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.settings import Settings
from vigil.web import create_app

Client = TestClient[Any]

# The body of WorkOS's documented Create Event request (API reference, "Create Event"), as their curl sends it.
WORKOS_BODY: dict[str, Any] = {
    "organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
    "event": {
        "action": "user.signed_in",
        "occurred_at": "2022-09-02T16:35:39.317Z",
        "version": 1,
        "actor": {"type": "user", "id": "user_TF4C5938", "metadata": {"role": "admin"}},
        "targets": [
            {"type": "user", "id": "user_98432YHF", "name": "Jon Smith"},
            {"type": "team", "id": "team_J8YASKA2", "metadata": {"owner": "user_01GBTCQ2"}},
        ],
        "context": {"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"},
        "metadata": {"extra": "data"},
    },
}
IDEMPOTENCY_KEY = "884793cd-bef4-46cf-8790-e3d4957a09ce"


@pytest.fixture
def workos(store: Any) -> Keys:
    """A tenant named after the WorkOS organization, as a team moving from WorkOS would create it."""
    from vigil.auth import create_key

    org = store.create_tenant("acme-workos", "org_01EHWNCE74X7JSDV0X3SZ3KJNY")
    key = create_key(store, org, frozenset({"ingest", "read"}))[1]
    other = store.create_tenant("globex", "Globex")
    return Keys(key, key, key, create_key(store, other, frozenset({"ingest", "read"}))[1], org.id, other.id)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("9B2E4A44-8A8C-4B5E-9A7F-0D4C1F0E3A11", "9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11"),
        (
            "a1b2c3d4-0000-4000-8000-000000000001",
            "a1b2c3d4-0000-4000-8000-000000000001",
        ),  # CloudTrail-like v4
        ("evt_123", "evt_123"),
        ("order:42:paid", "order:42:paid"),
    ],
)
def test_client_ids_are_kept_and_found_by_get_and_proof(
    client: Client, keys: Keys, sent: str, kept: str
) -> None:
    """A UUIDv4 or an opaque id is the event's id: GET /v1/events/{id} and its proof take it (a UUID in any
    case)."""
    r = client.post("/v1/events", json=[event(id=sent)], headers=auth(keys.both))
    assert r.status_code == 200 and r.json()["results"][0]["id"] == kept
    for spelling in {sent, kept}:
        got = client.get(f"/v1/events/{spelling}", headers=auth(keys.both))
        assert got.status_code == 200 and got.json()["id"] == kept
        proof = client.get(f"/v1/events/{spelling}/proof", headers=auth(keys.both))
        assert proof.status_code == 200 and proof.json()["leaf_index"] == 0


def test_a_path_id_outside_the_rule_is_400_and_an_unknown_one_404(client: Client, keys: Keys) -> None:
    """GET /v1/events/{id} says what an id may be when it cannot be one; a possible id not in the log is 404."""
    bad = client.get("/v1/events/..evt", headers=auth(keys.both))
    assert bad.status_code == 400 and "must be a UUID" in bad.json()["error"]["message"]
    assert client.get("/v1/events/evt_404", headers=auth(keys.both)).status_code == 404
    assert client.get("/v1/events/%20x/proof", headers=auth(keys.both)).status_code == 400


def test_another_event_under_a_taken_id_is_a_conflict_not_a_success(
    client: Client, keys: Keys, store: Any
) -> None:
    """Same id, other body: a per-event conflict carrying the stored seq, not counted as accepted, nothing stored;
    alone in its request it is a 409; the same body again is a duplicate."""
    first = client.post("/v1/events", json=[event(id="evt_1", message="a")], headers=auth(keys.both)).json()
    mixed = client.post(
        "/v1/events",
        json=[event(id="evt_1", message="b"), event(id="evt_2"), event(id="evt_1", message="a")],
        headers=auth(keys.both),
    )
    assert mixed.status_code == 200
    body = mixed.json()
    assert body["accepted"] == 2 and body["rejected"] == 1
    conflict, stored, duplicate = body["results"]
    assert conflict["status"] == "conflict" and conflict["id"] == "evt_1"
    assert conflict["seq"] == first["results"][0]["seq"] and conflict["errors"][0]["field"] == "id"
    assert stored["status"] == "stored" and duplicate["status"] == "duplicate"
    only = client.post("/v1/events", json=[event(id="evt_1", message="c")], headers=auth(keys.both))
    assert only.status_code == 409
    err = only.json()["error"]
    assert err["type"] == "conflict" and err["details"][0]["status"] == "conflict"
    assert store.tree_size(keys.tenant_id) == 2
    assert client.get("/v1/events/evt_1", headers=auth(keys.both)).json()["message"] == "a"


def test_the_documented_workos_request_is_stored_and_its_retry_replayed(
    client: Client, workos: Keys, store: Any
) -> None:
    """WorkOS's Create Event body with its Idempotency-Key: stored as one event, kept as sent (version, metadata,
    location as the IP); the same request again gets the same answer, replayed, and stores nothing."""
    headers = {**auth(workos.both), "Idempotency-Key": IDEMPOTENCY_KEY}
    r = client.post("/v1/events", json=WORKOS_BODY, headers=headers)
    assert r.status_code == 200, r.text
    assert "Idempotent-Replayed" not in r.headers
    (result,) = r.json()["results"]
    assert result["status"] == "stored" and result["seq"] == 0
    stored = client.get(f"/v1/events/{result['id']}", headers=auth(workos.both)).json()
    assert stored["action"] == "user.signed_in" and stored["version"] == 1
    assert stored["actor"]["metadata"] == {"role": "admin"} and stored["context"]["ip"] == "123.123.123.123"
    assert stored["targets"][1]["metadata"] == {"owner": "user_01GBTCQ2"} and stored["metadata"] == {
        "extra": "data"
    }
    again = client.post("/v1/events", json=WORKOS_BODY, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == r.content
    assert store.tree_size(workos.tenant_id) == 1


def test_an_idempotency_key_with_another_body_is_refused(client: Client, workos: Keys, store: Any) -> None:
    """The same key with a different body is a 422 that says why, and stores nothing; keys are per tenant."""
    headers = {**auth(workos.both), "Idempotency-Key": IDEMPOTENCY_KEY}
    assert client.post("/v1/events", json=WORKOS_BODY, headers=headers).status_code == 200
    changed = copy.deepcopy(WORKOS_BODY)
    changed["event"]["metadata"]["extra"] = "other"
    r = client.post("/v1/events", json=changed, headers=headers)
    assert r.status_code == 422
    assert (
        r.json()["error"]["type"] == "idempotency_key_reused"
        and "another body" in r.json()["error"]["message"]
    )
    assert store.tree_size(workos.tenant_id) == 1
    elsewhere = {**auth(workos.other_tenant), "Idempotency-Key": IDEMPOTENCY_KEY}
    one = client.post("/v1/events", json=changed["event"], headers=elsewhere)
    assert one.status_code == 200 and one.json()["results"][0]["status"] == "stored"


def test_a_lost_answer_still_lands_on_the_same_events(client: Client, keys: Keys, store: Any) -> None:
    """With an Idempotency-Key, id-less events get ids from key and body: even when the kept answer is gone (the
    window passed, or the server died before keeping it), the retry finds the same events as duplicates."""
    headers = {**auth(keys.both), "Idempotency-Key": "k-123"}
    first = client.post("/v1/events", json=[event(), event("user.logout")], headers=headers).json()
    store.remember_answer(keys.tenant_id, b"x" * 32, b"y" * 32, b"{}", 2**62, 2**62)  # expires every answer
    again = client.post("/v1/events", json=[event(), event("user.logout")], headers=headers)
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert [x["status"] for x in again.json()["results"]] == ["duplicate", "duplicate"]
    assert [x["seq"] for x in again.json()["results"]] == [x["seq"] for x in first["results"]]
    assert store.tree_size(keys.tenant_id) == 2


def test_a_workos_body_for_another_organization_is_refused(client: Client, keys: Keys, store: Any) -> None:
    """organization_id must name the key's tenant (slug or name): an event meant for another customer never lands
    in this one; the tenant's slug is taken too."""
    r = client.post("/v1/events", json=WORKOS_BODY, headers=auth(keys.both))
    assert r.status_code == 403 and "organization_id" in r.json()["error"]["message"]
    assert store.tree_size(keys.tenant_id) == 0
    mine = {**WORKOS_BODY, "organization_id": "acme"}
    assert client.post("/v1/events", json=mine, headers=auth(keys.both)).status_code == 200


def test_a_bad_idempotency_key_is_400(client: Client, keys: Keys) -> None:
    """An Idempotency-Key with spaces or over 255 characters is refused before any work."""
    for bad in ("two words", "x" * 256):
        r = client.post("/v1/events", json=[event()], headers={**auth(keys.both), "Idempotency-Key": bad})
        assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]["message"]


def test_nested_metadata_is_refused_naming_the_key(client: Client, keys: Keys) -> None:
    """metadata.plan is named, not metadata[...]."""
    r = client.post("/v1/events", json=[event(metadata={"plan": {"tier": "gold"}})], headers=auth(keys.both))
    assert r.status_code == 422
    (err,) = r.json()["error"]["details"][0]["errors"]
    assert err["field"] == "metadata.plan" and "flat map" in err["message"]


def test_an_event_from_2099_is_refused_and_received_at_is_the_servers(client: Client, keys: Keys) -> None:
    """occurred_at beyond max_clock_skew is rejected per event; the others are stored with the server's time."""
    r = client.post(
        "/v1/events",
        json=[event(occurred_at="2099-01-01T00:00:00Z"), event(occurred_at="2001-01-01T00:00:00Z")],
        headers=auth(keys.both),
    )
    assert r.status_code == 200
    future, old = r.json()["results"]
    assert future["status"] == "rejected" and future["errors"][0]["field"] == "occurred_at"
    assert "max_clock_skew" in future["errors"][0]["message"]
    got = client.get(f"/v1/events/{old['id']}", headers=auth(keys.both)).json()
    assert got["occurred_at"] == "2001-01-01T00:00:00.000000Z" and got["received_at"] > "2025"


@pytest.mark.settings(max_clock_skew="0")
def test_the_skew_bound_can_be_turned_off(settings: Settings, store: Any, keys: Keys) -> None:
    """max_clock_skew=0: no bound (an operator who imports planned events)."""
    with TestClient(app=create_app(settings, store)) as c:
        r = c.post("/v1/events", json=[event(occurred_at="2099-01-01T00:00:00Z")], headers=auth(keys.both))
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "stored"
