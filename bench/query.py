"""Search latency of a store on a large tenant, with the query plan of each search shape.

    python bench/query.py [--events 1000000] [--database PATH] [--runs 50]
    python bench/query.py --database postgresql://USER@HOST:5432/postgres [--events 1000000]

SQLite (the default): builds (or reuses) a database with tenant ``acme`` holding ``--events`` realistic events
over 30 days and two small tenants, written through ``SQLiteStore.append`` in chunks of 5000 events prepared by
the real intake (``prepare_batch``), then ANALYZEd with ``SQLiteStore.optimize`` as ``vigil demo`` does. The
default file is ``query-<events>.sqlite`` in the temp directory, so a second run with the same count reuses it.

PostgreSQL: ``--database`` is an admin URL. The benchmark builds (or reuses) the database
``vigil_bench_query_<events>`` on that server, holding ``acme`` with ``--events`` events and 50 other tenants of
500 to 2000 events each, written the same way through ``PostgresStore.append``, then ANALYZEd with
``PostgresStore.optimize``. The database is marked with a comment and kept, so a second run with the same count
reuses it; an incomplete one (an interrupted build) is dropped and built again.

Then every search shape runs ``--runs`` times in-process through the store's ``search`` with varied values
(actors, targets, words and days drawn from a random sample of the tenant's own events), after one untimed
warm-up; it prints p50 and p95 in ms, the mean number of rows returned, and marks searches over the 20 ms
goal. Query plans:

- SQLite: the SQL of each shape is captured with a trace callback on the store's reader connection, and its
  ``EXPLAIN QUERY PLAN`` is printed (the traced SQL has the values inlined; the plan is the same as with bound
  parameters on a SQLite built without STAT4, which is the usual build).
- PostgreSQL: the SQL is what ``vigil.store.postgres._search_sql`` makes for the example values (with the seq
  bounds the store computes, ``_time_bounds`` included), run as ``EXPLAIN (ANALYZE, BUFFERS)`` under the
  tenant's reader role in a transaction, for the searches over the goal (all of them with ``--all-plans``).
  The sample of events and words is read as the owner through a plain psycopg connection.

  psycopg prepares a statement on a connection once it has run 5 times there, and the server then plans a
  prepared statement either with its values (custom plan) or once for any values (generic plan), by its own
  estimate. The last column of the table counts, per search, the plans the timed runs got as prepared
  statements on the store's pooled connections (0 / 0: none was prepared); when a slow search got generic
  plans, its generic plan (``plan_cache_mode = force_generic_plan``) is printed after the custom one. To time
  custom plans only, run with ``PGOPTIONS="-c plan_cache_mode=force_custom_plan"``.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from _common import encode_batches, make_events

from vigil.ingest.intake import Prepared, prepare_batch, search_text
from vigil.model import Event
from vigil.settings import Settings
from vigil.store.base import Page, SearchQuery, Store
from vigil.store.sqlite import SEQ_BITS, SQLiteStore

if TYPE_CHECKING:
    import psycopg

    from vigil.store.postgres import PostgresStore

GOAL_MS = 20.0
TENANT = "acme"
DAY_US = 86_400_000_000
CHUNK = 5000  # events per append
PG_OTHERS = 50  # other tenants in the PostgreSQL database
PG_OTHER_SIZES = (500, 2000)  # their sizes: log-uniform in this range
PG_MARK = "vigil bench/query.py"  # the comment on a database this benchmark made


def _others(n: int) -> list[tuple[str, int]]:
    small = max(1000, min(20_000, n // 50))
    return [("globex", small), ("initech", small // 2)]


def load(store: Store, slug: str, count: int, seed: int, *, verbose: bool = True) -> float:
    """Create tenant ``slug`` and append ``count`` generated events in chunks of CHUNK; the seconds it took."""
    tenant = store.create_tenant(slug)
    t = time.perf_counter()
    events, source = make_events(slug, count, days=30, seed=seed)
    if verbose:
        print(
            f"[build] {slug}: {count:,} events from {source} in {time.perf_counter() - t:.1f} s; "
            "preparing and appending ...",
            flush=True,
        )
    received_us = time.time_ns() // 1000
    chunk: list[Prepared] = []
    written = 0
    t = time.perf_counter()
    step = max(100_000, count // 10)
    for body in encode_batches(events, 1000):
        good, bad = prepare_batch(body, "application/json", slug, received_us)
        if bad:
            raise SystemExit(f"the intake rejected generated events: {bad[:3]}")
        chunk.extend(good)
        if len(chunk) >= CHUNK:
            store.append(tenant.id, chunk)
            written += len(chunk)
            chunk = []
            if verbose and written % step < CHUNK:
                rate = written / (time.perf_counter() - t)
                print(f"[build] {slug}: {written:,}/{count:,} ({rate:,.0f} events/s)", flush=True)
    if chunk:
        store.append(tenant.id, chunk)
    return time.perf_counter() - t


def build(path: Path, n: int, seed: int) -> None:
    """Write ``n`` events of the main tenant and the small tenants through ``SQLiteStore.append``."""
    settings = Settings.load({"database": str(path), "sqlite_synchronous": "NORMAL"}, environ={})
    store = SQLiteStore(str(path), settings)  # NORMAL: the build's durability does not matter here
    started = time.perf_counter()
    try:
        for slug, count in [*_others(n), (TENANT, n)]:
            load(store, slug, count, seed)
        print("[build] ANALYZE (SQLiteStore.optimize) ...", flush=True)
        store.optimize()
    finally:
        store.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    print(
        f"[build] done in {time.perf_counter() - started:.0f} s; {size / 2**20:,.0f} MiB on disk", flush=True
    )


def open_or_build(path: Path, n: int, seed: int, default_path: bool) -> None:
    if path.exists():
        store = SQLiteStore(str(path))
        try:
            slugs = {t.slug: t.id for t in store.list_tenants()}
            size = store.tree_size(slugs[TENANT]) if TENANT in slugs else -1
        finally:
            store.close()
        if size == n:
            print(f"[build] reusing {path.name}: {TENANT} holds {n:,} events", flush=True)
            return
        if not default_path:
            raise SystemExit(f"{path} holds {size:,} events of {TENANT}, not {n:,}; give another --database")
        print(f"[build] {path.name} is incomplete ({size:,} events); rebuilding", flush=True)
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    build(path, n, seed)


# -- PostgreSQL: the bench database on the admin URL's server -------------------------------------------------


def is_postgres(database: str | None) -> bool:
    return database is not None and database.startswith(("postgresql://", "postgres://"))


def _pg_row(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise SystemExit(f"no row from {sql!r}")
    return tuple(row)


def pg_url(admin_url: str, dbname: str) -> str:
    """The admin URL with its database replaced by ``dbname`` (user, host, port and options kept)."""
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + dbname))


def _pg_done_mark(n: int) -> str:
    return f"{PG_MARK}: complete, {n} events in {TENANT} and {PG_OTHERS} other tenants"


def pg_open_or_build(admin_url: str, n: int, seed: int, name: str | None = None) -> str:
    """The URL of ``name`` (default ``vigil_bench_query_<n>``) on the admin URL's server, built first unless a
    complete one exists."""
    import psycopg
    from psycopg import sql

    name = name or f"vigil_bench_query_{n}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if row is not None:
            if row[0] == _pg_done_mark(n):
                print(f"[build] reusing database {name}: {TENANT} holds {n:,} events", flush=True)
                return pg_url(admin_url, name)
            if not row[0].startswith(PG_MARK):
                raise SystemExit(
                    f"database {name} exists and was not made by bench/query.py; not touching it"
                )
            print(f"[build] database {name} is incomplete (an interrupted build); rebuilding", flush=True)
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _pg_mark(admin, name, f"{PG_MARK}: building")
        url = pg_url(admin_url, name)
        pg_build(url, n, seed)
        _pg_mark(admin, name, _pg_done_mark(n))
    return url


def _pg_mark(admin: psycopg.Connection[Any], name: str, text: str) -> None:
    from psycopg import sql

    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text)))


def pg_build(url: str, n: int, seed: int) -> None:
    """PG_OTHERS small tenants, then ``n`` events of the main tenant, through ``PostgresStore.append``."""
    import psycopg

    from vigil.store.postgres import PostgresStore

    rng = random.Random(f"vigil-bench-query:{seed}")
    lo, hi = (math.log(x) for x in PG_OTHER_SIZES)
    sizes = [round(math.exp(rng.uniform(lo, hi))) for _ in range(PG_OTHERS)]
    store = PostgresStore(url)
    started = time.perf_counter()
    try:
        print(
            f"[build] {PG_OTHERS} other tenants, {sum(sizes):,} events ({min(sizes)} to {max(sizes)} each) ...",
            flush=True,
        )
        t = time.perf_counter()
        for i, count in enumerate(sizes, 1):
            load(store, f"org-{i:02d}", count, seed, verbose=False)
            if i % 10 == 0:
                done = sum(sizes[:i])
                print(
                    f"[build] {i}/{PG_OTHERS} other tenants, {done:,} events "
                    f"({done / (time.perf_counter() - t):,.0f} events/s with event generation)",
                    flush=True,
                )
        seconds = load(store, TENANT, n, seed)
        print(f"[build] {TENANT}: {n:,} events appended in {seconds:.0f} s ({n / seconds:,.0f} events/s)")
        print("[build] ANALYZE (PostgresStore.optimize) ...", flush=True)
        t = time.perf_counter()
        store.optimize()
        print(f"[build] ANALYZE took {time.perf_counter() - t:.1f} s", flush=True)
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        size = _pg_row(conn, "SELECT pg_database_size(current_database())")[0]
    print(f"[build] done in {time.perf_counter() - started:.0f} s; {size / 2**20:,.0f} MiB", flush=True)


# -- parameter values drawn from the data ------------------------------------------------------------------


@dataclass
class Sample:
    """Values taken from a random sample of the tenant's events, so every search can find something."""

    events: list[Event]
    first_us: int
    last_us: int
    common_words: list[str]
    rare_words: list[str]


