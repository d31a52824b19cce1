"""Fairness: one tenant's latency while another floods the same server.

    python bench/fairness.py [--flooders 3] [--batch 1000] [--seconds 10] [--interval 0.02]
                             [--rate-limit 2000] [--rate-burst 4000] [--synchronous FULL|NORMAL]

A real ``vigil serve`` child process on 127.0.0.1 (a free port) with a per-tenant rate limit. Tenant B sends
one realistic event every ``--interval`` seconds (open loop: a late answer does not delay the next send) from
one httpx connection and times each answer. Phase "quiet": B alone, the baseline. Phase "flood": ``--flooders``
client processes of tenant A post pre-encoded batches of ``--batch`` events as fast as they can, from the
moment B starts until it stops; they are hostile: they ignore ``Retry-After`` and try again after
``--pause`` seconds. Both phases run in the same run against the same server.

Prints B's p50 and p99 in each phase and the ratio of the p99s, and what A got (accepted events/s and the
answers it had). Goal: B's p99 under the flood within 3x its p99 without it, and under 50 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import msgspec
from _common import Server, create_tenant_and_key, make_events

GOAL_RATIO = 3.0
GOAL_P99_MS = 50.0


def _flooder(
    url: str, key: str, bodies: list[bytes], n: int, pause: float, ready: Any, stop: Any, out: Any
) -> None:
    """One of tenant A's processes: post batches until told to stop, ignoring Retry-After."""
    statuses: Counter[int] = Counter()
    accepted = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        http.get("/healthz")
        ready.put(1)
        i = 0
        while not stop.is_set():
            try:
                r = http.post("/v1/events", content=bodies[i % len(bodies)])
            except httpx.HTTPError:
                statuses[0] += 1
                time.sleep(pause)
                continue
            i += 1
            statuses[r.status_code] += 1
            if r.status_code == 200:
                accepted += n
            else:
                time.sleep(pause)
    out.put({"statuses": dict(statuses), "accepted": accepted})


