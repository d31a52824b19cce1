"""The PostgreSQL store's derived rows, for :mod:`vigil.store.indexcheck`: read from one snapshot, and repaired.

Each tenant lives in its own schema, so nothing can be filed under no tenant. A tenant's rows are read in one
REPEATABLE READ transaction under its reader role, through server-side cursors (memory stays bounded). The
full-text index is a GIN index over the ``search`` column, which PostgreSQL keeps in step with the column; the
column is what an attacker can change, so the column is what is checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from vigil.store.indexcheck import CHUNK, Columns, EventRow, Fix, Stray, TenantIndex, chunks

if TYPE_CHECKING:
    import psycopg

_GUARDED = ("events", "event_targets", "event_blocks")


class PostgresIndexSource:
    terms = False
    tenant_column = False
    arrival_column = True

    def __init__(
        self,
        connect: Callable[[int], contextlib.AbstractContextManager[psycopg.Connection[Any]]],
        schema_of: Callable[[int], str],
        text_form: Callable[[str], str],
    ) -> None:
        self._connect = connect
        self._schema_of = schema_of
        self._form = text_form

    def text_form(self, value: str) -> str:
        return self._form(value)

    def id_form(self, value: str) -> object:
        return value  # the id column holds the id as the event does (text since tenant schema version 3)

    @contextlib.contextmanager
    def tenant(self, tenant_id: int) -> Iterator[TenantIndex]:
        s = self._schema_of(tenant_id)
        with self._connect(tenant_id) as conn:
            size = int(conn.execute(f"SELECT coalesce(max(seq) + 1, 0) FROM {s}.events").fetchone()[0])  # type: ignore[index]

            def events(start: int, end: int) -> list[EventRow]:
                rows = conn.execute(
                    "SELECT seq, NULL::int, id::text, occurred_us, received_us, action, category, outcome, "
                    f"actor_id, ip, actor_name, actor_email, body, search FROM {s}.events "
                    "WHERE seq >= %s AND seq < %s ORDER BY seq",
                    (start, end),
                ).fetchall()
                return [
                    (*r[:9], None if r[9] is None else bytes(r[9]), r[10], r[11], bytes(r[12]), r[13])
                    for r in rows
                ]

            targets = conn.cursor(name=f"ix_targets_{tenant_id}")
            targets.itersize = CHUNK
            targets.execute(
                f"SELECT seq, type, target_id, {int(tenant_id)} FROM {s}.event_targets ORDER BY seq"
            )
            blocks = conn.cursor(name=f"ix_blocks_{tenant_id}")
            blocks.execute(f"SELECT block, min_occurred, max_occurred FROM {s}.event_blocks ORDER BY block")
            yield TenantIndex(size, chunks(events, size, iter(targets)), iter(blocks))

    def strays(self) -> Iterator[Stray]:
        return iter(())


def repair(conn: psycopg.Connection[Any], s: str, fixes: Sequence[Fix]) -> None:
    """Apply ``fixes`` to the rows of tenant schema ``s`` inside the writer's transaction, as the owner. The
    append-only triggers are disabled for this transaction only (ALTER TABLE is transactional, and reaches the
    events partitions), and enabled again before it commits."""
    for table in _GUARDED:
        conn.execute(f"ALTER TABLE {s}.{table} DISABLE TRIGGER append_only")
    for f in fixes:
        if f.kind == "columns" and isinstance(f.expected, Columns):
            c = f.expected
            conn.execute(
                f"UPDATE {s}.events SET id = %s, occurred_us = %s, received_us = %s, action = %s, "
                "category = %s, outcome = %s, actor_id = %s, ip = %s, actor_name = %s, actor_email = %s "
                "WHERE seq = %s",
                (
                    c.id,
                    c.occurred_us,
                    c.received_us,
                    c.action,
                    c.category,
                    c.outcome,
                    c.actor_id,
                    c.ip,
                    c.actor_name,
                    c.actor_email,
                    f.key,
                ),
            )
        elif f.kind == "words" and isinstance(f.expected, str):
            conn.execute(f"UPDATE {s}.events SET search = %s WHERE seq = %s", (f.expected, f.key))
        elif f.kind == "targets":
            stored = f.stored if isinstance(f.stored, frozenset) else frozenset()
            want = f.expected if isinstance(f.expected, frozenset) else frozenset()
            with conn.cursor() as cur:
                cur.executemany(
                    f"DELETE FROM {s}.event_targets WHERE target_id = %s AND type = %s AND seq = %s",
                    [(target_id, type_, f.key) for type_, target_id, _ in stored - want],
                )
                cur.executemany(
                    f"INSERT INTO {s}.event_targets (target_id, type, seq) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(target_id, type_, f.key) for type_, target_id, _ in want - stored],
                )
        elif f.kind == "block":
            conn.execute(f"DELETE FROM {s}.event_blocks WHERE block = %s", (f.key,))
            if isinstance(f.expected, tuple):
                conn.execute(f"INSERT INTO {s}.event_blocks VALUES (%s, %s, %s)", (f.key, *f.expected))
    for table in _GUARDED:
        conn.execute(f"ALTER TABLE {s}.{table} ENABLE ALWAYS TRIGGER append_only")  # as migration 2 set it