def _word_docs(events: list[Event]) -> Counter[str]:
    """In how many of ``events`` each word (lower case, not all digits) occurs."""
    docs: Counter[str] = Counter()
    for e in events:
        # each word once per event, in the order of the text (not a set's order, which varies from run to run
        # with string hashing): most_common breaks ties by first sight, so the words drawn are the same
        words = (w.lower() for w in re.findall(r"[^\W_]+", search_text(e)) if not w.isdigit())
        docs.update(list(dict.fromkeys(words)))
    return docs


def _common(docs: Counter[str], n: int) -> list[str]:
    return [w for w, c in docs.most_common(12) if c >= n * 0.03]


def sample(store: SQLiteStore, tenant_id: int, size: int, rng: random.Random) -> Sample:
    conn = store._reader()
    n = store.tree_size(tenant_id)
    base = tenant_id << SEQ_BITS
    seqs = sorted(rng.sample(range(n), min(size, n)))
    decode = msgspec.json.Decoder(Event).decode
    events = []
    for start in range(0, len(seqs), 500):
        rids = [base | s for s in seqs[start : start + 500]]
        marks = ",".join("?" * len(rids))
        events.extend(
            decode(body) for (body,) in conn.execute(f"SELECT body FROM events WHERE rid IN ({marks})", rids)
        )
    first, last = conn.execute(
        "SELECT min(occurred_at), max(occurred_at) FROM events WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    docs = _word_docs(events)
    rare = _rare_words(conn, [w for w, c in docs.items() if c == 1])
    return Sample(events, first, last, _common(docs, len(events)), rare)


def _rare_words(conn: sqlite3.Connection, candidates: list[str]) -> list[str]:
    """Words found in at most 20 events of the whole file (fts5vocab counts), else the sample's singletons."""
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.bench_vocab USING fts5vocab(main, events_fts, row)"
        )
        rows = conn.execute(
            "SELECT term FROM temp.bench_vocab WHERE doc <= 20 AND term GLOB '[a-z]*' LIMIT 200"
        ).fetchall()
    except sqlite3.Error:
        rows = []
    return [r[0] for r in rows] or candidates[:200] or ["zyzzyva"]


