"""The SQLite store's derived rows, for :mod:`vigil.store.indexcheck`: read from one snapshot, and repaired.

Event rows, target rows and time blocks are read per tenant by key. The full-text index is one contentless FTS5
table for every tenant, keyed by ``rid``; it can only be read term by term (``fts5vocab``), so it is read once,
grouped by ``rid`` (SQLite sorts it, spilling to temporary files, so memory stays bounded) and handed out to the
tenants in ``rid`` order, which is tenant order. Rows left over belong to no tenant checked: strays.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from vigil.errors import StorageError
from vigil.store.indexcheck import Columns, EventRow, Fix, Stray, TenantIndex, chunks

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1
MAX_STRAYS = 100_000
"""Most full-text rows of no tenant kept for the report and the repair in one run (a run after a repair finds
any beyond)."""

_GUARDS = ("events_no_update", "event_targets_no_delete", "event_blocks_no_delete")
"""The append-only triggers a repair lifts for its own transaction, and puts back before it commits."""


class SQLiteIndexSource:
    terms = True
    tenant_column = True
    arrival_column = False

    def __init__(self, path: str, tenant_id: int | None) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA mmap_size=268435456")
            self.conn.execute(
                "CREATE VIRTUAL TABLE temp.vigil_vocab USING fts5vocab(main, events_fts, instance)"
            )
            self.conn.execute("BEGIN")  # every stream below reads one snapshot
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the indexes of {path}: {exc}") from exc
        sql = "SELECT doc, group_concat(term, ' ') FROM temp.vigil_vocab"
        params: tuple[int, ...] = ()
        if tenant_id is not None:  # one tenant: sort only its rows (the scan still reads every term)
            sql += " WHERE doc BETWEEN ? AND ?"
            params = (tenant_id << SEQ_BITS, (tenant_id << SEQ_BITS) | SEQ_MASK)
        self._words = self.conn.execute(sql + " GROUP BY doc", params)
        self._batch: list[tuple[int, str]] = []
        self._head = self._next()
        self._strays: list[tuple[int, str]] = []
        self.every = tenant_id is None

    def text_form(self, value: str) -> str:
        return value

    def id_form(self, value: str) -> object:
        from vigil.store.sqlite import id_key

        return id_key(value)  # as the writer stores it: a UUID's 16 bytes, an opaque id as text

    def _next(self) -> tuple[int, str] | None:
        if not self._batch:
            self._batch = self._words.fetchmany(4096)
            self._batch.reverse()
        return self._batch.pop() if self._batch else None

    def _take_words(self, lo: int, hi: int) -> Iterator[tuple[int, frozenset[str]]]:
        """The indexed words of rids [lo, hi], in order; rows before ``lo`` are strays."""
        while self._head is not None and self._head[0] <= hi:
            doc, words = self._head
            if doc < lo:
                if len(self._strays) < MAX_STRAYS:
                    self._strays.append((doc, words))
            else:
                yield doc & SEQ_MASK, frozenset(words.split(" "))
            self._head = self._next()

    @contextlib.contextmanager
    def tenant(self, tenant_id: int) -> Iterator[TenantIndex]:
        lo, hi = tenant_id << SEQ_BITS, (tenant_id << SEQ_BITS) | SEQ_MASK
        c = self.conn
        top = c.execute("SELECT max(rid) FROM events WHERE rid BETWEEN ? AND ?", (lo, hi)).fetchone()[0]
        size = 0 if top is None else (top & SEQ_MASK) + 1

        def events(start: int, end: int) -> list[EventRow]:
            return c.execute(
                f"SELECT rid & {SEQ_MASK}, tenant_id, id, occurred_at, NULL, action, category, outcome, actor_id, "
                "ip, actor_name, actor_email, body, NULL FROM events WHERE rid >= ? AND rid < ? ORDER BY rid",
                (lo | start, lo | end),
            ).fetchall()

        targets = c.execute(
            f"SELECT rid & {SEQ_MASK}, type, target_id, tenant_id FROM event_targets WHERE tenant_id = ? "
            "AND rid BETWEEN ? AND ? ORDER BY rid",
            (tenant_id, lo, hi),
        )
        blocks = c.execute(
            "SELECT block, min_occurred, max_occurred FROM event_blocks WHERE tenant_id = ? ORDER BY block",
            (tenant_id,),
        )
        yield TenantIndex(size, chunks(events, size, iter(targets), self._take_words(lo, hi)), iter(blocks))

    def strays(self) -> Iterator[Stray]:
        """Full-text rows of no tenant, and target rows filed under one tenant that name another's event."""
        rest = list(self._strays)
        while self._head is not None:
            if len(rest) < MAX_STRAYS:
                rest.append(self._head)
            self._head = self._next()
        for doc, words in rest:
            tid, seq = doc >> SEQ_BITS, doc & SEQ_MASK
            fix = Fix("words", seq, None, frozenset(words.split(" ")), tenant_id=tid)
            yield Stray(tid, seq, "full-text index rows name an event the log does not hold", fix)
        for rid, type_, target_id, tid in self.conn.execute(
            "SELECT rid, type, target_id, tenant_id FROM event_targets WHERE (rid >> 40) <> tenant_id"
        ):
            owner, seq = rid >> SEQ_BITS, rid & SEQ_MASK
            fix = Fix("targets", seq, frozenset(), frozenset({(type_, target_id, tid)}), tenant_id=owner)
            yield Stray(owner, seq, f"a target row filed under tenant id {tid} names this event", fix)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("COMMIT")
        self.conn.close()