def _victim(
    url: str, key: str, body: bytes, seconds: float, interval: float
) -> tuple[list[float], Counter[int]]:
    """Tenant B: one event every ``interval`` seconds for ``seconds``; the latency of each answer."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        http.get("/healthz")
        start = time.perf_counter()
        slot = 0
        while True:
            due = start + slot * interval
            now = time.perf_counter()
            if due - start >= seconds:
                break
            if due > now:
                time.sleep(due - now)
            t = time.perf_counter()
            r = http.post("/v1/events", content=body)
            latencies.append(time.perf_counter() - t)
            statuses[r.status_code] += 1
            slot += 1
    return latencies, statuses


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flooders", type=int, default=3, help="client processes of tenant A")
    ap.add_argument("--batch", type=int, default=1000, help="events per request of tenant A")
    ap.add_argument("--seconds", type=float, default=10, help="length of each phase")
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between two events of tenant B")
    ap.add_argument(
        "--pause", type=float, default=0.005, help="A's wait after a refusal (it ignores Retry-After)"
    )
    ap.add_argument("--rate-limit", type=int, default=2000, help="events/s per tenant (the server's setting)")
    ap.add_argument("--rate-burst", type=int, default=4000, help="burst per tenant (the server's setting)")
    ap.add_argument("--rate-limit-bytes", type=int, default=1_500_000, help="body bytes/s per tenant")
    ap.add_argument("--rate-burst-bytes", type=int, default=3_000_000, help="body bytes at once per tenant")
    ap.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL", type=str.upper)
    ap.add_argument("--server-arg", action="append", default=[], help="extra `vigil serve` argument (repeat)")
    ap.add_argument("--server-log", action="store_true", help="print the server's output at the end")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-fairness-"))
    database = str(workdir / "fairness.db")
    try:
        _, key_a = create_tenant_and_key(database, "flooder", "ingest")
        _, key_b = create_tenant_and_key(database, "victim", "ingest")
        events, source = make_events("flooder", args.batch * 8)
        for e in events:
            e.pop("id", None)  # fresh ids every time: the flood is new events, never cheap duplicates
        enc = msgspec.json.Encoder()
        bodies = [enc.encode(events[i : i + args.batch]) for i in range(0, len(events), args.batch)]
        one, _ = make_events("victim", 1, seed=11)
        one[0].pop("id", None)
        body_b = enc.encode(one)
        extra = [
            "--rate-burst",
            str(args.rate_burst),
            "--rate-limit-bytes",
            str(args.rate_limit_bytes),
            "--rate-burst-bytes",
            str(args.rate_burst_bytes),
            "--signing-key",
            str(workdir / "signing.key"),
            "--checkpoint-interval",
            "0",
            "--detect",
            "false",
            *args.server_arg,
        ]
        print(
            f"events: {source}; A: {args.flooders} processes x batches of {args.batch} "
            f"({len(bodies[0]) // 1024} KiB); B: 1 event every {args.interval * 1000:g} ms for {args.seconds:g} s; "
            f"rate limit {args.rate_limit}/s, burst {args.rate_burst}; synchronous {args.synchronous}"
        )
        with Server(
            database, synchronous=args.synchronous, rate_limit=args.rate_limit, extra=extra
        ) as server:
            quiet, quiet_status = _victim(server.url, key_b, body_b, args.seconds, args.interval)
            ctx = mp.get_context("spawn")
            ready, stop, out = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(
                    target=_flooder,
                    args=(server.url, key_a, bodies, args.batch, args.pause, ready, stop, out),
                    daemon=True,
                )
                for _ in range(args.flooders)
            ]
            for p in procs:
                p.start()
            try:
                for _ in procs:
                    ready.get(timeout=60)
                time.sleep(1.0)  # the flood is under way before B measures
                t0 = time.monotonic()
                flood, flood_status = _victim(server.url, key_b, body_b, args.seconds, args.interval)
                elapsed = time.monotonic() - t0 + 1.0
                stop.set()
                floods = [out.get(timeout=120) for _ in procs]
                if args.server_log:
                    print(server.output(20000))
            finally:
                stop.set()
                for p in procs:
                    p.join(timeout=30)
                    if p.is_alive():
                        p.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    a_status: Counter[int] = Counter()
    for f in floods:
        a_status.update({int(k): v for k, v in f["statuses"].items()})
    accepted = sum(f["accepted"] for f in floods)
    q50, q99 = _pct(quiet, 0.5), _pct(quiet, 0.99)
    f50, f99 = _pct(flood, 0.5), _pct(flood, 0.99)
    ratio = f99 / q99 if q99 else float("inf")
    print(
        f"B alone:      p50 {q50:6.1f} ms   p99 {q99:6.1f} ms   ({len(quiet)} requests, {dict(quiet_status)})"
    )
    print(
        f"B under flood: p50 {f50:6.1f} ms   p99 {f99:6.1f} ms   ({len(flood)} requests, {dict(flood_status)})"
    )
    print(f"  mean {statistics.fmean(flood) * 1000:.1f} ms, max {max(flood) * 1000:.1f} ms")
    print(f"A: {accepted / elapsed:,.0f} events/s accepted; answers {dict(sorted(a_status.items()))}")
    ok = ratio <= GOAL_RATIO and f99 <= GOAL_P99_MS
    print(
        f"ratio p99 flood / p99 alone: {ratio:.2f} (goal <= {GOAL_RATIO:g}, and p99 under flood <= "
        f"{GOAL_P99_MS:g} ms): {'met' if ok else 'NOT met'}"
    )
    bad_b = sum(v for k, v in flood_status.items() if k != 200) + sum(
        v for k, v in quiet_status.items() if k != 200
    )
    if bad_b:
        print(f"B had {bad_b} answers other than 200", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
