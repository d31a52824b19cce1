"""What the CLI prints: pure JSON with --json (never a progress label), tables with a header and the ids the other
commands take, `alerts show`, and per-tenant rule state in `rules list`; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.cli import main


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def pure_json(*args: str) -> Any:
    """Run with --json: standard output parses as JSON and nothing at all goes to standard error."""
    result = run(*args, "--json")
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def demo(database: str, tmp_path: Path) -> tuple[str, list[str]]:
    """A demo database with its alerts raised, and the signing-key flags its commands need."""
    signing = ["--signing-key", str(tmp_path / "signing-key")]
    out = pure_json("demo", "--events", "600", "--days", "3", "--database", database)
    assert set(out["tenants"]) == {"acme", "globex", "initech"}
    run("detect", "--until-idle", "--database", database)
    return database, signing


def test_json_mode_prints_json_and_nothing_else(demo: tuple[str, list[str]], tmp_path: Path) -> None:
    """Every command that shows progress prints no bar and no label with --json: standard output is one JSON
    document, standard error is empty."""
    db, signing = demo
    cp = pure_json("checkpoint", "--tenant", "acme", "--database", db, *signing)
    assert cp["size"] > 0 and cp["note"].startswith("vigil/acme\n")
    verified = pure_json("verify", "--database", db, *signing)
    assert verified["ok"] is True and verified["indexes"]["ok"] is True
    out = tmp_path / "acme.ndjson"
    summary = pure_json(
        "export", "--tenant", "acme", "--format", "ndjson", "-o", str(out), "--database", db, *signing
    )
    assert summary["events"] == cp["size"] == len(out.read_bytes().splitlines())
    assert (summary["tenant"], summary["format"], summary["from_seq"], summary["to_seq"]) == (
        "acme",
        "ndjson",
        0,
        cp["size"],
    )
    reindexed = pure_json("reindex", "--database", db)
    assert reindexed["repaired"] == 0 and reindexed["events"] > 0
    assert pure_json("tenants", "list", "--database", db)


def test_rule_changes_answer_in_json(demo: tuple[str, list[str]]) -> None:
    """rules disable, enable and set print the tenant's setting of the rule as it now is."""
    db, _ = demo
    off = pure_json("rules", "disable", "vigil.brute_force", "--tenant", "acme", "--database", db)
    assert off == {"rule": "vigil.brute_force", "tenant": "acme", "enabled": False, "params": {}}
    tuned = pure_json(
        "rules", "set", "vigil.brute_force", "failures=20", "--tenant", "acme", "--database", db
    )
    assert tuned == {
        "rule": "vigil.brute_force",
        "tenant": "acme",
        "enabled": False,
        "params": {"failures": 20},
    }
    on = pure_json("rules", "enable", "vigil.brute_force", "--tenant", "acme", "--database", db)
    assert on["enabled"] is True and on["params"] == {"failures": 20}


def test_rules_list_shows_per_tenant_state(demo: tuple[str, list[str]]) -> None:
    """With --tenant the list is the rules as they run for that tenant; with --database alone, every tenant's
    changes show beside each rule."""
    db, _ = demo
    run("rules", "disable", "vigil.mfa_disabled", "--tenant", "acme", "--database", db)
    run("rules", "set", "vigil.brute_force", "failures=20", "--tenant", "globex", "--database", db)
    acme = pure_json("rules", "list", "--tenant", "acme", "--database", db)
    assert acme["tenant"] == "acme"
    state = {r["id"]: r for r in acme["rules"]}
    assert state["vigil.mfa_disabled"]["state"] == "disabled for acme"
    assert (
        state["vigil.brute_force"]["state"] == "enabled"
        and state["vigil.brute_force"]["params"]["failures"] != 20
    )
    globex = {r["id"]: r for r in pure_json("rules", "list", "--tenant", "globex", "--database", db)["rules"]}
    assert globex["vigil.mfa_disabled"]["state"] == "enabled"
    assert globex["vigil.brute_force"]["params"]["failures"] == 20
    every = {r["id"]: r for r in pure_json("rules", "list", "--database", db)["rules"]}
    assert every["vigil.mfa_disabled"]["tenants"] == {"acme": {"enabled": False, "params": {}}}
    assert every["vigil.brute_force"]["tenants"] == {"globex": {"enabled": None, "params": {"failures": 20}}}
    text = run("rules", "list", "--database", db).stdout
    assert text.splitlines()[0].split() == ["SEV", "RULE", "ATT&CK", "TITLE"]
    line = next(x for x in text.splitlines() if " vigil.mfa_disabled " in x)
    assert "[off for acme]" in line
    assert "[globex: failures=20]" in next(x for x in text.splitlines() if " vigil.brute_force " in x)
    plain = json.loads(run("rules", "list", "--json").stdout)  # no database asked for: none read
    assert all(r["tenants"] == {} for r in plain["rules"])


def test_keys_and_alerts_lists_are_tables_with_ids(demo: tuple[str, list[str]]) -> None:
    """keys list and alerts list print a header row, then one row per item with the id other commands take."""
    db, _ = demo
    keys = json.loads(run("keys", "list", "--database", db, "--json").stdout)
    lines = run("keys", "list", "--database", db).stdout.splitlines()
    assert lines[0].split()[:2] == ["KEY", "ID"] and lines[0].split()[-1] == "NAME"
    assert [line.split()[0] for line in lines[1:]] == [k["key_id"] for k in keys]
    alerts = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    assert alerts, "the demo's planted attacks raise alerts"
    lines = run("alerts", "list", "--database", db).stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "SEV", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [a["id"] for a in alerts]
    assert all(a["rule"] in line and a["tenant"] in line for a, line in zip(alerts, lines[1:], strict=True))


def test_alerts_show_gives_the_alert_its_rule_and_evidence(demo: tuple[str, list[str]]) -> None:
    """alerts show ID: the alert, the rule with its runbook, and each evidence event as stored, in seq order."""
    db, _ = demo
    first = json.loads(run("alerts", "list", "--database", db, "--json").stdout)[0]
    shown = pure_json("alerts", "show", first["id"], "--database", db)
    assert shown["alert"] == first
    assert shown["rule"]["id"] == first["rule"] and shown["rule"]["runbook"]
    assert [(e["seq"], e["id"]) for e in shown["evidence"]] == [
        (e["seq"], e["id"]) for e in first["evidence"]
    ]
    assert all(e["action"] and len(e["leaf_hash"]) == 64 for e in shown["evidence"])
    text = run("alerts", "show", first["id"], "--database", db).stdout
    assert first["id"] in text and first["summary"] in text and "runbook:" in text
    assert f"evidence ({len(first['evidence'])} event(s)):" in text
    assert all(f" {e['action']} " in text for e in shown["evidence"])
    missing = run("alerts", "show", "0190a000-0000-7000-8000-000000000000", "--database", db, code=1)
    assert "no alert '0190a000-0000-7000-8000-000000000000'; see vigil alerts list" in missing.output