@contextlib.contextmanager
def index_source(path: str, tenant_id: int | None) -> Iterator[SQLiteIndexSource]:
    src = SQLiteIndexSource(path, tenant_id)
    try:
        yield src
    finally:
        src.close()


def repair(conn: sqlite3.Connection, tenant_id: int, fixes: Sequence[Fix]) -> None:
    """Apply ``fixes`` to tenant ``tenant_id``'s rows, inside the writer's transaction. The append-only triggers
    are lifted for this transaction only: they are put back, as they were, before it commits."""
    base = tenant_id << SEQ_BITS
    saved = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({','.join('?' * len(_GUARDS))})",
        _GUARDS,
    ).fetchall()
    for name, _ in saved:
        conn.execute(f'DROP TRIGGER "{name}"')
    for f in fixes:
        rid = base | f.key
        if f.kind == "columns" and isinstance(f.expected, Columns):
            c = f.expected
            conn.execute(
                "UPDATE events SET tenant_id = ?, id = ?, occurred_at = ?, action = ?, category = ?, "
                "outcome = ?, actor_id = ?, ip = ?, actor_name = ?, actor_email = ? WHERE rid = ?",
                (
                    c.tenant_id,
                    c.id,
                    c.occurred_us,
                    c.action,
                    c.category,
                    c.outcome,
                    c.actor_id,
                    c.ip,
                    c.actor_name,
                    c.actor_email,
                    rid,
                ),
            )
        elif f.kind == "targets":
            stored = f.stored if isinstance(f.stored, frozenset) else frozenset()
            want = f.expected if isinstance(f.expected, frozenset) else frozenset()
            conn.executemany(
                "DELETE FROM event_targets WHERE tenant_id = ? AND target_id = ? AND type = ? AND rid = ?",
                [(tid, target_id, type_, rid) for type_, target_id, tid in stored - want],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO event_targets VALUES (?,?,?,?)",
                [(tid, target_id, type_, rid) for type_, target_id, tid in want - stored],
            )
        elif f.kind == "words":
            # a contentless index forgets a row's words given exactly the words it holds: the ones read back
            if isinstance(f.stored, frozenset) and f.stored:
                conn.execute(
                    "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)",
                    (rid, " ".join(sorted(f.stored))),
                )
            if isinstance(f.expected, str) and f.expected:
                conn.execute("INSERT INTO events_fts (rowid, text) VALUES (?, ?)", (rid, f.expected))
        elif f.kind == "block":
            conn.execute("DELETE FROM event_blocks WHERE tenant_id = ? AND block = ?", (tenant_id, f.key))
            if isinstance(f.expected, tuple):
                conn.execute("INSERT INTO event_blocks VALUES (?,?,?,?)", (tenant_id, f.key, *f.expected))
    for _, sql in saved:
        conn.execute(sql)
