"""The proof, checkpoint and export routes: status codes, bodies, scopes, and what a client can check with
``vigil.verifier`` using the served key."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.auth import create_key
from vigil.ids import uuid7
from vigil.ledger.checkpoints import load_signer
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.verifier import verify_bundle, verify_checkpoint, verify_consistency, verify_inclusion
from vigil.web import create_app

Client = TestClient[Any]
TEXT = "text/plain; charset=utf-8"


def admin_key(store: Store, tenant: str = "acme") -> str:
    return create_key(store, store.get_tenant(tenant), frozenset({"admin", "read", "ingest"}))[1]


def ingest(client: Client, key: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    r = client.post(
        "/v1/events", json=[event(message=f"event {start + i}") for i in range(count)], headers=auth(key)
    )
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def served_key(client: Client) -> str:
    return client.get("/v1/checkpoints/key").text.strip()


def assert_error(r: Any, status: int, kind: str) -> None:
    """The one error shape: {"error": {"type", "message", "details"?}} with the given status and type."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"type", "message"} <= set(body["error"]) <= {
        "type",
        "message",
        "details",
    }
    assert body["error"]["type"] == kind and isinstance(body["error"]["message"], str)


def test_no_checkpoint_yet_is_404(client: Client, keys: Keys) -> None:
    """Before any checkpoint, latest and at-size answer 404 in the error shape."""
    assert_error(client.get("/v1/checkpoints/latest", headers=auth(keys.read)), 404, "not_found")
    ingest(client, keys.both, 3)
    assert_error(client.get("/v1/checkpoints/latest", headers=auth(keys.read)), 404, "not_found")
    assert_error(client.get("/v1/checkpoints?size=3", headers=auth(keys.read)), 404, "not_found")


def test_post_checkpoint_needs_admin_and_signs_the_log(client: Client, store: Store, keys: Keys) -> None:
    """POST /v1/checkpoints is 401 without a key, 403 without admin, 400 on an empty log, else 201 with a note the
    served key verifies; latest and at-size then serve the same note."""
    admin = admin_key(store)
    assert_error(client.post("/v1/checkpoints"), 401, "unauthorized")
    for key in (keys.read, keys.ingest, keys.both):
        assert_error(client.post("/v1/checkpoints", headers=auth(key)), 403, "forbidden")
    assert_error(client.post("/v1/checkpoints", headers=auth(admin)), 400, "invalid_request")
    ingest(client, keys.both, 5)
    r = client.post("/v1/checkpoints", headers=auth(admin))
    assert r.status_code == 201 and r.headers["content-type"] == TEXT
    cp = verify_checkpoint(r.text, served_key(client), origin="vigil/acme")
    assert cp.size == 5
    for url in ("/v1/checkpoints/latest", "/v1/checkpoints?size=5"):
        got = client.get(url, headers=auth(keys.read))
        assert (got.status_code, got.headers["content-type"], got.text) == (200, TEXT, r.text)
    again = client.post("/v1/checkpoints", headers=auth(admin))
    assert again.text == r.text  # the log did not grow: the same checkpoint
    assert store.checkpoints(keys.tenant_id)[-1].size == 5 and len(store.checkpoints(keys.tenant_id)) == 1


def test_key_route_needs_no_auth_and_checks_checkpoints(
    client: Client, store: Store, keys: Keys, settings: Settings
) -> None:
    """GET /v1/checkpoints/key answers without a key, with the signer's vkey, which verifies served notes."""
    r = client.get("/v1/checkpoints/key")
    assert (r.status_code, r.headers["content-type"]) == (200, TEXT)
    assert r.text == load_signer(settings, create=False).vkey + "\n"
    assert r.text.startswith("vigil+")
    ingest(client, keys.both, 2)
    note = client.post("/v1/checkpoints", headers=auth(admin_key(store))).text
    assert verify_checkpoint(note, r.text.strip()).size == 2


