"""The detection engine on a real store (SQLite and PostgreSQL): cursor, restart, dedup, tenants, hunting."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from vigil.detect.builtin import BruteForce, MfaDisabled, builtin_evaluators
from vigil.detect.engine import Engine, TenantRules, occurred_us
from vigil.errors import Conflict, NotFound
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.store import Store
from vigil.store.detection import AlertQuery, NewAlert, RuleSetting

T0 = occurred_us("2026-03-01T10:00:00.000000Z")  # when the events happened
NOW = time.time_ns() // 1000  # when they arrive (PostgreSQL keeps partitions by arrival, from now on)


def failures(store: Store, tenant: str, n: int, start_s: int = 0, account: str = "usr_victim") -> None:
    """Append ``n`` failed sign-ins to one account, 15 seconds apart, from ``start_s`` seconds after T0."""
    events = []
    for i in range(n):
        raw = {
            "action": "user.login",
            "outcome": "failure",
            "category": "audit",
            "actor": {"id": account, "type": "user", "email": f"{account}@example.com"},
            "context": {"ip": "198.51.100.77"},
            "occurred_at": _iso(T0 + (start_s + 15 * i) * 1_000_000),
        }
        p = prepare_event(msgspec.convert(raw, EventIn), tenant, NOW)
        assert isinstance(p, Prepared)
        events.append(p)
    store.append(store.get_tenant(tenant).id, events)


def _iso(us: int) -> str:
    from vigil.ingest.intake import rfc3339

    return rfc3339(us)


def engine(store: Store) -> Engine:
    """A started engine with the built-ins, reading their thresholds from the tenants' settings."""
    rules = TenantRules()
    e = Engine(store, builtin_evaluators(params=rules.params), tenant_rules=rules)
    e.start()
    return e


def alerts(store: Store, tenant: str | None = None) -> list[Any]:
    tid = None if tenant is None else store.get_tenant(tenant).id
    return store.list_alerts(AlertQuery(tenant_id=tid))


def test_restart_in_the_middle_of_an_attack_fires_exactly_once(store: Store) -> None:
    """6 failures, engine restart, 5 more: the window is rebuilt from the log and brute force fires once."""
    store.create_tenant("acme")
    failures(store, "acme", 6)
    first = engine(store)
    assert first.run_until_idle().events == 6
    assert alerts(store) == []
    second = engine(store)  # a new process: only the store remembers
    assert second.stats.replayed == 6
    failures(store, "acme", 5, start_s=6 * 15)
    second.run_until_idle()
    found = alerts(store)
    assert [a.rule_id for a in found] == ["vigil.brute_force"]
    assert len(found[0].evidence) == 10 and found[0].hits == 1
    third = engine(store)  # and once more: replaying the whole attack raises nothing new
    third.run_until_idle()
    assert len(alerts(store)) == 1 and alerts(store)[0].hits == 1


def test_without_replay_the_restart_would_miss_it(store: Store) -> None:
    """The control for the test above: a rule fed only the 5 new events stays under the threshold."""
    store.create_tenant("acme")
    failures(store, "acme", 6)
    engine(store).run_until_idle()
    failures(store, "acme", 5, start_s=6 * 15)
    fresh = Engine(store, builtin_evaluators())  # not started: no replay
    fresh._tenants = {t.id: t for t in store.list_tenants() if t.slug == "acme"}
    fresh._cursors = {t: store.detect_cursor(t) for t in fresh._tenants}
    fresh.run_until_idle()
    assert alerts(store) == []


def test_the_cursor_only_moves_past_processed_events(store: Store) -> None:
    """The cursor is stored with the alerts; a second run processes nothing again."""
    store.create_tenant("acme")
    failures(store, "acme", 3)
    e = engine(store)
    e.run_until_idle()
    tid = store.get_tenant("acme").id
    assert store.detect_cursor(tid) == 3
    assert e.step() == 0
    failures(store, "acme", 2, start_s=3600)
    assert e.step() == 2 and store.detect_cursor(tid) == 5


def test_tenants_never_share_a_window(store: Store) -> None:
    """The same account id failing 5 times in two tenants each is not 10 failures of one account."""
    store.create_tenant("acme")
    store.create_tenant("globex")
    failures(store, "acme", 5)
    failures(store, "globex", 5)
    engine(store).run_until_idle()
    assert alerts(store) == []
    failures(store, "globex", 5, start_s=5 * 15)
    engine(store).run_until_idle()
    found = alerts(store)
    assert [(a.rule_id, a.tenant_id) for a in found] == [("vigil.brute_force", store.get_tenant("globex").id)]
    assert "|globex|" in found[0].dedup_key


