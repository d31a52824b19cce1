"""The slow tiers of the counting built-ins: an attack paced under a fast rule's window is caught over a day,
across restarts, per tenant, with state bounded however many events arrive."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import msgspec
import pytest

from vigil.detect.builtin import (
    BUILTIN_RULES,
    BruteForce,
    BulkExport,
    PasswordSpraying,
    SuccessAfterFailures,
    builtin_evaluators,
)
from vigil.detect.engine import Dispatch, Engine, TenantRules, ev_of, occurred_us
from vigil.detect.geo import example_geo
from vigil.detect.rules import Ev
from vigil.detect.ruletest import _events
from vigil.ingest.intake import Prepared, prepare_event, rfc3339
from vigil.model import EventIn
from vigil.store import Store
from vigil.store.detection import AlertQuery, RuleSetting

T0 = occurred_us("2026-03-01T08:00:00.000000Z")
NOW = time.time_ns() // 1000
SEC = 1_000_000
SPRAYER = "203.0.113.99"
SLOW = {
    "vigil.brute_force.slow": "vigil.brute_force",
    "vigil.password_spraying.slow": "vigil.password_spraying",
    "vigil.success_after_failures.slow": "vigil.success_after_failures",
    "vigil.bulk_export.slow": "vigil.bulk_export",
}


def spray(store: Store, tenant: str, accounts: range, every_s: int = 90) -> None:
    """One failed sign-in from the sprayer's address per account, ``every_s`` seconds apart."""
    events = []
    for i in accounts:
        raw = {
            "action": "user.login",
            "outcome": "failure",
            "category": "audit",
            "actor": {"id": f"usr_{i:03d}", "type": "user"},
            "context": {"ip": SPRAYER},
            "occurred_at": rfc3339(T0 + i * every_s * SEC),
        }
        p = prepare_event(msgspec.convert(raw, EventIn), tenant, NOW)
        assert isinstance(p, Prepared)
        events.append(p)
    store.append(store.get_tenant(tenant).id, events)


def engine(store: Store) -> Engine:
    rules = TenantRules()
    e = Engine(store, builtin_evaluators(params=rules.params), tenant_rules=rules)
    e.start()
    return e


def alerts(store: Store) -> list[Any]:
    return store.list_alerts(AlertQuery())


def test_every_builtin_counting_rule_has_a_slow_tier_at_a_lower_severity() -> None:
    """Each slow tier is its own rule id with a day-long window, a higher count and a lower severity."""
    by_id = {r.id: r for r in BUILTIN_RULES}
    for slow, fast in SLOW.items():
        s, f = by_id[slow], by_id[fast]
        assert s.window_us == 86_400 * SEC > f.window_us
        assert s.severity > f.severity  # "P3" > "P2": lower
        for name, value in f.params.items():
            assert s.params[name] > value, (slow, name)


def test_every_slow_attack_slips_under_its_fast_rule() -> None:
    """The reason for the tiers: each slow tier's fire examples raise nothing from the fast rule."""
    by_id = {r.id: r for r in BUILTIN_RULES}
    for slow, fast in SLOW.items():
        examples = by_id[slow].examples
        assert examples is not None
        for i, example in enumerate(examples.fire):
            dispatch = Dispatch(builtin_evaluators(example_geo()))
            fired = {
                h.rule.id for seq, body in _events("t", example) for h in dispatch.feed(ev_of("t", seq, body))
            }
            assert fast not in fired and slow in fired, (slow, i, fired)


def test_a_burst_is_one_alert_not_a_fast_and_a_slow_one(store: Store) -> None:
    """Forty accounts sprayed in ten minutes: the fast rule fires (four times, one alert); the slow tier's count
    restarts each time, so the same events never raise its alert as well."""
    store.create_tenant("acme")
    spray(store, "acme", range(40), every_s=15)
    engine(store).run_until_idle()
    assert [(a.rule_id, a.hits) for a in alerts(store)] == [("vigil.password_spraying", 4)]


def test_a_slow_spray_straddling_a_restart_fires_once(store: Store) -> None:
    """One account every 90 seconds: 20 accounts, a restart, 12 more. The day-long window is rebuilt from the
    log, the slow tier fires once at the 30th account, and a third start raises nothing new."""
    store.create_tenant("acme")
    spray(store, "acme", range(20))
    assert engine(store).run_until_idle().events == 20 and alerts(store) == []
    second = engine(store)
    assert second.stats.replayed == 20
    spray(store, "acme", range(20, 32))
    second.run_until_idle()
    (alert,) = alerts(store)
    assert alert.rule_id == "vigil.password_spraying.slow" and alert.severity == "P2"
    assert alert.group == {"source_ip": SPRAYER} and len(alert.evidence) == 30
    engine(store).run_until_idle()
    assert [(a.rule_id, a.hits) for a in alerts(store)] == [("vigil.password_spraying.slow", 1)]


def test_without_the_replay_a_restart_would_miss_the_slow_spray(store: Store) -> None:
    """The control: an engine fed only the 12 accounts after the restart stays quiet."""
    store.create_tenant("acme")
    spray(store, "acme", range(20))
    engine(store).run_until_idle()
    spray(store, "acme", range(20, 32))
    fresh = Engine(store, builtin_evaluators())  # not started: no replay
    fresh._tenants = {t.id: t for t in store.list_tenants() if t.slug == "acme"}
    fresh._cursors = {t: store.detect_cursor(t) for t in fresh._tenants}
    fresh.run_until_idle()
    assert alerts(store) == []


def test_a_tenant_tunes_or_disables_a_slow_tier_on_its_own(store: Store) -> None:
    """acme lowers the slow spraying tier to 8 accounts; globex turns it off; the fast rule is untouched."""
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    store.set_rule_setting(RuleSetting(acme.id, "vigil.password_spraying.slow", None, {"accounts": 8}))
    store.set_rule_setting(RuleSetting(globex.id, "vigil.password_spraying.slow", False, {}))
    spray(store, "acme", range(8))
    spray(store, "globex", range(40))
    engine(store).run_until_idle()
    assert [(a.tenant_id, a.rule_id, len(a.evidence)) for a in alerts(store)] == [
        (acme.id, "vigil.password_spraying.slow", 8)
    ]


def _ev(seq: int, us: int, **doc: Any) -> Ev:
    return Ev("acme", seq, us, {"id": f"e{seq}", "outcome": "failure", **doc})


def _events_held(root: object) -> int:
    """How many distinct events are reachable from ``root`` (its windows, buckets and evidence)."""
    seen: set[int] = set()
    found = 0
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, str | int | float | bytes):
            continue
        seen.add(id(obj))
        if isinstance(obj, Ev):
            found += 1
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | deque | set):
            todo.extend(obj)
        elif hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())
    return found


@pytest.mark.parametrize("rule", [BruteForce, PasswordSpraying, SuccessAfterFailures, BulkExport])
def test_a_day_of_traffic_keeps_bounded_slow_state(rule: type[Any]) -> None:
    """100,000 events of 29 groups (one for bulk export) over a day: a slow tier keeps at most its threshold of
    events per group (bulk export: hourly sums and its 20 largest reads), never the day's events. The fast
    rule's thresholds are set out of reach so that every event reaches the slow tier."""

    def params(tenant: str, info: Any) -> dict[str, Any]:
        return info.params if info.id.endswith(".slow") else {k: 10**9 for k in info.params}

    evaluator = rule(params)
    n, step = 100_000, 86_400 * SEC // 100_000
    for i in range(n):
        if rule is BulkExport:  # one reader viewing one record at a time: 100,000 records is under 200,000
            doc = {"action": "data.viewed", "outcome": "success", "metadata": {"record_count": 1}}
            evaluator.feed(_ev(i, T0 + i * step, actor={"id": "svc"}, **doc))
        else:  # 29 accounts failing from one address, round and round: never 30 distinct
            doc = {"action": "user.login", "context": {"ip": SPRAYER}}
            evaluator.feed(_ev(i, T0 + i * step, actor={"id": f"usr_{i % 29}"}, **doc))
    limit = 20 if rule is BulkExport else 29 * max(int(v) for v in evaluator.slow.info.params.values())
    assert _events_held(evaluator.slow) <= limit
