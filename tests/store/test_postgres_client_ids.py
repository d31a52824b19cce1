"""PostgreSQL: the migration that lets events.id hold clients' opaque ids (uuid → text) keeps a log written before
it whole: its events are found by id, its ids still dedup, its tree still verifies, and opaque ids go in after."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import psycopg
import pytest
from pg import fresh_database
from support import mth, prepared_events

import vigil.store.postgres as postgres
from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.merkle import root_at
from vigil.model import EventIn
from vigil.store.pg_schema import CONTROL_MIGRATIONS, TENANT_MIGRATIONS
from vigil.store.postgres import PostgresStore, schema_of

pytestmark = pytest.mark.service


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_database()


def test_a_log_from_before_client_ids_is_migrated_whole(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written with the uuid column (tenant schema 2), opened by this Vigil: the column is text, every event is
    found by its id, a retry of one is a duplicate, the root is unchanged, and evt_123 can be appended."""
    with monkeypatch.context() as old:
        old.setattr(postgres, "TENANT_MIGRATIONS", [m for m in TENANT_MIGRATIONS if m[0] <= 2])
        old.setattr(postgres, "CONTROL_MIGRATIONS", [m for m in CONTROL_MIGRATIONS if m[0] <= 4])
        before = PostgresStore(url)
        t = before.create_tenant("acme")
        events = prepared_events(300)
        leaves = [a.leaf for a in before.append(t.id, events)]
        with psycopg.connect(url) as conn:
            kind = conn.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND "
                "table_name = 'events' AND column_name = 'id'",
                (schema_of(t.id),),
            ).fetchone()
        assert kind == ("uuid",)
        before.close()
    store = PostgresStore(url)
    try:
        with psycopg.connect(url) as conn:
            kind = conn.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND "
                "table_name = 'events' AND column_name = 'id'",
                (schema_of(t.id),),
            ).fetchone()
        assert kind == ("text",)
        for n in (0, 150, 299):
            found = store.get_event(t.id, events[n].id.upper())
            assert found is not None and found[0] == n
        (again,) = store.append(t.id, [events[7]])
        assert again.duplicate and again.seq == 7
        assert root_at(300, store.subtree_reader(t.id)) == mth(leaves)
        raw = {"action": "user.login", "actor": {"id": "u"}, "id": "evt_123"}
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", 1_780_000_000_000_000)
        assert isinstance(p, Prepared)
        (new,) = store.append(t.id, [p])
        assert new.seq == 300 and not new.duplicate
        assert store.get_event(t.id, "evt_123") is not None and store.get_event(t.id, "EVT_123") is None
    finally:
        store.close()
