"""The production store: PostgreSQL, one schema per tenant, append-only roles, monthly partitions.

Layout, for a database ``D``:

- schema ``vigil``: tenants, API keys, checkpoints and the schema version (the control schema);
- schema ``tenant_<id>`` per tenant: events (partitioned by month of ``received_us``), event_targets,
  tree_nodes and event_blocks;
- role ``vigil_<D>_writer``: INSERT and SELECT on the tenant tables, nothing else; every append runs under it
  (``SET LOCAL ROLE``);
- role ``vigil_<D>_r<id>`` per tenant: USAGE and SELECT on its own schema only; every tenant-scoped read runs
  under it, so a bug in our SQL still cannot cross tenants;
- the connecting role owns everything and runs the migrations; triggers refuse UPDATE, DELETE and TRUNCATE even
  to it (defence in depth).

One writer thread per process group-commits appends; across processes ``pg_advisory_xact_lock`` per tenant keeps
one writer per log, and the frontier is re-read whenever another process has appended since.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vigil.errors import AppendOnlyViolation, ConfigError, Conflict, InvalidRequest, NotFound, StorageError
from vigil.ids import event_id as valid_event_id
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
from vigil.store.detection import DetectionRows, Sql
from vigil.store.pg_schema import CONTROL_MIGRATIONS, TENANT_MIGRATIONS, TENANT_STEPS, month_bounds
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
from vigil.store.sqlite import TENANT_SLUG, now_text
from vigil.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from vigil.ingest.intake import Prepared
    from vigil.settings import Settings
    from vigil.store.indexcheck import Fix, IndexSource

log = logging.getLogger("vigil.store")

LOCK_SPACE = 0x56494731  # first key of pg_advisory_xact_lock(int, int): "VIG1"
PARTITIONS_AHEAD = 2  # months of partitions kept ready beyond the current one


def _import() -> tuple[Any, Any]:
    try:
        import psycopg
        from psycopg_pool import ConnectionPool
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "PostgreSQL needs the postgres extra: pip install 'vigil-audit[postgres]'"
        ) from None
    return psycopg, ConnectionPool


def schema_of(tenant_id: int) -> str:
    return f"tenant_{int(tenant_id)}"


class PostgresStore(GroupCommitWriter["psycopg.Connection[Any]"], DetectionRows):
    """The PostgreSQL :class:`~vigil.store.base.Store`."""

    _sql = Sql(prefix="vigil.", placeholder="%s")

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        psycopg, pool_cls = _import()
        self.url = url
        self.configure_writer(settings)
        self._frontiers: dict[int, CompactRange] = {}
        self._partitions: dict[int, int] = {}  # tenant id -> end (µs) of its last partition
        self._lock = threading.Lock()
        self._disconnected = False
        try:
            conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from None
        db = _scalar(conn.execute("SELECT current_database()"))
        self.role_prefix = "vigil_" + re.sub(r"[^a-z0-9_]", "_", db.lower())[:40]
        self.writer_role = f"{self.role_prefix}_writer"
        self.migrate(conn)
        # Never prepare: a prepared search soon gets a generic plan that cannot see its seq bounds or values,
        # and at 1M events a rare word then takes 60-240 ms instead of 3 (bench/query.py).
        # check: a pooled connection the server has dropped (restart, failover, idle cut) is replaced before it
        # is handed out, for one round trip, instead of failing the read it was given to
        self._pool: ConnectionPool[Any] = pool_cls(
            url,
            min_size=1,
            max_size=8,
            open=True,
            kwargs={"autocommit": False, "prepare_threshold": None},
            check=pool_cls.check_connection,
        )
        self._start_writer(conn)

    def reader_role(self, tenant_id: int) -> str:
        return f"{self.role_prefix}_r{int(tenant_id)}"

    # -- migrations ----------------------------------------------------------------------------------------

    def migrate(self, conn: psycopg.Connection[Any] | None = None) -> dict[str, int]:
        """Bring the control schema and every tenant schema up to date (idempotent); returns versions."""
        if conn is None:  # on the writer thread, inside its transaction
            return self.write(lambda c: self._migrate_all(c, own_tx=False))
        return self._migrate_all(conn)

    def _migrate_all(self, conn: psycopg.Connection[Any], own_tx: bool = True) -> dict[str, int]:
        with _tx(conn) if own_tx else contextlib.nullcontext():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE,))
            conn.execute("CREATE SCHEMA IF NOT EXISTS vigil")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vigil.schema_migrations (version int PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = _scalar(conn.execute("SELECT coalesce(max(version), 0) FROM vigil.schema_migrations"))
            if current > CONTROL_MIGRATIONS[-1][0]:
                raise StorageError(
                    f"the database has control schema version {current}, newer than this Vigil "
                    f"knows ({CONTROL_MIGRATIONS[-1][0]}); upgrade Vigil"
                )
            self._ensure_role(conn, self.writer_role)
            for version, name, sql in CONTROL_MIGRATIONS:
                if version > current:
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO vigil.schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
            tenants = conn.execute("SELECT id, schema_version FROM vigil.tenants ORDER BY id").fetchall()
            for tid, version in tenants:
                self._migrate_tenant(conn, tid, version)
        return {
            "control": CONTROL_MIGRATIONS[-1][0],
            "tenant": TENANT_MIGRATIONS[-1][0],
            "tenants": len(tenants),
        }

    @staticmethod
    def _ensure_role(conn: psycopg.Connection[Any], role: str) -> None:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        conn.execute(f'GRANT "{role}" TO CURRENT_USER')

    def _migrate_tenant(self, conn: psycopg.Connection[Any], tenant_id: int, version: int) -> None:
        reader = self.reader_role(tenant_id)
        self._ensure_role(conn, reader)
        names = {"s": schema_of(tenant_id), "w": self.writer_role, "r": reader}
        if version > TENANT_MIGRATIONS[-1][0]:
            raise StorageError(
                f"tenant {tenant_id} has schema version {version}, newer than this Vigil knows"
            )
        for v, _, sql in TENANT_MIGRATIONS:
            if v > version:
                conn.execute(sql.format(**names))
                if v in TENANT_STEPS:
                    TENANT_STEPS[v](conn, names["s"], _text)
                conn.execute("UPDATE vigil.tenants SET schema_version = %s WHERE id = %s", (v, tenant_id))
        # The roles are named after the database: granted again on every open (idempotent), so a copy restored
        # under another name gets its own writer and readers instead of "permission denied".
        s = names["s"]
        conn.execute(f'GRANT USAGE ON SCHEMA {s} TO "{self.writer_role}", "{reader}"')
        conn.execute(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO "{self.writer_role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO "{reader}"')
        self._ensure_partitions(conn, tenant_id, _now_us())

    def _ensure_partitions(self, conn: psycopg.Connection[Any], tenant_id: int, received_us: int) -> None:
        """Monthly partitions up to PARTITIONS_AHEAD months past ``received_us`` (DDL: call as owner)."""
        end = self._partitions.get(tenant_id, 0)
        if received_us < end - 31 * 86_400_000_000:
            return
        s = schema_of(tenant_id)
        for name, lo, hi in month_bounds(received_us, PARTITIONS_AHEAD):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.events_{name} PARTITION OF {s}.events "
                f"FOR VALUES FROM ({lo}) TO ({hi})"
            )
            conn.execute(f"DROP TRIGGER IF EXISTS no_truncate ON {s}.events_{name}")
            conn.execute(
                f"CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {s}.events_{name} "
                "FOR EACH STATEMENT EXECUTE FUNCTION vigil.refuse_change()"
            )
            end = max(end, hi)
        self._partitions[tenant_id] = end

    def schema_version(self) -> int:
        with self._control() as conn:
            return int(_scalar(conn.execute("SELECT max(version) FROM vigil.schema_migrations")))

    # -- connections ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _control(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StorageError("the store is closed")
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _detect_read(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        return self._control()

    @contextlib.contextmanager
    def _tenant(self, tenant_id: int) -> Iterator[psycopg.Connection[Any]]:
        """A read transaction under the tenant's own reader role."""
        if self._closed:
            raise StorageError("the store is closed")
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(f'SET LOCAL ROLE "{self.reader_role(tenant_id)}"')
            yield conn

    # -- the writer's transaction --------------------------------------------------------------------------

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN")

    def _commit_tx(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("COMMIT")

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        if conn.broken or conn.closed:
            self._reconnect()

    def _reconnect(self) -> None:
        """Replace the writer's lost connection (server restart, killed backend, network cut), on the writer
        thread between two transactions; if the server cannot be reached the next write tries again."""
        psycopg, _ = _import()
        try:
            fresh = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            if not self._disconnected:
                log.error("lost the connection to PostgreSQL and cannot reconnect yet: %s", exc)
            self._disconnected = True
            return
        old, self._wconn = self._wconn, fresh
        with contextlib.suppress(Exception):
            old.close()
        self._disconnected = False
        log.warning("the writer's PostgreSQL connection was lost; reconnected")

    def _forget(self) -> None:
        self._frontiers.clear()

    def _error(self, exc: BaseException) -> BaseException:
        psycopg, _ = _import()
        if isinstance(exc, psycopg.Error):
            if "append-only" in str(exc):
                return AppendOnlyViolation(str(exc))
            return StorageError(f"PostgreSQL: {exc}")
        return exc

    def _append_locked(
        self, conn: psycopg.Connection[Any], tenant_id: int, events: Sequence[Prepared]
    ) -> list[Appended]:
        s = schema_of(tenant_id)
        received = max((e.event.received_at for e in events), default="")
        received_us = _parse_us(received) if received else _now_us()
        self._ensure_partitions(conn, tenant_id, received_us)
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, tenant_id))
        conn.execute(f'SET LOCAL ROLE "{self.writer_role}"')
        size = _scalar(conn.execute(f"SELECT coalesce(max(seq) + 1, 0) FROM {s}.events"))
        frontier = self._frontiers.get(tenant_id)
        if frontier is None or frontier.size != size:  # another process appended since: re-read the frontier
            reader = TileReader(_fetcher(conn, tenant_id), size)
            frontier = CompactRange(size, [reader(level, idx) for level, idx in decompose(size)])
            self._frontiers[tenant_id] = frontier
        known: dict[str, tuple[int, bytes, bytes]] = {}  # id -> (seq, leaf hash, body) already logged
        for seq, eid, leaf, body in conn.execute(
            f"SELECT seq, id, leaf_hash, body FROM {s}.events WHERE id = ANY(%s::text[])",
            ([e.id for e in events],),
        ):
            known[eid] = (seq, bytes(leaf), bytes(body))
        out: list[Appended] = []
        rows: list[tuple[Any, ...]] = []
        targets: list[tuple[Any, ...]] = []
        leaves: list[bytes] = []
        seq = size
        for e in events:
            hit = known.get(e.id)
            if hit is not None:
                out.append(repeat(*hit, e))
                continue
            ev = e.event
            rows.append(
                (
                    seq,
                    _parse_us(ev.received_at),
                    e.id,
                    e.occurred_us,
                    ev.action,
                    ev.category,
                    ev.outcome,
                    _text(ev.actor.id),
                    e.body,
                    e.leaf,
                    _text(e.text),
                    *_identity(ev),
                )
            )
            targets.extend((_text(t.id), _text(t.type), seq) for t in ev.targets)
            leaves.append(e.leaf)
            out.append(Appended(seq, e.leaf))
            known[e.id] = (seq, e.leaf, e.body)  # the same id again in this batch is a repeat of this one
            seq += 1
        if rows:
            with conn.cursor() as cur:
                with cur.copy(
                    f"COPY {s}.events (seq, received_us, id, occurred_us, action, category, outcome, "
                    "actor_id, body, leaf_hash, search, ip, actor_name, actor_email) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                if targets:
                    # one event may name the same target twice; the key keeps one row
                    with cur.copy(f"COPY {s}.event_targets (target_id, type, seq) FROM STDIN") as copy:
                        for row in dict.fromkeys(targets):
                            copy.write_row(row)
                nodes = [
                    (lv, idx, h) for lv, idx, h in frontier.extend(leaves) if lv and lv % TILE_HEIGHT == 0
                ]
                if nodes:
                    with cur.copy(f"COPY {s}.tree_nodes (level, idx, hash) FROM STDIN") as copy:
                        for node in nodes:
                            copy.write_row(node)
                    for _, idx, _ in (n for n in nodes if n[0] == TILE_HEIGHT):
                        cur.execute(
                            f"INSERT INTO {s}.event_blocks SELECT %s, min(occurred_us), max(occurred_us) "
                            f"FROM {s}.events WHERE seq >= %s AND seq < %s",
                            (idx, idx << TILE_HEIGHT, (idx + 1) << TILE_HEIGHT),
                        )
        conn.execute("RESET ROLE")
        return out

    def idempotent_answer(self, tenant_id: int, key_hash: bytes, since_us: int) -> tuple[bytes, bytes] | None:
        with self._control() as conn:
            row = conn.execute(
                "SELECT fingerprint, response FROM vigil.idempotency_keys WHERE tenant_id = %s AND key_hash = %s "
                "AND created_us >= %s",
                (tenant_id, key_hash, since_us),
            ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def remember_answer(
        self, tenant_id: int, key_hash: bytes, fingerprint: bytes, answer: bytes, at_us: int, expire_us: int
    ) -> None:
        def put(conn: psycopg.Connection[Any]) -> None:
            conn.execute("DELETE FROM vigil.idempotency_keys WHERE created_us < %s", (expire_us,))
            conn.execute(
                "INSERT INTO vigil.idempotency_keys VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant_id, key_hash, fingerprint, answer, at_us),
            )

        self.write(put)

    # -- tenants and keys ----------------------------------------------------------------------------------

    def create_tenant(self, slug: str, name: str | None = None) -> Tenant:
        if not TENANT_SLUG.match(slug):
            raise InvalidRequest(
                f"tenant {slug!r}: use 2 to 63 lower-case letters, digits and dashes, starting with a letter or digit"
            )
        created = now_text()

        def insert(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(
                "INSERT INTO vigil.tenants (slug, name, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (slug) DO NOTHING RETURNING id",
                (slug, name or slug, created),
            ).fetchone()
            if row is None:
                raise Conflict(f"tenant {slug!r} already exists")
            self._migrate_tenant(conn, row[0], 0)
            return int(row[0])

        return Tenant(self.write(insert), slug, name or slug, created)

    def get_tenant(self, slug: str) -> Tenant:
        with self._control() as conn:
            row = conn.execute(
                "SELECT id, slug, name, created_at FROM vigil.tenants WHERE slug = %s", (slug,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no tenant {slug!r}")
        return Tenant(*row)

    def list_tenants(self) -> list[Tenant]:
        with self._control() as conn:
            return [
                Tenant(*r)
                for r in conn.execute("SELECT id, slug, name, created_at FROM vigil.tenants ORDER BY slug")
            ]

    def create_key(self, key: ApiKey) -> None:
        self.write(
            lambda conn: conn.execute(
                "INSERT INTO vigil.api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at) "
                "VALUES (%s,%s,%s,%s,%s,%s)",
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
        "FROM vigil.api_keys k JOIN vigil.tenants t ON t.id = k.tenant_id"
    )

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._control() as conn:
            row = conn.execute(self._KEY_SQL + " WHERE k.key_id = %s", (key_id,)).fetchone()
        return None if row is None else _key(row)

    def list_keys(self, tenant_id: int | None = None) -> list[ApiKey]:
        with self._control() as conn:
            if tenant_id is None:
                rows = conn.execute(self._KEY_SQL + " ORDER BY t.slug, k.created_at").fetchall()
            else:
                rows = conn.execute(
                    self._KEY_SQL + " WHERE k.tenant_id = %s ORDER BY k.created_at", (tenant_id,)
                ).fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, at: str) -> bool:
        def revoke(conn: psycopg.Connection[Any]) -> bool:
            cur = conn.execute(
                "UPDATE vigil.api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                (at, key_id),
            )
            if cur.rowcount:
                return True
            if conn.execute("SELECT 1 FROM vigil.api_keys WHERE key_id = %s", (key_id,)).fetchone() is None:
                raise NotFound(f"no key {key_id!r}")
            return False

        return self.write(revoke)

    def rotate_key(self, key_id: str, secret_hash: bytes, at: str, previous_until: str) -> None:
        def rotate(conn: psycopg.Connection[Any]) -> None:
            cur = conn.execute(
                "UPDATE vigil.api_keys SET previous_hash = secret_hash, previous_until = %s, secret_hash = %s, "
                "rotated_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                (previous_until, secret_hash, at, key_id),
            )
            if not cur.rowcount:
                row = conn.execute(
                    "SELECT revoked_at FROM vigil.api_keys WHERE key_id = %s", (key_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"no key {key_id!r}")
                raise Conflict(f"key {key_id} was revoked at {row[0]}; a revoked key cannot be rotated")

        self.write(rotate)

    def touch_keys(self, used: Mapping[str, str]) -> None:
        if not used:
            return
        rows = [(at, key_id, at) for key_id, at in used.items()]
        self.write(
            lambda conn: conn.cursor().executemany(
                "UPDATE vigil.api_keys SET last_used_at = %s WHERE key_id = %s AND "
                "(last_used_at IS NULL OR last_used_at < %s)",
                rows,
            )
        )

    # -- reads ---------------------------------------------------------------------------------------------

    def tree_size(self, tenant_id: int) -> int:
        with self._tenant(tenant_id) as conn:
            return int(
                _scalar(conn.execute(f"SELECT coalesce(max(seq) + 1, 0) FROM {schema_of(tenant_id)}.events"))
            )

    def subtree_reader(self, tenant_id: int) -> SubtreeReader:
        size = self.tree_size(tenant_id)

        def fetch(level: int, start: int, end: int) -> list[bytes]:
            with self._tenant(tenant_id) as conn:
                return _fetcher(conn, tenant_id)(level, start, end)

        return TileReader(fetch, size)

    def get_event(self, tenant_id: int, event_id: str) -> RawEvent | None:
        found = valid_event_id(event_id)
        if found is None:
            return None
        event_id = found
        with self._tenant(tenant_id) as conn:
            # the tenant's own schema, under its own reader role: no other tenant's row can answer; the first
            # row holding the id is the one appended (the writer never appends an id twice)
            row = conn.execute(
                f"SELECT seq, leaf_hash, body FROM {schema_of(tenant_id)}.events WHERE id = %s ORDER BY seq LIMIT 1",
                (event_id,),
            ).fetchone()
        return None if row is None else (row[0], bytes(row[1]), bytes(row[2]))

    def read_range(self, tenant_id: int, start: int, end: int) -> list[RawEvent]:
        with self._tenant(tenant_id) as conn:
            return [
                (seq, bytes(leaf), bytes(body))
                for seq, leaf, body in conn.execute(
                    f"SELECT seq, leaf_hash, body FROM {schema_of(tenant_id)}.events WHERE seq >= %s AND seq < %s "
                    "ORDER BY seq",
                    (start, end),
                )
            ]

    def read_packed(self, tenant_id: int, start: int, end: int) -> tuple[int, bytes, bytes]:
        with self._tenant(tenant_id) as conn:
            row = conn.execute(
                "SELECT count(*), string_agg(leaf_hash, ''::bytea ORDER BY seq), "
                f"string_agg(body, '\\x0a'::bytea ORDER BY seq) FROM {schema_of(tenant_id)}.events "
                "WHERE seq >= %s AND seq < %s",
                (start, end),
            ).fetchone()
        if row is None:
            raise RuntimeError("an aggregate returned no row")
        count, leaves, bodies = row
        return count, bytes(leaves or b""), bytes(bodies or b"")

    def tree_nodes(self, tenant_id: int) -> list[tuple[int, int, bytes]]:
        with self._tenant(tenant_id) as conn:
            return [
                (lv, idx, bytes(h))
                for lv, idx, h in conn.execute(
                    f"SELECT level, idx, hash FROM {schema_of(tenant_id)}.tree_nodes ORDER BY level, idx"
                )
            ]

    # -- checkpoints ---------------------------------------------------------------------------------------

    def add_checkpoint(self, tenant_id: int, size: int, root: bytes, note: str) -> StoredCheckpoint:
        created = now_text()
        self.write(
            lambda conn: conn.execute(
                "INSERT INTO vigil.checkpoints (tenant_id, size, root, note, created_at) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT DO NOTHING",
                (tenant_id, size, root, note, created),
            )
        )
        stored = self.checkpoint(tenant_id, size)
        if stored is None:
            raise StorageError(f"checkpoint at size {size} was not stored")
        return stored

    def checkpoint(self, tenant_id: int, size: int | None = None) -> StoredCheckpoint | None:
        sql = "SELECT size, root, note, created_at FROM vigil.checkpoints WHERE tenant_id = %s"
        with self._control() as conn:
            if size is None:
                row = conn.execute(sql + " ORDER BY size DESC LIMIT 1", (tenant_id,)).fetchone()
            else:
                row = conn.execute(sql + " AND size = %s", (tenant_id, size)).fetchone()
        return None if row is None else StoredCheckpoint(row[0], bytes(row[1]), row[2], row[3])

    def checkpoints(self, tenant_id: int) -> list[StoredCheckpoint]:
        with self._control() as conn:
            return [
                StoredCheckpoint(r[0], bytes(r[1]), r[2], r[3])
                for r in conn.execute(
                    "SELECT size, root, note, created_at FROM vigil.checkpoints WHERE tenant_id = %s ORDER BY size",
                    (tenant_id,),
                )
            ]

    # -- search --------------------------------------------------------------------------------------------

    def search(self, tenant_id: int, query: SearchQuery) -> Page:
        s = schema_of(tenant_id)
        query = _searchable(query)
        d = dialect(s)
        with self._tenant(tenant_id) as conn:
            snapshot = query.snapshot
            if snapshot is None:
                snapshot = _scalar(conn.execute(f"SELECT coalesce(max(seq), -1) FROM {s}.events"))
            if snapshot < 0:
                return Page([], None, snapshot)

            def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                return conn.execute(sql, params).fetchall()

            if query.order == "newest":
                rows, nxt = newest_page(d, run, query, snapshot, 0, [])
                return Page([(r[0], bytes(r[1]), bytes(r[2])) for r in rows], nxt, snapshot)
            lo, hi = window(query, snapshot, 0)
            if lo <= hi and (query.since_us is not None or query.until_us is not None):
                lo, hi = _time_bounds(conn, s, lo, hi, query.since_us, query.until_us)
            if lo > hi:
                return Page([], None, snapshot)
            rows = run(*_search_sql(s, query, lo, hi))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        events = [(r[0], bytes(r[1]), bytes(r[2])) for r in rows]
        nxt = (0, rows[-1][0]) if more and rows else None
        return Page(events, nxt, snapshot)

    def index_source(self, tenant_id: int | None = None) -> contextlib.AbstractContextManager[IndexSource]:
        """The derived rows of tenants, each from one snapshot: see vigil.store.indexcheck."""
        from vigil.store.pg_index import PostgresIndexSource

        return contextlib.nullcontext(PostgresIndexSource(self._snapshot, schema_of, _text))

    @contextlib.contextmanager
    def _snapshot(self, tenant_id: int) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StorageError("the store is closed")
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(f'SET LOCAL ROLE "{self.reader_role(tenant_id)}"')
            yield conn

    def repair_index(self, tenant_id: int, fixes: Sequence[Fix]) -> None:
        """Rewrite derived rows of a tenant as ``fixes`` say, in one transaction of the writer."""
        from vigil.store.pg_index import repair

        self.write(lambda conn: repair(conn, schema_of(tenant_id), fixes))

    def optimize(self) -> None:
        """Refresh the planner's statistics (after bulk loads)."""
        self.write(lambda conn: conn.execute("ANALYZE"))

    def check(self) -> None:
        """Raise :class:`StorageError` unless a write and a read would succeed now. The write probe goes through
        the writer: a dead connection makes the first probe fail and reconnect, so only a second failure means
        the server is out of reach. Dead pooled read connections are replaced."""
        if not self.writer_alive():
            raise StorageError("the store is closed or its writer has stopped")
        try:
            self.write(_probe)
        except StorageError:
            self.write(_probe)
        self._pool.check()
        with self._control() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_writer()
        self._pool.close()
        with contextlib.suppress(Exception):
            self._wconn.close()


def _probe(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT 1")


def database_exists(url: str) -> bool:
    """Whether the database at ``url`` holds Vigil's control schema (read only: nothing is created)."""
    psycopg, _ = _import()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass('vigil.schema_migrations') IS NOT NULL").fetchone()
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to PostgreSQL: {exc}") from None
    return bool(row and row[0])


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, which a JSON string may: the columns searches filter on hold U+FFFD in
    its place (the event's body, bytea, keeps it as sent), and search values are mapped the same way."""
    return value.replace("\x00", "\ufffd")


def _identity(ev: Any) -> tuple[bytes | None, str | None, str | None]:
    """The identity columns of an event as this store keeps them (text mapped as :func:`_text` does)."""
    ip, name, email = search_columns(ev)
    return ip, None if name is None else _text(name), None if email is None else _text(email)


def _searchable(q: SearchQuery) -> SearchQuery:
    """``q`` with its values mapped as the stored columns are (see :func:`_text`)."""

    def text(value: str | None) -> str | None:
        return None if value is None else _text(value)

    return dataclasses.replace(
        q,
        actor_id=text(q.actor_id),
        action=text(q.action),
        target_type=text(q.target_type),
        target_id=text(q.target_id),
        outcome=text(q.outcome),
        category=text(q.category),
        text=text(q.text),
        actor_name=text(q.actor_name),
        actor_email=text(q.actor_email),
    )


FTS_DOCUMENT = "to_tsvector('simple', regexp_replace(e.search, '[^[:alnum:]]+', ' ', 'g'))"
"""Words are runs of letters and digits, as in the SQLite store: without the regexp_replace PostgreSQL's parser
keeps e-mail addresses and file names whole, and "becker" would not find "zoe.becker@acme.example"."""


def _ts_clause(words: str, lo: int, hi: int, alone: bool) -> tuple[str | None, str | None, str, list[Any]]:
    return None, None, f"{FTS_DOCUMENT} @@ to_tsquery('simple', %s)", [ts_query(words)]


def dialect(s: str) -> Dialect:
    return Dialect(
        mark="%s",
        key="seq",
        events=f"{s}.events",
        targets=f"{s}.event_targets",
        occurred="occurred_us",
        blocks=f"{s}.event_blocks",
        tenant=(),
        text=_ts_clause,
    )


def _search_sql(s: str, q: SearchQuery, lo: int, hi: int) -> tuple[str, list[Any]]:
    """The SQL of one search page over tenant schema ``s`` (the benchmark prints its plan)."""
    return search_sql(dialect(s), q, lo, hi, [])


def ts_query(text: str) -> str:
    """A safe tsquery: every word required, ``word*`` for a prefix; operators in user text are plain words."""
    words = search_words(text.lower())
    return " & ".join(w.rstrip("*") + (":*" if w.endswith("*") else "") for w in words)


def _time_bounds(
    conn: psycopg.Connection[Any], s: str, lo: int, hi: int, since: int | None, until: int | None
) -> tuple[int, int]:
    """Narrow [lo, hi] to the blocks that can hold events with since <= occurred_us < until (see event_blocks)."""
    d = dialect(s)
    since = -(2**62) if since is None else since
    until = 2**62 if until is None else until
    blocks = _row(conn.execute(time_bounds_sql(d, f"{s}.event_blocks"), (since, until, since, until)))
    tail_hit = conn.execute(tail_sql(d), (max(tail_start(0, blocks), lo), hi, since, until)).fetchone()
    return narrow(lo, hi, 0, blocks, tail_hit is not None)


def _fetcher(conn: psycopg.Connection[Any], tenant_id: int) -> Callable[[int, int, int], list[bytes]]:
    s = schema_of(tenant_id)

    def fetch(level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            rows = conn.execute(
                f"SELECT leaf_hash FROM {s}.events WHERE seq >= %s AND seq < %s ORDER BY seq", (start, end)
            )
        else:
            rows = conn.execute(
                f"SELECT hash FROM {s}.tree_nodes WHERE level = %s AND idx >= %s AND idx < %s ORDER BY idx",
                (level, start, end),
            )
        return [bytes(r[0]) for r in rows]

    return fetch


def _row(cur: Any) -> Any:
    row = cur.fetchone()
    if row is None:
        raise StorageError("PostgreSQL returned no row where one was expected")
    return row


def _scalar(cur: Any) -> Any:
    return _row(cur)[0]


def _key(row: tuple[Any, ...]) -> ApiKey:
    previous = None if row[10] is None else bytes(row[10])
    return ApiKey(
        row[0],
        row[1],
        row[2],
        row[3],
        frozenset(row[4].split(",")),
        bytes(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        previous,
        row[11],
    )


@contextlib.contextmanager
def _tx(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def _parse_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond
