"""Sigma correlation rules over a stream of events: event_count, value_count, temporal, temporal_ordered, with
group-by, timespan, conditions, aliases, chains and generate; and what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vigil.detect.rules import Ev, Hit
from vigil.detect.sigma import SigmaRuleSet, load_sigma
from vigil.errors import RuleError

SEC = 1_000_000
RULES = Path(__file__).parent / "sigma_rules"

FAILED = """
title: Failed sign-in
name: failed_login
logsource: {product: vigil}
detection:
  sel: {action: user.login, outcome: failure}
  condition: sel
"""
SUCCESS = """
title: Successful sign-in
name: ok_login
logsource: {product: vigil}
detection:
  sel: {action: user.login, outcome: success}
  condition: sel
"""
EXPORT = """
title: Data export
name: export
logsource: {product: vigil}
detection:
  sel: {action: data.exported}
  condition: sel
"""


def correlation(body: str, title: str = "corr", extra: str = "") -> str:
    return f"title: {title}\nlevel: high\n{extra}correlation:\n" + "".join(
        f"  {line}\n" for line in body.splitlines()
    )


def load(*docs: str) -> SigmaRuleSet:
    return load_sigma([("c.yml", "\n---\n".join(docs))])


class Stream:
    """Feeds events of one tenant (or several) in seq order, one second apart unless told otherwise."""

    def __init__(self, rs: SigmaRuleSet) -> None:
        self.rs = rs
        self.seq = 0

    def feed(self, at: float, tenant: str = "acme", **doc: Any) -> list[Hit]:
        self.seq += 1
        full = {"id": f"e{self.seq}", "action": "user.login", "outcome": "failure", "actor": {"id": "usr_1"}}
        full.update(doc)
        return list(self.rs.feed(Ev(tenant, self.seq, int(at * SEC), full)))

    def titles(self, at: float, **doc: Any) -> list[str]:
        return [h.rule.title for h in self.feed(at, **doc)]


BRUTE = correlation(
    "type: event_count\nrules: [failed_login]\ngroup-by: [actor.id]\ntimespan: 5m\ncondition: {gte: 3}"
)


def test_event_count_fires_on_the_threshold_and_after() -> None:
    """event_count fires on the occurrence that brings the window to the threshold, and on each after it."""
    s = Stream(load(BRUTE, FAILED))
    assert s.feed(0) == [] and s.feed(10) == []
    (hit,) = s.feed(20)
    assert hit.rule.title == "corr" and hit.tenant == "acme"
    assert hit.group == (("actor.id", "usr_1"),)
    assert [ev.doc["id"] for ev in hit.evidence] == ["e1", "e2", "e3"]
    assert hit.summary == "corr: 3 matching events within 5m for actor.id=usr_1"
    assert len(s.feed(30)) == 1
    assert s.feed(31, outcome="success") == []  # the base rule does not match, and generates nothing


def test_event_count_window_slides() -> None:
    """Occurrences older than the timespan before the newest no longer count."""
    s = Stream(load(BRUTE, FAILED))
    for at in (0, 100):
        s.feed(at)
    assert s.feed(301) == []  # the one at 0 has left the 5 minute window
    assert len(s.feed(302)) == 1  # 100, 301, 302


def test_groups_and_tenants_are_separate() -> None:
    """Windows are keyed by tenant first, then by the group-by values (compared without case)."""
    s = Stream(load(BRUTE, FAILED))
    s.feed(0, actor={"id": "usr_1"})
    s.feed(1, actor={"id": "usr_2"})
    s.feed(2, tenant="other", actor={"id": "usr_1"})
    assert s.feed(3, actor={"id": "USR_1"}) == []
    (hit,) = s.feed(4, actor={"id": "usr_1"})
    assert hit.group == (("actor.id", "usr_1"),)  # the value as first seen, stable for alert dedup
    assert s.rs._corrs[0].groups("acme") == 2 and s.rs._corrs[0].groups("other") == 1


def test_missing_group_field_is_not_counted() -> None:
    """An occurrence without the group-by field belongs to no group."""
    s = Stream(load(BRUTE, FAILED))
    for at in range(5):
        assert s.feed(at, actor={"name": "nobody"}) == []


def test_value_count_counts_distinct_values() -> None:
    """value_count counts distinct values (without case) of its field per group: password spraying."""
    rule = correlation(
        "type: value_count\nrules: [failed_login]\ngroup-by: [context.ip]\ntimespan: 10m\n"
        "condition: {field: actor.email, gte: 3}"
    )
    s = Stream(load(rule, FAILED))
    ip = {"ip": "203.0.113.9"}
    assert s.feed(0, context=ip, actor={"id": "a", "email": "a@x.io"}) == []
    assert s.feed(1, context=ip, actor={"id": "a", "email": "A@X.IO"}) == []
    assert s.feed(2, context=ip, actor={"id": "b"}) == []  # no email: anchors, adds no value
    assert s.feed(3, context=ip, actor={"id": "b", "email": "b@x.io"}) == []
    (hit,) = s.feed(4, context=ip, actor={"id": "c", "email": "c@x.io"})
    assert hit.group == (("context.ip", "203.0.113.9"),)
    assert hit.summary == "corr: 3 distinct values of actor.email within 10m for context.ip=203.0.113.9"


def test_temporal_needs_every_rule_in_any_order() -> None:
    """temporal fires when each listed rule matched in the window, whatever the order."""
    rule = correlation("type: temporal\nrules: [ok_login, export]\ngroup-by: [actor.id]\ntimespan: 1h")
    s = Stream(load(rule, SUCCESS, EXPORT))
    assert s.feed(0, action="data.exported") == []
    (hit,) = s.feed(10, outcome="success")
    assert hit.summary == "corr: 2 of 2 rules within 1h for actor.id=usr_1"
    assert [ev.doc["id"] for ev in hit.evidence] == ["e1", "e2"]
    assert s.feed(5000, outcome="success") == []  # the export is over an hour old


def test_temporal_ordered_needs_the_listed_order() -> None:
    """temporal_ordered also needs the rules' events in the order the rules are listed."""
    rule = correlation(
        "type: temporal_ordered\nrules: [ok_login, export]\ngroup-by: [actor.id]\ntimespan: 1h"
    )
    s = Stream(load(rule, SUCCESS, EXPORT))
    assert s.feed(0, action="data.exported") == []
    assert s.feed(10, outcome="success") == []  # export before login: wrong order
    (hit,) = s.feed(20, action="data.exported")
    assert [ev.doc["id"] for ev in hit.evidence] == ["e2", "e3"]  # the chain, not the stray export
    assert "in order" in hit.summary


