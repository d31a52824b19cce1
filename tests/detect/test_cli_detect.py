"""`vigil detect`, `vigil alerts list` and `vigil rules …` as a user runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from vigil.cli import main
from vigil.store import open_store


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _seed(db: str) -> None:
    """acme with ten failed sign-ins to one account and one MFA change."""
    events = [
        {
            "action": "user.login",
            "outcome": "failure",
            "actor": {"id": "usr_v"},
            "context": {"ip": "198.51.100.5"},
        }
        for _ in range(10)
    ] + [{"action": "user.mfa.disabled", "actor": {"id": "usr_w"}}]
    import msgspec

    from vigil.ingest.intake import prepare_event
    from vigil.model import EventIn

    store = open_store(db)
    try:
        t = store.create_tenant("acme")
        store.append(
            t.id,
            [
                prepare_event(msgspec.convert(e, EventIn), "acme", time.time_ns() // 1000 + i)
                for i, e in enumerate(events)
            ],
        )  # type: ignore[misc]
    finally:
        store.close()


def test_rules_list_says_which_rules_are_off_and_why(tmp_path: Path, geoip: Path) -> None:
    """Without a GeoIP file the geo rules show as disabled, with the reason; with it they are enabled."""
    off = json.loads(run("rules", "list", "--json").stdout)
    state = {r["id"]: r["state"] for r in off["rules"]}
    assert state["vigil.impossible_travel"].startswith("disabled: needs a GeoIP database")
    assert state["vigil.brute_force"] == "enabled" and off["warnings"]
    on = json.loads(run("rules", "list", "--json", "--geoip-database", str(geoip)).stdout)
    assert all(r["state"] == "enabled" for r in on["rules"]) and on["warnings"] == []


def test_rules_test_runs_the_builtin_examples() -> None:
    """What CI runs: every built-in example passes, and the command says how many."""
    result = run("rules", "test", "--json")
    report = json.loads(result.stdout)
    assert report["failed"] == [] and report["passed"] >= 50


def test_detect_until_idle_then_alerts_list(database: str) -> None:
    """detect --until-idle processes what is committed and exits; alerts list shows what it raised."""
    db = database
    _seed(db)
    report = json.loads(run("detect", "--until-idle", "--database", db, "--json").stdout)
    assert report["events"] == 11 and report["alerts"] == 2
    listed = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    assert sorted(a["rule"] for a in listed) == ["vigil.brute_force", "vigil.mfa_disabled"]
    text = run("alerts", "list", "--database", db, "--severity", "P2", "--tenant", "acme").stdout
    assert "vigil.brute_force" in text


def test_hunting_with_one_rule_after_the_fact(database: str) -> None:
    """The follower ran with MFA disabled off for acme; a hunt with that rule finds it, once."""
    db = database
    _seed(db)
    run("rules", "disable", "vigil.mfa_disabled", "--tenant", "acme", "--database", db)
    first = json.loads(run("detect", "--until-idle", "--database", db, "--json").stdout)
    assert first["alerts"] == 1
    run("rules", "enable", "vigil.mfa_disabled", "--tenant", "acme", "--database", db)
    hunt = ["detect", "--since", "30d", "--rule", "vigil.mfa_disabled", "--database", db, "--json"]
    # the seeded events happened "now": hunting the last 30 days covers them
    assert json.loads(run(*hunt).stdout)["alerts"] == 1
    assert json.loads(run(*hunt).stdout)["alerts"] == 0  # again: no duplicate
    listed = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    assert sorted(a["rule"] for a in listed) == ["vigil.brute_force", "vigil.mfa_disabled"]


def test_rule_thresholds_are_set_per_tenant_and_checked(database: str) -> None:
    """rules set takes NAME=VALUE with the default's type; unknown names and wrong types are refused."""
    db = database
    _seed(db)
    run("rules", "set", "vigil.brute_force", "failures=20", "--tenant", "acme", "--database", db)
    assert (
        json.loads(run("detect", "--until-idle", "--database", db, "--json").stdout)["alerts"] == 1
    )  # MFA only
    bad = run("rules", "set", "vigil.brute_force", "failurez=3", "--tenant", "acme", "--database", db, code=2)
    assert "has no threshold 'failurez' (it has: failures)" in bad.output
    bad = run(
        "rules", "set", "vigil.brute_force", "failures=lots", "--tenant", "acme", "--database", db, code=2
    )
    assert "failures takes a int" in bad.output
    assert (
        "no tenant 'nope'"
        in run("rules", "disable", "vigil.brute_force", "--tenant", "nope", "--database", db, code=1).output
    )


def test_bad_detect_arguments_are_explained(database: str) -> None:
    """--tenant without --since, an unknown rule and a bad duration each get a clear message."""
    db = database
    _seed(db)
    assert "--tenant goes with --since" in run("detect", "--tenant", "acme", "--database", db, code=2).output
    assert (
        "no rule vigil.nope"
        in run("detect", "--until-idle", "--rule", "vigil.nope", "--database", db, code=1).output
    )
    assert (
        "a duration ago (30d, 12h, 15m)" in run("detect", "--since", "soon", "--database", db, code=2).output
    )


RULES = Path(__file__).parent / "sigma_rules"
LINT = Path(__file__).parent / "lint_rules"


