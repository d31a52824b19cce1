"""SQLite-only behaviour of the embedded store: compact tree rows, triggers against raw sqlite3, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import prepared_events as _prepared

from vigil.errors import StorageError
from vigil.settings import Settings
from vigil.store.sqlite import SQLiteStore, migrations


@pytest.fixture
def database(db_path: Path) -> str:
    """These tests open the SQLite file directly."""
    return str(db_path)


def test_tree_data_is_compact(store: SQLiteStore) -> None:
    """Only every eighth level is stored: about one tree row per 255 events."""
    t = store.create_tenant("acme")
    for _ in range(5):
        store.append(t.id, _prepared(1000))
    rows = store._reader().execute("SELECT count(*) FROM tree_nodes").fetchone()[0]
    assert rows == 5000 // 256 + 5000 // 65536


def test_raw_update_and_delete_through_sqlite3_fail(store: SQLiteStore, db_path: Path) -> None:
    """The database itself refuses to change or remove events and tree data."""
    t = store.create_tenant("acme")
    store.append(t.id, _prepared(300))
    conn = sqlite3.connect(db_path)
    for sql in (
        "UPDATE events SET action = 'x.y'",
        "DELETE FROM events",
        "UPDATE event_targets SET target_id = 'x'",
        "DELETE FROM event_targets",
        "UPDATE tree_nodes SET hash = x'00'",
        "DELETE FROM tree_nodes",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
    assert store.tree_size(t.id) == 300


def test_migrations_are_versioned_and_idempotent(db_path: Path, settings: Settings) -> None:
    """Opening twice applies each migration once and records its version."""
    SQLiteStore(str(db_path), settings).close()
    store = SQLiteStore(str(db_path), settings)
    rows = store._reader().execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(v, n) for v, n, _ in migrations()]
    assert store.schema_version() == migrations()[-1][0]
    store.close()


def test_database_from_a_newer_vigil_is_refused(db_path: Path, settings: Settings) -> None:
    """A schema newer than this code knows fails closed instead of being used."""
    SQLiteStore(str(db_path), settings).close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'now')")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        SQLiteStore(str(db_path), settings)