def pg_sample(conn: psycopg.Connection[Any], tenant_id: int, size: int, rng: random.Random) -> Sample:
    """The same as :func:`sample`, read as the owner through a plain connection to the bench database."""
    from vigil.store.postgres import schema_of

    s = schema_of(tenant_id)
    n = _pg_row(conn, f"SELECT coalesce(max(seq) + 1, 0) FROM {s}.events")[0]
    seqs = sorted(rng.sample(range(n), min(size, n)))
    decode = msgspec.json.Decoder(Event).decode
    events = [
        decode(bytes(body))
        for (body,) in conn.execute(f"SELECT body FROM {s}.events WHERE seq = ANY(%s) ORDER BY seq", (seqs,))
    ]
    first, last = _pg_row(conn, f"SELECT min(occurred_us), max(occurred_us) FROM {s}.events")
    docs = _word_docs(events)
    rare = _pg_rare_words(conn, s, [w for w, c in docs.items() if c == 1])
    return Sample(events, first, last, _common(docs, len(events)), rare)


def _pg_rare_words(conn: psycopg.Connection[Any], s: str, singletons: list[str]) -> list[str]:
    """Words PostgreSQL's full-text search finds in 1 to 20 events of the tenant (counted through the GIN index
    with the store's own tsquery), as fts5vocab gives on SQLite. PostgreSQL has no cheap vocabulary, and a
    rare word is seldom in a sample: the candidates are the words (``ts_stat``) of the events of the tenant's
    8 least frequent actions, where rare words live, then the singletons of the event sample. Only plain words
    (a letter, then letters or digits): the 'simple' parser keeps e-mail addresses, host names and signed
    numbers as single tokens, which the store's tsquery (words split at every non-letter) never matches."""
    from vigil.store.postgres import ts_query

    plain = re.compile(r"[a-z][a-z0-9]*")
    stat = (
        f"SELECT to_tsvector('simple', search) FROM {s}.events WHERE action IN "
        f"(SELECT action FROM {s}.events GROUP BY action ORDER BY count(*), action LIMIT 8)"
    )
    candidates = [
        w
        for (w,) in conn.execute("SELECT word FROM ts_stat(%s) WHERE ndoc <= 20 ORDER BY ndoc, word", (stat,))
        if plain.fullmatch(w)
    ]
    candidates += [w for w in singletons if plain.fullmatch(w)]
    found: list[str] = []
    for word in dict.fromkeys(candidates[:2000]):
        count = _pg_row(
            conn,
            f"SELECT count(*) FROM (SELECT 1 FROM {s}.events e WHERE to_tsvector('simple', e.search) "
            "@@ to_tsquery('simple', %s) LIMIT 21) x",
            (ts_query(word),),
        )[0]
        if 1 <= count <= 20:
            found.append(word)
            if len(found) >= 200:
                break
    return found or singletons[:200] or ["zyzzyva"]


