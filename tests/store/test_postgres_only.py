"""PostgreSQL counterparts of the SQLite-only store tests (test_sqlite.py) that test_postgres.py leaves out:
compact tree rows, triggers on every tenant table and on each events partition itself, versioned migrations, a
newer schema refused; and text that PostgreSQL cannot hold as sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pg import fresh_database
from support import prepared_events

from vigil.errors import StorageError
from vigil.store.base import SearchQuery
from vigil.store.pg_schema import CONTROL_MIGRATIONS, TENANT_MIGRATIONS
from vigil.store.postgres import PostgresStore, schema_of

pytestmark = pytest.mark.service


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_database()


@pytest.fixture
def pg(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url)
    yield s
    s.close()


def partitions(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The partitions of a tenant's events table, qualified."""
    rows = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = %s::regclass ORDER BY 1",
        (f"{schema}.events",),
    ).fetchall()
    return [r[0] for r in rows]


def test_tree_data_is_compact(pg: PostgresStore, url: str) -> None:
    """Only every eighth level is stored: about one tree row per 255 events."""
    t = pg.create_tenant("acme")
    for _ in range(5):
        pg.append(t.id, prepared_events(1000))
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema_of(t.id)}.tree_nodes").fetchone()
    assert row is not None and row[0] == 5000 // 256 + 5000 // 65536


def test_the_owner_cannot_change_any_tenant_table_or_events_partition(pg: PostgresStore, url: str) -> None:
    """UPDATE, DELETE and TRUNCATE by the owning role hit the append-only triggers on every tenant table, and on
    the partitions of events addressed directly rather than through their parent."""
    t = pg.create_tenant("acme")
    pg.append(t.id, prepared_events(300))
    s = schema_of(t.id)
    with psycopg.connect(url) as conn:
        parts = partitions(conn, s)
        holding = conn.execute(f"SELECT DISTINCT tableoid::regclass::text FROM {s}.events").fetchall()
    assert len(parts) >= 3 and len(holding) == 1
    # (table, a column to set to itself); every table holds rows, or an UPDATE or DELETE would fire no trigger
    tables = [
        (f"{s}.events", "action"),
        (holding[0][0], "action"),
        (f"{s}.event_targets", "type"),
        (f"{s}.tree_nodes", "idx"),
        (f"{s}.event_blocks", "block"),
    ]
    statements = [
        *(
            sql
            for table, column in tables
            for sql in (
                f"UPDATE {table} SET {column} = {column}",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
            )
        ),
        *(f"TRUNCATE {part}" for part in parts),  # the empty ones too: TRUNCATE fires per statement
    ]
    for sql in statements:
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(sql)
    assert len(pg.read_range(t.id, 0, 300)) == 300


def test_migrations_are_versioned_and_idempotent(pg: PostgresStore, url: str) -> None:
    """Opening twice applies each migration once and records its version, for the control schema and each
    tenant schema."""
    t = pg.create_tenant("acme")
    PostgresStore(url).close()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM vigil.schema_migrations ORDER BY version").fetchall()
        tenant_version = conn.execute(
            "SELECT schema_version FROM vigil.tenants WHERE id = %s", (t.id,)
        ).fetchone()
    assert rows == [(v, name) for v, name, _ in CONTROL_MIGRATIONS]
    assert pg.schema_version() == CONTROL_MIGRATIONS[-1][0]
    assert tenant_version == (TENANT_MIGRATIONS[-1][0],)


@pytest.mark.parametrize(
    "future",
    [
        "INSERT INTO vigil.schema_migrations (version, name) VALUES (999, 'future')",
        "UPDATE vigil.tenants SET schema_version = 999 WHERE slug = 'acme'",
    ],
    ids=["control-schema", "tenant-schema"],
)
def test_database_from_a_newer_vigil_is_refused(url: str, future: str) -> None:
    """A control or tenant schema newer than this code knows fails closed instead of being used."""
    store = PostgresStore(url)
    store.create_tenant("acme")
    store.close()
    with psycopg.connect(url) as conn:
        conn.execute(future)
    with pytest.raises(StorageError, match="newer"):
        PostgresStore(url).close()


def test_a_copy_under_another_name_can_read_and_write_its_own_log(url: str) -> None:
    """Roles are named after the database; opening a copy (CREATE DATABASE … TEMPLATE) grants its own roles."""
    from pg import admin_connection, database_url

    store = PostgresStore(url)
    tid = store.create_tenant("acme").id
    store.append(tid, prepared_events(3))
    store.close()
    name = url.rsplit("/", 1)[1].split("?")[0]
    copy = name + "_copy"
    admin = admin_connection()
    try:
        admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
        restored = PostgresStore(database_url(copy))
        try:
            assert len(restored.search(tid, SearchQuery()).events) == 3  # under the copy's reader role
            restored.append(tid, prepared_events(1))
            assert restored.tree_size(tid) == 4
        finally:
            restored.close()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        for (role,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"vigil_{copy}%",)
        ):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_the_append_only_guard_fires_always_after_a_backfill_and_a_repair(url: str) -> None:
    """The identity backfill and an index repair lift the append-only trigger for their own transaction only:
    it comes back firing ALWAYS (also under session_replication_role = replica), as migration 2 set it."""
    store = PostgresStore(url)
    tid = store.create_tenant("acme").id
    store.append(tid, prepared_events(20))
    store.close()
    s = schema_of(tid)
    with psycopg.connect(url) as conn:  # back to the schema before the identity columns
        for index in ("events_ip", "events_actor_name", "events_actor_email", "event_blocks_latest"):
            conn.execute(f"DROP INDEX {s}.{index}")
        conn.execute(
            f"ALTER TABLE {s}.events DROP COLUMN ip, DROP COLUMN actor_name, DROP COLUMN actor_email"
        )
        conn.execute("UPDATE vigil.tenants SET schema_version = 2 WHERE id = %s", (tid,))
    store = PostgresStore(url)  # migrates: the backfill runs
    try:
        store.repair_index(tid, [])
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        modes = conn.execute(
            "SELECT c.relname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND t.tgname = 'append_only'",
            (s,),
        ).fetchall()
    assert modes and all(mode == "A" for _, mode in modes), modes
