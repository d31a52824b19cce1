"""The vigil command line: tenants, keys, demo, migrate, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.store.base import SearchQuery
from vigil.store.sqlite import SQLiteStore


def run(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_tenants_and_keys(tmp_path: Path) -> None:
    """Create a tenant and a key; lists show them; the secret is never listed or stored."""
    db = str(tmp_path / "v.db")
    created = json.loads(
        run("tenants", "create", "acme", "--name", "Acme", "--database", db, "--json").stdout
    )
    assert created["slug"] == "acme"
    key = json.loads(
        run("keys", "create", "--tenant", "acme", "--scope", "ingest,read", "--database", db, "--json").stdout
    )
    assert key["key"].startswith(f"vk_{key['key_id']}_") and key["scopes"] == ["ingest", "read"]
    listed = json.loads(run("keys", "list", "--database", db, "--json").stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert key["key"] not in json.dumps(listed)
    secret = key["key"][len(f"vk_{key['key_id']}_") :]
    assert len(secret) == 43 and secret.encode() not in Path(db).read_bytes()
    tenants = json.loads(run("tenants", "list", "--database", db, "--json").stdout)
    assert {t["slug"] for t in tenants} == {"acme", "vigil"}


def test_database_from_environment(tmp_path: Path) -> None:
    """VIGIL_DATABASE is used when --database is absent."""
    db = tmp_path / "env.db"
    run("tenants", "create", "globex", env={"VIGIL_DATABASE": str(db)})
    assert db.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("keys", "create", "--tenant", "nope"), "no tenant 'nope'"),
        (("tenants", "create", "Bad Slug"), "lower-case"),
        (
            ("tenants", "list", "--database", "postgresql://postgres@127.0.0.1:1/x"),
            "cannot connect to PostgreSQL",
        ),
        (("tenants", "list", "--database", "mysql://x"), "unsupported database URL"),
    ],
)
def test_errors_are_clear_and_exit_non_zero(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    """Bad input gives a one-line error and a non-zero exit, never a traceback."""
    if "--database" not in args:
        args = (*args, "--database", str(tmp_path / "v.db"))
    result = run(*args, ok=False)
    assert result.exit_code != 0
    assert words in result.output
    assert "Traceback" not in result.output


def test_wrong_scope_name(tmp_path: Path) -> None:
    """Unknown scopes are refused with the list of real ones."""
    db = str(tmp_path / "v.db")
    run("tenants", "create", "acme", "--database", db)
    result = run("keys", "create", "--tenant", "acme", "--scope", "ingest,god", "--database", db, ok=False)
    assert result.exit_code != 0 and "auditor" in result.output


def test_demo_fills_three_tenants_and_is_rerunnable(tmp_path: Path) -> None:
    """vigil demo writes realistic events for acme, globex and initech and prints working keys."""
    db = str(tmp_path / "demo.db")
    out = json.loads(run("demo", "--events", "3000", "--days", "7", "--database", db, "--json").stdout)
    assert set(out["tenants"]) == {"acme", "globex", "initech"}
    assert sum(t["events"] for t in out["tenants"].values()) >= 3000
    assert all(t["attacks"] for t in out["tenants"].values())
    store = SQLiteStore(db)
    try:
        acme = store.get_tenant("acme")
        logins = store.search(acme.id, SearchQuery(action="user.login", outcome="failure"))
        assert logins.events
        assert store.tree_size(acme.id) == out["tenants"]["acme"]["events"]
    finally:
        store.close()
    again = json.loads(run("demo", "--events", "3000", "--database", db, "--json").stdout)
    assert again["tenants"]["acme"]["events"] == out["tenants"]["acme"]["events"]
    assert "attacks" not in again["tenants"]["acme"]  # left as it was
    assert again["tenants"]["acme"]["key"] != out["tenants"]["acme"]["key"]


def test_demo_text_output_has_a_curl_line(tmp_path: Path) -> None:
    """Without --json, demo prints keys and a curl line to try."""
    result = run("demo", "--events", "600", "--days", "3", "--database", str(tmp_path / "d.db"))
    assert "curl -s -H 'Authorization: Bearer vk_" in result.stdout
    assert "planted:" in result.stdout


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    """vigil migrate reports the schema version and can run twice."""
    db = str(tmp_path / "v.db")
    first = json.loads(run("migrate", "--database", db, "--json").stdout)
    second = json.loads(run("migrate", "--database", db, "--json").stdout)
    assert first == second and first["schema_version"] >= 1


def test_help_explains_every_command() -> None:
    """--help lists the commands, and serve's help names every setting's environment variable."""
    top = run("--help").output
    for cmd in ("serve", "demo", "tenants", "keys", "migrate"):
        assert cmd in top
    serve = run("serve", "--help").output
    assert "VIGIL_DATABASE" in serve and "VIGIL_RATE_LIMIT" in serve


def test_database_passwords_never_reach_the_output() -> None:
    """A password in a database URL is masked wherever the CLI prints the URL."""
    from vigil.cli import safe_url

    assert safe_url("postgresql://vigil:s3cret@db:5432/audit") == "postgresql://vigil:***@db:5432/audit"
    assert safe_url("./vigil.db") == "./vigil.db"
