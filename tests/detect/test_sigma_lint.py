"""``lint_sigma`` reports every rule file of a directory, loaded or refused with the feature, and never crashes on
what a file holds: bad YAML, YAML that is no rule, empty files, unreadable files, wrong types anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.detect.sigma import compile_rules, lint_sigma

LINT = Path(__file__).parent / "lint_rules"

EXPECTED: dict[str, list[tuple[str, str]]] = {  # file -> [(status, feature or note fragment)] per document
    "okta_admin_app_access.yml": [("loaded", "")],
    "google_workspace_2sv_disabled.yml": [("loaded", "")],
    "nested/github/audit_log_stream_deleted.yaml": [("loaded", "")],
    "multi_rule_correlation.yml": [("loaded", ""), ("loaded", "")],
    "mixed_documents.yml": [("loaded", ""), ("refused", "field 'EventID'")],
    "okta_product.yml": [("refused", "logsource product 'okta'")],
    "expand_placeholder.yml": [("refused", "modifier 'expand'")],
    "wide_modifier.yml": [("refused", "modifier 'wide'")],
    "malformed.yml": [("refused", "YAML")],
    "not_a_rule.yml": [("refused", "not a rule")],
    "empty.yaml": [("refused", "empty file")],
    "comments_only.yml": [("refused", "empty file")],
    "top_level_list.yml": [("refused", "not a rule")],
    "duplicate_keys.yml": [("refused", "YAML")],
    "unknown_attribute.yml": [("loaded", "unknown attributes ignored: owner, severity_override")],
    "broken_reference.yml": [("refused", "rule reference")],
}


def test_lint_reports_every_file_and_document() -> None:
    """Every .yml/.yaml file under the directory (recursively) is reported, one line per document; other
    files are left alone."""
    results = lint_sigma(LINT)
    got: dict[str, list[tuple[str, str]]] = {}
    for r in results:
        rel = Path(r.path).relative_to(LINT).as_posix()
        detail = r.feature if r.status == "refused" else r.reason
        got.setdefault(rel, []).append((r.status, detail))
    assert set(got) == set(EXPECTED)
    for name, lines in EXPECTED.items():
        assert [status for status, _ in got[name]] == [status for status, _ in lines], name
        for (_, want), (_, have) in zip(lines, got[name], strict=True):
            assert want in have, (name, have)


def test_lint_names_rules_and_gives_reasons() -> None:
    """Each line names the rule (its title) when there is one, and a refusal says why in words."""
    by_rule = {r.rule: r for r in lint_sigma(LINT)}
    okta = by_rule["Okta MFA reset (written for Okta's own logsource)"]
    assert okta.status == "refused"
    assert okta.reason == "logsource product 'okta' is not Vigil's (use product: vigil)"
    windows = by_rule["Windows logon failure"]
    assert windows.reason.startswith("document 2 ('Windows logon failure'): field 'EventID' does not exist")
    assert by_rule["Spraying then success"].reason.startswith("refers to rule 'password_spraying'")
    assert [r.rule for r in lint_sigma(LINT / "empty.yaml")] == [None]


def test_lint_of_odd_paths(tmp_path: Path) -> None:
    """A missing path, an empty directory, a non-UTF-8 file and a single file each get a line."""
    (missing,) = lint_sigma(tmp_path / "nope.yml")
    assert missing.status == "refused" and missing.feature == "unreadable file"
    empty = tmp_path / "empty"
    empty.mkdir()
    (line,) = lint_sigma(empty)
    assert line.status == "refused" and "no .yml or .yaml" in line.reason
    latin = tmp_path / "latin.yml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    (bad,) = lint_sigma(latin)
    assert bad.feature == "encoding"
    (one,) = lint_sigma(LINT / "google_workspace_2sv_disabled.yml")
    assert (one.status, one.rule) == ("loaded", "2-step verification disabled")
    (tmp_path / "dir.yml").mkdir()  # a directory with a rule-like name is not a file to lint
    assert [r.path for r in lint_sigma(tmp_path)] == [str(latin)]  # the empty folder inside holds no file


def test_lint_on_a_directory_of_only_good_rules_loads_all(tmp_path: Path) -> None:
    """The good fixtures also load together as a rule set (lint and load agree)."""
    for name in ("okta_admin_app_access.yml", "multi_rule_correlation.yml"):
        (tmp_path / name).write_text((LINT / name).read_text())
    assert [r.status for r in lint_sigma(tmp_path)] == ["loaded", "loaded", "loaded"]


VALID: dict[str, Any] = {
    "title": "t",
    "id": "6b0f2f0e-8d4e-4c55-a1f4-2f1f2e3a0099",
    "logsource": {"product": "vigil"},
    "detection": {"sel": {"action": "user.login", "context.ip|cidr": "10.0.0.0/8"}, "condition": "sel"},
    "examples": {"fire": [[{"action": "user.login"}]]},
}
CORRELATION: dict[str, Any] = {
    "title": "c",
    "correlation": {
        "type": "event_count",
        "rules": ["t"],
        "group-by": ["actor.id"],
        "timespan": "5m",
        "condition": {"gte": 3},
    },
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["sel", "not sel", "1 of them", "user.login", "10.0.0.0/8", "5m", "event_count", "vigil"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), scalars), inner, max_size=4),
    ),
    max_leaves=12,
)


def _mutate(data: Any, path: list[int], replacement: Any) -> Any:
    """``data`` with the node reached by following ``path`` (indexes, modulo the children) replaced."""
    if not path or not isinstance(data, dict | list) or not data:
        return replacement
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(data) if isinstance(data, dict) else list(data)
    copy[key] = _mutate(data[key], path[1:], replacement)
    return copy


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([VALID, CORRELATION]),
    path=st.lists(st.integers(0, 10), max_size=4),
    replacement=values,
)
def test_mutated_rules_never_crash(base: dict[str, Any], path: list[int], replacement: Any) -> None:
    """Any value anywhere in a rule (or a correlation next to it) gives a verdict, never an exception."""
    text = yaml.safe_dump_all([_mutate(base, path, replacement), VALID | {"title": "other", "id": None}])
    for result in compile_rules([("fuzz.yml", text)]):
        assert (result.error is None) == (result.info is not None)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    """Arbitrary text is refused (or, by chance, loaded) but never raises."""
    results = compile_rules([("text.yml", text)])
    assert results