def test_inclusion_proof_verifies_against_the_newest_checkpoint(
    client: Client, store: Store, keys: Keys
) -> None:
    """An event's proof defaults to the newest checkpoint covering it and verifies against its signed root; an
    event newer than every checkpoint is proved at the current size, with no note."""
    admin = admin_key(store)
    results = ingest(client, keys.both, 9)
    note = client.post("/v1/checkpoints", headers=auth(admin)).text
    cp = verify_checkpoint(note, served_key(client))
    newer = ingest(client, keys.both, 3, start=9)
    for res in results:
        r = client.get(f"/v1/events/{res['id']}/proof", headers=auth(keys.read))
        assert r.status_code == 200
        p = r.json()
        assert set(p) == {"leaf_index", "tree_size", "leaf_hash", "root_hash", "audit_path", "checkpoint"}
        assert (p["leaf_index"], p["tree_size"], p["checkpoint"]) == (res["seq"], 9, note)
        assert p["leaf_hash"] == res["leaf_hash"] and bytes.fromhex(p["root_hash"]) == cp.root
        verify_inclusion(
            bytes.fromhex(res["leaf_hash"]),
            res["seq"],
            9,
            [bytes.fromhex(h) for h in p["audit_path"]],
            cp.root,
        )
    p = client.get(f"/v1/events/{newer[0]['id']}/proof", headers=auth(keys.read)).json()
    assert (p["leaf_index"], p["tree_size"], p["checkpoint"]) == (9, 12, None)
    p = client.get(f"/v1/events/{results[2]['id']}/proof?tree_size=3", headers=auth(keys.read)).json()
    assert (p["leaf_index"], p["tree_size"], p["checkpoint"]) == (2, 3, None)
    verify_inclusion(
        bytes.fromhex(p["leaf_hash"]),
        2,
        3,
        [bytes.fromhex(h) for h in p["audit_path"]],
        bytes.fromhex(p["root_hash"]),
    )


def test_consistency_proof_links_two_checkpoints(client: Client, store: Store, keys: Keys) -> None:
    """The consistency route proves the newest checkpoint extends an older one; second defaults to the newest."""
    admin = admin_key(store)
    ingest(client, keys.both, 6)
    old = verify_checkpoint(client.post("/v1/checkpoints", headers=auth(admin)).text, served_key(client))
    ingest(client, keys.both, 11, start=6)
    new = verify_checkpoint(client.post("/v1/checkpoints", headers=auth(admin)).text, served_key(client))
    r = client.get("/v1/checkpoints/consistency?first=6", headers=auth(keys.read))
    assert r.status_code == 200
    c = r.json()
    assert set(c) == {"first", "second", "first_root", "second_root", "proof"}
    assert (c["first"], c["second"]) == (6, 17)
    assert (bytes.fromhex(c["first_root"]), bytes.fromhex(c["second_root"])) == (old.root, new.root)
    verify_consistency(6, 17, [bytes.fromhex(h) for h in c["proof"]], old.root, new.root)
    same = client.get("/v1/checkpoints/consistency?first=17&second=17", headers=auth(keys.read)).json()
    assert same["proof"] == []


@pytest.mark.parametrize(
    "url",
    [
        "/v1/events/{id}/proof?tree_size=0",
        "/v1/events/{id}/proof?tree_size=-1",
        "/v1/events/{id}/proof?tree_size=abc",
        "/v1/events/{id}/proof?tree_size=2",  # not more than the event's seq (2)
        "/v1/events/{id}/proof?tree_size=6",  # beyond the log's size (5)
        "/v1/checkpoints/consistency",
        "/v1/checkpoints/consistency?first=0&second=5",
        "/v1/checkpoints/consistency?first=4&second=3",
        "/v1/checkpoints/consistency?first=2&second=6",
        "/v1/checkpoints/consistency?first=6",
        "/v1/checkpoints/consistency?first=x",
        "/v1/checkpoints",
        "/v1/checkpoints?size=0",
        "/v1/checkpoints?size=big",
        "/v1/export?from_seq=-1",
        "/v1/export?to_seq=0",
        "/v1/export?from_seq=3&to_seq=3",
        "/v1/export?from_seq=4&to_seq=2",
        "/v1/export?to_seq=6",
        "/v1/export?format=ndjson&from_seq=5",
        "/v1/export?format=xml",
    ],
)
def test_bad_sizes_are_400_in_the_one_error_shape(client: Client, keys: Keys, url: str) -> None:
    """Sizes and ranges outside the log, or not numbers, are 400 with the one error body."""
    results = ingest(client, keys.both, 5)
    r = client.get(url.format(id=results[2]["id"]), headers=auth(keys.read))
    assert_error(r, 400, "invalid_request")


def test_unknown_event_is_404(client: Client, keys: Keys) -> None:
    """A proof of an id not in the caller's log (never stored, malformed, or another tenant's) is 404."""
    theirs = ingest(client, keys.other_tenant, 1)[0]["id"]
    ingest(client, keys.both, 1)
    for event_id in (str(uuid7()), "not-a-uuid", theirs):
        assert_error(client.get(f"/v1/events/{event_id}/proof", headers=auth(keys.read)), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/events/{id}/proof"),
        ("GET", "/v1/checkpoints/consistency?first=1"),
        ("GET", "/v1/checkpoints/latest"),
        ("GET", "/v1/checkpoints?size=1"),
        ("POST", "/v1/checkpoints"),
        ("GET", "/v1/export"),
        ("GET", "/v1/export?format=ndjson"),
    ],
)
def test_wrong_scope_is_403_and_no_key_401(client: Client, keys: Keys, method: str, url: str) -> None:
    """An ingest-only key is 403 on every proof, checkpoint and export route; no key is 401."""
    event_id = ingest(client, keys.ingest, 1)[0]["id"]
    url = url.format(id=event_id)
    assert_error(client.request(method, url, headers=auth(keys.ingest)), 403, "forbidden")
    assert_error(client.request(method, url), 401, "unauthorized")


