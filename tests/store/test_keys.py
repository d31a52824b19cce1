"""The key rows of the Store contract, on SQLite and PostgreSQL alike: revoke, rotate and last use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vigil.auth import create_key, hash_secret
from vigil.errors import Conflict, NotFound
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.sqlite import migrations


def test_revoke_is_stored_once_and_reported(store: Store) -> None:
    """revoke_key sets revoked_at once; a second call reports it changed nothing and keeps the first time."""
    key, _ = create_key(store, store.create_tenant("acme"), frozenset({"read"}))
    assert store.revoke_key(key.key_id, "2026-01-01T00:00:00.000000Z") is True
    assert store.revoke_key(key.key_id, "2026-02-01T00:00:00.000000Z") is False
    got = store.get_key(key.key_id)
    assert got is not None and got.revoked and got.revoked_at == "2026-01-01T00:00:00.000000Z"
    assert [k.revoked for k in store.list_keys()] == [True]
    with pytest.raises(NotFound):
        store.revoke_key("0" * 16, "2026-01-01T00:00:00.000000Z")


def test_rotate_keeps_one_replaced_secret(store: Store) -> None:
    """rotate_key moves the current hash to previous with its deadline; a second rotation replaces both; a
    revoked key is a Conflict and an unknown one NotFound."""
    key, _ = create_key(store, store.create_tenant("acme"), frozenset({"read"}))
    first, second = hash_secret("one"), hash_secret("two")
    store.rotate_key(key.key_id, first, "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z")
    got = store.get_key(key.key_id)
    assert got is not None
    assert (got.secret_hash, got.previous_hash) == (first, key.secret_hash)
    assert (
        got.previous_until == "2026-01-02T00:00:00.000000Z"
        and got.rotated_at == "2026-01-01T00:00:00.000000Z"
    )
    store.rotate_key(key.key_id, second, "2026-01-01T01:00:00.000000Z", "2026-01-01T02:00:00.000000Z")
    got = store.get_key(key.key_id)
    assert got is not None and (got.secret_hash, got.previous_hash) == (second, first)
    store.revoke_key(key.key_id, "2026-01-03T00:00:00.000000Z")
    with pytest.raises(Conflict):
        store.rotate_key(key.key_id, first, "2026-01-04T00:00:00.000000Z", "2026-01-05T00:00:00.000000Z")
    with pytest.raises(NotFound):
        store.rotate_key("f" * 16, first, "2026-01-04T00:00:00.000000Z", "2026-01-05T00:00:00.000000Z")


def test_touch_keys_never_moves_last_use_backwards(settings: Settings, store: Store) -> None:
    """Last use is written in one call for many keys, only ever forwards, and survives a reopen."""
    t = store.create_tenant("acme")
    a, _ = create_key(store, t, frozenset({"read"}))
    b, _ = create_key(store, t, frozenset({"read"}))
    store.touch_keys({a.key_id: "2026-01-01T00:01:00.000000Z", b.key_id: "2026-01-01T00:02:00.000000Z"})
    store.touch_keys({a.key_id: "2026-01-01T00:00:00.000000Z", "0" * 16: "2026-01-01T00:00:00.000000Z"})
    store.touch_keys({})
    again = open_store(settings.database, settings)
    try:
        used = {k.key_id: k.last_used_at for k in again.list_keys(t.id)}
    finally:
        again.close()
    assert used == {a.key_id: "2026-01-01T00:01:00.000000Z", b.key_id: "2026-01-01T00:02:00.000000Z"}


def test_keys_made_before_the_lifecycle_migration_keep_working(tmp_path: Path) -> None:
    """A SQLite file at schema 4 with a key migrates to 5: the key is intact, never used, never rotated."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)"
    )
    for version, name, sql in migrations():
        if version <= 4:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, name))
    conn.execute(
        "INSERT INTO api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at) "
        "VALUES ('00112233445566aa', 1, 'old', 'read', ?, '2025-01-01T00:00:00.000000Z')",
        (hash_secret("s"),),
    )
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        assert store.schema_version() >= 5  # type: ignore[attr-defined]
        key = store.get_key("00112233445566aa")
    finally:
        store.close()
    assert key is not None and key.secret_hash == hash_secret("s")
    assert (key.revoked, key.last_used_at, key.previous_hash) == (False, None, None)
