"""Cost of ``vigil.sdk.Client.record()`` on the app's thread, against building the event and ``json.dumps``-ing it.

    python bench/sdk_client.py [--calls 100000] [--batch 100] [--spool] [--database PATH]

A ``vigil serve`` child process (``--rate-limit 0``, synchronous=FULL) and a tenant with a key are set up first;
then a :class:`vigil.sdk.Client` on it, whose worker thread sends batches to that server while the app's thread
records. Events are realistic (``_common.make_events``: actors, targets, context, changes, metadata with a few
secret-named keys to redact), turned into ``record()`` keywords beforehand, and cycled through.

Record: ``--calls`` timed calls of ``client.record(**kwargs)``, each timed alone with
``time.perf_counter_ns`` (p50, p99, mean, in µs), after an untimed warm-up of 2,000 calls. ``max_queue`` is
set above the number of calls, so every call takes the ordinary path (no spill, no drop) even though the
server drains the queue more slowly than the loop fills it. The worker runs the whole time, competing for the
GIL as it would in an app. ``--spool`` gives the client a spool directory (the default high-water mark then
moves part of the queue to disk during the run).

Baseline, in the same run and interleaved with the record calls by blocks of 1,000 (so that both meet the
same machine, and the same worker thread sending in the background): the same calls, each timed the same way,
of what an app that logs events itself would do at the least: build the event dict from the same keywords,
with an id (``uuid.uuid4``) and a time (``datetime.now(UTC)``), and ``json.dumps`` it (``default=str`` for the
datetime). No redaction, no validation, no queue.

It prints both, the ratio record/baseline, and what the worker delivered: events stored, and how long after
the last call the delivery finished. The worker has one request in flight at a time, each answered after the
server's durable commit, so its rate grows with ``--batch``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Server, create_tenant_and_key, make_events

from vigil.sdk import Client

FIELDS = (
    "action",
    "actor",
    "targets",
    "outcome",
    "category",
    "context",
    "changes",
    "metadata",
    "message",
    "reason",
)
SECRETS = ("password", "api_token", "session_cookie")
BLOCK = 1000  # calls; record and baseline alternate by blocks, so both meet the same machine and worker


def record_kwargs(count: int, seed: int) -> list[dict[str, Any]]:
    """``record()`` keywords of ``count`` realistic events; every tenth carries a secret to redact."""
    events, _ = make_events("acme", count, seed=seed)
    out = []
    for i, ev in enumerate(events):
        kw = {k: ev[k] for k in FIELDS if k in ev}
        if i % 10 == 0:
            kw["metadata"] = {**kw.get("metadata", {}), SECRETS[i % 3]: f"s3cr3t-{i}"}
        out.append(kw)
    return out


def timed(fn: Any, calls: list[dict[str, Any]]) -> list[int]:
    """Nanoseconds of each ``fn(**kwargs)``."""
    clock = time.perf_counter_ns
    out = [0] * len(calls)
    for i, kw in enumerate(calls):
        t = clock()
        fn(**kw)
        out[i] = clock() - t
    return out


def baseline(**kw: Any) -> str:
    """What an app would do at the least to log the event itself."""
    event = {"id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC), **kw}
    return json.dumps(event, default=str)


def summary(ns: list[int]) -> dict[str, float]:
    q = statistics.quantiles(ns, n=100, method="inclusive")
    return {"p50": q[49] / 1000, "p99": q[98] / 1000, "mean": statistics.fmean(ns) / 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100, help="the client's batch_size")
    ap.add_argument("--spool", action="store_true", help="give the client a spool directory")
    ap.add_argument("--database", help="SQLite path for the server; default: a fresh temp file")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-sdk-"))
    database = args.database or str(workdir / "vigil.sqlite")
    distinct = min(args.calls, 20_000)
    print(f"[events] {distinct:,} distinct events, cycled over {args.calls:,} calls ...", flush=True)
    kwargs = record_kwargs(distinct, args.seed)
    calls = [kwargs[i % distinct] for i in range(args.calls)]
    warm = kwargs[:2000]
    try:
        with Server(database) as server:
            _, key = create_tenant_and_key(database, "acme")
            client = Client(
                server.url,
                key,
                workdir / "spool" if args.spool else None,
                batch_size=args.batch,
                max_queue=args.calls + len(warm) + 1,
            )
            try:
                timed(client.record, warm)
                timed(baseline, warm)
                gc.collect()
                print(f"[record+baseline] {args.calls:,} calls each, in alternating blocks of {BLOCK:,} ...")
                rec: list[int] = []
                base: list[int] = []
                t = time.perf_counter()
                for i in range(0, len(calls), BLOCK):
                    block = calls[i : i + BLOCK]
                    rec += timed(client.record, block)
                    base += timed(baseline, block)
                loop_s = time.perf_counter() - t
                t = time.perf_counter()
                flushed = client.flush(600)
                total = args.calls + len(warm)
                deadline = time.monotonic() + 600
                while client.stats.stored < total and time.monotonic() < deadline:
                    time.sleep(0.01)  # with a spool, flush() returns once the rest is on disk
                drain_s = time.perf_counter() - t
                stats = client.stats
            finally:
                client.close(60)
    except RuntimeError as exc:  # the CLI or the server failed; its message says why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.database:
            shutil.rmtree(workdir, ignore_errors=True)

    r, b = summary(rec), summary(base)
    print()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()}")
    print(f"{'':28} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8}")
    print(f"{'client.record()':28} {r['p50']:8.2f} {r['p99']:8.2f} {r['mean']:8.2f}")
    print(f"{'baseline dict + json.dumps':28} {b['p50']:8.2f} {b['p99']:8.2f} {b['mean']:8.2f}")
    print(
        f"{'ratio record / baseline':28} {r['p50'] / b['p50']:8.2f} {r['p99'] / b['p99']:8.2f} "
        f"{r['mean'] / b['mean']:8.2f}"
    )
    print()
    print(
        f"worker: {stats.stored:,} of {total:,} events stored ({stats.spooled:,} through the spool, "
        f"{stats.dropped} dropped, {stats.retries} retries); the timed loop took {loop_s:.1f} s, and delivery "
        f"finished {drain_s:.1f} s after it (flush: {flushed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