def test_temporal_ordered_with_a_lower_threshold() -> None:
    """A gte below the rule count asks for that many rules in order."""
    rule = correlation(
        "type: temporal_ordered\nrules: [failed_login, ok_login, export]\ngroup-by: [actor.id]\n"
        "timespan: 1h\ncondition: {gte: 2}"
    )
    s = Stream(load(rule, FAILED, SUCCESS, EXPORT))
    assert s.feed(0, action="data.exported") == []
    assert len(s.feed(10, outcome="success")) == 0
    assert len(s.feed(20, action="data.exported")) == 1  # ok_login then export


@pytest.mark.parametrize(
    ("condition", "fired_at"),
    [
        ("{gt: 2}", [3, 4]),
        ("{gte: 2}", [2, 3, 4]),
        ("{lt: 2}", [1]),
        ("{lte: 2}", [1, 2]),
        ("{eq: 3}", [3]),
        ("{neq: 3}", [1, 2, 4]),
        ("{gt: 1, lte: 3}", [2, 3]),  # a range: both bounds hold
    ],
)
def test_conditions(condition: str, fired_at: list[int]) -> None:
    """Every comparison, and a range of two, is tested on the window at each occurrence."""
    rule = correlation(
        f"type: event_count\nrules: [failed_login]\ngroup-by: [actor.id]\ntimespan: 1h\ncondition: {condition}"
    )
    s = Stream(load(rule, FAILED))
    assert [n for n in range(1, 5) if s.feed(n)] == fired_at


def test_no_group_by_is_one_group_per_tenant() -> None:
    """Without group-by every occurrence of a tenant shares one window."""
    rule = correlation("type: event_count\nrules: [failed_login]\ntimespan: 1h\ncondition: {gte: 2}")
    s = Stream(load(rule, FAILED))
    s.feed(0, actor={"id": "a"})
    (hit,) = s.feed(1, actor={"id": "b"})
    assert hit.group == ()
    assert hit.summary == "corr: 2 matching events within 1h"


