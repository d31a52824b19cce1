"""Every list route pages one way: ``{"data": [...], "next_cursor": ...}`` with ``limit`` and an opaque cursor
bound to the key's tenant, the list and its filters."""

from __future__ import annotations

import time
from typing import Any

import pytest
from litestar.testing import TestClient
from support import auth

from vigil.auth import create_key
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT
from vigil.store.detection import NewAlert

Client = TestClient[Any]


def _alerts(store: Store, tenant_id: int, n: int, severity: str = "P2") -> None:
    now = time.time_ns() // 1000
    store.commit_detection(
        tenant_id,
        [
            NewAlert(
                rule_id="vigil.test",
                title=f"alert {i}",
                severity=severity,
                techniques=(),
                summary="",
                group={"n": str(i)},
                dedup_key=f"test:{severity}:{i}",
                evidence=(),
                first_us=now,
                last_us=now,
                suppress_us=0,
            )
            for i in range(n)
        ],
    )


def _walk(
    client: Client, url: str, key: str, limit: int, cursor: str | None = None
) -> list[list[dict[str, Any]]]:
    """Every page of a list (from ``cursor``), following next_cursor; checks the shape of each."""
    pages = []
    sep = "&" if "?" in url else "?"
    while True:
        r = client.get(
            f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""), headers=auth(key)
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_cursor"}
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["data"]) == limit  # only a full page has a page after it
        assert len(pages) < 100


def test_alerts_page_with_a_cursor_newest_first(client: Client, store: Store) -> None:
    """Seven alerts by three: pages of 3, 3 and 1, each alert once, newest first, the last page without a cursor."""
    acme = store.create_tenant("acme")
    _, sec = create_key(store, acme, frozenset({"security"}))
    _alerts(store, acme.id, 7)
    pages = _walk(client, "/v1/alerts", sec, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [a["id"] for p in pages for a in p]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    exact = _walk(client, "/v1/alerts", sec, 7)  # a full last page: no empty page after it
    assert [len(p) for p in exact] == [7]


def test_an_alert_cursor_is_bound_to_its_tenant_and_filters(client: Client, store: Store) -> None:
    """Another tenant's key, other filters, a forged or truncated cursor, or the old ?before= are all 400."""
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    _, sec = create_key(store, acme, frozenset({"security"}))
    _, other = create_key(store, globex, frozenset({"security"}))
    _alerts(store, acme.id, 3)
    _alerts(store, globex.id, 3)
    cursor = client.get("/v1/alerts?limit=1", headers=auth(sec)).json()["next_cursor"]
    assert cursor
    assert client.get(f"/v1/alerts?limit=1&cursor={cursor}", headers=auth(sec)).status_code == 200
    for url, key in (
        (f"/v1/alerts?cursor={cursor}", other),  # globex's key with acme's cursor
        (f"/v1/alerts?cursor={cursor}&severity=P0", sec),  # the same key, other filters
        (f"/v1/alerts?cursor={cursor[:-4]}", sec),
        ("/v1/alerts?cursor=bm90LWEtY3Vyc29y", sec),
        ("/v1/alerts?before=0192", sec),
    ):
        r = client.get(url, headers=auth(key))
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["type"] == "invalid_request"


def test_a_platform_key_pages_every_tenants_alerts(client: Client, store: Store) -> None:
    """The platform tenant's key walks all tenants' alerts (and one tenant's with ?tenant=) the same way."""
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    _alerts(store, acme.id, 4)
    _alerts(store, globex.id, 3, severity="P1")
    _, ops = create_key(store, store.get_tenant(PLATFORM_TENANT), frozenset({"security"}))
    every = [a for p in _walk(client, "/v1/alerts", ops, 2) for a in p]
    assert sorted(a["tenant"] for a in every) == ["acme"] * 4 + ["globex"] * 3
    only = [a for p in _walk(client, "/v1/alerts?tenant=globex", ops, 2) for a in p]
    assert {a["tenant"] for a in only} == {"globex"} and len(only) == 3


def test_keys_page_without_skipping_or_repeating(client: Client, store: Store) -> None:
    """Keys come a page at a time in creation order; a key created while paging never shifts the pages before it."""
    acme = store.create_tenant("acme")
    _, admin = create_key(store, acme, frozenset({"admin"}), "admin")
    for i in range(4):
        create_key(store, acme, frozenset({"read"}), f"k{i}")
    first = client.get("/v1/keys?limit=2", headers=auth(admin)).json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    create_key(store, acme, frozenset({"read"}), "late")  # sorts after every key already listed
    rest = _walk(client, "/v1/keys", admin, 2, first["next_cursor"])
    names = [k["name"] for k in first["data"]] + [k["name"] for p in rest for k in p]
    assert names == ["admin", "k0", "k1", "k2", "k3", "late"]


def test_a_key_cursor_is_bound_to_its_tenant(client: Client, store: Store) -> None:
    """globex's admin key cannot use a cursor acme's got, and a platform cursor is tied to its ?tenant=."""
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    _, admin = create_key(store, acme, frozenset({"admin"}))
    _, other = create_key(store, globex, frozenset({"admin"}))
    create_key(store, acme, frozenset({"read"}))
    _, root = create_key(store, store.get_tenant(PLATFORM_TENANT), frozenset({"admin"}))
    cursor = client.get("/v1/keys?limit=1", headers=auth(admin)).json()["next_cursor"]
    assert client.get(f"/v1/keys?cursor={cursor}", headers=auth(other)).status_code == 400
    platform = client.get("/v1/keys?limit=1&tenant=acme", headers=auth(root)).json()["next_cursor"]
    assert client.get(f"/v1/keys?cursor={platform}&tenant=acme", headers=auth(root)).status_code == 200
    assert client.get(f"/v1/keys?cursor={platform}", headers=auth(root)).status_code == 400


@pytest.mark.parametrize("url", ["/v1/alerts?limit=0", "/v1/alerts?limit=1001", "/v1/keys?limit=0"])
def test_limits_are_checked_like_the_search(client: Client, store: Store, url: str) -> None:
    """limit is 1 to 1,000 on every list route, as on the search."""
    acme = store.create_tenant("acme")
    _, key = create_key(store, acme, frozenset({"security", "admin"}))
    assert client.get(url, headers=auth(key)).status_code == 400


def test_every_list_route_has_the_one_paging_shape(client: Client) -> None:
    """Read from the served OpenAPI document: a GET whose answer holds a list answers {data, next_cursor} and
    takes limit and cursor, so a list route added later cannot page another way."""
    doc = client.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    lists = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        ok = op["responses"].get("200", {}).get("content", {})
        ref = next((c["schema"].get("$ref") for c in ok.values() if "$ref" in c.get("schema", {})), None)
        if ref is None:
            continue
        name = ref.rsplit("/", 1)[-1]
        props = schemas[name].get("properties", {})
        # a list answers an array of objects and is not itself one object with an id (an event has targets; a
        # proof, an array of hashes)
        arrays = [p for p, s in props.items() if s.get("type") == "array" and "$ref" in s.get("items", {})]
        if not arrays or "id" in props:
            continue
        lists.append(path)
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert arrays == ["data"] and "next_cursor" in props, (path, name, sorted(props))
        assert {"limit", "cursor"} <= params, (path, sorted(params))
    assert {"/v1/events", "/v1/alerts", "/v1/keys"} <= set(lists)
