"""The built-in detections: each carries ATT&CK ids, a severity and examples, and passes its own examples."""

from __future__ import annotations

import re

import pytest

from vigil.detect.builtin import BUILTIN_RULES, BruteForce, builtin_evaluators
from vigil.detect.geo import example_geo
from vigil.detect.rules import REVOKED_TECHNIQUES, SEVERITIES, Examples
from vigil.detect.ruletest import run_examples


def test_every_builtin_example_passes() -> None:
    """`vigil rules test` on the built-ins: every fire example fires, every quiet one stays quiet."""
    outcomes = run_examples(builtin_evaluators(example_geo()))
    failed = [(o.rule.id, o.kind, o.index, o.detail) for o in outcomes if not o.ok]
    assert failed == []
    assert {o.rule.id for o in outcomes} == {r.id for r in BUILTIN_RULES}


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r.id)
def test_every_builtin_is_described(rule) -> None:  # type: ignore[no-untyped-def]
    """Each rule has ATT&CK ids, a P0-P3 severity, a runbook, and examples both ways."""
    assert rule.techniques and all(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in rule.techniques)
    assert not set(rule.techniques[:1]) & set(REVOKED_TECHNIQUES)  # the current id comes first
    assert rule.severity in SEVERITIES and rule.runbook and rule.title
    assert isinstance(rule.examples, Examples) and rule.examples.fire and rule.examples.quiet


def test_audit_log_rule_carries_the_revoked_id_too() -> None:
    """T1685.002 (ATT&CK v19) first, and the revoked T1562.008 that older tools still use."""
    rule = next(r for r in BUILTIN_RULES if r.id == "vigil.audit_log_disabled")
    assert rule.techniques == ("T1685.002", "T1562.008")


def test_a_failing_example_is_reported() -> None:
    """The runner is not a rubber stamp: a rule given examples it cannot pass fails them."""

    class Strict(BruteForce):
        info = BruteForce.info.__class__(
            **{
                **BruteForce.info.__dict__,
                "examples": Examples(
                    fire=([{"action": "user.logout"}],), quiet=(BruteForce.info.examples.fire[0],)
                ),
            }  # type: ignore[union-attr]
        )

    outcomes = [o for o in run_examples([Strict()]) if o.rule.id == "vigil.brute_force"]  # not its slow tier
    assert [(o.kind, o.ok) for o in outcomes] == [("fire", False), ("quiet", False)]
    assert outcomes[0].detail == "did not fire" and outcomes[1].detail.startswith("fired: 10 failed sign-ins")


def test_without_geo_the_geo_rules_are_left_out() -> None:
    """No GeoIP database: impossible travel and new country are not run (the loader says so)."""
    ids = {r.id for e in builtin_evaluators(None) for r in e.rules}
    assert "vigil.impossible_travel" not in ids and "vigil.new_country" not in ids
    assert "vigil.brute_force" in ids


def test_fed_directly_a_rule_still_looks_only_at_its_actions() -> None:
    """The Evaluator protocol feeds every event: a successful sign-in is not an MFA change or a role grant."""
    from vigil.detect.engine import ev_of
    from vigil.detect.ruletest import _events

    ((seq, body),) = _events(
        "acme", [{"action": "user.login", "targets": [{"type": "user", "id": "usr_example"}]}]
    )
    ev = ev_of("acme", seq, body)
    assert [h.rule.id for e in builtin_evaluators(example_geo()) for h in e.feed(ev)] == []