def test_aliases_map_a_group_to_different_fields() -> None:
    """aliases name, per rule, the field a group-by alias reads: here the granting admin of a role grant
    is the user who later exports data."""
    grant = "title: grant\nname: grant\nlogsource: {product: vigil}\n"
    grant += "detection:\n  sel: {action: role.assigned}\n  condition: sel\n"
    rule = correlation(
        "type: temporal_ordered\nrules: [grant, export]\ngroup-by: [person]\ntimespan: 1h\n"
        "aliases:\n  person:\n    grant: targets.id\n    export: actor.id"
    )
    s = Stream(load(rule, grant, EXPORT))
    s.feed(0, action="role.assigned", actor={"id": "admin"}, targets=[{"type": "user", "id": "usr_9"}])
    assert s.feed(10, action="data.exported", actor={"id": "usr_8"}) == []
    (hit,) = s.feed(20, action="data.exported", actor={"id": "usr_9"})
    assert hit.group == (("person", "usr_9"),)


def test_chain_from_the_specification() -> None:
    """A correlation may count another correlation's hits: brute force (event_count) followed by a success
    (temporal_ordered). Only the outermost rule alerts (generate defaults to false)."""
    rs = load_sigma([RULES / "brute_force_then_success.yml"])
    by_title = {r.title: r for r in rs.rules}
    assert not by_title["Multiple failed sign-ins"].generates
    assert not by_title["Failed sign-in"].generates
    outer = by_title["Many failed sign-ins followed by a successful one"]
    assert outer.generates and outer.severity == "P1" and outer.techniques == ("T1110",)
    assert outer.window_us == 20 * 60 * SEC  # its own 10m on top of the chained 10m
    assert outer.suppress_us == 10 * 60 * SEC
    assert outer.examples is not None and len(outer.examples.fire[0]) == 4
    s = Stream(rs)
    assert s.feed(0, outcome="success") == []
    for at in (10, 20, 30):
        assert s.feed(at) == []
    (hit,) = s.feed(40, outcome="success")
    assert hit.rule is outer and hit.group == (("actor.id", "usr_1"),)
    assert [ev.doc["id"] for ev in hit.evidence] == ["e2", "e3", "e4", "e5"]
    assert s.feed(50, outcome="success", actor={"id": "usr_2"}) == []


def test_generate_true_keeps_the_base_rules_alerting() -> None:
    """generate: true (in the section, or at the top level as the schema has it) lets referenced rules
    alert on their own too."""
    for rule in (
        correlation(BRUTE_BODY + "\ngenerate: true"),
        correlation(BRUTE_BODY, extra="generate: true\n"),
    ):
        s = Stream(load(rule, FAILED))
        assert s.titles(0) == ["Failed sign-in"]
        s.feed(1)
        assert s.titles(2) == ["Failed sign-in", "corr"]
    with pytest.raises(RuleError, match="set twice"):
        load(correlation(BRUTE_BODY + "\ngenerate: true", extra="generate: false\n"), FAILED)


BRUTE_BODY = (
    "type: event_count\nrules: [failed_login]\ngroup-by: [actor.id]\ntimespan: 5m\ncondition: {gte: 3}"
)


def test_one_event_through_two_rules_counts_once() -> None:
    """An event matching two listed rules is one event for event_count."""
    any_login = (
        FAILED.replace("Failed sign-in", "Any sign-in")
        .replace("failed_login", "any_login")
        .replace(", outcome: failure", "")
    )
    rule = correlation(
        "type: event_count\nrules: [failed_login, any_login]\ngroup-by: [actor.id]\ntimespan: 1h\ncondition: {gte: 2}"
    )
    s = Stream(load(rule, FAILED, any_login))
    assert s.feed(0) == []
    assert len(s.feed(1, outcome="success")) == 1


def test_evidence_is_capped_and_oldest_first() -> None:
    """Evidence holds at most 50 events, the newest ones, oldest first."""
    rule = correlation(
        "type: event_count\nrules: [failed_login]\ngroup-by: [actor.id]\ntimespan: 1h\ncondition: {gte: 60}"
    )
    s = Stream(load(rule, FAILED))
    hits = [h for at in range(80) for h in s.feed(at)]
    assert len(hits) == 21
    ids = [ev.seq for ev in hits[0].evidence]
    assert ids == list(range(11, 61))


