"""Keys that can be killed: revoke and rotate through the admin API and the CLI, seen by every process within a
second; tenants manage only their own keys; every change is in the platform log; failed authentication is
limited per source address."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support import auth, event

from vigil.auth import create_key
from vigil.cli import main
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import PLATFORM_TENANT, SearchQuery
from vigil.web import create_app

Client = TestClient[Any]


@pytest.fixture
def acme(store: Store) -> dict[str, str]:
    """Tenant acme with an admin key and a working ingest,read key; globex with its own admin key."""
    t = store.create_tenant("acme")
    g = store.create_tenant("globex")
    work, work_text = create_key(store, t, frozenset({"ingest", "read"}), "worker")
    _, admin = create_key(store, t, frozenset({"admin"}), "acme-admin")
    _, other_admin = create_key(store, g, frozenset({"admin"}), "globex-admin")
    _, other_work = create_key(store, g, frozenset({"ingest", "read"}), "globex-worker")
    return {
        "id": work.key_id,
        "key": work_text,
        "admin": admin,
        "other_admin": other_admin,
        "other_key": other_work,
    }


@pytest.fixture
def second(settings: Settings) -> Iterator[Client]:
    """A second app instance with its own store on the same database: another server process, in effect."""
    store = open_store(settings.database, settings)
    try:
        with TestClient(app=create_app(settings, store)) as c:
            yield c
    finally:
        store.close()


def _search_ok(client: Client, key: str) -> int:
    return client.get("/v1/events", headers=auth(key)).status_code


def _platform_events(store: Store, action: str) -> list[dict[str, Any]]:
    platform = store.get_tenant(PLATFORM_TENANT)
    page = store.search(platform.id, SearchQuery(action=action, limit=100))
    return [json.loads(body) for _, _, body in page.events]


def test_revoked_key_is_refused_by_every_process_within_a_second(
    client: Client, second: Client, acme: dict[str, str]
) -> None:
    """Revoked through one app instance: that instance refuses the key on the next request, a second instance
    on the same database within a second (the cache used to trust a record for 30 s)."""
    assert _search_ok(client, acme["key"]) == 200
    assert _search_ok(second, acme["key"]) == 200  # now cached in the second instance too
    r = client.post(f"/v1/keys/{acme['id']}/revoke", headers=auth(acme["admin"]))
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] is True and r.json()["revoked_at"]
    revoked_at = r.json()["revoked_at"]
    assert _search_ok(client, acme["key"]) == 401
    time.sleep(1.05)
    r = second.get("/v1/events", headers=auth(acme["key"]))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    again = client.post(f"/v1/keys/{acme['id']}/revoke", headers=auth(acme["admin"]))
    assert (
        again.status_code == 200 and again.json()["revoked_at"] == revoked_at
    )  # revoking twice changes nothing


def test_cli_revocation_reaches_a_running_server(
    client: Client, settings: Settings, acme: dict[str, str]
) -> None:
    """`vigil keys revoke ID` in another process: the running app refuses the key within a second."""
    assert _search_ok(client, acme["key"]) == 200
    result = CliRunner().invoke(main, ["keys", "revoke", acme["id"], "--database", settings.database])
    assert result.exit_code == 0, result.output
    time.sleep(1.05)
    assert _search_ok(client, acme["key"]) == 401


def test_rotation_keeps_the_old_secret_only_for_the_overlap(
    client: Client, second: Client, acme: dict[str, str]
) -> None:
    """The new secret works at once; the old one until the overlap ends, then it is refused everywhere."""
    r = client.post(f"/v1/keys/{acme['id']}/rotate", headers=auth(acme["admin"]), json={"overlap": "2s"})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith(f"vk_{acme['id']}_") and new != acme["key"]
    assert r.json()["key"]["previous_secret_until"]
    for c in (client, second):
        assert _search_ok(c, new) == 200
        assert _search_ok(c, acme["key"]) == 200
    time.sleep(2.1)
    for c in (client, second):
        assert _search_ok(c, acme["key"]) == 401
        assert _search_ok(c, new) == 200


def test_rotation_without_overlap_refuses_the_old_secret_at_once(
    client: Client, second: Client, acme: dict[str, str]
) -> None:
    """--overlap 0: the old secret stops on the next request here and within a second elsewhere; rotating
    again drops the secret before too; a revoked key cannot be rotated (409)."""
    assert _search_ok(second, acme["key"]) == 200
    r = client.post(f"/v1/keys/{acme['id']}/rotate", headers=auth(acme["admin"]), json={"overlap": "0"})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert _search_ok(client, acme["key"]) == 401
    time.sleep(1.05)
    assert _search_ok(second, acme["key"]) == 401
    assert _search_ok(second, new) == 200
    third = client.post(f"/v1/keys/{acme['id']}/rotate", headers=auth(acme["admin"]), json={"overlap": "1h"})
    newest = third.json()["secret"]
    assert _search_ok(client, new) == 200 and _search_ok(client, newest) == 200
    assert _search_ok(client, acme["key"]) == 401  # only one replaced secret lives on
    client.post(f"/v1/keys/{acme['id']}/revoke", headers=auth(acme["admin"]))
    assert _search_ok(client, newest) == 401 and _search_ok(client, new) == 401
    r = client.post(f"/v1/keys/{acme['id']}/rotate", headers=auth(acme["admin"]))
    assert r.status_code == 409 and "revoked" in r.json()["error"]["message"]


def test_a_tenant_admin_cannot_touch_another_tenants_keys(client: Client, acme: dict[str, str]) -> None:
    """Attacker: globex's admin key lists, revokes and rotates acme's keys. It sees only globex's, gets the
    same 404 as for a key that does not exist, and acme's key keeps working."""
    mine = client.get("/v1/keys", headers=auth(acme["other_admin"]))
    assert mine.status_code == 200
    assert {k["tenant"] for k in mine.json()["data"]} == {"globex"}
    assert client.get("/v1/keys?tenant=acme", headers=auth(acme["other_admin"])).status_code == 403
    for verb in ("revoke", "rotate"):
        r = client.post(f"/v1/keys/{acme['id']}/{verb}", headers=auth(acme["other_admin"]))
        missing = client.post(f"/v1/keys/0123456789abcdef/{verb}", headers=auth(acme["other_admin"]))
        assert r.status_code == missing.status_code == 404
        assert r.json()["error"]["message"] == missing.json()["error"]["message"].replace(
            "0123456789abcdef", acme["id"]
        )
    r = client.post(
        "/v1/keys", headers=auth(acme["other_admin"]), json={"scopes": ["read"], "tenant": "acme"}
    )
    assert r.status_code == 403
    # without the admin scope, even a tenant's own keys are out of reach
    assert client.post(f"/v1/keys/{acme['id']}/revoke", headers=auth(acme["key"])).status_code == 403
    assert client.get("/v1/keys", headers=auth(acme["key"])).status_code == 403
    assert _search_ok(client, acme["key"]) == 200


