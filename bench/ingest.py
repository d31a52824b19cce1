"""Ingest throughput: HTTP into a real ``vigil serve`` against raw SQLite inserts of the same rows.

    python bench/ingest.py [--events 200000] [--clients 8] [--batch 100] [--synchronous FULL|NORMAL]
                           [--database PATH] [--max-seconds 180]

Phase "http": ``--clients`` separate client processes (multiprocessing, one httpx connection each) POST
pre-encoded JSON arrays of ``--batch`` realistic events to ``/v1/events`` of a ``vigil serve`` child process
running with ``--rate-limit 0``. The clock runs from the moment every client is connected and released until
the last answer; every answer is checked (200, all events stored).

Phase "baseline": the same events, turned into rows by ``vigil.ingest.intake.prepare_batch`` *before* the
clock starts (tree_nodes rows too, with ``CompactRange``), are inserted with plain ``sqlite3`` ``executemany``
into a fresh file that ``SQLiteStore`` created (so the schema, indexes, triggers and FTS table are the same),
with the same pragmas as the store (WAL, the same ``synchronous``, the same cache size). Exactly what
``SQLiteStore._append_locked`` inserts: events, event_targets (INSERT OR IGNORE), events_fts, tree_nodes and
event_blocks.
It leaves out the store's duplicate-id lookup, which is Vigil's work, not storage's.

Transactions of the baseline: one per request batch (``--batch`` rows, ``BEGIN IMMEDIATE`` .. ``COMMIT``),
i.e. what a server that commits each request on its own would pay. Vigil's writer instead groups whatever
requests are queued into one commit (up to ``commit_max_events``), so with several clients and
synchronous=FULL it commits less often than this baseline; ``--baseline-txn`` sets another transaction size.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from _common import Server, create_tenant_and_key, encode_batches, make_events

from vigil.ingest.intake import Prepared, prepare_batch
from vigil.ledger.merkle import CompactRange
from vigil.ledger.tiles import TILE_HEIGHT
from vigil.store import open_store
from vigil.store.search import search_columns
from vigil.store.sqlite import SEQ_BITS, SQLiteStore

GOAL = 0.6


class _Result(msgspec.Struct):
    status: str


class _Ack(msgspec.Struct):
    accepted: int
    rejected: int
    results: list[_Result]


def _client(url: str, key: str, body_file: str, ready: Any, go: Any, out: Any, seconds: float) -> None:
    """One client process: connect, wait for the start signal, send every body in turn, report."""
    with open(body_file, "rb") as f:
        bodies: list[tuple[bytes, int]] = pickle.load(f)
    decode = msgspec.json.Decoder(_Ack).decode
    stored = sent = failures = 0
    first_failure = ""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        http.get("/healthz")  # the connection is open before the clock starts
        ready.put(os.getpid())
        go.wait()
        cpu0 = time.process_time()
        deadline = time.monotonic() + seconds
        for body, n in bodies:
            if time.monotonic() > deadline:
                break
            t = time.perf_counter()
            r = http.post("/v1/events", content=body)
            latencies.append(time.perf_counter() - t)
            sent += n
            ok = 0
            if r.status_code == 200:
                ok = sum(1 for res in decode(r.content).results if res.status == "stored")
            stored += ok
            if ok != n:
                failures += 1
                first_failure = first_failure or f"HTTP {r.status_code}: {r.text[:300]}"
        end = time.monotonic()
        cpu = time.process_time() - cpu0
    out.put(
        {
            "stored": stored,
            "sent": sent,
            "failures": failures,
            "first_failure": first_failure,
            "end": end,
            "latencies": latencies,
            "cpu": cpu,
        }
    )


def run_http(
    database: str,
    slug: str,
    bodies: list[tuple[bytes, int]],
    clients: int,
    synchronous: str,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """Phase "http": returns stored events, elapsed seconds and the side figures."""
    tenant_id, key = create_tenant_and_key(database, slug, "ingest,read")
    files = []
    for k in range(clients):
        path = workdir / f"client-{k}.bodies"
        with open(path, "wb") as f:
            pickle.dump(bodies[k::clients], f, protocol=pickle.HIGHEST_PROTOCOL)
        files.append(str(path))
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    key_file = str(workdir / "signing.key")  # never next to the code, whatever the database is
    with Server(database, synchronous=synchronous, rate_limit=0, extra=["--signing-key", key_file]) as server:
        procs = [
            ctx.Process(target=_client, args=(server.url, key, f, ready, go, out, seconds), daemon=True)
            for f in files
        ]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.get(timeout=120)
            cpu0 = server.cpu_seconds()
            t0 = time.monotonic()
            go.set()
            results = [out.get(timeout=seconds + 300) for _ in procs]
            cpu1 = server.cpu_seconds()
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
    elapsed = max(r["end"] for r in results) - t0
    store = open_store(database)
    try:
        size = store.tree_size(tenant_id)
    finally:
        store.close()
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "stored": sum(r["stored"] for r in results),
        "sent": sum(r["sent"] for r in results),
        "failures": sum(r["failures"] for r in results),
        "first_failure": next((r["first_failure"] for r in results if r["first_failure"]), ""),
        "elapsed": elapsed,
        "size": size,
        "server_cpu": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "client_cpu": sum(r["cpu"] for r in results),
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p95": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
    }


def prepare_rows(
    bodies: list[tuple[bytes, int]], slug: str, tenant_id: int, txn: int
) -> list[tuple[list[Any], list[Any], list[Any], list[Any]]]:
    """The rows ``_append_locked`` would insert, grouped per transaction of ``txn`` events (untimed)."""
    received_us = time.time_ns() // 1000
    prepared: list[Prepared] = []
    for body, n in bodies:
        good, bad = prepare_batch(body, "application/json", slug, received_us)
        if bad or len(good) != n:
            raise SystemExit(f"the intake rejected generated events: {bad[:3]}")
        prepared.extend(good)
    frontier = CompactRange()
    base = tenant_id << SEQ_BITS
    groups = []
    for start in range(0, len(prepared), txn):
        rows, targets, texts, nodes = [], [], [], []
        leaves = []
        for seq, p in enumerate(prepared[start : start + txn], start):
            rid = base | seq
            ev = p.event
            rows.append(
                (
                    rid,
                    tenant_id,
                    bytes.fromhex(p.id.replace("-", "")),
                    p.occurred_us,
                    ev.action,
                    ev.category,
                    ev.outcome,
                    ev.actor.id,
                    p.body,
                    p.leaf,
                    *search_columns(ev),
                )
            )
            targets.extend((tenant_id, t.id, t.type, rid) for t in ev.targets)
            if p.text:
                texts.append((rid, p.text))
            leaves.append(p.leaf)
        nodes = [
            (tenant_id, level, idx, h)
            for level, idx, h in frontier.extend(leaves)
            if level and level % TILE_HEIGHT == 0
        ]
        groups.append((rows, targets, texts, nodes))
    return groups


def run_baseline(
    path: Path, slug: str, bodies: list[tuple[bytes, int]], synchronous: str, txn: int, seconds: float
) -> dict[str, Any]:
    """Phase "baseline": plain executemany of the same rows; returns rows and elapsed seconds."""
    store = SQLiteStore(str(path))  # creates the file with the same migrations
    try:
        tenant_id = store.create_tenant(slug).id
    finally:
        store.close()
    print(
        f"[baseline] preparing {sum(n for _, n in bodies):,} rows with prepare_batch (untimed) ...",
        flush=True,
    )
    groups = prepare_rows(bodies, slug, tenant_id, txn)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    print(f"[baseline] inserting in transactions of {txn} rows ...", flush=True)
    done = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    for rows, targets, texts, nodes in groups:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (rid, tenant_id, id, occurred_at, action, category, outcome, "
            "actor_id, body, leaf_hash, ip, actor_name, actor_email) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        if targets:
            conn.executemany("INSERT OR IGNORE INTO event_targets VALUES (?,?,?,?)", targets)
        if texts:
            conn.executemany("INSERT INTO events_fts (rowid, text) VALUES (?,?)", texts)
        if nodes:
            conn.executemany("INSERT INTO tree_nodes VALUES (?,?,?,?)", nodes)
            blocks = [
                (
                    tid,
                    idx,
                    (tid << SEQ_BITS) | idx << TILE_HEIGHT,
                    (tid << SEQ_BITS) | (idx + 1) << TILE_HEIGHT,
                )
                for tid, level, idx, _ in nodes
                if level == TILE_HEIGHT
            ]
            conn.executemany(
                "INSERT INTO event_blocks SELECT ?, ?, min(occurred_at), max(occurred_at) FROM events "
                "WHERE rid >= ? AND rid < ?",
                blocks,
            )
        conn.execute("COMMIT")
        done += len(rows)
        if time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    conn.close()
    return {"rows": done, "elapsed": elapsed, "cpu": cpu}


def run_pg_baseline(
    url: str, slug: str, bodies: list[tuple[bytes, int]], txn: int, seconds: float
) -> dict[str, Any]:
    """Phase "baseline" on PostgreSQL: raw COPY of the same rows into the same schema, as the writer role."""
    import psycopg

    from vigil.store.postgres import PostgresStore, schema_of

    store = PostgresStore(url)
    try:
        tenant_id = store.create_tenant(slug).id
        writer = store.writer_role
    finally:
        store.close()
    print(
        f"[baseline] preparing {sum(n for _, n in bodies):,} rows with prepare_batch (untimed) ...",
        flush=True,
    )
    received_us = time.time_ns() // 1000
    prepared: list[Prepared] = []
    for body, _ in bodies:
        prepared.extend(prepare_batch(body, "application/json", slug, received_us)[0])
    frontier = CompactRange()
    groups = []
    for start in range(0, len(prepared), txn):
        chunk = prepared[start : start + txn]
        rows = [
            (
                seq,
                received_us,
                p.id,
                p.occurred_us,
                p.event.action,
                p.event.category,
                p.event.outcome,
                p.event.actor.id,
                p.body,
                p.leaf,
                p.text,
                *search_columns(p.event),
            )
            for seq, p in enumerate(chunk, start)
        ]
        targets = list(
            dict.fromkeys((t.id, t.type, seq) for seq, p in enumerate(chunk, start) for t in p.event.targets)
        )
        nodes = [
            (lv, idx, h) for lv, idx, h in frontier.extend([p.leaf for p in chunk]) if lv and lv % 8 == 0
        ]
        groups.append((rows, targets, nodes))
    s = schema_of(tenant_id)
    print(f"[baseline] COPY in transactions of {txn} rows ...", flush=True)
    done = 0
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        for rows, targets, nodes in groups:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f'SET LOCAL ROLE "{writer}"')
                with cur.copy(
                    f"COPY {s}.events (seq, received_us, id, occurred_us, action, category, outcome, "
                    "actor_id, body, leaf_hash, search, ip, actor_name, actor_email) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                if targets:
                    with cur.copy(f"COPY {s}.event_targets (target_id, type, seq) FROM STDIN") as copy:
                        for row in targets:
                            copy.write_row(row)
                if nodes:
                    with cur.copy(f"COPY {s}.tree_nodes (level, idx, hash) FROM STDIN") as copy:
                        for row in nodes:
                            copy.write_row(row)
                    for lv, idx, _ in nodes:
                        if lv == 8:
                            cur.execute(
                                f"INSERT INTO {s}.event_blocks SELECT %s, min(occurred_us), "
                                f"max(occurred_us) FROM {s}.events WHERE seq >= %s AND seq < %s",
                                (idx, idx << 8, (idx + 1) << 8),
                            )
            done += len(rows)
            if time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - t0
    return {"rows": done, "elapsed": elapsed, "cpu": 0.0}


def redaction_cost(bodies: list[tuple[bytes, int]], slug: str, rounds: int = 3) -> dict[str, float]:
    """µs per event that redaction adds to ``prepare_batch``: the same bodies with and without it (best of
    ``rounds``), and what one event carrying secrets costs (the detectors run, not just their triggers)."""
    from vigil.ingest import intake

    def timed(fn: Any) -> float:
        best = float("inf")
        received_us = time.time_ns() // 1000
        for _ in range(rounds):
            t = time.perf_counter()
            for body, _n in bodies:
                fn(body, "application/json", slug, received_us)
            best = min(best, time.perf_counter() - t)
        return best

    events = sum(n for _, n in bodies)
    real = intake.redact_event
    with_redaction = timed(prepare_batch)

    def nothing(ev: Any, metadata: Any, changes: Any, context: Any, red: Any, *_: Any) -> Any:
        return ev.actor, ev.targets, context, changes, metadata, ev.reason, ev.message

    intake.redact_event = nothing  # type: ignore[assignment]
    try:
        without = timed(prepare_batch)
    finally:
        intake.redact_event = real
    secret = msgspec.json.encode(
        [
            {
                "action": "user.login",
                "actor": {"id": "usr_1", "name": "deploy https://ci:Hunter2Pass@git.example"},
                "message": "used AKIAIOSFODNN7EXAMPLE and ghp_R2d2C3poBb8aLuKeSkYwAlKeR0123456789x",
                "metadata": {"password": "x", "note": "card 4111 1111 1111 1111"},
            }
        ]
        * 100
    )
    dirty = timed(lambda b, c, s, r: prepare_batch(secret, c, s, r)) / len(bodies) / 100
    return {
        "per_event_us": (with_redaction - without) / events * 1e6,
        "prepare_us": with_redaction / events * 1e6,
        "secret_event_us": dirty * 1e6 - without / events * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100, help="events per request (at most 1000)")
    ap.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL", type=str.upper)
    ap.add_argument(
        "--database",
        help="SQLite path (or sqlite:///path) for the HTTP phase; must not hold "
        "the tenant yet. Default: a fresh temp file. The baseline file goes "
        "next to it, on the same disk.",
    )
    ap.add_argument("--tenant", default="acme")
    ap.add_argument(
        "--baseline-txn", type=int, default=None, help="rows per baseline transaction (default: --batch)"
    )
    ap.add_argument("--max-seconds", type=float, default=180, help="time limit of each timed phase")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the database files")
    args = ap.parse_args(argv)
    if not 1 <= args.batch <= 1000:
        ap.error("--batch must be 1 to 1000")
    txn = args.baseline_txn or args.batch

    pg_dbs: list[str] = []
    if args.database and args.database.startswith(("postgresql://", "postgres://")):
        # an admin URL: the benchmark makes two fresh databases on that server and drops them afterwards
        import psycopg

        admin = psycopg.connect(args.database, autocommit=True)
        stamp = os.getpid()
        pg_dbs = [f"vigil_bench_http_{stamp}", f"vigil_bench_base_{stamp}"]
        for name in pg_dbs:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        base_url = args.database.rsplit("/", 1)[0]
        database = f"{base_url}/{pg_dbs[0]}"
        workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-"))
    elif args.database:
        database = args.database
        plain = Path(database.removeprefix("sqlite:///")).resolve()
        plain.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-", dir=plain.parent))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-"))
        database = str(workdir / "http.sqlite")
    baseline_path = workdir / "baseline.sqlite"

    try:
        print(f"[events] generating {args.events:,} events ...", flush=True)
        t = time.perf_counter()
        events, source = make_events(args.tenant, args.events, days=30, seed=args.seed)
        encoded = encode_batches(events, args.batch)
        bodies = [(body, min(args.batch, len(events) - i * args.batch)) for i, body in enumerate(encoded)]
        del events
        size = sum(len(b) for b, _ in bodies)
        cost = redaction_cost(bodies[: max(1, 20_000 // args.batch)], args.tenant)
        print(
            f"[events] {args.events:,} events from {source} in {time.perf_counter() - t:.1f} s, "
            f"{len(bodies):,} request bodies, {size / args.events:.0f} JSON bytes/event",
            flush=True,
        )

        print(
            f"[http] vigil serve --rate-limit 0 --sqlite-synchronous {args.synchronous}; "
            f"{args.clients} client processes ...",
            flush=True,
        )
        http = run_http(
            database, args.tenant, bodies, args.clients, args.synchronous, args.max_seconds, workdir
        )
        http_rate = http["stored"] / http["elapsed"]
        print(f"[http] {http['stored']:,} events stored in {http['elapsed']:.1f} s", flush=True)

        if pg_dbs:
            base = run_pg_baseline(f"{base_url}/{pg_dbs[1]}", args.tenant, bodies, txn, args.max_seconds)
        else:
            base = run_baseline(baseline_path, args.tenant, bodies, args.synchronous, txn, args.max_seconds)
        base_rate = base["rows"] / base["elapsed"]
        print(f"[baseline] {base['rows']:,} rows in {base['elapsed']:.1f} s", flush=True)
    except RuntimeError as exc:  # the CLI or the server failed; its message says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            for name in pg_dbs:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                for (role,) in admin.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"vigil_{name}%",)
                ).fetchall():
                    admin.execute(f'DROP ROLE IF EXISTS "{role}"')

    ratio = http_rate / base_rate
    print()
    print("settings:")
    print(
        f"  events={args.events:,} clients={args.clients} batch={args.batch} "
        f"synchronous={args.synchronous} rate_limit=0 baseline_txn={txn} generator={source!r}"
    )
    print(
        f"  Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs "
        f"(server and clients share them), database {'given' if args.database else 'temp file'}"
    )
    print("results:")
    stored, elapsed = http["stored"], http["elapsed"]
    notes = [
        f"{stored:,} in {elapsed:.1f} s",
        f"request p50 {http['p50'] * 1e3:.1f} ms, p95 {http['p95'] * 1e3:.1f} ms",
    ]
    if http["server_cpu"] is not None:
        cpu = http["server_cpu"]
        notes.append(
            f"server CPU {cpu:.1f} s = {cpu / max(stored, 1) * 1e6:.0f} µs/event, {cpu / elapsed:.2f} cores"
        )
    notes.append(f"clients CPU {http['client_cpu']:.1f} s")
    print(f"  HTTP end-to-end      {http_rate:>9,.0f} events/s  ({'; '.join(notes)})")
    print(
        f"  raw {'COPY' if pg_dbs else 'SQLite'} baseline  {base_rate:>9,.0f} rows/s    "
        f"({base['rows']:,} in {base['elapsed']:.1f} s, {txn} rows per transaction; "
        f"CPU {base['cpu']:.1f} s = {base['cpu'] / max(base['rows'], 1) * 1e6:.0f} µs/row)"
    )
    print(
        f"  redaction            {cost['per_event_us']:>9.1f} µs/event of prepare_batch's "
        f"{cost['prepare_us']:.1f} (an event holding four secrets: {cost['secret_event_us']:.0f} µs)"
    )
    goal = 0.5 if pg_dbs else GOAL
    verdict = "meets the goal" if ratio >= goal else "BELOW the goal"
    print(f"  ratio HTTP/baseline  {ratio:>9.2f}           (goal >= {goal}: {verdict})")
    problems = []
    if http["failures"]:
        problems.append(f"{http['failures']} requests not fully stored; first: {http['first_failure']}")
    if http["size"] != stored:
        problems.append(f"the tenant's log holds {http['size']:,} events, the answers said {stored:,}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
