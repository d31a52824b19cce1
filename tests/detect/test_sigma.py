"""Sigma detection rules in memory: every modifier and condition form, the field mapping, what the rule
description carries, and every refusal naming its feature."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vigil.detect.rules import Ev, Examples
from vigil.detect.sigma import SigmaRuleSet, compile_rules, load_sigma
from vigil.errors import RuleError

RULES = Path(__file__).parent / "sigma_rules"

DOC: dict[str, Any] = {
    "id": "0198f0a0-0000-7000-8000-000000000001",
    "tenant": "acme",
    "occurred_at": "2026-03-02T09:00:00.000000Z",
    "received_at": "2026-03-02T09:00:00.100000Z",
    "action": "user.login",
    "category": "audit",
    "outcome": "success",
    "actor": {"id": "usr_1", "type": "user", "name": "Ada", "email": "Ada@Example.com"},
    "targets": [{"type": "user", "id": "usr_2"}, {"type": "role", "id": "admin", "name": "Admin"}],
    "context": {
        "ip": "10.1.2.3",
        "user_agent": "Mozilla/5.0 curl/8.0",
        "method": "POST",
        "route": "/api/admin/users",
        "status": 403,
        "location": "Berlin, DE",
    },
    "changes": {"enabled": [True, False]},
    "metadata": {
        "record_count": 1500,
        "format": "CSV",
        "note": None,
        "count_text": "42",
        "payload": "ZXZpbA==",
    },
    "message": "Ada signed in\nwith password -force",
}


def rule_yaml(detection: str, *, logsource: str = "{product: vigil}", extra: str = "") -> str:
    return f"title: test rule\nlogsource: {logsource}\ndetection:\n{detection}\n{extra}"


def ruleset(detection: str, **kw: str) -> SigmaRuleSet:
    return load_sigma([("test.yml", rule_yaml(detection, **kw))])


def fires(detection: str, doc: dict[str, Any] | None = None, **kw: str) -> bool:
    return bool(ruleset(detection, **kw).feed(Ev("acme", 0, 0, doc or DOC)))


def refusal(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_sigma([("bad.yml", text)])
    return info.value


def sel(body: str, condition: str = "sel") -> str:
    return f"  sel:\n    {body}\n  condition: {condition}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("action: user.login", True),
        ("action: USER.LOGIN", True),  # plain values compare without case
        ("action|cased: USER.LOGIN", False),
        ("action|cased: user.login", True),
        ("action: user.logout", False),
        ("action: [user.logout, user.login]", True),  # a list is an OR
        ("action: 'user.*'", True),
        ("action: 'user.log?n'", True),
        ("action: 'u*r.l*n'", True),
        ("action: 'user.*x'", False),
        ("action: '*'", True),
        ("context.user_agent|contains: CURL", True),
        ("context.user_agent|startswith: mozilla", True),
        ("context.user_agent|endswith: /8.0", True),
        ("context.user_agent|endswith: /9.0", False),
        ("context.user_agent|contains|cased: CURL", False),
        ("context.user_agent|contains|all: [mozilla, curl]", True),
        ("context.user_agent|contains|all: [mozilla, wget]", False),
        ("context.route|startswith: [/api/admin, /admin]", True),
        ("context.user_agent|contains: [nothere, CURL]", True),
        ("action: [x, 'user.lo*', 5]", True),
        ("metadata.record_count: [x, 1500, 'y*']", True),
        ("metadata.record_count: [x, 1501, true, 'y*', '15?1']", False),
        ("context.ip: [x, 10.1.2.4, '10.1.2.?']", True),
        ("context.user_agent|cased|contains: [MOZILLA, Curl]", False),
        ("context.user_agent|cased|contains: [MOZILLA, curl]", True),
    ],
)
def test_string_matching(body: str, expected: bool) -> None:
    """Strings: equality without case, * and ? wildcards, contains/startswith/endswith, all, cased."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (r"context.user_agent|re: 'curl/\d+'", True),
        ("context.user_agent|re: 'CURL'", False),  # case-sensitive by default
        ("context.user_agent|re|i: 'CURL'", True),
        ("message|re: '^with'", False),
        ("message|re|m: '^with'", True),
        ("message|re: 'in.with'", False),
        ("message|re|s: 'in.with'", True),
        ("context.status|re: '^4\\d\\d$'", True),  # a number is searched in its JSON spelling
        ("actor.name|re: 'd'", True),  # not anchored: a search
    ],
)
def test_regular_expressions(body: str, expected: bool) -> None:
    """re searches the value, case-sensitively unless i; m and s change ^/$ and dot."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("context.ip|cidr: 10.0.0.0/8", True),
        ("context.ip|cidr: [192.168.0.0/16, 10.1.2.0/24]", True),
        ("context.ip|cidr: 192.168.0.0/16", False),
        ("context.ip|cidr: '::/0'", False),  # an IPv4 address is not in an IPv6 network
        ("actor.name|cidr: 10.0.0.0/8", False),  # not an address at all
    ],
)
def test_cidr(body: str, expected: bool) -> None:
    """cidr matches addresses inside the network, IPv4 and IPv6 apart."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("context.ip|exists: true", True),
        ("context.trace_id|exists: true", False),
        ("context.trace_id|exists: false", True),
        ("metadata.note|exists: true", True),  # present, even though null
        ("context|exists: true", True),
        ("context.trace_id: null", True),
        ("metadata.note: null", True),
        ("context.ip: null", False),
        ("reason: ''", False),
    ],
)
def test_exists_and_null(body: str, expected: bool) -> None:
    """exists tests presence (a null value is present); null matches a missing or null value."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("metadata.record_count|gt: 1000", True),
        ("metadata.record_count|gt: 1500", False),
        ("metadata.record_count|gte: 1500", True),
        ("metadata.record_count|lt: 1000", False),
        ("metadata.record_count|lte: 1500", True),
        ("context.status|gte: 400", True),
        ("metadata.count_text|gt: 41", True),  # a string spelling a number compares as one
        ("actor.name|gt: 1", False),
        ("metadata.missing|lt: 10", False),
        ("context.status: 403", True),
        ("context.status: '403'", True),
        ("metadata.record_count: 1500.0", True),
    ],
)
def test_numbers(body: str, expected: bool) -> None:
    """gt/gte/lt/lte compare numbers; a number equals its value or its spelling."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("outcome|neq: failure", True),
        ("outcome|neq: success", False),
        ("outcome|neq: [failure, denied]", True),
        ("outcome|neq: [failure, SUCCESS]", False),
        ("context.trace_id|neq: x", True),  # a missing field differs from any value
        ("metadata.record_count|neq: 1500", False),
    ],
)
def test_neq(body: str, expected: bool) -> None:
    """neq: the field differs from every listed value."""
    assert fires(sel(body)) is expected