def test_platform_admin_manages_every_tenant(client: Client, store: Store, acme: dict[str, str]) -> None:
    """An admin key of the platform tenant lists every tenant's keys and can revoke acme's."""
    _, root = create_key(store, store.get_tenant(PLATFORM_TENANT), frozenset({"admin"}), "root")
    listed = client.get("/v1/keys", headers=auth(root)).json()["data"]
    assert {"acme", "globex"} <= {k["tenant"] for k in listed}
    only = client.get("/v1/keys?tenant=acme", headers=auth(root)).json()["data"]
    assert {k["tenant"] for k in only} == {"acme"}
    assert client.post(f"/v1/keys/{acme['id']}/revoke", headers=auth(root)).status_code == 200
    assert _search_ok(client, acme["key"]) == 401


def test_every_key_change_is_in_the_platform_log(
    client: Client, store: Store, settings: Settings, acme: dict[str, str]
) -> None:
    """Create, rotate and revoke, by API and by CLI, each leave an event in the platform log naming the key
    and who changed it; never the secret."""
    created = client.post("/v1/keys", headers=auth(acme["admin"]), json={"scopes": ["ingest"], "name": "ci"})
    assert created.status_code == 201, created.text
    new_id, secret = created.json()["key"]["key_id"], created.json()["secret"]
    assert client.post("/v1/events", headers=auth(secret), json=[event()]).status_code == 200
    client.post(f"/v1/keys/{new_id}/rotate", headers=auth(acme["admin"]), json={"overlap": "1h"})
    client.post(f"/v1/keys/{new_id}/revoke", headers=auth(acme["admin"]))
    cli = CliRunner().invoke(main, ["keys", "revoke", acme["id"], "--database", settings.database])
    assert cli.exit_code == 0, cli.output
    admin_id = acme["admin"].split("_")[1]
    for action in ("api_key.created", "api_key.rotated", "api_key.revoked"):
        events = _platform_events(store, action)
        mine = [e for e in events if {"type": "api_key", "id": new_id, "name": "ci"} in e["targets"]]
        assert len(mine) == 1, (action, events)
        assert mine[0]["actor"]["id"] == admin_id and mine[0]["actor"]["type"] == "api_key"
        assert mine[0]["category"] == "audit" and mine[0]["metadata"]["tenant"] == "acme"
    by_cli = [e for e in _platform_events(store, "api_key.revoked") if e["targets"][0]["id"] == acme["id"]]
    assert len(by_cli) == 1 and by_cli[0]["actor"]["type"] == "operator"
    platform = store.get_tenant(PLATFORM_TENANT)
    bodies = b"".join(body for _, _, body in store.read_range(platform.id, 0, store.tree_size(platform.id)))
    assert secret.split("_")[2].encode() not in bodies


