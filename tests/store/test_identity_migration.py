"""A database made before the identity columns existed migrates: its stored events become searchable by ip,
actor name and e-mail, and ``vigil verify``'s index check holds the filled columns to the ledger.

The "old" database is the real one taken back to the schema before the migration (the columns and indexes the
migration adds dropped, its version rows removed), then opened again.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec

from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import SearchQuery
from vigil.store.indexcheck import check_indexes

N = 700  # two complete time blocks and a tail


def _events() -> list[Prepared]:
    now = time.time_ns() // 1000
    out = []
    for i in range(N):
        raw = {
            "action": "user.login",
            "actor": {"id": f"u{i % 5}", "name": f"User {i % 5}", "email": f"U{i % 5}@Example.com"},
            "context": {"ip": f"198.51.100.{i % 50}" if i % 2 else f"2001:db8::{i % 50:x}"},
        }
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        assert isinstance(p, Prepared)
        out.append(p)
    return out


def _downgrade(database: str, tenant_id: int) -> None:
    """Take the database back to the schema before the identity columns."""
    if "://" not in database:
        conn = sqlite3.connect(database)
        for index in ("events_ip", "events_actor_name", "events_actor_email", "event_blocks_latest"):
            conn.execute(f"DROP INDEX {index}")
        for column in ("ip", "actor_name", "actor_email"):
            conn.execute(f"ALTER TABLE events DROP COLUMN {column}")
        conn.execute("DROP TABLE idempotency_keys")  # made by migration 8, after them: back to before 6
        conn.execute("DELETE FROM schema_migrations WHERE version >= 6")
        conn.commit()
        conn.close()
        return
    import psycopg

    s = f"tenant_{tenant_id}"
    with psycopg.connect(database) as pg:
        for index in ("events_ip", "events_actor_name", "events_actor_email", "event_blocks_latest"):
            pg.execute(f"DROP INDEX {s}.{index}")
        pg.execute(f"ALTER TABLE {s}.events DROP COLUMN ip, DROP COLUMN actor_name, DROP COLUMN actor_email")
        pg.execute("UPDATE vigil.tenants SET schema_version = 2 WHERE id = %s", (tenant_id,))


def _seqs(store: Store, tenant_id: int, **query: str) -> set[int]:
    page = store.search(tenant_id, SearchQuery(limit=1000, **query))  # type: ignore[arg-type]
    return {seq for seq, _, _ in page.events}


def test_stored_events_gain_their_identity_columns(store: Store, settings: Settings) -> None:
    """After the migration every stored event is found by its ip, CIDR block, name and e-mail, and the index
    check finds nothing to repair; events appended afterwards are found the same way."""
    tenant = store.create_tenant("acme")
    store.append(tenant.id, _events())
    store.close()
    _downgrade(settings.database, tenant.id)

    migrated = open_store(settings.database, settings)
    try:
        assert _seqs(migrated, tenant.id, ip="198.51.100.7") == {i for i in range(N) if i % 2 and i % 50 == 7}
        assert _seqs(migrated, tenant.id, ip="2001:db8::/64") == {i for i in range(N) if not i % 2}
        assert _seqs(migrated, tenant.id, actor_email="u3@example.COM") == {i for i in range(N) if i % 5 == 3}
        assert _seqs(migrated, tenant.id, actor_name="user 1") == {i for i in range(N) if i % 5 == 1}
        report = check_indexes(migrated, migrated.list_tenants())  # type: ignore[arg-type]
        assert report.ok, [str(f) for f in report.shown]
        migrated.append(tenant.id, _events()[:10])
        assert N + 3 in _seqs(migrated, tenant.id, actor_name="USER 3")
    finally:
        migrated.close()
