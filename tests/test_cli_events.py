"""``vigil search`` and ``vigil export``: the API's filters and time forms, ``-o -`` as standard output, the gap
check on every unfiltered export, and each read recorded in the platform log; ``vigil detect --since`` reads times
the same way."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from support import database_args

from vigil.cli import main
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT, SearchQuery


def run(*args: str) -> Result:
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click 8.1; 8.2 always separates
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, list(args))


def said(result: Result) -> str:
    """Everything the command printed, on standard output and standard error."""
    return result.stdout + result.stderr


@pytest.fixture
def filled(store: Store, settings: Settings) -> Settings:
    tenant = store.create_tenant("acme")
    now = time.time_ns() // 1000
    rows = [
        ("user.login", "usr_alice", "203.0.113.7", "2026-11-01T09:00:00Z"),
        ("user.login", "usr_bob", "198.51.100.2", "2026-11-01T09:05:00Z"),
        ("invoice.created", "usr_alice", "203.0.113.8", "2026-11-02T10:00:00Z"),
        ("user.logout", "usr_bob", "2001:db8::1", "2026-11-03T10:00:00Z"),
    ]
    prepared = []
    for action, actor, ip, at in rows:
        raw = {
            "action": action,
            "actor": {"id": actor, "email": f"{actor[4:]}@Acme.example"},
            "context": {"ip": ip},
            "occurred_at": at,
            "message": f"{actor} did {action}",
        }
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        assert isinstance(p, Prepared)
        prepared.append(p)
    store.append(tenant.id, prepared)
    store.close()
    return settings


def test_export_to_standard_output_writes_no_file_named_dash(
    filled: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o - writes the export to standard output (the summary goes to standard error); no file named - appears."""
    monkeypatch.chdir(tmp_path)
    result = run("export", "--tenant", "acme", "--format", "ndjson", "-o", "-", *database_args(filled))
    assert result.exit_code == 0, said(result)
    lines = [json.loads(line) for line in result.stdout_bytes.splitlines()]
    assert [e["seq"] for e in lines] == [0, 1, 2, 3] and all(len(e["leaf_hash"]) == 64 for e in lines)
    assert "wrote ndjson of acme seqs 0..3 to standard output (4 events)" in result.stderr
    assert not (tmp_path / "-").exists()


def test_export_takes_the_search_filters_and_formats(filled: Settings, tmp_path: Path) -> None:
    """--ip, --since, --actor-email … narrow a CSV or JSON export as they narrow the API's."""
    out = tmp_path / "bob.csv"
    args = ("export", "--tenant", "acme", "--format", "csv", "--actor-email", "BOB@acme.example")
    result = run(*args, "-o", str(out), *database_args(filled))
    assert result.exit_code == 0, said(result)
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert [(r["seq"], r["action"]) for r in rows] == [("1", "user.login"), ("3", "user.logout")]
    out = tmp_path / "net.json"
    result = run(
        "export",
        "--tenant",
        "acme",
        "--format",
        "json",
        "--ip",
        "203.0.113.0/24",
        "--since",
        "2026-11-02",
        "-o",
        str(out),
        "--json",
        *database_args(filled),
    )
    assert result.exit_code == 0, said(result)
    assert [e["seq"] for e in json.loads(out.read_text())] == [2]
    assert json.loads(result.stdout)["events"] == 1


