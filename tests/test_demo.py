"""The demo generator: realistic, deterministic trails with attacks planted exactly where it says."""

from __future__ import annotations

import ipaddress
import random
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from vigil import demo

END = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
PER_TENANT = 33_334  # what `vigil demo` asks for: about 100,000 events in all

# DESIGN.md, "Standard actions"; pinned here so the generator cannot drift from the documented catalog.
STANDARD_ACTIONS = {
    "user.login", "user.logout", "user.mfa.challenge", "user.session.revoked",
    "user.created", "user.invited", "user.deleted", "user.locked", "user.password.changed",
    "user.password.reset", "user.mfa.enabled", "user.mfa.disabled", "user.mfa.reset",
    "role.assigned", "role.revoked", "permission.changed", "api_key.created", "api_key.rotated",
    "api_key.revoked",
    "settings.updated", "idp.connection.created", "idp.connection.updated", "idp.connection.deleted",
    "integration.connected", "audit_log.settings.updated", "audit_log.stream.deleted",
    "data.viewed", "data.exported", "report.exported", "customer_data.accessed",
}  # fmt: skip
BUSINESS_OBJECTS = {"invoice", "project", "document"}
EXPECTED = {
    "acme": {"brute_force", "success_after_failures", "api_key_new_network", "bulk_export"},
    "globex": {"password_spraying", "impossible_travel", "admin_role_granted", "audit_log_disabled"},
    "initech": {"self_role_grant", "mfa_disabled", "operator_customer_data_access", "new_country"},
}
SECRETISH = ("password", "passwd", "secret", "token", "key", "auth", "credential", "cookie", "session")

Trail = tuple[list[dict[str, Any]], list[demo.AttackPattern]]


@pytest.fixture(scope="module")
def timed_demo() -> tuple[dict[str, Trail], float]:
    """What `vigil demo` generates, and how long that took."""
    started = time.perf_counter()
    trails = {tenant: demo.generate(tenant, PER_TENANT, end=END, seed=42) for tenant in demo.DEMO_TENANTS}
    return trails, time.perf_counter() - started


@pytest.fixture(scope="module")
def trails(timed_demo: tuple[dict[str, Trail], float]) -> dict[str, Trail]:
    return timed_demo[0]