def _prefix(action: str) -> str:
    return action.split(".", 1)[0] + ".*"


# -- the search shapes -------------------------------------------------------------------------------------


Shape = tuple[str, Callable[[random.Random, Sample], SearchQuery]]


def _day(s: Sample, rng: random.Random, lo: int = 10, hi: int = 20) -> tuple[int, int]:
    start = (s.last_us // DAY_US - rng.randint(lo, hi)) * DAY_US
    return start, start + DAY_US


def shapes() -> list[Shape]:
    def pick(rng: random.Random, s: Sample) -> Event:
        return rng.choice(s.events)

    def target(rng: random.Random, s: Sample) -> SearchQuery:
        e = rng.choice([e for e in s.events if e.targets])
        t = rng.choice(e.targets)
        return SearchQuery(target_type=t.type, target_id=t.id)

    def combo(rng: random.Random, s: Sample) -> SearchQuery:
        e = pick(rng, s)
        at = _us(e.occurred_at)
        start = at // DAY_US * DAY_US - 3 * DAY_US
        return SearchQuery(
            actor_id=e.actor.id, action=_prefix(e.action), since_us=start, until_us=start + 7 * DAY_US
        )

    def day(rng: random.Random, s: Sample) -> SearchQuery:
        since, until = _day(s, rng)
        return SearchQuery(since_us=since, until_us=until)

    def with_ip(rng: random.Random, s: Sample) -> Event:
        return rng.choice([e for e in s.events if e.context is not None and e.context.ip])

    def cidr(bits: int) -> Callable[[random.Random, Sample], SearchQuery]:
        def make(rng: random.Random, s: Sample) -> SearchQuery:
            ip = with_ip(rng, s).context.ip  # type: ignore[union-attr]
            net = ipaddress.ip_network(f"{ip}/{bits if ':' not in str(ip) else bits * 4}", strict=False)
            return SearchQuery(ip=str(net))

        return make

    def named(rng: random.Random, s: Sample) -> Event:
        return rng.choice([e for e in s.events if e.actor.name and e.actor.email])

    return [
        ("newest page, no filter", lambda rng, s: SearchQuery()),
        ("actor_id", lambda rng, s: SearchQuery(actor_id=pick(rng, s).actor.id)),
        ("action exact", lambda rng, s: SearchQuery(action=pick(rng, s).action)),
        ("action prefix (user.* etc.)", lambda rng, s: SearchQuery(action=_prefix(pick(rng, s).action))),
        (
            "outcome=failure + action=user.login",
            lambda rng, s: SearchQuery(outcome="failure", action="user.login"),
        ),
        ("target type + id", target),
        ("category=change", lambda rng, s: SearchQuery(category="change")),
        ("one day, ~2 weeks ago", day),
        ("free text, common word", lambda rng, s: SearchQuery(text=rng.choice(s.common_words))),
        ("free text, rare word", lambda rng, s: SearchQuery(text=rng.choice(s.rare_words))),
        ("actor + action prefix + 7 days", combo),
        (
            "second page (cursor) of action prefix",
            lambda rng, s: SearchQuery(action=_prefix(pick(rng, s).action)),
        ),
        ("ip exact", lambda rng, s: SearchQuery(ip=with_ip(rng, s).context.ip)),  # type: ignore[union-attr]
        ("ip CIDR /24", cidr(24)),
        ("ip CIDR /16", cidr(16)),
        (
            "actor_name (other case)",
            lambda rng, s: SearchQuery(actor_name=str(named(rng, s).actor.name).upper()),
        ),
        ("actor_email", lambda rng, s: SearchQuery(actor_email=named(rng, s).actor.email)),
        ("ip + 7 days", lambda rng, s: _with_week(rng, SearchQuery(ip=with_ip(rng, s).context.ip), s)),  # type: ignore[union-attr]
        (
            "order=seq, action prefix",
            lambda rng, s: SearchQuery(action=_prefix(pick(rng, s).action), order="seq"),
        ),
        ("order=seq, actor_id", lambda rng, s: SearchQuery(actor_id=pick(rng, s).actor.id, order="seq")),
    ]


def _with_week(rng: random.Random, q: SearchQuery, s: Sample) -> SearchQuery:
    start, _ = _day(s, rng, 7, 20)
    return replace(q, since_us=start, until_us=start + 7 * DAY_US)


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def run_shape(
    store: Store,
    tenant_id: int,
    name: str,
    make: Callable[[random.Random, Sample], SearchQuery],
    s: Sample,
    runs: int,
    rng: random.Random,
) -> tuple[list[float], list[int]]:
    second_page = name.startswith("second page")
    times: list[float] = []
    rows: list[int] = []
    for i in range(runs + 1):
        query = make(rng, s)
        if second_page:
            first = store.search(tenant_id, query)
            if first.next is None:  # fewer than two pages: nothing to time
                continue
            query = replace(query, after=first.next, snapshot=first.snapshot)
        t = time.perf_counter()
        page: Page = store.search(tenant_id, query)
        elapsed = time.perf_counter() - t
        if i:  # the first run warms the caches
            times.append(elapsed * 1e3)
            rows.append(len(page.events))
    return times, rows


def plan_of(store: SQLiteStore, tenant_id: int, query: SearchQuery) -> tuple[str, list[str]]:
    """The SQL the store ran for ``query`` (traced) and SQLite's plan for it, one line per plan node."""
    conn = store._reader()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        store.search(tenant_id, query)
    finally:
        conn.set_trace_callback(None)
    statements = [q for q in seen if q.lstrip().startswith("SELECT e.rid")]
    if not statements:
        return "", ["(no search statement traced)"]
    sql = statements[-1]  # newest order reads batches of blocks: the last one read the most
    depth: dict[int, int] = {0: 0}
    lines = [f"({len(seen)} statements, {len(statements)} of them reading events; the last one's plan:)"]
    for node, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql):
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * depth[node] + detail)
    return sql, lines