def test_sigma_rules_directory_is_listed_and_its_examples_run() -> None:
    """--rules adds the directory's Sigma rules to the list; `rules test PATH` runs their examples."""
    listed = json.loads(run("rules", "list", "--rules", str(RULES), "--json").stdout)["rules"]
    sigma = [r for r in listed if r["source"] != "builtin"]
    assert sigma and all(r["source"].startswith(str(RULES)) for r in sigma)
    assert any(r["state"].startswith("enabled (feeds a correlation") for r in sigma)
    report = json.loads(run("rules", "test", str(RULES), "--json").stdout)
    assert report["failed"] == [] and report["passed"] >= 4


def test_rules_lint_reports_every_file_and_exits_1_on_refusals() -> None:
    """Every file under the directory gets a line, loaded or refused with a reason; nothing crashes."""
    result = run("rules", "lint", str(LINT), "--json", code=1)
    report = json.loads(result.stdout)
    files = {Path(r["path"]).name for r in report}
    assert files == {p.name for p in LINT.rglob("*") if p.suffix in (".yml", ".yaml")}
    assert {r["status"] for r in report} == {"loaded", "refused"}
    assert all(r["reason"] for r in report if r["status"] == "refused")
    okta = next(r for r in report if Path(r["path"]).name == "okta_product.yml")
    assert "logsource product 'okta'" in okta["reason"]
    assert run("rules", "lint", str(RULES)).exit_code == 0


def test_detect_runs_sigma_rules_beside_the_builtins(database: str, tmp_path: Path) -> None:
    """A Sigma rule from --rules raises alerts through the same engine as the built-ins."""
    db = database
    _seed(db)
    rule = tmp_path / "rules" / "mfa.yml"
    rule.parent.mkdir()
    rule.write_text(
        "title: MFA turned off\nid: 7d1d2a4e-0000-4000-8000-000000000001\nlogsource:\n  product: vigil\n"
        "detection:\n  sel:\n    action: user.mfa.disabled\n  condition: sel\nlevel: high\n"
        "tags:\n  - attack.t1556.006\n",
        encoding="utf-8",
    )
    run("detect", "--until-idle", "--database", db, "--rules", str(rule.parent))
    listed = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    sigma = [a for a in listed if a["rule"] == "7d1d2a4e-0000-4000-8000-000000000001"]
    assert len(sigma) == 1 and sigma[0]["severity"] == "P1" and sigma[0]["techniques"] == ["T1556.006"]


def test_sigma_rules_can_be_turned_off_per_tenant_and_unknown_ids_are_refused(database: str) -> None:
    """enable/disable know the Sigma rules of --rules; an id no rule has is refused, with a hint."""
    _seed(database)
    rule_id = "1c3f5a55-3a3b-4f5d-9d55-6a1f0e0a1b01"
    run("rules", "disable", rule_id, "--tenant", "acme", "--database", database, "--rules", str(RULES))
    store = open_store(database)
    try:
        (setting,) = store.rule_settings()
    finally:
        store.close()
    assert (setting.rule_id, setting.enabled) == (rule_id, False)
    bad = run("rules", "disable", rule_id, "--tenant", "acme", "--database", database, code=2)
    assert "a Sigma rule needs --rules DIR" in bad.output
    assert (
        "no rule 'vigil.nope'"
        in run("rules", "enable", "vigil.nope", "--tenant", "acme", "--database", database, code=2).output
    )


def test_a_disabled_rule_is_named_disabled_with_its_reason(database: str, geoip: Path) -> None:
    """--rule with a geo rule and no GeoIP file says the rule is disabled and why, never "no rule"; with the
    file it runs."""
    _seed(database)
    off = run("detect", "--until-idle", "--rule", "vigil.impossible_travel", "--database", database, code=1)
    said = " ".join(off.output.split())
    assert "rule vigil.impossible_travel is disabled: it needs a GeoIP database" in said
    assert "--geoip-database FILE or VIGIL_GEOIP_DATABASE" in said
    assert "no rule" not in off.output
    on = ["detect", "--until-idle", "--rule", "vigil.impossible_travel", "--geoip-database", str(geoip)]
    assert json.loads(run(*on, "--database", database, "--json").stdout)["rules"] == 1


def test_detect_counts_the_rules_it_ran(database: str) -> None:
    """The summary counts the rules that ran: one with one --rule, every enabled rule without."""
    _seed(database)
    one = run("detect", "--since", "30d", "--rule", "vigil.mfa_disabled", "--database", database)
    assert " events through 1 rule in " in one.stdout
    listed = json.loads(run("rules", "list", "--json").stdout)["rules"]
    running = [r for r in listed if not r["state"].startswith("disabled")]
    every = json.loads(run("detect", "--until-idle", "--database", database, "--json").stdout)
    assert every["rules"] == len(running) < len(listed)


def test_hunting_a_rule_a_tenant_turned_off_says_so(database: str) -> None:
    """A hunt with a rule the tenant disabled raises nothing there, and says why instead of staying silent."""
    _seed(database)
    run("rules", "disable", "vigil.mfa_disabled", "--tenant", "acme", "--database", database)
    hunt = run("detect", "--since", "30d", "--rule", "vigil.mfa_disabled", "--database", database, "--json")
    assert json.loads(hunt.stdout)["alerts"] == 0
    assert "note: vigil.mfa_disabled is disabled for acme" in hunt.stderr


def test_the_geoip_warning_prints_once(database: str, tmp_path: Path) -> None:
    """A real `vigil detect` process without a GeoIP file warns about it exactly once."""
    import subprocess

    from vigil.detect.loader import NO_GEO
    from vigil.testing import vigil_command

    _seed(database)
    done = subprocess.run(
        vigil_command("detect", "--until-idle", "--database", database),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(NO_GEO) == 1, done.stderr
    assert " events through " in done.stdout