def test_a_continuing_attack_joins_its_alert(store: Store) -> None:
    """Twenty failures make two hits of brute force, and one alert holding both."""
    store.create_tenant("acme")
    failures(store, "acme", 20)
    engine(store).run_until_idle()
    (alert,) = alerts(store)
    assert alert.hits == 2 and len(alert.evidence) == 20


def test_a_tenant_can_disable_a_rule_or_change_its_threshold(store: Store) -> None:
    """Per-tenant settings live in the store: globex turns brute force off, acme lowers it to 3."""
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    store.set_rule_setting(RuleSetting(acme.id, "vigil.brute_force", None, {"failures": 3}))
    store.set_rule_setting(RuleSetting(globex.id, "vigil.brute_force", False, {}))
    failures(store, "acme", 3)
    failures(store, "globex", 12)
    engine(store).run_until_idle()
    found = alerts(store)
    assert [(a.tenant_id, len(a.evidence)) for a in found] == [(acme.id, 3)]


def test_hunting_with_a_new_rule_raises_no_duplicates(store: Store) -> None:
    """A hunt over history finds what the follower missed, and joins alerts that already exist."""
    store.create_tenant("acme")
    failures(store, "acme", 10)
    mfa = prepare_event(
        msgspec.convert(
            {"action": "user.mfa.disabled", "actor": {"id": "usr_x"}, "occurred_at": _iso(T0)}, EventIn
        ),
        "acme",
        NOW,
    )
    assert isinstance(mfa, Prepared)
    store.append(store.get_tenant("acme").id, [mfa])
    # the follower ran with brute force only
    follower = Engine(store, [BruteForce()])
    follower.start()
    follower.run_until_idle()
    assert [a.rule_id for a in alerts(store)] == ["vigil.brute_force"]
    # now hunt with every rule over the last day: the MFA change is new, brute force is the same alert
    hunter = Engine(store, [BruteForce(), MfaDisabled()])
    acme = store.get_tenant("acme")
    hunter.hunt(acme, T0 - 86_400_000_000)
    hunter.hunt(acme, T0 - 86_400_000_000)
    found = sorted(alerts(store), key=lambda a: a.rule_id)
    assert [(a.rule_id, a.hits) for a in found] == [("vigil.brute_force", 1), ("vigil.mfa_disabled", 1)]
    assert store.detect_cursor(acme.id) == 11  # hunting never moved the follower's cursor


def test_hunt_with_an_unknown_rule_is_refused(store: Store) -> None:
    """--rule naming no loaded rule is an error, not an empty hunt."""
    with pytest.raises(NotFound, match=r"no rule vigil\.nope"):
        Engine(store, builtin_evaluators(), tenant_rules=TenantRules(["vigil.nope"]))


def test_a_cursor_moved_by_another_engine_is_a_conflict(store: Store) -> None:
    """Alerts and cursor commit together, compare-and-set: a stale engine stores nothing."""
    tid = store.create_tenant("acme").id
    store.commit_detection(tid, [], (0, 5))
    stale = NewAlert("r", "t", "P2", (), "s", {}, "r|acme|", ((1, "a"),), 1, 2, 10)
    with pytest.raises(Conflict):
        store.commit_detection(tid, [stale], (0, 7))
    assert store.detect_cursor(tid) == 5
    assert alerts(store) == []


def test_an_account_id_with_a_nul_byte_never_reaches_detection(store: Store) -> None:
    """JSON allows \\u0000 in strings and PostgreSQL text does not: an id holding one is refused at the edge
    (identifiers are visible ASCII), so no such event can stall detection."""
    store.create_tenant("acme")
    with pytest.raises(msgspec.ValidationError, match=r"actor\.id"):
        failures(store, "acme", 1, account="usr\x00v")
    assert store.tree_size(store.get_tenant("acme").id) == 0


def test_an_engine_that_lost_a_race_rebuilds_without_counting_twice(store: Store) -> None:
    """Two engines on one store: the one whose commit conflicts starts its rules afresh from the log, so the
    batch it dropped is not counted again (10 distinct failures fire; double counting would have spent them)."""
    store.create_tenant("acme")
    failures(store, "acme", 6)
    late = engine(store)  # started at cursor 0, has not processed anything yet
    engine(store).run_until_idle()  # the other engine takes the six
    assert late.step() >= 1  # its commit conflicts: it rebuilds from cursor 6
    assert store.detect_cursor(store.get_tenant("acme").id) == 6 and alerts(store) == []
    failures(store, "acme", 4, start_s=6 * 15)
    late.run_until_idle()
    (alert,) = alerts(store)
    assert alert.rule_id == "vigil.brute_force" and len(alert.evidence) == 10