def pg_plan_of(
    conn: psycopg.Connection[Any], store: PostgresStore, tenant_id: int, query: SearchQuery, generic: bool
) -> tuple[str, list[str]]:
    """The SQL ``PostgresStore.search`` runs for ``query`` (the same seq bounds, ``_time_bounds`` included; in
    newest order the statements of ``newest_page``, of which the last one read is explained) and its
    ``EXPLAIN (ANALYZE, BUFFERS)``, run as the tenant's reader role in a transaction, as the store does.
    With ``generic``, also the plan of the same statement prepared, as a generic plan (the server's choice for
    a prepared statement once it judges the generic plan cheap enough)."""
    import psycopg

    from vigil.store.postgres import _search_sql, _searchable, _time_bounds, dialect, schema_of
    from vigil.store.search import newest_page

    s = schema_of(tenant_id)
    query = _searchable(query)
    with conn.transaction():
        conn.execute(f'SET LOCAL ROLE "{store.reader_role(tenant_id)}"')
        snapshot = query.snapshot
        if snapshot is None:
            snapshot = _pg_row(conn, f"SELECT coalesce(max(seq), -1) FROM {s}.events")[0]
        note = ""
        if query.order == "newest":
            seen: list[tuple[str, list[Any]]] = []

            def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                seen.append((sql, params))
                return conn.execute(sql, params).fetchall()

            newest_page(dialect(s), run, query, snapshot, 0, [])
            reads = [(q, p) for q, p in seen if q.startswith("SELECT e.seq")]
            if not reads:
                return "", ["(no statement read events)"]
            sql, params = reads[-1]
            note = f" ({len(seen)} statements, {len(reads)} reading events; the last one:)"
        else:
            lo, hi = 0, snapshot
            if query.after is not None:
                lo = max(lo, query.after[1] + 1)
            if (query.since_us is not None or query.until_us is not None) and lo <= hi:
                lo, hi = _time_bounds(conn, s, lo, hi, query.since_us, query.until_us)
            if lo > hi:
                return "", ["(no statement: the seq bounds are empty)"]
            sql, params = _search_sql(s, query, lo, hi)
        plan = [f"custom plan (the values known to the planner){note}:"]
        plan += [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)]
        if generic:
            numbers = iter(range(1, len(params) + 1))
            conn.execute("PREPARE bench_generic AS " + re.sub("%s", lambda _: f"${next(numbers)}", sql))
            try:
                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                marks = ", ".join(["%s"] * len(params))
                cur = psycopg.ClientCursor(conn)  # the values inlined: EXECUTE takes no bound parameters
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({marks})", params)
                plan += ["generic plan (prepared statement, as the store's pooled connections may run it):"]
                plan += [r[0] for r in cur]
            finally:
                conn.execute("DEALLOCATE bench_generic")
    return f"{sql}  -- params {params}", plan


