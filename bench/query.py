"""Search latency of the embedded store on a large tenant, with SQLite's query plan for each search shape.

    python bench/query.py [--events 1000000] [--database PATH] [--runs 50]

Builds (or reuses) a database with tenant ``acme`` holding ``--events`` realistic events over 30 days and two
small tenants, written through ``SQLiteStore.append`` in chunks of 5000 events prepared by the real intake
(``prepare_batch``), then ANALYZEd with ``SQLiteStore.optimize`` as ``vigil demo`` does. The default file is
``query-<events>.sqlite`` in the temp directory, so a second run with the same count reuses it.

Then every search shape runs ``--runs`` times in-process through ``SQLiteStore.search`` with varied values
(actors, targets, words and days drawn from a random sample of the tenant's own events), after one untimed
warm-up; it prints p50 and p95 in ms, the mean number of rows returned, and marks searches over the 20 ms
goal. The SQL of each shape is captured with a trace callback on the store's reader connection, and its
``EXPLAIN QUERY PLAN`` is printed (the traced SQL has the values inlined; the plan is the same as with bound
parameters on a SQLite built without STAT4, which is the usual build).
"""

from __future__ import annotations

import argparse
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

import msgspec
from _common import encode_batches, make_events

from vigil.ingest.intake import Prepared, prepare_batch, search_text
from vigil.model import Event
from vigil.settings import Settings
from vigil.store.base import Page, SearchQuery
from vigil.store.sqlite import SEQ_BITS, SQLiteStore

GOAL_MS = 20.0
TENANT = "acme"
DAY_US = 86_400_000_000


def _others(n: int) -> list[tuple[str, int]]:
    small = max(1000, min(20_000, n // 50))
    return [("globex", small), ("initech", small // 2)]


def build(path: Path, n: int, seed: int) -> None:
    """Write ``n`` events of the main tenant and the small tenants through ``SQLiteStore.append``."""
    settings = Settings.load({"database": str(path), "sqlite_synchronous": "NORMAL"}, environ={})
    store = SQLiteStore(str(path), settings)  # NORMAL: the build's durability does not matter here
    started = time.perf_counter()
    try:
        for slug, count in [*_others(n), (TENANT, n)]:
            tenant = store.create_tenant(slug)
            t = time.perf_counter()
            events, source = make_events(slug, count, days=30, seed=seed)
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
                if len(chunk) >= 5000:
                    store.append(tenant.id, chunk)
                    written += len(chunk)
                    chunk = []
                    if written % step < 5000:
                        rate = written / (time.perf_counter() - t)
                        print(f"[build] {slug}: {written:,}/{count:,} ({rate:,.0f} events/s)", flush=True)
            if chunk:
                store.append(tenant.id, chunk)
            del events
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


# -- parameter values drawn from the data ------------------------------------------------------------------


@dataclass
class Sample:
    """Values taken from a random sample of the tenant's events, so every search can find something."""

    events: list[Event]
    first_us: int
    last_us: int
    common_words: list[str]
    rare_words: list[str]


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
    docs: Counter[str] = Counter()
    for e in events:
        docs.update({w.lower() for w in re.findall(r"[^\W_]+", search_text(e)) if not w.isdigit()})
    common = [w for w, c in docs.most_common(12) if c >= len(events) * 0.03]
    rare = _rare_words(conn, [w for w, c in docs.items() if c == 1])
    return Sample(events, first, last, common, rare)


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
    ]


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def run_shape(
    store: SQLiteStore,
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
    sql = next((q for q in seen if q.lstrip().startswith("SELECT e.rid")), "")
    if not sql:
        return "", ["(no search statement traced)"]
    depth: dict[int, int] = {0: 0}
    lines = []
    for node, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql):
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * depth[node] + detail)
    return sql, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument(
        "--database",
        help="SQLite file to build or reuse (default: query-<events>.sqlite in the temp directory)",
    )
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sql", action="store_true", help="also print the traced SQL of each shape")
    args = ap.parse_args(argv)

    default = Path(tempfile.gettempdir()) / "vigil-bench" / f"query-{args.events}.sqlite"
    path = Path(args.database) if args.database else default
    open_or_build(path, args.events, args.seed, args.database is None)

    store = SQLiteStore(str(path))
    rng = random.Random(args.seed)
    try:
        tenant_id = store.get_tenant(TENANT).id
        s = sample(store, tenant_id, 5000, rng)
        print(
            f"[search] {len(shapes())} shapes x {args.runs} runs on {TENANT} ({args.events:,} events); "
            f"common words {s.common_words[:5]}, {len(s.rare_words)} rare words",
            flush=True,
        )
        results = []
        for name, make in shapes():
            times, rows = run_shape(store, tenant_id, name, make, s, args.runs, rng)
            example = make(random.Random(args.seed), s)
            if name.startswith("second page"):
                first = store.search(tenant_id, example)
                example = replace(example, after=first.next, snapshot=first.snapshot)
            results.append((name, times, rows, plan_of(store, tenant_id, example), example))
    finally:
        store.close()

    print()
    print(
        f"searches on {TENANT}: {args.events:,} events over 30 days; limit 50; {args.runs} runs each with "
        f"varied values; SQLite {sqlite3.sqlite_version}"
    )
    print(f"  {'search':<40} {'p50 ms':>8} {'p95 ms':>8} {'rows':>6}  goal {GOAL_MS:.0f} ms")
    for name, times, rows, _, _ in results:
        if not times:
            print(f"  {name:<40} {'-':>8} {'-':>8} {'-':>6}  (no second page found)")
            continue
        p50, p95 = statistics.median(times), _p95(times)
        flag = "OVER" if p95 > GOAL_MS else "ok"
        print(f"  {name:<40} {p50:>8.2f} {p95:>8.2f} {statistics.mean(rows):>6.1f}  {flag}")
    print()
    print("query plans (EXPLAIN QUERY PLAN of the SQL the store ran; example values shown):")
    for name, _, _, (sql, plan), example in results:
        print(f"  {name}: {_describe(example)}")
        if args.sql:
            print(f"    SQL: {sql}")
        for line in plan:
            print(f"   {line}")
    return 0


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
