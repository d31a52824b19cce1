"""vigil keys revoke, rotate and list, and the demo retiring its old keys, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from vigil.auth import KeyRing
from vigil.cli import main
from vigil.errors import Unauthorized
from vigil.store import open_store


def run(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _check(database: str, key: str) -> bool:
    store = open_store(database)
    try:
        KeyRing(store).authenticate(f"Bearer {key}")
        return True
    except Unauthorized:
        return False
    finally:
        store.close()


def test_revoke_rotate_and_list(database: str) -> None:
    """A rotated key answers with its new secret and, during the overlap, its old one; a revoked one with
    neither; `keys list` shows created, last used, rotation and revocation."""
    run("tenants", "create", "acme", "--database", database)
    made = json.loads(
        run("keys", "create", "--tenant", "acme", "--name", "ci", "--database", database, "--json").stdout
    )
    key_id, first = made["key_id"], made["key"]
    rotated = json.loads(
        run("keys", "rotate", key_id, "--overlap", "1h", "--database", database, "--json").stdout
    )
    second = rotated["key"]
    assert second.startswith(f"vk_{key_id}_") and second != first and rotated["previous_secret_until"]
    assert _check(database, first) and _check(database, second)
    text = run("keys", "list", "--database", database).stdout
    assert "LAST USED" in text and "old secret until" in text and key_id in text
    out = run("keys", "revoke", key_id, "--database", database).stdout
    assert f"revoked key {key_id}" in out
    assert "already revoked" in run("keys", "revoke", key_id, "--database", database).stdout
    assert not _check(database, first) and not _check(database, second)
    (row,) = json.loads(run("keys", "list", "--database", database, "--json").stdout)
    assert row["revoked_at"] and row["created_at"] and row["revoked"] is True and "key" not in row
    assert "last_used_at" in row
    assert "revoked" in run("keys", "list", "--database", database).stdout
    refused = run("keys", "rotate", key_id, "--database", database, ok=False)
    assert refused.exit_code != 0 and "cannot be rotated" in refused.output


def test_bad_input_is_a_clear_error(database: str) -> None:
    """Unknown key ids and bad overlaps are one-line errors, never tracebacks."""
    run("migrate", "--database", database)
    for args, words in [
        (("keys", "revoke", "0123456789abcdef"), "no key"),
        (("keys", "revoke", "nonsense"), "no key"),
        (("keys", "rotate", "0123456789abcdef", "--overlap", "soon"), "duration"),
        (("keys", "rotate", "0123456789abcdef", "--overlap", "90d"), "at most 30 days"),
    ]:
        result = run(*args, "--database", database, ok=False)
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output


def test_demo_run_again_revokes_the_keys_it_printed(database: str) -> None:
    """The second `vigil demo` prints new keys and the first run's keys stop working."""
    first = json.loads(run("demo", "--events", "600", "--days", "2", "--database", database, "--json").stdout)
    old = {slug: t["key"] for slug, t in first["tenants"].items()}
    assert all(_check(database, k) for k in old.values())
    second = json.loads(run("demo", "--events", "600", "--database", database, "--json").stdout)
    for slug, t in second["tenants"].items():
        assert t["revoked_keys"] == [old[slug].split("_")[1]]
        assert not _check(database, old[slug]) and _check(database, t["key"])
