"""The embedded store: one SQLite file in WAL mode, one writer thread, read-only connections for queries.

Every append of every tenant goes through the writer thread, so ``seq`` and each tenant's Merkle frontier are
never racy. The writer drains whatever is queued when it is free and commits it in one transaction (group
commit), then answers every caller: nobody hears "stored" before the commit is on disk.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from vigil.errors import AppendOnlyViolation, Conflict, InvalidRequest, NotFound, StorageError
from vigil.ids import event_id as valid_event_id
from vigil.ids import is_uuid_text
from vigil.ledger.merkle import CompactRange, decompose
from vigil.ledger.tiles import TILE_HEIGHT, TileReader
from vigil.store.base import (
    ApiKey,
    Appended,
    Page,
    RawEvent,
    SearchQuery,
    StoredCheckpoint,
    SubtreeReader,
    Tenant,
    repeat,
)
from vigil.store.detection import DetectionRows
from vigil.store.guard import FileGuard, ServeLock
from vigil.store.search import (
    Dialect,
    narrow,
    newest_page,
    search_columns,
    search_sql,
    search_words,
    tail_sql,
    tail_start,
    time_bounds_sql,
    window,
)
from vigil.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    from vigil.ingest.intake import Prepared
    from vigil.settings import Settings
    from vigil.store.indexcheck import Fix, IndexSource

log = logging.getLogger("vigil.store")

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1
TENANT_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")  # \Z: "$" would pass "acme\n"
T = TypeVar("T")


def rid_of(tenant_id: int, seq: int) -> int:
    """The row id of a tenant's event: tenant in the high bits, ``seq`` in the low 40."""
    return (tenant_id << SEQ_BITS) | seq


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def migrations() -> list[tuple[int, str, str]]:
    """The packaged SQLite migrations as (version, name, sql), in order."""
    out = []
    for entry in resources.files("vigil.store").joinpath("migrations").iterdir():
        m = re.match(r"^(\d+)_(\w+)\.sqlite\.sql$", entry.name)
        if m:
            out.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out)


def _python_steps() -> dict[int, Callable[[sqlite3.Connection], None]]:
    """The migrations that also run Python, after their SQL and in their transaction, by version."""
    from vigil.store.backfill import sqlite_identity_columns

    return {6: sqlite_identity_columns}


