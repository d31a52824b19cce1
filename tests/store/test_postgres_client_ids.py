"""PostgreSQL: the migration that lets events.id hold clients' opaque ids (uuid → text) keeps a log written before
it whole: its events are found by id, its ids still dedup, its tree still verifies, and opaque ids go in after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from pg import fresh_database
from support import mth, prepared_events

from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.merkle import root_at
from vigil.model import EventIn
from vigil.store.postgres import PostgresStore, schema_of

pytestmark = pytest.mark.service


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_database()


def test_a_log_from_before_client_ids_is_migrated_whole(url: str) -> None:
    """A log as an earlier Vigil left it (tenant schema 4: events.id a uuid column, no idempotency table), opened
    by this one: the column is text, every event is found by its id, a retry of one is a duplicate, the root is
    unchanged, and evt_123 can be appended."""
    before = PostgresStore(url)
    t = before.create_tenant("acme")
    events = prepared_events(300)
    leaves = [a.leaf for a in before.append(t.id, events)]
    before.close()
    # back to how schema 2 stored the same rows (the writer wrote the same bytes then)
    with psycopg.connect(url) as conn:
        conn.execute(f"ALTER TABLE {schema_of(t.id)}.events ALTER COLUMN id TYPE uuid USING id::uuid")
        conn.execute("UPDATE vigil.tenants SET schema_version = 4 WHERE id = %s", (t.id,))  # before 5
        conn.execute("DROP TABLE vigil.idempotency_keys")
        conn.execute("DELETE FROM vigil.schema_migrations WHERE version >= 5")
        assert _id_type(conn, t.id) == "uuid"
    store = PostgresStore(url)
    try:
        with psycopg.connect(url) as conn:
            assert _id_type(conn, t.id) == "text"
        for n in (0, 150, 299):
            found = store.get_event(t.id, events[n].id.upper())
            assert found is not None and found[0] == n
        (again,) = store.append(t.id, [events[7]])
        assert again.duplicate and again.seq == 7
        assert root_at(300, store.subtree_reader(t.id)) == mth(leaves)
        raw = {"action": "user.login", "actor": {"id": "u"}, "id": "evt_123"}
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", time.time_ns() // 1000)
        assert isinstance(p, Prepared)
        (new,) = store.append(t.id, [p])
        assert new.seq == 300 and not new.duplicate
        assert store.get_event(t.id, "evt_123") is not None and store.get_event(t.id, "EVT_123") is None
    finally:
        store.close()


def _id_type(conn: psycopg.Connection[Any], tenant_id: int) -> str:
    row = conn.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = 'events' "
        "AND column_name = 'id'",
        (schema_of(tenant_id),),
    ).fetchone()
    return str(row[0]) if row else ""
