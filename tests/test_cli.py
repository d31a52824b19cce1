"""The vigil command line: tenants, keys, demo, migrate, and clear errors, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.settings import SETTINGS
from vigil.store import open_store
from vigil.store.base import SearchQuery


def run(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def stored_bytes(database: str) -> bytes:
    """Everything the database holds: the SQLite file, or every row of every PostgreSQL table Vigil made."""
    if "://" not in database:
        return Path(database).read_bytes()
    import psycopg

    out = []
    with psycopg.connect(database) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND (n.nspname = 'vigil' OR n.nspname LIKE 'tenant\\_%')"
        ).fetchall()
        for (table,) in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                out += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return b"\n".join(out)


def test_tenants_and_keys(database: str) -> None:
    """Create a tenant and a key; lists show them; the secret is never listed or stored."""
    created = json.loads(
        run("tenants", "create", "acme", "--name", "Acme", "--database", database, "--json").stdout
    )
    assert created["slug"] == "acme"
    key = json.loads(
        run(
            "keys", "create", "--tenant", "acme", "--scope", "ingest,read", "--database", database, "--json"
        ).stdout
    )
    assert key["key"].startswith(f"vk_{key['key_id']}_") and key["scopes"] == ["ingest", "read"]
    listed = json.loads(run("keys", "list", "--database", database, "--json").stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert key["key"] not in json.dumps(listed)
    secret = key["key"][len(f"vk_{key['key_id']}_") :]
    stored = stored_bytes(database)
    assert key["key_id"].encode() in stored  # the dump holds the key's row
    assert len(secret) == 43 and secret.encode() not in stored
    tenants = json.loads(run("tenants", "list", "--database", database, "--json").stdout)
    assert {t["slug"] for t in tenants} == {"acme", "vigil"}


def test_database_from_environment(database: str) -> None:
    """VIGIL_DATABASE is used when --database is absent."""
    run("tenants", "create", "globex", env={"VIGIL_DATABASE": database})
    tenants = json.loads(run("tenants", "list", "--database", database, "--json").stdout)
    assert "globex" in {t["slug"] for t in tenants}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("keys", "create", "--tenant", "nope"), "no tenant 'nope'"),
        (("tenants", "create", "Bad Slug"), "lower-case"),
    ],
)
def test_errors_are_clear_and_exit_non_zero(database: str, args: tuple[str, ...], words: str) -> None:
    """Bad input gives a one-line error and a non-zero exit, never a traceback."""
    result = run(*args, "--database", database, ok=False)
    assert result.exit_code != 0
    assert words in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("database", "words"),
    [
        ("postgresql://postgres@127.0.0.1:1/x", "cannot connect to PostgreSQL"),
        ("mysql://x", "unsupported database URL"),
    ],
)
def test_unusable_databases_are_clear_errors(database: str, words: str) -> None:
    """A database that cannot be reached or is of an unknown kind gives a one-line error, never a traceback."""
    result = run("tenants", "list", "--database", database, ok=False)
    assert result.exit_code != 0
    assert words in result.output
    assert "Traceback" not in result.output


def test_wrong_scope_name(database: str) -> None:
    """Unknown scopes are refused with the list of real ones."""
    run("tenants", "create", "acme", "--database", database)
    result = run(
        "keys", "create", "--tenant", "acme", "--scope", "ingest,god", "--database", database, ok=False
    )
    assert result.exit_code != 0 and "auditor" in result.output


def test_demo_fills_three_tenants_and_is_rerunnable(database: str) -> None:
    """vigil demo writes realistic events for acme, globex and initech and prints working keys."""
    out = json.loads(run("demo", "--events", "3000", "--days", "7", "--database", database, "--json").stdout)
    assert set(out["tenants"]) == {"acme", "globex", "initech"}
    assert sum(t["events"] for t in out["tenants"].values()) >= 3000
    assert all(t["attacks"] for t in out["tenants"].values())
    store = open_store(database)
    try:
        acme = store.get_tenant("acme")
        logins = store.search(acme.id, SearchQuery(action="user.login", outcome="failure"))
        assert logins.events
        assert store.tree_size(acme.id) == out["tenants"]["acme"]["events"]
    finally:
        store.close()
    again = json.loads(run("demo", "--events", "3000", "--database", database, "--json").stdout)
    assert again["tenants"]["acme"]["events"] == out["tenants"]["acme"]["events"]
    assert "attacks" not in again["tenants"]["acme"]  # left as it was
    assert again["tenants"]["acme"]["key"] != out["tenants"]["acme"]["key"]


def test_demo_text_output_has_a_curl_line(database: str) -> None:
    """Without --json, demo prints keys and a curl line to try."""
    result = run("demo", "--events", "600", "--days", "3", "--database", database)
    assert "curl -s -H 'Authorization: Bearer vk_" in result.stdout
    assert "planted:" in result.stdout


def test_migrate_is_idempotent(database: str) -> None:
    """vigil migrate reports the schema version and can run twice."""
    first = json.loads(run("migrate", "--database", database, "--json").stdout)
    second = json.loads(run("migrate", "--database", database, "--json").stdout)
    assert first == second and first["schema_version"] >= 1


def test_help_explains_every_command() -> None:
    """--help lists the commands, and every setting's environment variable is named in the help of the command
    that takes it: serve, verify-bundle for the bundle limits, or demo for its size."""
    top = run("--help").output
    for cmd in ("serve", "demo", "tenants", "keys", "migrate"):
        assert cmd in top
    helps = "".join(run(cmd, "--help").output for cmd in ("serve", "verify-bundle", "demo"))
    assert [s.env for s in SETTINGS if s.env not in helps] == []


def test_database_passwords_never_reach_the_output() -> None:
    """A password in a database URL is masked wherever the CLI prints the URL."""
    from vigil.cli import safe_url

    assert safe_url("postgresql://vigil:s3cret@db:5432/audit") == "postgresql://vigil:***@db:5432/audit"
    assert safe_url("./vigil.db") == "./vigil.db"


@pytest.mark.parametrize(
    "args",
    [
        ("verify",),
        ("alerts", "list"),
        ("export", "--tenant", "acme", "-o", "OUT"),
        ("tenants", "list"),
        ("keys", "list"),
        ("detect", "--until-idle"),
        ("checkpoint", "--tenant", "acme"),
        ("reindex",),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_read_only_commands_refuse_a_missing_database(
    database: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A read-only command on a database that does not exist fails clearly and creates nothing: verify never
    reports an empty database it just made as verified."""
    args = tuple(str(tmp_path / "out.zip") if a == "OUT" else a for a in args)
    keyfile = ["--signing-key", str(tmp_path / "k")] if args[0] in ("verify", "checkpoint", "export") else []
    result = run(*args, "--database", database, *keyfile, ok=False)
    assert result.exit_code != 0
    assert "no Vigil database at" in result.output and "Traceback" not in result.output
    if "://" not in database:
        assert not Path(database).exists()
    else:
        import psycopg

        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT to_regnamespace('vigil')").fetchone()[0] is None
