"""Done-when of detection: every attack `vigil demo` plants raises its alert, and benign traffic raises none."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from vigil import demo
from vigil.cli import main
from vigil.detect.loader import build_engine
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import open_store
from vigil.store.detection import AlertQuery

END = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
RULE_OF = {  # demo pattern -> the built-in that must catch it
    "brute_force": "vigil.brute_force",
    "password_spraying": "vigil.password_spraying",
    "success_after_failures": "vigil.success_after_failures",
    "impossible_travel": "vigil.impossible_travel",
    "self_role_grant": "vigil.self_role_grant",
    "admin_role_granted": "vigil.admin_role_granted",
    "mfa_disabled": "vigil.mfa_disabled",
    "audit_log_disabled": "vigil.audit_log_disabled",
    "api_key_new_network": "vigil.api_key_new_network",
    "bulk_export": "vigil.bulk_export",
    "operator_customer_data_access": "vigil.operator_data_access",
    "new_country": "vigil.new_country",
}


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_every_planted_attack_raises_its_alert_on_its_events(settings: Settings, geoip: Path) -> None:
    """Each pattern's events are the evidence of an alert of the right rule and technique; no alert rests on
    benign events only (on SQLite and on PostgreSQL; `vigil demo`'s own seed is checked below)."""
    seed = 42
    settings = Settings.load({**settings.values, "geoip_database": str(geoip)}, environ={})
    store = open_store(settings.database, settings)
    planted: list[demo.AttackPattern] = []
    try:
        for slug in demo.DEMO_TENANTS:
            tenant = store.create_tenant(slug)
            events, patterns = demo.generate(slug, 33_334, end=END, seed=seed)
            planted += patterns
            prepared = [
                prepare_event(msgspec.convert(e, EventIn), slug, time.time_ns() // 1000) for e in events
            ]
            assert all(isinstance(p, Prepared) for p in prepared)
            for i in range(0, len(prepared), 5000):
                store.append(tenant.id, prepared[i : i + 5000])  # type: ignore[arg-type]
        engine, _ = build_engine(store, settings)
        engine.start()
        engine.run_until_idle()
        alerts = store.list_alerts(AlertQuery(limit=1000))
        slugs = {t.id: t.slug for t in store.list_tenants()}
    finally:
        store.close()
    assert len(planted) == 12
    attack_ids = {i for p in planted for i in p.event_ids}
    for p in planted:
        caught = [
            a
            for a in alerts
            if slugs[a.tenant_id] == p.tenant
            and a.rule_id == RULE_OF[p.name]
            and {i for _, i in a.evidence} & set(p.event_ids)
        ]
        assert caught, f"{p.tenant}: {p.name} ({p.description}) raised no {RULE_OF[p.name]} alert"
        assert p.technique in caught[0].techniques
    benign = [
        (slugs[a.tenant_id], a.rule_id, a.summary)
        for a in alerts
        if not {i for _, i in a.evidence} & attack_ids
    ]
    assert benign == []


@pytest.mark.slow
def test_vigil_demo_then_vigil_detect_lists_exactly_the_planted_attacks(database: str, geoip: Path) -> None:
    """What a user runs: `vigil demo`, `vigil detect --until-idle`, `vigil alerts list --json`."""
    db = database
    out = json.loads(run("demo", "--database", db, "--json").stdout)
    expected = {(slug, RULE_OF[a["name"]]) for slug, info in out["tenants"].items() for a in info["attacks"]}
    assert len(expected) == 12
    detected = json.loads(
        run("detect", "--until-idle", "--database", db, "--geoip-database", str(geoip), "--json").stdout
    )
    assert detected["events"] >= 100_000
    alerts = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    # the impossible trip is also the user's first sign-in from that country: both rules rightly fire on it
    assert {(a["tenant"], a["rule"]) for a in alerts} - {("globex", "vigil.new_country")} == expected
    assert all(
        a["techniques"] and a["evidence"] and a["severity"] in {"P0", "P1", "P2", "P3"} for a in alerts
    )
    # a second run finds nothing new
    again = json.loads(
        run("detect", "--until-idle", "--database", db, "--geoip-database", str(geoip), "--json").stdout
    )
    assert again["events"] == 0 and again["alerts"] == 0