def test_late_events_do_not_resurrect_a_burst() -> None:
    """An occurrence older than its group's newest by more than the timespan is dropped."""
    s = Stream(load(BRUTE, FAILED))
    s.feed(1000)
    s.feed(1001)
    assert s.feed(10) == []  # 990 s late: not counted, not anchoring
    assert len(s.feed(1002)) == 1


def test_sweep_and_fresh_forget_state() -> None:
    """sweep forgets idle groups; fresh() gives the same rules with empty windows."""
    s = Stream(load(BRUTE, FAILED))
    s.feed(0)
    s.feed(1)
    again = s.rs.fresh()
    assert Stream(again).feed(2) == []
    assert [r.id for r in again.rules] == [r.id for r in s.rs.rules]
    corr = s.rs._corrs[0]
    s.rs.sweep(100 * SEC)
    assert corr.groups("acme") == 1
    s.rs.sweep(1000 * SEC)
    assert corr.groups("acme") == 0
    assert s.feed(1001) == []


def spec(
    kind: str,
    rules: str | None = "[failed_login]",
    group: str = "[actor.id]",
    span: str = "5m",
    condition: str | None = "{gte: 3}",
    extra: str = "",
) -> str:
    """A correlation section, one setting per argument."""
    lines = [f"type: {kind}", f"group-by: {group}", f"timespan: {span}"]
    lines += [f"rules: {rules}"] if rules is not None else []
    lines += [f"condition: {condition}"] if condition is not None else []
    return "\n".join(lines) + ("\n" + extra if extra else "")


TWO = "[failed_login, ok_login]"


@pytest.mark.parametrize(
    ("body", "feature", "words"),
    [
        (
            spec("value_sum", condition="{field: metadata.n, gte: 3}"),
            "correlation type 'value_sum'",
            "not supported",
        ),
        (
            spec("temporal", rules=None, condition="'failed_login and not ok_login'"),
            "correlation condition",
            "boolean",
        ),
        (spec("temporal_ordered", rules=TWO, condition="{lt: 2}"), "correlation condition", "gt and gte"),
        (spec("event_count", rules="[nosuch]"), "rule reference", "not loaded"),
        (spec("event_count", group="[Computer]"), "field 'Computer'", "does not exist"),
        (
            spec("value_count", condition="{field: [a, b], gte: 3}"),
            "correlation condition field",
            "one field",
        ),
        (spec("value_count", condition="{field: User, gte: 3}"), "field 'User'", ""),
        (
            spec(
                "temporal",
                rules=TWO,
                group="[ip]",
                condition=None,
                extra="aliases:\n  ip:\n    export: context.ip",
            ),
            "aliases",
            "does not list",
        ),
        (
            spec(
                "temporal",
                rules=TWO,
                group="[ip]",
                condition=None,
                extra="aliases: {ip: {failed_login: context.ip}}",
            ),
            "field 'ip'",
            "names no field for rule 'Successful sign-in'",
        ),
        (spec("event_count", span="5x"), "timespan", ""),
        (spec("event_count", condition="{gte: 3, lt: x}"), "correlation condition", "number"),
        (spec("event_count", rules="[failed_login, failed_login]"), "rule reference", "twice"),
    ],
)
def test_refusals(body: str, feature: str, words: str) -> None:
    """A correlation Vigil cannot evaluate exactly is refused with the feature named."""
    with pytest.raises(RuleError) as info:
        load(correlation(body), FAILED, SUCCESS, EXPORT)
    assert feature in info.value.feature, info.value.message
    assert words in info.value.message


def test_reference_cycles_and_refused_references() -> None:
    """A chain that loops back, or that refers to a refused rule, is refused."""
    a = "title: a\nname: a\n" + correlation(spec("event_count", rules="[b]")).split("\n", 2)[2]
    b = a.replace("title: a\nname: a", "title: b\nname: b").replace("rules: [b]", "rules: [a]")
    with pytest.raises(RuleError, match="loops back"):
        load(a, b)
    bad_base = FAILED.replace("outcome: failure", "EventID: 4625")
    with pytest.raises(RuleError, match="EventID"):
        load(BRUTE, bad_base)