def pg_plan_counts(store: PostgresStore) -> Counter[str] | None:
    """Generic and custom plans so far of the store's prepared search statements, on the pooled connections
    the store's searches use (psycopg prepares a statement after 5 runs on a connection); None if unknown."""
    import psycopg

    counts: Counter[str] = Counter()
    pool = store._pool
    conns = []
    try:  # every idle connection of the pool, so the counts cover whichever one the searches used
        for _ in range(pool.get_stats().get("pool_size", 1)):
            conns.append(pool.getconn(timeout=5))
        for c in conns:
            for generic, custom in c.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                ("SELECT e.seq, e.leaf_hash, e.body FROM %",),
            ):
                counts["generic"] += generic
                counts["custom"] += custom
            c.rollback()
    except (psycopg.Error, AttributeError):
        return None
    finally:
        for c in conns:
            pool.putconn(c)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument(
        "--database",
        help="SQLite file to build or reuse (default: query-<events>.sqlite in the temp directory), or a "
        "postgresql:// admin URL: the database vigil_bench_query_<events> is built (or reused) on that server",
    )
    ap.add_argument(
        "--pg-name", help="PostgreSQL: the bench database's name (default: vigil_bench_query_<events>)"
    )
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sql", action="store_true", help="also print the SQL of each shape")
    ap.add_argument(
        "--all-plans",
        action="store_true",
        help="PostgreSQL: EXPLAIN ANALYZE every search, not only slow ones",
    )
    args = ap.parse_args(argv)

    if is_postgres(args.database):
        return main_postgres(args)

    default = Path(tempfile.gettempdir()) / "vigil-bench" / f"query-{args.events}.sqlite"
    path = Path(args.database) if args.database else default
    open_or_build(path, args.events, args.seed, args.database is None)

    store = SQLiteStore(str(path))
    rng = random.Random(args.seed)
    try:
        tenant_id = store.get_tenant(TENANT).id
        s = sample(store, tenant_id, 5000, rng)
        _announce(args, s)
        results = []
        for name, make in shapes():
            times, rows = run_shape(store, tenant_id, name, make, s, args.runs, rng)
            example = _example(store, tenant_id, name, make, s, args.seed)
            results.append((name, times, rows, plan_of(store, tenant_id, example), example))
    finally:
        store.close()

    print()
    print(
        f"searches on {TENANT}: {args.events:,} events over 30 days; limit 50; {args.runs} runs each with "
        f"varied values; SQLite {sqlite3.sqlite_version}"
    )
    _table([(name, times, rows, "") for name, times, rows, _, _ in results])
    print()
    print("query plans (EXPLAIN QUERY PLAN of the SQL the store ran; example values shown):")
    for name, _, _, (sql, plan), example in results:
        print(f"  {name}: {_describe(example)}")
        if args.sql:
            print(f"    SQL: {sql}")
        for line in plan:
            print(f"   {line}")
    return 0