class SQLiteStore(GroupCommitWriter[sqlite3.Connection], DetectionRows):
    """The embedded :class:`~vigil.store.base.Store`."""

    def __init__(self, path: str, settings: Settings | None = None, *, exclusive: bool = False) -> None:
        """Open (or create) the file; ``exclusive`` (``vigil serve``) also holds ``<path>.lock`` until close, so
        a second server on the same file is refused at start."""
        self.path = str(Path(path).expanduser())
        synchronous = getattr(settings, "sqlite_synchronous", "FULL") if settings else "FULL"
        self.configure_writer(settings)
        self._synchronous = synchronous
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._frontiers: dict[int, CompactRange] = {}
        self._closed = False
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = ServeLock(self.path) if exclusive else None
        if self._lock is not None:
            self._lock.acquire()
        try:
            conn = self._connect(readonly=False)
            self._migrate(conn)
            min_free = getattr(settings, "sqlite_min_free_mb", 0) if settings else 0
            self._guard = FileGuard(self.path, min_free)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._start_writer(conn)

    # -- connections ---------------------------------------------------------------------------------------

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                conn.execute(
                    "PRAGMA mmap_size=268435456"
                )  # reads straight from the page cache: +15-20% on verify
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
        known = migrations()
        if known and current > known[-1][0]:
            raise StorageError(
                f"{self.path} has schema version {current}, newer than this Vigil knows "
                f"({known[-1][0]}); upgrade Vigil"
            )
        for version, name, sql in known:
            if version <= current:
                continue
            log.info("applying migration %04d_%s", version, name)
            try:
                # one transaction: the script, its Python step (filling new columns from the stored events),
                # and the version row
                conn.executescript("BEGIN IMMEDIATE;\n" + sql)
                step = _python_steps().get(version)
                if step is not None:
                    step(conn)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, now_text()))
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"migration {version:04d}_{name} failed: {exc}") from exc
                raise

    def check(self) -> None:
        """Raise :class:`StorageError` unless the store can take writes and answer reads: the writer runs, the
        path still names the file it writes, that file and its directory are writable, space is left."""
        if not self.writer_alive():
            raise StorageError("the store is closed or its writer has stopped")
        self._guard.ready()
        self._reader().execute("SELECT 1 FROM tenants LIMIT 1").fetchall()

    def schema_version(self) -> int:
        return int(self._reader().execute("SELECT max(version) FROM schema_migrations").fetchone()[0])

    # -- the writer thread ---------------------------------------------------------------------------------

    # -- the writer's transaction (vigil.store.writer runs the thread) -------------------------------------

    def _begin(self, conn: sqlite3.Connection) -> None:
        self._guard.before_write()
        conn.execute("BEGIN IMMEDIATE")

    def _commit_tx(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")
        # A commit into a file the path no longer names is lost at shutdown: its callers get this error, not
        # an acknowledgement (their retries, idempotent by id, land once the file is back).
        self._guard.after_commit()

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _forget(self) -> None:
        self._frontiers.clear()  # in-memory frontiers may hold leaves that were rolled back

    def _error(self, exc: BaseException) -> BaseException:
        return _storage_error(exc)

    def _append_locked(
        self, conn: sqlite3.Connection, tenant_id: int, events: Sequence[Prepared]
    ) -> list[Appended]:
        frontier = self._frontier(conn, tenant_id)
        known: dict[bytes | str, tuple[int, bytes, bytes]] = {}  # id -> (seq, leaf hash, body) already logged
        ids = [id_key(e.id) for e in events]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for eid, rid, leaf, body in conn.execute(
                f"SELECT id, rid, leaf_hash, body FROM events WHERE tenant_id = ? AND id IN ({marks})",
                (tenant_id, *chunk),
            ):
                known[eid] = (rid & SEQ_MASK, leaf, body)
        out: list[Appended] = []
        rows: list[tuple[Any, ...]] = []
        targets: list[tuple[Any, ...]] = []
        texts: list[tuple[int, str]] = []
        leaves: list[bytes] = []
        seq = frontier.size
        base = tenant_id << SEQ_BITS
        for e, eid in zip(events, ids, strict=True):
            hit = known.get(eid)
            if hit is not None:
                out.append(repeat(*hit, e))
                continue
            rid = base | seq
            ev = e.event
            rows.append(
                (
                    rid,
                    tenant_id,
                    eid,
                    e.occurred_us,
                    ev.action,
                    ev.category,
                    ev.outcome,
                    ev.actor.id,
                    e.body,
                    e.leaf,
                    *search_columns(ev),
                )
            )
            for t in ev.targets:
                targets.append((tenant_id, t.id, t.type, rid))
            if e.text:
                texts.append((rid, e.text))
            leaves.append(e.leaf)
            out.append(Appended(seq, e.leaf))
            known[eid] = (seq, e.leaf, e.body)  # the same id again in this batch is a repeat of this one
            seq += 1
        if seq > SEQ_MASK:
            raise StorageError("the tenant's log is full (2**40 events)")
        if rows:
            conn.executemany(
                "INSERT INTO events (rid, tenant_id, id, occurred_at, action, category, outcome, "
                "actor_id, body, leaf_hash, ip, actor_name, actor_email) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if targets:
                conn.executemany("INSERT OR IGNORE INTO event_targets VALUES (?,?,?,?)", targets)
            if texts:
                conn.executemany("INSERT INTO events_fts (rowid, text) VALUES (?,?)", texts)
            nodes = [
                (tenant_id, level, idx, h)
                for level, idx, h in frontier.extend(leaves)
                if level and level % TILE_HEIGHT == 0
            ]
            if nodes:
                conn.executemany("INSERT INTO tree_nodes VALUES (?,?,?,?)", nodes)
                blocks = [
                    (tenant_id, idx, base | idx << TILE_HEIGHT, base | (idx + 1) << TILE_HEIGHT)
                    for _, level, idx, _ in nodes
                    if level == TILE_HEIGHT
                ]
                conn.executemany(
                    "INSERT INTO event_blocks SELECT ?, ?, min(occurred_at), max(occurred_at) FROM events "
                    "WHERE rid >= ? AND rid < ?",
                    blocks,
                )
        return out

    def idempotent_answer(self, tenant_id: int, key_hash: bytes, since_us: int) -> tuple[bytes, bytes] | None:
        row = (
            self._reader()
            .execute(
                "SELECT fingerprint, response FROM idempotency_keys WHERE tenant_id = ? AND key_hash = ? "
                "AND created_us >= ?",
                (tenant_id, key_hash, since_us),
            )
            .fetchone()
        )
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def remember_answer(
        self, tenant_id: int, key_hash: bytes, fingerprint: bytes, answer: bytes, at_us: int, expire_us: int
    ) -> None:
        def put(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM idempotency_keys WHERE created_us < ?", (expire_us,))
            conn.execute(
                "INSERT OR IGNORE INTO idempotency_keys VALUES (?,?,?,?,?)",
                (tenant_id, key_hash, fingerprint, answer, at_us),
            )

        self.write(put)

    def _frontier(self, conn: sqlite3.Connection, tenant_id: int) -> CompactRange:
        # Re-read when another process appended since (`vigil keys revoke` records its change in the platform
        # log while a server runs): one primary-key seek, under the write lock, so the size is the real one.
        size = self._size(conn, tenant_id)
        frontier = self._frontiers.get(tenant_id)
        if frontier is None or frontier.size != size:
            reader = TileReader(_tile_fetcher(conn, tenant_id), size)
            frontier = CompactRange(size, [reader(level, idx) for level, idx in decompose(size)])
            self._frontiers[tenant_id] = frontier
        return frontier

    # -- tenants and keys ----------------------------------------------------------------------------------

    def create_tenant(self, slug: str, name: str | None = None) -> Tenant:
        if not TENANT_SLUG.match(slug):
            raise InvalidRequest(
                f"tenant {slug!r}: use 2 to 63 lower-case letters, digits and dashes, "
                "starting with a letter or digit"
            )
        created = now_text()

        def insert(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO tenants (slug, name, created_at) VALUES (?, ?, ?)",
                    (slug, name or slug, created),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"tenant {slug!r} already exists") from None
            return int(cur.lastrowid or 0)

        return Tenant(self.write(insert), slug, name or slug, created)

    def get_tenant(self, slug: str) -> Tenant:
        row = (
            self._reader()
            .execute("SELECT id, slug, name, created_at FROM tenants WHERE slug = ?", (slug,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"no tenant {slug!r}")
        return Tenant(*row)

    def list_tenants(self) -> list[Tenant]:
        return [
            Tenant(*r)
            for r in self._reader().execute("SELECT id, slug, name, created_at FROM tenants ORDER BY slug")
        ]

    def create_key(self, key: ApiKey) -> None:
        self.write(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (
                    key.key_id,
                    key.tenant_id,
                    key.name,
                    ",".join(sorted(key.scopes)),
                    key.secret_hash,
                    key.created_at,
                ),
            )
        )

    _KEY_SQL = (
        "SELECT k.key_id, k.tenant_id, t.slug, k.name, k.scopes, k.secret_hash, k.created_at, k.revoked_at, "
        "k.last_used_at, k.rotated_at, k.previous_hash, k.previous_until "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    )

    def get_key(self, key_id: str) -> ApiKey | None:
        row = self._reader().execute(self._KEY_SQL + " WHERE k.key_id = ?", (key_id,)).fetchone()
        return None if row is None else _key(row)

    def list_keys(self, tenant_id: int | None = None) -> list[ApiKey]:
        if tenant_id is None:
            rows = self._reader().execute(self._KEY_SQL + " ORDER BY t.slug, k.created_at")
        else:
            rows = self._reader().execute(
                self._KEY_SQL + " WHERE k.tenant_id = ? ORDER BY k.created_at", (tenant_id,)
            )
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, at: str) -> bool:
        def revoke(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id)
            )
            if cur.rowcount:
                return True
            if conn.execute("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)).fetchone() is None:
                raise NotFound(f"no key {key_id!r}")
            return False

        return self.write(revoke)

    def rotate_key(self, key_id: str, secret_hash: bytes, at: str, previous_until: str) -> None:
        def rotate(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE api_keys SET previous_hash = secret_hash, previous_until = ?, secret_hash = ?, "
                "rotated_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (previous_until, secret_hash, at, key_id),
            )
            if not cur.rowcount:
                row = conn.execute("SELECT revoked_at FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is None:
                    raise NotFound(f"no key {key_id!r}")
                raise Conflict(f"key {key_id} was revoked at {row[0]}; a revoked key cannot be rotated")

        self.write(rotate)

    def touch_keys(self, used: Mapping[str, str]) -> None:
        if not used:
            return
        rows = [(at, key_id, at) for key_id, at in used.items()]
        self.write(
            lambda conn: conn.executemany(
                "UPDATE api_keys SET last_used_at = ? WHERE key_id = ? AND "
                "(last_used_at IS NULL OR last_used_at < ?)",
                rows,
            )
        )

    # -- reads ---------------------------------------------------------------------------------------------

    @staticmethod
    def _size(conn: sqlite3.Connection, tenant_id: int) -> int:
        row = conn.execute(
            "SELECT max(rid) FROM events WHERE rid BETWEEN ? AND ?",
            (tenant_id << SEQ_BITS, (tenant_id << SEQ_BITS) | SEQ_MASK),
        ).fetchone()
        return 0 if row[0] is None else (row[0] & SEQ_MASK) + 1

    def tree_size(self, tenant_id: int) -> int:
        return self._size(self._reader(), tenant_id)

    def subtree_reader(self, tenant_id: int) -> SubtreeReader:
        conn = self._reader()
        return TileReader(_tile_fetcher(conn, tenant_id), self._size(conn, tenant_id))

    def get_event(self, tenant_id: int, event_id: str) -> RawEvent | None:
        eid = valid_event_id(event_id)
        if eid is None:
            return None
        raw = id_key(eid)
        # Bounded by the tenant's own key range, not only its tenant column: a row whose column was rewritten
        # to name this tenant still lives in another tenant's log, and must not answer for this one.
        base = tenant_id << SEQ_BITS
        row = (
            self._reader()
            .execute(
                "SELECT rid, leaf_hash, body FROM events WHERE tenant_id = ? AND id = ? AND rid BETWEEN ? AND ?",
                (tenant_id, raw, base, base | SEQ_MASK),
            )
            .fetchone()
        )
        return None if row is None else _stored(row)

    def read_range(self, tenant_id: int, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """(seq, leaf_hash, canonical body) of seqs [start, end), in order."""
        base = tenant_id << SEQ_BITS
        return [
            (rid & SEQ_MASK, leaf, body)
            for rid, leaf, body in self._reader().execute(
                "SELECT rid, leaf_hash, body FROM events WHERE rid >= ? AND rid < ? ORDER BY rid",
                (base | start, base | end),
            )
        ]

    def read_packed(self, tenant_id: int, start: int, end: int) -> tuple[int, bytes, bytes]:
        # One row back instead of one per event. group_concat works on text, which keeps a blob's bytes as they
        # are in a UTF-8 database, and the CASTs hand them back as blobs. It concatenates in the order of an
        # ordered subquery (SQLite keeps that ORDER BY for group_concat, and tests it since its ticket #2942),
        # and a rowid range needs no sort for it.
        base = tenant_id << SEQ_BITS
        count, leaves, bodies = (
            self._reader()
            .execute(
                "SELECT count(*), CAST(group_concat(leaf_hash, '') AS BLOB), "
                "CAST(group_concat(body, x'0a') AS BLOB) "
                "FROM (SELECT leaf_hash, body FROM events WHERE rid >= ? AND rid < ? ORDER BY rid)",
                (base | start, base | end),
            )
            .fetchone()
        )
        return count, leaves or b"", bodies or b""

    @staticmethod
    def _time_bounds(
        conn: sqlite3.Connection, tenant_id: int, lo: int, hi: int, since: int | None, until: int | None
    ) -> tuple[int, int]:
        """Narrow [lo, hi] to the blocks that can hold events with since <= occurred_at < until."""
        base = tenant_id << SEQ_BITS
        since = -(2**62) if since is None else since
        until = 2**62 if until is None else until
        blocks = conn.execute(
            time_bounds_sql(DIALECT, "event_blocks"), (since, until, since, until, tenant_id)
        ).fetchone()
        tail_hit = conn.execute(
            tail_sql(DIALECT), (max(tail_start(base, blocks), lo), hi, since, until)
        ).fetchone()
        return narrow(lo, hi, base, blocks, tail_hit is not None)

    def tree_nodes(self, tenant_id: int) -> list[tuple[int, int, bytes]]:
        return [
            (level, idx, h)
            for level, idx, h in self._reader().execute(
                "SELECT level, idx, hash FROM tree_nodes WHERE tenant_id = ? ORDER BY level, idx",
                (tenant_id,),
            )
        ]

    # -- checkpoints ---------------------------------------------------------------------------------------

    def add_checkpoint(self, tenant_id: int, size: int, root: bytes, note: str) -> StoredCheckpoint:
        created = now_text()

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints (tenant_id, size, root, note, created_at) VALUES (?,?,?,?,?)",
                (tenant_id, size, root, note, created),
            )

        self.write(insert)
        stored = self.checkpoint(tenant_id, size)
        if stored is None:
            raise StorageError(f"checkpoint at size {size} was not stored")
        return stored

    def checkpoint(self, tenant_id: int, size: int | None = None) -> StoredCheckpoint | None:
        sql = "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = ?"
        if size is None:
            row = self._reader().execute(sql + " ORDER BY size DESC LIMIT 1", (tenant_id,)).fetchone()
        else:
            row = self._reader().execute(sql + " AND size = ?", (tenant_id, size)).fetchone()
        return None if row is None else StoredCheckpoint(*row)

    def checkpoints(self, tenant_id: int) -> list[StoredCheckpoint]:
        return [
            StoredCheckpoint(*r)
            for r in self._reader().execute(
                "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = ? ORDER BY size",
                (tenant_id,),
            )
        ]

    @contextlib.contextmanager
    def _detect_read(self) -> Iterator[sqlite3.Connection]:
        yield self._reader()

    def search(self, tenant_id: int, query: SearchQuery) -> Page:
        conn = self._reader()
        snapshot = self._size(conn, tenant_id) - 1 if query.snapshot is None else query.snapshot
        if snapshot < 0:
            return Page([], None, snapshot)
        base = tenant_id << SEQ_BITS

        def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "fts5" in str(exc):
                    raise InvalidRequest(f"cannot search for {query.text!r}: {exc}") from None
                raise StorageError(f"search failed: {exc}") from exc

        if query.order == "newest":
            rows, nxt = newest_page(DIALECT, run, query, snapshot, base, [tenant_id])
            return Page([_stored(r) for r in rows], nxt, snapshot)
        lo, hi = window(query, snapshot, base)
        if lo <= hi and (query.since_us is not None or query.until_us is not None):
            lo, hi = self._time_bounds(conn, tenant_id, lo, hi, query.since_us, query.until_us)
        if lo > hi:
            return Page([], None, snapshot)
        rows = run(*search_sql(DIALECT, query, lo, hi, [tenant_id], base))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        events = [_stored(r) for r in rows]
        nxt = (0, rows[-1][0] & SEQ_MASK) if more and rows else None
        return Page(events, nxt, snapshot)

    def index_source(self, tenant_id: int | None = None) -> contextlib.AbstractContextManager[IndexSource]:
        """The derived rows of one tenant (or of all, with strays) from one snapshot: see vigil.store.indexcheck."""
        from vigil.store import sqlite_index

        return sqlite_index.index_source(self.path, tenant_id)

    def repair_index(self, tenant_id: int, fixes: Sequence[Fix]) -> None:
        """Rewrite derived rows of a tenant as ``fixes`` say, in one transaction of the writer."""
        from vigil.store import sqlite_index

        self.write(lambda conn: sqlite_index.repair(conn, tenant_id, fixes))

    def optimize(self) -> None:
        """Refresh the planner's statistics (cheap; run after bulk loads)."""
        self.write(lambda conn: conn.execute("PRAGMA optimize=0x10002"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_writer()
        # Readers first: the last connection to close checkpoints the WAL and removes the -wal and -shm files.
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        with contextlib.suppress(sqlite3.Error):  # statistics are a nicety; closing must not fail on them
            self._wconn.execute("PRAGMA optimize")
        self._wconn.close()
        if self._lock is not None:
            self._lock.release()


def _fts_clause(words: str, lo: int, hi: int, alone: bool) -> tuple[str | None, str | None, str, list[Any]]:
    match = fts_query(words)
    if alone:
        # the words are the only selective filter: walk the full-text index in log order and stop at the limit,
        # instead of collecting every match before sorting
        return (
            "events_fts f JOIN events e ON e.rid = f.rowid",
            "f.rowid",
            "events_fts MATCH ? AND f.rowid BETWEEN ? AND ?",
            [match, lo, hi],
        )
    return (
        None,
        None,
        "e.rid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid BETWEEN ? AND ?)",
        [match, lo, hi],
    )


DIALECT = Dialect(
    mark="?",
    key="rid",
    events="events",
    targets="event_targets",
    occurred="occurred_at",
    blocks="event_blocks",
    tenant=("tenant_id = ?",),
    text=_fts_clause,
    hints=True,
)


def fts_query(text: str) -> str:
    """A safe FTS5 query: every word quoted (so operators in user text are plain words), all required."""
    return " ".join('"' + w.rstrip("*") + '"' + ("*" if w.endswith("*") else "") for w in search_words(text))


def _tile_fetcher(conn: sqlite3.Connection, tenant_id: int) -> Callable[[int, int, int], list[bytes]]:
    base = tenant_id << SEQ_BITS

    def fetch(level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            rows = conn.execute(
                "SELECT leaf_hash FROM events WHERE rid >= ? AND rid < ? ORDER BY rid",
                (base | start, base | end),
            )
        else:
            rows = conn.execute(
                "SELECT hash FROM tree_nodes WHERE tenant_id = ? AND level = ? AND idx >= ? "
                "AND idx < ? ORDER BY idx",
                (tenant_id, level, start, end),
            )
        return [r[0] for r in rows]

    return fetch


def id_key(event_id: str) -> bytes | str:
    """An event id as the ``events.id`` column keeps it: a UUID as its 16 bytes (a BLOB), an opaque id as TEXT.

    The column has no type affinity, and SQLite never finds a TEXT value equal to a BLOB, so the two kinds
    cannot collide (``evt_123`` and a UUID whose bytes spell it are different ids) and the index stays compact
    for the common case. ``event_id`` is already in its kept form (see :func:`vigil.ids.event_id`)."""
    return bytes.fromhex(event_id.replace("-", "")) if is_uuid_text(event_id) else event_id


def _stored(row: tuple[Any, ...]) -> RawEvent:
    """(seq, leaf hash, body) of a row that starts with (rid, leaf hash, body)."""
    return row[0] & SEQ_MASK, row[1], row[2]


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], frozenset(row[4].split(",")), *row[5:])


def _storage_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError) and "append-only" in str(exc):
        return AppendOnlyViolation(str(exc))
    if isinstance(exc, sqlite3.IntegrityError) and "events.rid" in str(exc):
        # the seq this writer chose is taken: another process appended to the log (a second writer)
        return StorageError(
            "another process appended to this log at the same time; run one server per SQLite file "
            "(the request can be retried)"
        )
    if isinstance(exc, sqlite3.Error):
        return StorageError(f"SQLite: {exc}")
    return exc
