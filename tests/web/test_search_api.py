"""GET /v1/events and /v1/events/{id}: combined filters, stable cursors, tenant isolation, audited reads."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

Client = TestClient[Any]


def _events() -> list[dict[str, Any]]:
    alice = {"id": "usr_alice", "type": "user", "name": "Alice"}
    bob = {"id": "usr_bob", "type": "user", "name": "Bob"}
    inv = [{"type": "invoice", "id": "inv_1"}]
    return [
        event(
            "user.login",
            actor=alice,
            outcome="success",
            occurred_at="2026-11-01T09:00:00Z",
            message="Alice signed in",
        ),
        event(
            "user.login",
            actor=bob,
            outcome="failure",
            occurred_at="2026-11-01T09:05:00Z",
            message="Bob failed to sign in",
            metadata={"reason_code": "bad_password_typo"},
        ),
        event(
            "invoice.created",
            actor=alice,
            category="change",
            occurred_at="2026-11-02T10:00:00Z",
            targets=inv,
            message="Alice created invoice INV-1",
            metadata={"amount": 1200, "currency": "EUR"},
        ),
        event(
            "invoice.updated",
            actor=bob,
            category="change",
            occurred_at="2026-11-03T11:00:00Z",
            targets=inv,
            changes={"amount": [1200, 1300]},
            message="Bob updated invoice INV-1",
        ),
        event(
            "user.mfa.disabled",
            actor=bob,
            occurred_at="2026-11-04T12:00:00Z",
            targets=[{"type": "user", "id": "usr_bob"}],
            message="Bob disabled MFA",
        ),
        event(
            "report.exported",
            actor=alice,
            category="data_access",
            occurred_at="2026-11-05T13:00:00Z",
            metadata={"record_count": 40, "format": "csv"},
            message="Alice exported the churn report",
        ),
    ]


@pytest.fixture
def filled(client: Client, keys: Keys) -> Keys:
    r = client.post("/v1/events", json=_events(), headers=auth(keys.both))
    assert r.json()["accepted"] == 6
    client.post(
        "/v1/events", json=[event("user.login", message="globex login")], headers=auth(keys.other_tenant)
    )
    return keys


def _actions(client: Client, key: str, query: str) -> list[str]:
    r = client.get(f"/v1/events?{query}", headers=auth(key))
    assert r.status_code == 200, r.text
    return [e["action"] for e in r.json()["data"]]


def test_newest_first_by_default_and_seq_order_on_request(client: Client, filled: Keys) -> None:
    """Default order is most recently logged first; order=seq is log order."""
    newest = _actions(client, filled.read, "")
    assert newest[0] == "report.exported" and newest[-1] == "user.login"
    assert _actions(client, filled.read, "order=seq") == list(reversed(newest))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor_id=usr_bob", ["user.mfa.disabled", "invoice.updated", "user.login"]),
        ("action=user.login", ["user.login", "user.login"]),
        ("action=user.*", ["user.mfa.disabled", "user.login", "user.login"]),
        ("action=invoice.*&actor_id=usr_alice", ["invoice.created"]),
        ("target_type=invoice&target_id=inv_1", ["invoice.updated", "invoice.created"]),
        ("target_type=user", ["user.mfa.disabled"]),
        ("outcome=failure", ["user.login"]),
        ("category=change", ["invoice.updated", "invoice.created"]),
        ("since=2026-11-02T00:00:00Z&until=2026-11-04T00:00:00Z", ["invoice.updated", "invoice.created"]),
        ("q=invoice", ["invoice.updated", "invoice.created"]),
        ("q=EUR", ["invoice.created"]),
        ("q=churn report", ["report.exported"]),
        ("q=bad_password_typo", ["user.login"]),
        ("q=csv&actor_id=usr_bob", []),
        ("target_id=inv_1", ["invoice.updated", "invoice.created"]),
        ("category=change&outcome=success&actor_id=usr_bob&since=2026-11-03T00:00:00Z", ["invoice.updated"]),
    ],
)
def test_filters_combine(client: Client, filled: Keys, query: str, expected: list[str]) -> None:
    """Each filter narrows the result, and filters combine with AND."""
    assert _actions(client, filled.read, query) == expected


def test_read_key_sees_only_its_tenant(client: Client, filled: Keys) -> None:
    """Another tenant's key sees its own event only, whatever the query says."""
    assert _actions(client, filled.other_tenant, "") == ["user.login"]
    assert _actions(client, filled.other_tenant, "actor_id=usr_bob") == []
    acme_id = client.get("/v1/events?limit=1", headers=auth(filled.read)).json()["data"][0]["id"]
    r = client.get(f"/v1/events/{acme_id}", headers=auth(filled.other_tenant))
    assert r.status_code == 404


