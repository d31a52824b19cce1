"""What Vigil prints counts right: "1 event", "1 day", never "1 events" or "1 days"."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from click.testing import CliRunner

from vigil.cli import main
from vigil.detect.builtin import AuditLogDisabled
from vigil.detect.rules import Ev
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import open_store
from vigil.text import noun, plural


def test_plural_and_noun() -> None:
    """One is singular; zero and many are plural; counts get thousands separators."""
    assert [plural(n, "event") for n in (0, 1, 2, 12000)] == [
        "0 events",
        "1 event",
        "2 events",
        "12,000 events",
    ]
    assert (
        noun(1, "day") == "day" and noun(7, "day") == "days" and plural(3, "entry", "entries") == "3 entries"
    )


def test_the_tenant_list_says_1_event(tmp_path: Path) -> None:
    """`vigil tenants list` on a tenant holding one event says "1 event"."""
    db = str(tmp_path / "vigil.db")
    store = open_store(db, Settings.load({"database": db}, environ={}))
    try:
        tenant = store.create_tenant("solo")
        event = msgspec.convert({"action": "user.login", "actor": {"id": "usr_1"}}, EventIn)
        prepared = prepare_event(event, "solo", time.time_ns() // 1000)
        assert isinstance(prepared, Prepared)
        store.append(tenant.id, [prepared])
    finally:
        store.close()
    result = CliRunner().invoke(main, ["tenants", "list", "--database", db], catch_exceptions=False)
    assert result.exit_code == 0 and " 1 event " in result.output and "1 events" not in result.output


def test_an_alert_says_1_day() -> None:
    """Audit log retention cut to one day reads "to 1 day" (the demo plants exactly that)."""
    doc = {
        "action": "audit_log.settings.updated",
        "outcome": "success",
        "actor": {"id": "usr_1", "name": "Ada"},
        "changes": {"retention_days": [365, 1]},
    }
    hits = AuditLogDisabled().hits(Ev("acme", 0, 0, {**doc, "id": "e1"}))
    assert hits and hits[0].summary.endswith("cut retention from 365 to 1 day"), hits