def main_postgres(args: argparse.Namespace) -> int:
    import psycopg

    from vigil.store.postgres import PostgresStore

    url = pg_open_or_build(args.database, args.events, args.seed, args.pg_name)
    dbname = urlsplit(url).path.lstrip("/")
    store = PostgresStore(url)
    rng = random.Random(args.seed)
    results = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            version = _pg_row(conn, "SHOW server_version")[0]
            tenants = _pg_row(conn, "SELECT count(*) FROM vigil.tenants")[0]
            tenant_id = store.get_tenant(TENANT).id
            s = pg_sample(conn, tenant_id, 5000, rng)
            vacuum_before = pg_vacuum_state(conn, tenant_id)
            _announce(args, s)
            for name, make in shapes():
                before = pg_plan_counts(store)
                times, rows = run_shape(store, tenant_id, name, make, s, args.runs, rng)
                after = pg_plan_counts(store)
                used: Counter[str] = Counter()
                note = "-"
                if before is not None and after is not None:
                    used = after - before
                    note = f"{used['generic']} generic / {used['custom']} custom"
                example = _example(store, tenant_id, name, make, s, args.seed)
                over = bool(times) and _p95(times) > GOAL_MS
                plan = None
                if over or args.all_plans:
                    plan = pg_plan_of(conn, store, tenant_id, example, generic=used["generic"] > 0)
                results.append((name, times, rows, note, plan, example))
            vacuum_after = pg_vacuum_state(conn, tenant_id)
    finally:
        store.close()

    print()
    print(
        f"searches on {TENANT}: {args.events:,} events over 30 days, {tenants - 2} other tenants in the "
        f"database {dbname}; limit 50; {args.runs} runs each with varied values; PostgreSQL {version}"
    )
    print(f"  partitions of {TENANT}: {vacuum_before}")
    if vacuum_after != vacuum_before:
        print(f"  (a vacuum ran during the searches; after: {vacuum_after})")
    _table([(name, times, rows, note) for name, times, rows, note, _, _ in results], "plans (prepared)")
    shown = [(name, plan, example) for name, _, _, _, plan, example in results if plan is not None]
    print()
    if not shown:
        print(f"every search is under the {GOAL_MS:.0f} ms goal (--all-plans shows every plan)")
        return 0
    print(
        "query plans (EXPLAIN (ANALYZE, BUFFERS) of the SQL PostgresStore.search runs, as the reader role; "
        "example values shown):"
    )
    for name, (sql, lines), example in shown:
        print(f"  {name}: {_describe(example)}")
        if args.sql:
            print(f"    SQL: {sql}")
        for line in lines:
            print(f"    {line}")
    return 0