def test_fieldref() -> None:
    """fieldref compares two fields of the event, without case, with startswith/endswith/contains."""
    own = copy.deepcopy(DOC)
    own["targets"][0]["id"] = "USR_1"
    assert not fires(sel("actor.id|fieldref: targets.id"))
    assert fires(sel("actor.id|fieldref: targets.id"), own)
    assert fires(sel("message|fieldref|startswith: actor.name"))
    assert fires(sel("actor.email|fieldref|contains: actor.name"))
    assert not fires(sel("actor.email|fieldref|endswith: actor.name"))
    assert fires(sel("actor.id|fieldref|neq: targets.id"))
    assert not fires(sel("actor.id|fieldref: context.trace_id"))


def test_windash_base64_base64offset() -> None:
    """windash tries every dash form; base64 and base64offset match the encoded value."""
    assert fires(sel("message|windash|contains: ' /force'"))
    assert fires(sel("message|windash|contains: ' –force'"), {**DOC, "message": "run –force"})
    assert not fires(sel("message|windash|contains: ' /forced'"))
    assert fires(sel("metadata.payload|base64: evil"))
    assert not fires(sel("metadata.payload|base64: good"))
    encoded = {**DOC, "message": "cmd aGVsbG8gZXZpbCB3b3JsZA== end"}  # base64("hello evil world")
    assert fires(sel("message|base64offset|contains: evil"), encoded)
    assert not fires(sel("message|base64offset|contains: nice"), encoded)


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        ("  keywords: [signed]\n  condition: keywords", True),
        ("  keywords: [BERLIN]\n  condition: keywords", True),  # any value, without case
        ("  keywords: [nowhere, 'pass*ord']\n  condition: keywords", True),
        ("  keywords: [nowhere]\n  condition: keywords", False),
        ("  keywords: [1500]\n  condition: keywords", True),
        ("  keywords:\n    '|re': 'sign(ed|s) in'\n  condition: keywords", True),
        ("  keywords:\n    '|cased': berlin\n  condition: keywords", False),
        ("  keywords:\n    '|all': [signed, berlin]\n  condition: keywords", True),
    ],
)
def test_keywords(detection: str, expected: bool) -> None:
    """Values without a field search every value of the event, as a substring."""
    assert fires(detection) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("sel_a", True),
        ("sel_b", False),
        ("not sel_b", True),
        ("sel_a and not sel_b", True),
        ("sel_a and sel_b", False),
        ("sel_a or sel_b", True),
        ("1 of sel_*", True),
        ("any of sel_*", True),
        ("all of sel_*", False),
        ("1 of them", True),
        ("all of them", False),
        ("(sel_b or sel_c) and not sel_b", True),
        ("not (sel_a and sel_c)", False),
        ("sel_a and (sel_b or not filter)", True),
        ("sel_a and not 1 of filt*", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    """and, or, not, parentheses, 1/any/all of a pattern, of them."""
    detection = (
        "  sel_a: {action: user.login}\n"
        "  sel_b: {outcome: failure}\n"
        "  sel_c: {actor.type: user}\n"
        "  filter: {actor.type: service}\n"
        f"  condition: {condition}"
    )
    assert fires(detection) is expected


def test_selection_forms() -> None:
    """A map is an AND of its fields, a list of maps an OR, and a list of conditions an OR too."""
    assert not fires("  sel:\n    action: user.login\n    outcome: failure\n  condition: sel")
    assert fires("  sel:\n    - action: user.logout\n    - outcome: success\n  condition: sel")
    assert fires("  a: {action: x}\n  b: {outcome: success}\n  condition: [a, b]")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("targets.type: role", True),  # any element of the list
        ("targets.name: admin", True),
        ("targets.type: project", False),
        ("targets.type|all: [user, role]", True),
        ("targets.id|exists: true", True),
        ("changes.enabled: false", True),  # before or after
        ("changes.enabled.after: false", True),
        ("changes.enabled.before: false", False),
        ("changes.enabled.before: true", True),
        ("changes.other.after|exists: true", False),
        ("metadata.format: csv", True),
        ("actor.email: ada@example.com", True),
    ],
)
def test_paths(body: str, expected: bool) -> None:
    """Dotted paths reach nested objects; a path through targets matches any element; changes have
    before and after."""
    assert fires(sel(body)) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("src_ip|cidr: 10.0.0.0/8", True),
        ("client.ipAddress: 10.1.2.3", True),
        ("sourceIPAddress: 10.1.2.4", False),
        ("user: ada@example.com", True),
        ("actor.alternateId: ada@example.com", True),
        ("eventName: user.login", True),
        ("eventType: user.login", True),
        ("outcome.result: SUCCESS", True),
        ("userAgent|contains: curl", True),
        ("client.userAgent.rawUserAgent|contains: curl", True),
    ],
)
def test_aliases(body: str, expected: bool) -> None:
    """Common SaaS field names (Okta, CloudTrail) read Vigil's fields."""
    assert fires(sel(body)) is expected


def test_logsource_category_filters_events() -> None:
    """A Vigil category in the logsource only lets events of that category through."""
    assert fires(sel("action: user.login"), logsource="{product: vigil, category: audit}")
    assert not fires(sel("action: user.login"), logsource="{product: vigil, category: change}")
    assert fires(sel("action: user.login"), logsource="{product: Vigil}")


@pytest.mark.parametrize(
    ("text", "feature", "words"),
    [
        (
            rule_yaml(sel("action: x"), logsource="{product: okta}"),
            "logsource product 'okta'",
            "use product: vigil",
        ),
        (
            rule_yaml(sel("action: x"), logsource="{category: authentication}"),
            "logsource product",
            "no product",
        ),
        (
            rule_yaml(sel("action: x"), logsource="{product: vigil, service: okta}"),
            "logsource service 'okta'",
            "",
        ),
        (
            rule_yaml(sel("action: x"), logsource="{product: vigil, category: process_creation}"),
            "logsource category",
            "",
        ),
        (rule_yaml(sel("action|expand: '%admins%'")), "modifier 'expand'", "not supported"),
        (rule_yaml(sel("action|utf16le: x")), "modifier 'utf16le'", "not supported"),
        (rule_yaml(sel("action|wide|base64: x")), "modifier 'wide'", "UTF-16"),
        (rule_yaml(sel("occurred_at|hour: 3")), "modifier 'hour'", "time-part"),
        (rule_yaml(sel("EventID: 4625")), "field 'EventID'", "does not exist"),
        (rule_yaml(sel("actor.department: sales")), "field 'actor.department'", "does not exist"),
        (rule_yaml(sel("actor: usr_1")), "field 'actor'", "object"),
        (rule_yaml(sel("actor.id|fieldref: seq")), "field 'seq'", "does not exist"),
        (rule_yaml(sel("action: x"), extra="examples: [1, 2]"), "examples", "mapping"),
        (rule_yaml(sel("action: x"), extra="examples: {fire: [[1]]}"), "examples", "item 1"),
        (rule_yaml(sel("action: x"), extra="runbook: [a]"), "runbook", "text"),
        (rule_yaml("  sel: {action: x}\n  condition: nosuch"), "condition", "nosuch"),
        (rule_yaml("  sel: {action: x}\n  condition: sel | count() > 5"), "condition", "pipe"),
        (rule_yaml(sel("action|re: '(?<=a)b'")), "regular expression", "invalid"),
        ("title: t\nlogsource: {product: vigil}\n", "detection", ""),
        (
            "title: [a]\nlogsource: {product: vigil}\ndetection: {sel: {action: x}, condition: sel}",
            "title",
            "",
        ),
        ("action: global\ntitle: t\n", "collection action", "in full"),
        (
            "title: f\nfilter: {rules: [x], selection: {a: b}, condition: not selection}\n",
            "filter",
            "filters",
        ),
        ("just: [a, yaml, file]\n", "not a rule", "neither"),
        ("- a\n- b\n", "not a rule", "list"),
        ("title: t\nlogsource: {product: vigil\n", "YAML", "not valid YAML"),
    ],
)
def test_refusals_name_the_feature(text: str, feature: str, words: str) -> None:
    """A rule the engine cannot evaluate exactly is refused with its file and the feature, never loaded."""
    err = refusal(text)
    assert err.source == "bad.yml"
    assert err.message.startswith("bad.yml: ")
    assert feature in err.feature, err.message
    assert words in err.message