def _ts(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _attack_ids(patterns: list[demo.AttackPattern]) -> set[str]:
    return {i for p in patterns for i in p.event_ids}


def _benign(trail: Trail) -> list[dict[str, Any]]:
    events, patterns = trail
    ids = _attack_ids(patterns)
    return [e for e in events if e["id"] not in ids]


NETWORKS = [(ipaddress.ip_network(net), net) for net in demo.DEMO_GEO]


@cache
def _network(ip: str) -> str:
    """The DEMO_GEO network holding ``ip``."""
    addr = ipaddress.ip_address(ip)
    return next(name for net, name in NETWORKS if addr in net)


def _pattern(trails: dict[str, Trail], name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pattern's events in time order, and the whole trail it sits in."""
    for events, patterns in trails.values():
        for p in patterns:
            if p.name == name:
                ids = set(p.event_ids)
                return [e for e in events if e["id"] in ids], events
    raise AssertionError(f"pattern {name} not planted")


def test_generating_the_full_demo_takes_reasonable_time(
    timed_demo: tuple[dict[str, Trail], float], capsys: pytest.CaptureFixture[str]
) -> None:
    """About 100,000 events for the three demo tenants; the time is printed, never asserted."""
    trails, elapsed = timed_demo
    total = sum(len(events) for events, _ in trails.values())
    with capsys.disabled():
        print(f"\ndemo: {total} events in {elapsed:.2f} s ({total / elapsed:,.0f} events/s)")
    assert total == 3 * PER_TENANT


def test_same_seed_and_end_give_the_same_trail() -> None:
    """Determinism: the seed and the end fix every byte; another seed gives another trail."""
    first = demo.generate("globex", 3000, end=END, seed=7)
    assert first == demo.generate("globex", 3000, end=END, seed=7)
    assert first[0] != demo.generate("globex", 3000, end=END, seed=8)[0]


def test_count_is_what_was_asked(trails: dict[str, Trail]) -> None:
    """Benign traffic fills up to ``count``, so only a few attack events can ever exceed it."""
    for events, _ in trails.values():
        assert len(events) == PER_TENANT
    planted_only, patterns = demo.generate("acme", 0, end=END, seed=3)
    assert len(_attack_ids(patterns)) <= len(planted_only) < 50
    for count in (len(planted_only), 500, 5000):
        assert len(demo.generate("acme", count, end=END, seed=3)[0]) == count


def test_events_are_sorted_and_inside_the_window(trails: dict[str, Trail]) -> None:
    """Oldest first, within the ``days`` before ``end``, and spread over every day of it."""
    for events, _ in trails.values():
        stamps = [e["occurred_at"] for e in events]
        assert stamps == sorted(stamps)
        assert END - timedelta(days=30) <= _ts(events[0]) and _ts(events[-1]) <= END
        assert len({s[:10] for s in stamps}) >= 30


def test_ids_are_unique_uuid7_carrying_occurred_at(trails: dict[str, Trail]) -> None:
    """Every id is an RFC 9562 version 7 UUID whose 48-bit timestamp is the event's own time."""
    seen: set[str] = set()
    for events, _ in trails.values():
        for e in events:
            u = uuid.UUID(e["id"])
            assert (u.version, u.variant, str(u)) == (7, uuid.RFC_4122, e["id"])
            assert u.int >> 80 == int(_ts(e).timestamp() * 1000 // 1), e
            seen.add(e["id"])
    assert len(seen) == 3 * PER_TENANT


def test_uuid7_at_layout() -> None:
    """uuid7_at puts the milliseconds in the top 48 bits, then version 7 and the 10 variant."""
    rand = random.Random(0)
    for ms in (0, 1, 1_790_000_000_123, (1 << 48) - 1):
        u = uuid.UUID(demo.uuid7_at(ms, rand))
        assert (u.int >> 80, u.version, u.variant) == (ms, 7, uuid.RFC_4122)
    assert demo.uuid7_at(5, random.Random(1)) == demo.uuid7_at(5, random.Random(1))
    for bad in (-1, 1 << 48):
        with pytest.raises(ValueError):
            demo.uuid7_at(bad, rand)


def test_events_have_the_input_shape(trails: dict[str, Trail]) -> None:
    """Allowed categories, outcomes and actor types; optional keys left out rather than sent as null."""
    for events, _ in trails.values():
        for e in events:
            assert e["category"] in {"activity", "audit", "data_access", "change", "system"}
            assert e["outcome"] in {"success", "failure", "denied", "error"}
            assert e["actor"]["type"] in {"user", "api_key", "service", "operator", "system", "anonymous"}
            assert e["message"]
            for part in (e, e["actor"], e["context"], *e.get("targets", [])):
                assert None not in part.values(), e


def test_events_validate_against_the_ingest_model(trails: dict[str, Trail]) -> None:
    """The API's own input model accepts every generated event."""
    msgspec = pytest.importorskip("msgspec")
    from vigil.model import EventIn

    for events, _ in trails.values():
        for e in events[::25]:
            msgspec.convert(e, EventIn, strict=False)


def test_metadata_and_changes_respect_the_limits(trails: dict[str, Trail]) -> None:
    """Flat metadata within WorkOS's caps with no secret-looking keys; changes are [before, after] scalars."""
    for events, _ in trails.values():
        for e in events:
            meta = e.get("metadata", {})
            assert len(meta) <= 50
            for key, value in meta.items():
                assert len(key) <= 40 and not any(word in key.lower() for word in SECRETISH), key
                assert isinstance(value, str | int | bool) and len(str(value)) <= 500
            for field, pair in e.get("changes", {}).items():
                assert len(pair) == 2 and pair[0] != pair[1], (field, pair)
                assert all(v is None or isinstance(v, str | int | float | bool) for v in pair)


def test_every_address_is_in_the_geo_table(trails: dict[str, Trail]) -> None:
    """DEMO_GEO covers every address used, without overlaps, and agrees with each event's location."""
    nets = [ipaddress.ip_network(n) for n in demo.DEMO_GEO]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    for city, country, lat, lon in demo.DEMO_GEO.values():
        assert city and len(country) == 2 and -90 <= lat <= 90 and -180 <= lon <= 180
    for events, _ in trails.values():
        for e in events:
            city, country, _, _ = demo.DEMO_GEO[_network(e["context"]["ip"])]
            assert e["context"]["location"] == f"{city}, {country}"


def test_benign_actions_come_from_the_catalog(trails: dict[str, Trail]) -> None:
    """Benign traffic uses DESIGN.md's standard actions or actions on the demo's business objects."""
    for trail in trails.values():
        for action in {e["action"] for e in _benign(trail)}:
            assert action in STANDARD_ACTIONS or action.split(".")[0] in BUSINESS_OBJECTS, action


def test_benign_traffic_is_realistic(trails: dict[str, Trail]) -> None:
    """Tenants have 20-60 users at their own domain, a few admins acting, machines, and a weekday rhythm."""
    for tenant, trail in trails.items():
        benign = _benign(trail)
        users = {e["actor"]["id"]: e["actor"] for e in benign if e["actor"]["type"] == "user"}
        assert 20 <= len(users) <= 60
        assert all(a["email"].endswith(f"@{tenant}.example") for a in users.values())
        actions = Counter(e["action"] for e in benign)
        assert actions["user.login"] > actions["user.logout"] > actions["settings.updated"] > 0
        assert actions["role.assigned"] > 0 and actions["report.exported"] > 0
        assert {e["actor"]["type"] for e in benign} == {"user", "api_key", "service", "system"}
        weekdays = Counter(_ts(e).weekday() for e in benign if e["actor"]["type"] == "user")
        assert min(weekdays[d] for d in range(1, 5)) > 2 * weekdays[6]
        assert any(e["outcome"] == "failure" for e in benign if e["action"] == "user.login")


def test_benign_traffic_triggers_no_detection(trails: dict[str, Trail]) -> None:
    """Nothing benign looks like an attack: no admin grants, self-grants, MFA or audit-log changes, operator
    access, big exports, new API keys, runs of failed sign-ins, or sign-ins from a second country."""
    for trail in trails.values():
        benign = _benign(trail)
        countries: dict[str, set[str]] = defaultdict(set)
        failures: dict[str, list[datetime]] = defaultdict(list)
        exports: dict[str, list[datetime]] = defaultdict(list)
        for e in benign:
            actor, action, targets = e["actor"], e["action"], e.get("targets", [])
            assert actor["type"] != "operator"
            assert action not in {
                "user.mfa.disabled",
                "user.mfa.reset",
                "api_key.created",
                "customer_data.accessed",
            }
            assert not action.startswith("audit_log.")
            if action == "role.assigned":
                assert {"type": "role", "id": "role_admin", "name": "admin"} not in targets
                assert actor["id"] not in {t["id"] for t in targets if t["type"] == "user"}
            if action in {"data.exported", "report.exported"}:
                assert e["metadata"].get("record_count", 0) <= 1000
                exports[actor["id"]].append(_ts(e))
            if action == "user.login" and e["outcome"] == "success":
                countries[actor["id"]].add(e["context"]["location"].rsplit(", ", 1)[1])
            if action == "user.login" and e["outcome"] == "failure":
                failures[actor["id"]].append(_ts(e))
        assert all(len(c) == 1 for c in countries.values())
        for stamps in failures.values():  # never three failures of one user within 10 minutes
            assert all(c - a > timedelta(minutes=10) for a, c in zip(stamps, stamps[2:], strict=False))
        for stamps in exports.values():
            assert all(b - a > timedelta(hours=1) for a, b in zip(stamps, stamps[24:], strict=False))


def test_patterns_are_spread_over_the_tenants(trails: dict[str, Trail]) -> None:
    """Every pattern is planted once, in its tenant, with its technique and ids that exist in the trail."""
    for tenant, (events, patterns) in trails.items():
        assert {p.name for p in patterns} == EXPECTED[tenant]
        ids = {e["id"] for e in events}
        for p in patterns:
            assert p.tenant == tenant and p.technique == demo.TECHNIQUES[p.name] and p.description
            assert p.event_ids and set(p.event_ids) <= ids
    assert demo.TECHNIQUES["brute_force"] == "T1110.001"
    assert demo.TECHNIQUES["audit_log_disabled"] == "T1685.002"


def test_an_unknown_tenant_gets_every_pattern() -> None:
    """A tenant the demo does not know still gets a trail, with all twelve patterns in it."""
    events, patterns = demo.generate("umbrella", 4000, end=END, seed=5)
    assert {p.name for p in patterns} == set(demo.TECHNIQUES)
    assert {e["id"] for e in events} >= _attack_ids(patterns)
    assert all(e["actor"].get("email", "x@umbrella.example").endswith(".example") for e in events)


def test_small_windows_and_bad_arguments() -> None:
    """One day still holds every pattern; naive ends are UTC; nonsense arguments are refused."""
    events, patterns = demo.generate("initech", 2000, days=1, end=END.replace(tzinfo=None), seed=2)
    assert len(patterns) == 4 and END - timedelta(days=1) <= _ts(events[0]) and _ts(events[-1]) <= END
    with pytest.raises(ValueError):
        demo.generate("acme", -1)
    with pytest.raises(ValueError):
        demo.generate("acme", 10, days=0)


def test_brute_force(trails: dict[str, Trail]) -> None:
    """12+ failed sign-ins to one account from one address within 5 minutes."""
    events, _ = _pattern(trails, "brute_force")
    assert len(events) >= 12
    assert {(e["action"], e["outcome"]) for e in events} == {("user.login", "failure")}
    assert len({e["targets"][0]["id"] for e in events}) == len({e["context"]["ip"] for e in events}) == 1
    assert _ts(events[-1]) - _ts(events[0]) <= timedelta(minutes=5)


def test_password_spraying(trails: dict[str, Trail]) -> None:
    """One address fails to sign in to 15+ different accounts within 10 minutes."""
    events, _ = _pattern(trails, "password_spraying")
    assert {(e["action"], e["outcome"]) for e in events} == {("user.login", "failure")}
    assert (
        len({e["targets"][0]["id"] for e in events}) >= 15 and len({e["context"]["ip"] for e in events}) == 1
    )
    assert _ts(events[-1]) - _ts(events[0]) <= timedelta(minutes=10)


def test_success_after_failures(trails: dict[str, Trail]) -> None:
    """Eight failures, then a success, for one account from one address."""
    events, _ = _pattern(trails, "success_after_failures")
    assert [e["outcome"] for e in events] == ["failure"] * 8 + ["success"]
    assert len({(e["actor"]["id"], e["context"]["ip"]) for e in events}) == 1


def test_impossible_travel(trails: dict[str, Trail]) -> None:
    """One user signs in from Berlin, then from Sydney 30 minutes later, from another address."""
    (home, away), _ = _pattern(trails, "impossible_travel")
    assert home["actor"]["id"] == away["actor"]["id"] and home["context"]["ip"] != away["context"]["ip"]
    assert (home["context"]["location"], away["context"]["location"]) == ("Berlin, DE", "Sydney, AU")
    assert _ts(away) - _ts(home) == timedelta(minutes=30)
    assert {home["outcome"], away["outcome"], home["action"]} == {"success", "user.login"}


@pytest.mark.parametrize("name", ["self_role_grant", "admin_role_granted"])
def test_admin_role_grants(trails: dict[str, Trail], name: str) -> None:
    """The admin role is assigned, to the actor themselves or by an admin to someone else."""
    (grant,), _ = _pattern(trails, name)
    users = [t["id"] for t in grant["targets"] if t["type"] == "user"]
    assert grant["action"] == "role.assigned" and grant["outcome"] == "success"
    assert {"type": "role", "id": "role_admin", "name": "admin"} in grant["targets"]
    assert (users == [grant["actor"]["id"]]) == (name == "self_role_grant")


def test_mfa_and_audit_log_disabled(trails: dict[str, Trail]) -> None:
    """A user turns MFA off; an admin turns audit logging off and cuts retention to a day."""
    (mfa,), trail = _pattern(trails, "mfa_disabled")
    user = mfa["actor"]["id"]
    assert mfa["action"] == "user.mfa.disabled" and mfa["targets"][0]["id"] == mfa["actor"]["id"]
    challenges = [_ts(e) for e in trail if e["action"] == "user.mfa.challenge" and e["actor"]["id"] == user]
    assert challenges and max(challenges) < _ts(mfa)  # MFA guarded the account until then, and never after
    (audit,), _ = _pattern(trails, "audit_log_disabled")
    assert audit["action"] == "audit_log.settings.updated"
    assert audit["changes"] == {"enabled": [True, False], "retention_days": [365, 1]}


def test_api_key_new_network(trails: dict[str, Trail]) -> None:
    """A new API key is created, then used from a network the tenant has never been seen on."""
    (created, *used), trail = _pattern(trails, "api_key_new_network")
    key = created["targets"][0]
    assert created["action"] == "api_key.created" and key["type"] == "api_key"
    assert used and all(e["actor"]["type"] == "api_key" and e["actor"]["id"] == key["id"] for e in used)
    assert any(e["action"] == "data.exported" for e in used)
    networks = {_network(e["context"]["ip"]) for e in used}
    ids = {e["id"] for e in used}
    assert len(networks) == 1
    assert not any(_network(e["context"]["ip"]) in networks for e in trail if e["id"] not in ids)


def test_bulk_export_and_operator_access(trails: dict[str, Trail]) -> None:
    """A 250,000-record export; the vendor's operator reads the tenant's customer data."""
    (dump,), _ = _pattern(trails, "bulk_export")
    assert dump["action"] == "data.exported" and dump["metadata"]["record_count"] == 250_000
    reads, _ = _pattern(trails, "operator_customer_data_access")
    assert reads and {(e["action"], e["actor"]["type"]) for e in reads} == {
        ("customer_data.accessed", "operator")
    }


def test_new_country(trails: dict[str, Trail]) -> None:
    """One sign-in from a country never seen for the user, with no other sign-in of theirs within a day."""
    (login,), trail = _pattern(trails, "new_country")
    user, country = login["actor"]["id"], login["context"]["location"].rsplit(", ", 1)[1]
    others = [e for e in trail if e["action"] == "user.login" and e["actor"]["id"] == user and e is not login]
    assert others and login["outcome"] == "success"
    assert all(e["context"]["location"].rsplit(", ", 1)[1] != country for e in others)
    assert all(abs(_ts(e) - _ts(login)) > timedelta(hours=24) for e in others)