def test_export_of_a_log_with_a_hole_fails_and_writes_nothing(filled: Settings, tmp_path: Path) -> None:
    """The CLI's NDJSON (and CSV, JSON) export checks for holes as the API's does: it fails, naming the seqs,
    and leaves no file."""
    conn = sqlite3.connect(filled.database) if "://" not in filled.database else None
    if conn is None:
        import psycopg

        with psycopg.connect(filled.database) as pg:
            (tid,) = pg.execute("SELECT id FROM vigil.tenants WHERE slug = 'acme'").fetchone()  # type: ignore[misc]
            pg.execute(f"ALTER TABLE tenant_{tid}.events DISABLE TRIGGER append_only")
            pg.execute(f"DELETE FROM tenant_{tid}.events WHERE seq = 2")
            pg.execute(f"ALTER TABLE tenant_{tid}.events ENABLE ALWAYS TRIGGER append_only")
    else:
        (tid,) = conn.execute("SELECT id FROM tenants WHERE slug = 'acme'").fetchone()
        (guard,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_no_delete'").fetchone()
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE rid = ?", ((tid << 40) | 2,))
        conn.execute(guard)
        conn.commit()
        conn.close()
    for fmt in ("ndjson", "csv", "json"):
        out = tmp_path / f"acme.{fmt}"
        result = run("export", "--tenant", "acme", "--format", fmt, "-o", str(out), *database_args(filled))
        assert result.exit_code == 1, said(result)
        assert "not all in the store" in said(result) and "Traceback" not in said(result)
        assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_a_bundle_refuses_filters(filled: Settings, tmp_path: Path) -> None:
    """A bundle is a contiguous slice with its proofs: a filter on it is a usage error, not ignored."""
    result = run(
        "export",
        "--tenant",
        "acme",
        "--actor-id",
        "usr_bob",
        "-o",
        str(tmp_path / "b.zip"),
        *database_args(filled),
    )
    assert result.exit_code == 2 and "a bundle is a contiguous slice" in said(result)


def test_search_prints_the_events_and_records_the_read(filled: Settings) -> None:
    """vigil search takes the API's filters; --json gives the stored events; the read is in the platform log."""
    result = run("search", "--tenant", "acme", "--ip", "203.0.113.0/24", "--json", *_db(filled))
    assert result.exit_code == 0, said(result)
    out = json.loads(result.stdout)
    assert [e["seq"] for e in out["data"]] == [2, 0] and out["more"] is False
    text = run("search", "--tenant", "acme", "--since", "2026-11-03", *_db(filled))
    assert text.exit_code == 0 and "user.logout" in text.stdout and "1 event" in text.stdout
    from vigil.store import open_store

    again = open_store(filled.database, filled)
    try:
        platform = again.get_tenant(PLATFORM_TENANT).id
        page = again.search(platform, SearchQuery(action="audit_log.searched"))
        records = [json.loads(body) for _, _, body in page.events]
    finally:
        again.close()
    assert {"ip": "203.0.113.0/24", "results": 2, "via": "cli"}.items() <= records[-1]["metadata"].items()
    assert records[-1]["actor"]["type"] == "operator"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("search", "--tenant", "acme", "--since", "2026-11-01T00:00"), "has no zone"),
        (("search", "--tenant", "acme", "--ip", "example.com"), "is not an IPv4 or IPv6 address"),
        (("detect", "--since", "2026-11-01T00:00", "--tenant", "acme"), "has no zone"),
        (("detect", "--since", "soon", "--tenant", "acme"), "is not a time"),
    ],
)
def test_times_and_addresses_are_read_one_way_everywhere(
    filled: Settings, args: tuple[str, ...], says: str
) -> None:
    """The CLI refuses what the API refuses, with the same words."""
    result = run(*args, *_db(filled))
    assert result.exit_code != 0 and says in said(result), said(result)


def test_detect_since_takes_a_bare_date(filled: Settings) -> None:
    """vigil detect --since 2026-11-01 hunts from midnight UTC of that day, as since= does in the API."""
    from vigil.cli_detect import parse_since
    from vigil.times import parse_time

    assert parse_since("2026-12-01") == parse_time("2026-12-01T00:00:00Z")
    result = run("detect", "--since", "2026-11-01", "--tenant", "acme", "--json", *_db(filled))
    assert result.exit_code == 0, said(result)


def _platform_exports(database: str, settings: Settings) -> list[dict[str, Any]]:
    from vigil.store import open_store

    store = open_store(database, settings)
    try:
        platform = store.get_tenant(PLATFORM_TENANT).id
        return [
            json.loads(body)
            for _, _, body in store.search(platform, SearchQuery(action="audit_log.exported")).events
        ]
    finally:
        store.close()


def test_export_is_recorded_in_the_platform_log(filled: Settings, tmp_path: Path) -> None:
    """An export made with the CLI is recorded as the API records one (format, range, filters), by the operator."""
    result = run(
        "export",
        "--tenant",
        "acme",
        "--format",
        "csv",
        "--action",
        "user.*",
        "-o",
        str(tmp_path / "x.csv"),
        *database_args(filled),
    )
    assert result.exit_code == 0, said(result)
    (record,) = _platform_exports(filled.database, filled)
    assert record["metadata"] == {
        "via": "cli",
        "format": "csv",
        "from_seq": 0,
        "to_seq": 4,
        "action": "user.*",
    }


def _db(settings: Settings) -> list[str]:
    """--database alone, for the commands that sign nothing."""
    return ["--database", settings.database]