def test_duplicate_ids_are_refused() -> None:
    """Two rules with one id would make one alert look like the other: the second is refused."""
    one = (
        "title: a\nid: 9d9f1d3e-2c1a-4f3e-9a55-111111111111\n" + rule_yaml(sel("action: x")).split("\n", 1)[1]
    )
    err = refusal(one + "---\n" + one.replace("title: a", "title: b"))
    assert err.feature == "duplicate rule id"
    assert "document 2 ('b')" in err.message


def test_empty_rule_set_is_an_error(tmp_path: Path) -> None:
    """No rule at all is a configuration error, not a rule set that never fires."""
    (tmp_path / "notes.txt").write_text("not a rule")
    with pytest.raises(RuleError, match=r"no \.yml or \.yaml"):
        load_sigma([tmp_path])
    with pytest.raises(RuleError, match="no Sigma rules"):
        load_sigma([])


def test_first_refusal_counts_the_others() -> None:
    """Loading stops at the first refusal and says how many more there are."""
    bad = rule_yaml(sel("EventID: 1"))
    with pytest.raises(RuleError, match=r"2 more refused"):
        load_sigma([("a.yml", bad), ("b.yml", bad), ("c.yml", bad)])


def test_rule_description() -> None:
    """Severity from level, ATT&CK ids (current ones first), id, source, examples and runbook."""
    rs = load_sigma([RULES / "okta_mfa_deactivated.yml"])
    (info,) = rs.rules
    assert info.id == "1c3f5a55-3a3b-4f5d-9d55-6a1f0e0a1b01"
    assert info.title == "MFA factor deactivated"
    assert info.severity == "P1"
    assert info.techniques == ("T1556.006", "T1685.002", "T1562.008")
    assert info.source == str(RULES / "okta_mfa_deactivated.yml")
    assert info.window_us == 0 and info.generates
    assert info.runbook.startswith("Confirm with the user")
    assert info.examples == Examples(
        fire=([{"action": "user.mfa.disabled"}], [{"action": "user.mfa.reset", "outcome": "success"}]),
        quiet=([{"action": "user.mfa.disabled", "outcome": "failure"}], [{"action": "user.login"}]),
    )


