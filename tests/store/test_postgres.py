"""PostgreSQL store: schema per tenant, append-only roles, partitions, one writer per log across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import msgspec
import psycopg
import pytest
from pg import fresh_database

from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.merkle import CompactRange, root_at
from vigil.model import EventIn
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


def _events(n: int, tenant: str = "acme") -> list[Prepared]:
    now = time.time_ns() // 1000
    out = []
    for i in range(n):
        p = prepare_event(
            msgspec.convert(
                {
                    "action": "user.login",
                    "actor": {"id": f"u{i % 5}"},
                    "targets": [{"type": "doc", "id": f"d{i % 3}"}],
                },
                EventIn,
            ),
            tenant,
            now,
        )
        assert isinstance(p, Prepared)
        out.append(p)
    return out


def test_each_tenant_gets_its_own_schema_and_reader_role(pg: PostgresStore, url: str) -> None:
    """Creating a tenant creates its schema, its partitions and its reader role."""
    t = pg.create_tenant("acme")
    with psycopg.connect(url) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        assert {"vigil", schema_of(t.id)} <= schemas
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND "
            "c.relname = 'events'",
            (schema_of(t.id),),
        ).fetchone()[0]
        assert parts >= 3  # this month and the two ahead
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.reader_role(t.id),)).fetchone()


def test_writer_role_cannot_update_delete_or_truncate(pg: PostgresStore, url: str) -> None:
    """The writer role appends; UPDATE, DELETE and TRUNCATE are refused to it by privilege."""
    t = pg.create_tenant("acme")
    pg.append(t.id, _events(5))
    s = schema_of(t.id)
    for sql in (
        f"UPDATE {s}.events SET action = 'x.y'",
        f"DELETE FROM {s}.events",
        f"TRUNCATE {s}.events",
        f"UPDATE {s}.tree_nodes SET idx = 0",
        f"DELETE FROM {s}.event_targets",
    ):
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute(f'SET LOCAL ROLE "{pg.writer_role}"')
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(sql)
    assert pg.tree_size(t.id) == 5


def test_even_the_owner_is_refused_by_triggers(pg: PostgresStore, url: str) -> None:
    """Defence in depth: the owning role's UPDATE, DELETE and TRUNCATE hit the append-only triggers."""
    t = pg.create_tenant("acme")
    pg.append(t.id, _events(300))
    pg.add_checkpoint(t.id, 300, b"\x00" * 32, "note")
    s = schema_of(t.id)
    for sql in (
        f"UPDATE {s}.events SET action = 'x.y'",
        f"DELETE FROM {s}.events",
        f"TRUNCATE {s}.events",
        "UPDATE vigil.checkpoints SET size = 0",
        "TRUNCATE vigil.checkpoints",
        f"DELETE FROM {s}.event_blocks",
        f"UPDATE {s}.tree_nodes SET idx = 9",
        f"DELETE FROM {s}.event_targets",
    ):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(sql)


def test_a_tenant_reader_cannot_see_another_tenant(pg: PostgresStore, url: str) -> None:
    """Tenant A's reader role gets "permission denied" on tenant B's schema."""
    a = pg.create_tenant("acme")
    b = pg.create_tenant("globex")
    pg.append(b.id, _events(2, "globex"))
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(f'SET LOCAL ROLE "{pg.reader_role(a.id)}"')
        conn.execute(f"SELECT count(*) FROM {schema_of(a.id)}.events")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema"):
            conn.execute(f"SELECT count(*) FROM {schema_of(b.id)}.events")


def test_migrate_is_idempotent(pg: PostgresStore, url: str) -> None:
    """Running the migrations again, or opening a second store, changes nothing."""
    t = pg.create_tenant("acme")
    pg.append(t.id, _events(4))
    first = pg.migrate()
    second = PostgresStore(url)
    try:
        assert second.migrate() == first
        assert second.tree_size(t.id) == 4
    finally:
        second.close()


_WRITER = r"""
import sys, time, msgspec
from vigil.store.postgres import PostgresStore
from vigil.ingest.intake import prepare_event
from vigil.model import EventIn
store = PostgresStore(sys.argv[1])
tid = store.get_tenant("acme").id
for batch in range(int(sys.argv[2])):
    now = time.time_ns() // 1000
    events = [prepare_event(msgspec.convert({"action": "doc.edited", "actor": {"id": sys.argv[3]}}, EventIn),
                            "acme", now) for _ in range(25)]
    store.append(tid, events)
store.close()
"""


def test_two_processes_writing_one_tenant_keep_seq_contiguous_and_the_tree_valid(
    pg: PostgresStore, url: str
) -> None:
    """Two writer processes at once: seqs 0..n-1 without gaps or repeats, and a tree that matches its leaves."""
    t = pg.create_tenant("acme")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, "20", f"p{i}"]) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    size = pg.tree_size(t.id)
    assert size == 2 * 20 * 25
    rows = pg.read_range(t.id, 0, size)
    assert [seq for seq, _, _ in rows] == list(range(size))
    cr = CompactRange()
    cr.extend([leaf for _, leaf, _ in rows])
    assert root_at(size, pg.subtree_reader(t.id)) == cr.root()
    # and this process, whose cached frontier is stale, still appends correctly
    pg.append(t.id, _events(3))
    rows = pg.read_range(t.id, 0, size + 3)
    cr.extend([leaf for _, leaf, _ in rows[size:]])
    assert root_at(size + 3, pg.subtree_reader(t.id)) == cr.root()


def test_vigil_verify_passes_on_a_demo_database(url: str, tmp_path: object) -> None:
    """vigil demo fills PostgreSQL; after a checkpoint, vigil verify passes end to end."""
    from pathlib import Path

    from click.testing import CliRunner

    from vigil.cli import main

    key = str(Path(str(tmp_path)) / "signing.key")
    runner = CliRunner()
    demo = runner.invoke(main, ["demo", "--events", "3000", "--days", "5", "--database", url, "--json"])
    assert demo.exit_code == 0, demo.output
    cp = runner.invoke(main, ["checkpoint", "--tenant", "acme", "--database", url, "--signing-key", key])
    assert cp.exit_code == 0, cp.output
    result = runner.invoke(main, ["verify", "--database", url, "--signing-key", key, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and {t["tenant"] for t in report["tenants"]} >= {"acme", "globex", "initech"}
    assert sum(t["events"] for t in report["tenants"]) >= 3000


def test_serving_postgres_without_a_signing_key_path_fails_closed(url: str) -> None:
    """A database URL has no place to put the key next to: the setting is required, clearly."""
    from vigil.errors import ConfigError
    from vigil.ledger.checkpoints import load_signer
    from vigil.settings import Settings

    with pytest.raises(ConfigError, match="--signing-key"):
        load_signer(Settings.load({"database": url}, environ={}))