def pg_vacuum_state(conn: psycopg.Connection[Any], tenant_id: int) -> str:
    """When the tenant's event partitions were last vacuumed (a vacuum merges the GIN index's pending list and
    sets the visibility map; autovacuum does it on its own some time after a bulk load)."""
    from vigil.store.postgres import schema_of

    parts = []
    for name, rows, manual, auto in conn.execute(
        "SELECT relname, n_live_tup, last_vacuum, last_autovacuum FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname LIKE 'events%%' AND n_live_tup > 0 ORDER BY relname",
        (schema_of(tenant_id),),
    ):
        when = max((t for t in (manual, auto) if t is not None), default=None)
        parts.append(
            f"{name} about {rows:,} rows, " + (f"vacuumed {when:%H:%M:%S}" if when else "never vacuumed")
        )
    return "; ".join(parts) or "no statistics yet"


def _announce(args: argparse.Namespace, s: Sample) -> None:
    print(
        f"[search] {len(shapes())} shapes x {args.runs} runs on {TENANT} ({args.events:,} events); "
        f"common words {s.common_words[:5]}, {len(s.rare_words)} rare words",
        flush=True,
    )


def _example(
    store: Store,
    tenant_id: int,
    name: str,
    make: Callable[[random.Random, Sample], SearchQuery],
    s: Sample,
    seed: int,
) -> SearchQuery:
    """The shape's query with the values of a fixed seed (the second page: after the first page's end)."""
    example = make(random.Random(seed), s)
    if name.startswith("second page"):
        first = store.search(tenant_id, example)
        example = replace(example, after=first.next, snapshot=first.snapshot)
    return example


def _table(results: list[tuple[str, list[float], list[int], str]], note: str = "") -> None:
    print(f"  {'search':<40} {'p50 ms':>8} {'p95 ms':>8} {'rows':>6}  goal {GOAL_MS:.0f} ms  {note}".rstrip())
    for name, times, rows, extra in results:
        if not times:
            print(f"  {name:<40} {'-':>8} {'-':>8} {'-':>6}  (no second page found)")
            continue
        p50, p95 = statistics.median(times), _p95(times)
        flag = "OVER" if p95 > GOAL_MS else "ok"
        print(
            f"  {name:<40} {p50:>8.2f} {p95:>8.2f} {statistics.mean(rows):>6.1f}  {flag:<12} {extra}".rstrip()
        )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def _describe(q: SearchQuery) -> str:
    return (
        ", ".join(
            f"{k}={v!r}"
            for k, v in vars(q).items()
            if v is not None and k not in ("order", "limit", "snapshot")
        )
        or "(no filter)"
    )


if __name__ == "__main__":
    sys.exit(main())