@pytest.mark.parametrize(
    ("head", "rid", "severity"),
    [
        ("title: t\nname: my_rule\nlevel: critical\n", "my_rule", "P0"),
        ("title: t\nlevel: informational\n", "t", "P3"),
        ("title: t\nlevel: low\n", "t", "P3"),
        ("title: t\n", "t", "P2"),  # no level: medium
    ],
)
def test_id_and_severity_fallbacks(head: str, rid: str, severity: str) -> None:
    """The id falls back to the name, then the title; a missing level is P2."""
    rs = load_sigma(
        [("x.yml", head + "logsource: {product: vigil}\ndetection: {sel: {action: x}, condition: sel}\n")]
    )
    assert (rs.rules[0].id, rs.rules[0].severity) == (rid, severity)


def test_stateless_hit_shape() -> None:
    """A detection hit is about one event: group ("event", id), that event as evidence, a summary."""
    rs = ruleset(sel("action: user.login"))
    ev = Ev("acme", 7, 1, DOC)
    (hit,) = rs.feed(ev)
    assert hit.tenant == "acme"
    assert hit.group == (("event", DOC["id"]),)
    assert hit.evidence == (ev,)
    assert hit.summary == "test rule: user.login by Ada@Example.com"
    assert rs.feed(Ev("acme", 8, 2, {**DOC, "action": "user.logout"})) == ()


def test_action_index_never_drops_a_match() -> None:
    """Rules are indexed by the action they require; rules requiring none, or only negatively, see
    every event, and an OR with an unbounded side is not indexed."""
    texts = [
        rule_yaml(sel("action: user.login")).replace("test rule", "login"),
        rule_yaml(sel("action: x", "not sel")).replace("test rule", "not x"),
        rule_yaml("  a: {action: y}\n  b: {outcome: success}\n  condition: a or b").replace(
            "test rule", "y or ok"
        ),
        rule_yaml("  a: {action: [Y, user.login]}\n  b: {outcome: success}\n  condition: a and b").replace(
            "test rule", "in list"
        ),
        rule_yaml(sel("outcome: success")).replace("test rule", "any action"),
    ]
    rs = load_sigma([(f"r{i}.yml", t) for i, t in enumerate(texts)])

    def titles(action: str) -> list[str]:
        return [h.rule.title for h in rs.feed(Ev("acme", 0, 0, {**DOC, "action": action}))]

    assert titles("user.login") == ["login", "not x", "y or ok", "in list", "any action"]
    assert titles("y") == ["not x", "y or ok", "in list", "any action"]
    assert titles("x") == ["y or ok", "any action"]
    assert titles("USER.LOGIN") == ["login", "not x", "y or ok", "in list", "any action"]
    assert [h.rule.title for h in rs.feed(Ev("acme", 0, 0, {"id": "e"}))] == ["not x"]


def test_compile_rules_reports_each_document() -> None:
    """compile_rules gives one verdict per document, loaded or refused, without raising."""
    results = compile_rules(
        [("a.yml", rule_yaml(sel("action: x")) + "---\n" + rule_yaml(sel("EventID: 1"))), ("b.yml", "][")]
    )
    assert [(r.source, r.error is None) for r in results] == [
        ("a.yml", True),
        ("a.yml", False),
        ("b.yml", False),
    ]
    assert results[0].info is not None and results[1].info is None
    assert results[1].error is not None and results[1].error.feature == "field 'EventID'"


def test_unknown_attributes_are_noted() -> None:
    """Attributes Vigil does not read are reported by lint rather than silently ignored."""
    (result,) = compile_rules([("a.yml", rule_yaml(sel("action: x"), extra="custom_thing: 1\nowner: sec"))])
    assert result.error is None
    assert result.notes == ("unknown attributes ignored: custom_thing, owner",)


def test_rules_from_a_directory_recursively() -> None:
    """A directory is searched recursively for .yml and .yaml files."""
    rs = load_sigma([RULES])
    sources = {Path(r.source).name for r in rs.rules}
    assert {"okta_mfa_deactivated.yml", "github_admin_grant.yaml", "brute_force_then_success.yml"} <= sources


def test_regex_is_linear_time() -> None:
    """A pathological pattern runs on RE2, so attacker-controlled text cannot stall detection."""
    rs = ruleset(sel("context.user_agent|re: '(a+)+$'"))
    doc = {**DOC, "context": {"user_agent": "a" * 5000 + "!"}}
    assert rs.feed(Ev("acme", 0, 0, doc)) == ()