def test_tenants_see_only_their_own_checkpoints(client: Client, store: Store, keys: Keys) -> None:
    """Another tenant's key never reaches acme's checkpoints or proofs."""
    ingest(client, keys.both, 4)
    client.post("/v1/checkpoints", headers=auth(admin_key(store)))
    assert_error(client.get("/v1/checkpoints/latest", headers=auth(keys.other_tenant)), 404, "not_found")
    assert_error(client.get("/v1/checkpoints?size=4", headers=auth(keys.other_tenant)), 404, "not_found")
    r = client.get("/v1/checkpoints/consistency?first=1&second=4", headers=auth(keys.other_tenant))
    assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize(("first", "end"), [(None, None), (0, 1), (3, 17), (16, 40)])
def test_exported_bundle_verifies_with_the_served_key(
    client: Client, store: Store, keys: Keys, first: int | None, end: int | None
) -> None:
    """A bundle from GET /v1/export verifies offline with vigil.verifier.verify_bundle and the served key."""
    admin = admin_key(store)
    ingest(client, keys.both, 20)
    client.post("/v1/checkpoints", headers=auth(admin))
    ingest(client, keys.both, 20, start=20)
    query = "" if first is None else f"&from_seq={first}&to_seq={end}"
    r = client.get(f"/v1/export?format=bundle{query}", headers=auth(keys.read))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    lo, hi = (0, 40) if first is None or end is None else (first, end)
    assert r.headers["content-disposition"] == f'attachment; filename="acme-{lo}-{hi}.zip"'
    report = verify_bundle(r.content, served_key(client))
    assert (report.tenant, report.first_seq, report.end_seq) == ("acme", lo, hi)
    # proved against the newest checkpoint when it covers the range, else against one signed for the export
    size = 20 if hi <= 20 else 40
    assert (report.tree_size, report.first_checkpoint_size, report.key_from_bundle) == (size, 20, False)


def test_ndjson_export_lines_are_the_canonical_bytes_with_seq_and_leaf_hash(
    client: Client, store: Store, keys: Keys
) -> None:
    """Each NDJSON line is the stored event with its seq and leaf hash; without those two keys, canonicalised
    (RFC 8785, by an independent implementation), it is the leaf's bytes, whose hash ingest answered."""
    import json

    import rfc8785

    results = ingest(client, keys.both, 12)
    stored = [body for _, _, body in store.read_range(keys.tenant_id, 0, 12)]
    r = client.get("/v1/export?format=ndjson", headers=auth(keys.read))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.content.split(b"\n")[:-1]]
    assert [line["seq"] for line in lines] == list(range(12))
    assert [line["leaf_hash"] for line in lines] == [res["leaf_hash"] for res in results]
    leaves = [
        rfc8785.dumps({k: v for k, v in line.items() if k not in ("seq", "leaf_hash")}) for line in lines
    ]
    assert leaves == stored
    hashes = [hashlib.sha256(b"\x00" + leaf).hexdigest() for leaf in leaves]
    assert hashes == [res["leaf_hash"] for res in results]
    part = client.get("/v1/export?format=ndjson&from_seq=4&to_seq=7", headers=auth(keys.read))
    assert [json.loads(line)["seq"] for line in part.content.splitlines()] == [4, 5, 6]


def test_checkpoints_appear_on_schedule(settings: Settings) -> None:
    """With checkpoint_interval 1, a signed checkpoint of the new events appears without being asked for."""
    scheduled = Settings.load({**settings.values, "checkpoint_interval": 1}, environ={})
    store = open_store(scheduled.database, scheduled)
    store.create_tenant("acme")
    try:
        with TestClient(app=create_app(scheduled, store)) as client:
            key = admin_key(store)
            ingest(client, key, 7)
            deadline = time.monotonic() + 15
            r = client.get("/v1/checkpoints/latest", headers=auth(key))
            while r.status_code == 404 and time.monotonic() < deadline:
                time.sleep(0.1)
                r = client.get("/v1/checkpoints/latest", headers=auth(key))
            assert r.status_code == 200, r.text
            cp = verify_checkpoint(r.text, served_key(client), origin="vigil/acme")
            assert cp.size == 7
    finally:
        store.close()