def test_cursor_pages_are_stable_while_new_events_arrive(client: Client, filled: Keys) -> None:
    """Paging through a snapshot yields every event once, even when events arrive between pages."""
    seen: list[int] = []
    r = client.get("/v1/events?limit=2", headers=auth(filled.read)).json()
    seen += [e["seq"] for e in r["data"]]
    while r["next_cursor"]:
        client.post("/v1/events", json=[event("user.logout")], headers=auth(filled.both))
        r = client.get(f"/v1/events?limit=2&cursor={r['next_cursor']}", headers=auth(filled.read)).json()
        seen += [e["seq"] for e in r["data"]]
    assert seen == [5, 4, 3, 2, 1, 0]


def test_cursor_in_seq_order(client: Client, filled: Keys) -> None:
    """order=seq pages forward through the log."""
    r = client.get("/v1/events?order=seq&limit=4", headers=auth(filled.read)).json()
    r2 = client.get(
        f"/v1/events?order=seq&limit=4&cursor={r['next_cursor']}", headers=auth(filled.read)
    ).json()
    assert [e["seq"] for e in r["data"] + r2["data"]] == [0, 1, 2, 3, 4, 5]
    assert r2["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "cursor=garbage",
        "limit=0",
        "limit=5000",
        "outcome=maybe",
        "since=yesterday",
        "action=user*",
        "since=2026-11-01T00:00:00",
    ],
)
def test_bad_query_is_400_in_the_error_shape(client: Client, filled: Keys, query: str) -> None:
    """Bad parameters answer 400 with the one error body."""
    r = client.get(f"/v1/events?{query}", headers=auth(filled.read))
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) >= {"type", "message"}


def test_cursor_of_another_tenant_is_refused(client: Client, filled: Keys) -> None:
    """A cursor is bound to the tenant that got it."""
    r = client.get("/v1/events?limit=1", headers=auth(filled.read)).json()
    bad = client.get(f"/v1/events?cursor={r['next_cursor']}", headers=auth(filled.other_tenant))
    assert bad.status_code == 400


def test_get_event_by_id(client: Client, filled: Keys) -> None:
    """GET /v1/events/{id} returns the stored event with seq and leaf hash; unknown ids are 404."""
    first = client.get("/v1/events?order=seq&limit=1", headers=auth(filled.read)).json()["data"][0]
    got = client.get(f"/v1/events/{first['id']}", headers=auth(filled.read)).json()
    assert got == first
    assert got["actor"] == {"id": "usr_alice", "type": "user", "name": "Alice"}
    r = client.get("/v1/events/not-a-uuid", headers=auth(filled.read))
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_every_read_is_recorded_in_the_platform_log(client: Client, filled: Keys, store: Any) -> None:
    """Searches and event reads leave an audit_log.* event in the platform's own log."""
    import time

    from vigil.store.base import PLATFORM_TENANT, SearchQuery

    platform = store.get_tenant(PLATFORM_TENANT).id
    client.get("/v1/events?action=user.login", headers=auth(filled.read))
    for _ in range(100):
        page = store.search(platform, SearchQuery(action="audit_log.searched"))
        if page.events:
            break
        time.sleep(0.02)
    import json

    body = json.loads(page.events[0][2])
    assert body["actor"]["type"] == "api_key"
    assert body["targets"] == [{"type": "tenant", "id": "acme"}]
    assert body["metadata"]["action"] == "user.login"


def test_entity_history_answers_who_changed_it_and_when(client: Client, filled: Keys) -> None:
    """GET /v1/entities/{type}/{id}/history lists the events naming that entity, newest first, with paging."""
    r = client.get("/v1/entities/invoice/inv_1/history?limit=1", headers=auth(filled.read))
    assert r.status_code == 200
    first = r.json()
    assert [e["action"] for e in first["data"]] == ["invoice.updated"]
    assert first["data"][0]["actor"]["id"] == "usr_bob" and first["data"][0]["changes"] == {
        "amount": [1200, 1300]
    }
    r2 = client.get(
        f"/v1/entities/invoice/inv_1/history?cursor={first['next_cursor']}", headers=auth(filled.read)
    )
    assert [e["action"] for e in r2.json()["data"]] == ["invoice.created"]
    other = client.get("/v1/entities/invoice/inv_1/history", headers=auth(filled.other_tenant))
    assert other.json()["data"] == []


def _seqs(client: Client, key: str, query: str) -> list[int]:
    r = client.get(f"/v1/events?{query}", headers=auth(key))
    assert r.status_code == 200, r.text
    return [e["seq"] for e in r.json()["data"]]