def test_last_used_is_written_at_most_once_a_minute(
    client: Client, store: Store, acme: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty requests with one key note one use; the flush writes it once, and `keys list` shows it."""
    writes: list[dict[str, str]] = []
    real = store.touch_keys
    monkeypatch.setattr(store, "touch_keys", lambda used: (writes.append(dict(used)), real(used))[1])
    ring = client.app.state["vigil"].keyring
    for _ in range(50):
        assert _search_ok(client, acme["key"]) == 200
    assert ring.flush() == 1
    for _ in range(50):
        assert _search_ok(client, acme["key"]) == 200
    assert ring.flush() == 0
    assert [list(w) for w in writes] == [[acme["id"]]]
    listed = client.get("/v1/keys", headers=auth(acme["admin"])).json()["data"]
    used = {k["key_id"]: k["last_used_at"] for k in listed}
    assert used[acme["id"]] is not None and used[acme["id"]].startswith(
        time.strftime("%Y-%m-%d", time.gmtime())
    )


def test_failed_authentication_is_limited_per_address(
    settings: Settings, store: Store, acme: dict[str, str]
) -> None:
    """After auth_failure_limit wrong keys the address gets 429 with Retry-After, whatever key it sends; a key
    it already used successfully keeps working (no store read for it), so a flood cannot lock out a client."""
    limited = Settings.load(
        {**settings.values, "auth_failure_limit": 5, "auth_failure_window": 60}, environ={}
    )
    with TestClient(app=create_app(limited, store)) as c:
        assert _search_ok(c, acme["key"]) == 200
        bogus = "vk_" + "ab" * 8 + "_" + "x" * 43
        assert [_search_ok(c, bogus) for _ in range(5)] == [401] * 5
        r = c.get("/v1/events", headers=auth(bogus))
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["error"]["type"] == "rate_limited"
        wrong_secret = acme["key"][:-4] + "AAAA"
        assert _search_ok(c, wrong_secret) == 429
        assert c.get("/v1/events").status_code == 401  # no key at all costs nothing to refuse: never counted
        assert _search_ok(c, acme["key"]) == 200