def test_newest_is_occurred_time_so_a_backfilled_event_sorts_by_when_it_happened(
    client: Client, filled: Keys
) -> None:
    """An event sent late (occurred 2026-11-01T09:02, logged last) sorts between the two sign-ins of that
    morning in newest order, and last in seq order; paging newest with a cursor keeps that order."""
    late = event("user.password.changed", occurred_at="2026-11-01T09:02:00Z", message="backfilled")
    assert client.post("/v1/events", json=[late], headers=auth(filled.both)).status_code == 200
    assert _seqs(client, filled.read, "") == [5, 4, 3, 2, 1, 6, 0]
    assert _seqs(client, filled.read, "order=seq") == [0, 1, 2, 3, 4, 5, 6]
    assert _seqs(client, filled.read, "since=2026-11-01&until=2026-11-02") == [1, 6, 0]
    seen: list[int] = []
    r = client.get("/v1/events?limit=3", headers=auth(filled.read)).json()
    seen += [e["seq"] for e in r["data"]]
    while r["next_cursor"]:
        r = client.get(f"/v1/events?limit=3&cursor={r['next_cursor']}", headers=auth(filled.read)).json()
        seen += [e["seq"] for e in r["data"]]
    assert seen == [5, 4, 3, 2, 1, 6, 0]


def test_search_by_ip_and_cidr_block(client: Client, keys: Keys) -> None:
    """ip= takes an IPv4 or IPv6 address or CIDR block and matches context.ip; a bad one is a 400 naming it."""
    ips = ["203.0.113.7", "203.0.113.99", "198.51.100.20", "2001:db8::7", "2001:db8:1::7"]
    batch = [event(context={"ip": ip}) for ip in ips]
    assert client.post("/v1/events", json=batch, headers=auth(keys.both)).json()["accepted"] == 5
    assert _seqs(client, keys.read, "ip=203.0.113.7") == [0]
    assert _seqs(client, keys.read, "ip=203.0.113.0/24&order=seq") == [0, 1]
    assert _seqs(client, keys.read, "ip=2001:db8::/48&order=seq") == [3]
    assert _seqs(client, keys.read, "ip=2001:db8::/32&order=seq") == [3, 4]
    assert _seqs(client, keys.read, "ip=10.0.0.0/8") == []
    r = client.get("/v1/events?ip=203.0.113.300", headers=auth(keys.read))
    assert r.status_code == 400 and "ip '203.0.113.300'" in r.json()["error"]["message"]


def test_search_by_actor_name_and_email_ignores_case(client: Client, keys: Keys) -> None:
    """actor_name and actor_email match exactly but whatever the case; q= does not look at them."""
    batch = [
        event(actor={"id": "u1", "name": "Zoë Becker", "email": "Zoe.Becker@acme.example"}),
        event(actor={"id": "u2", "name": "Zoë Beck", "email": "zoe.beck@acme.example"}),
    ]
    client.post("/v1/events", json=batch, headers=auth(keys.both))
    assert _seqs(client, keys.read, "actor_email=ZOE.BECKER@ACME.EXAMPLE") == [0]
    assert _seqs(client, keys.read, "actor_name=zoë%20beck") == [1]
    assert _seqs(client, keys.read, "actor_name=zo") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=2026-11-04", ["report.exported", "user.mfa.disabled"]),
        ("until=2026-11-02", ["user.login", "user.login"]),
        ("since=2026-11-04T12:00:00%2B00:00", ["report.exported", "user.mfa.disabled"]),
        (
            "since=36500d",
            [
                "report.exported",
                "user.mfa.disabled",
                "invoice.updated",
                "invoice.created",
                *["user.login"] * 2,
            ],
        ),
        ("since=1h", []),
    ],
)
def test_since_and_until_take_dates_and_durations(
    client: Client, filled: Keys, query: str, expected: list[str]
) -> None:
    """since/until take RFC 3339, a bare date (midnight UTC) and a duration ago, as the CLI does."""
    assert _actions(client, filled.read, query) == expected


def test_since_after_until_and_zoneless_times_are_400s_that_say_why(client: Client, filled: Keys) -> None:
    """A time without a zone, or a range that ends before it starts, is refused with the reason."""
    r = client.get("/v1/events?since=2026-11-01T00:00:00", headers=auth(filled.read))
    assert r.status_code == 400 and "has no zone" in r.json()["error"]["message"]
    r = client.get("/v1/events?since=2026-11-05&until=2026-11-01", headers=auth(filled.read))
    assert r.status_code == 400 and "must be before until" in r.json()["error"]["message"]
