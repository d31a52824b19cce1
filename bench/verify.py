"""Speed of ``vigil verify`` against bare hashing, and latency of proofs, on one large tenant.

    python bench/verify.py [--events 1000000] [--workers N] [--rounds 3] [--seed 7] [--samples 500] [--profile]

Builds (or reuses) a SQLite database with tenant ``acme`` holding ``--events`` realistic events (``vigil.demo``
events, prepared by the real intake and written through ``SQLiteStore.append`` in chunks of 5000) and a signed
checkpoint every 100,000 events and at the end. The file is ``verify-<events>.sqlite`` in ``vigil-bench/`` under
the temp directory, with its signing key next to it, so a second run with the same count reuses both.

Then, in the same run:

* the baseline: bare ``hashlib.sha256(b"\\x00" + body).digest()`` over the same canonical bytes, already in
  memory (reading them is not timed);
* ``verify_tenant`` end to end (reads, leaf hashes, tree data, checkpoint roots, signatures, consistency), in
  one process and with its worker processes (``--workers``, default one per CPU as ``vigil verify`` uses), and
  the rate of the latter as a fraction of the baseline's (goal: at least 0.5). The machine's speed drifts
  within seconds, so ``--rounds`` times each measure the baseline right before the worker run and the ratio
  reported is their median;
* p50/p95 of ``--samples`` random inclusion proofs (``vigil.ledger.proofs.inclusion``, against the newest
  checkpoint) and as many random consistency proofs to the full size (goal: p95 under 5 ms).

It says whether ``vigil.ledger._merkle`` (the C extension) does the hashing; ``VIGIL_PURE_PYTHON=1`` measures
the pure-Python fallback. When verify is below its goal, or with ``--profile``, the one-process run is repeated
under cProfile and the functions that take the time are printed. The figures are only as steady as the machine
is idle: other processes competing for the CPUs slow the worker run most.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from vigil import demo
from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.bulk import NATIVE
from vigil.ledger.checkpoints import load_signer, make_checkpoint
from vigil.ledger.integrity import MAX_WORKERS, verify_tenant
from vigil.ledger.proofs import consistency, inclusion
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store.base import Tenant
from vigil.store.sqlite import SQLiteStore

TENANT = "acme"
CHUNK = 5000
GENERATE = 100_000  # demo events generated at a time, each batch a few days later than the last
CHECKPOINT_EVERY = 100_000
RATIO_GOAL = 0.5
PROOF_GOAL_MS = 5.0


def settings_for(path: Path) -> Settings:
    # NORMAL: the build's durability does not matter here, and verify only reads
    return Settings.load({"database": str(path), "sqlite_synchronous": "NORMAL"}, environ={})


def build(path: Path, n: int, seed: int) -> None:
    """Write ``n`` events of tenant acme with a checkpoint every 100,000 events and one at the end."""
    settings = settings_for(path)
    store = SQLiteStore(str(path), settings)
    signer = load_signer(settings)
    started = time.perf_counter()
    try:
        tenant = store.create_tenant(TENANT)
        batches = -(-n // GENERATE)
        end = datetime.now(UTC) - timedelta(days=3 * batches)
        written = 0
        batch = 0
        while written < n:
            end += timedelta(days=3)
            raw, _ = demo.generate(
                TENANT, min(GENERATE, n - written), days=3, end=end, seed=seed * 1000 + batch
            )
            batch += 1
            received_us = time.time_ns() // 1000
            for start in range(0, len(raw), CHUNK):
                chunk: list[Prepared] = []
                for item in raw[start : start + CHUNK]:
                    p = prepare_event(msgspec.convert(item, EventIn), TENANT, received_us)
                    if not isinstance(p, Prepared):
                        raise SystemExit(f"a demo event was rejected: {p.errors}")
                    chunk.append(p)
                chunk = chunk[: n - written]
                store.append(tenant.id, chunk)
                written += len(chunk)
                if written % CHECKPOINT_EVERY == 0 or written == n:
                    make_checkpoint(store, signer, tenant)
                rate = written / (time.perf_counter() - started)
                print(
                    f"\r  built {written:>10,} / {n:,} events  ({rate:,.0f} events/s)",
                    end="",
                    file=sys.stderr,
                )
                if written >= n:
                    break
        store.optimize()
    finally:
        store.close()
    print(file=sys.stderr)


def database(n: int, seed: int) -> Path:
    """The cached database for ``n`` events, built first when it is missing or was left incomplete."""
    folder = Path(tempfile.gettempdir()) / "vigil-bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"verify-{n}.sqlite"
    key = Path(f"{path}.signing-key")
    if path.exists() and key.exists():
        print(f"reusing {path}")
        return path
    partial = folder / f"verify-{n}.partial.sqlite"
    for stale in folder.glob(f"verify-{n}.partial.sqlite*"):
        stale.unlink()
    print(f"building {path} ({n:,} events, a checkpoint every {CHECKPOINT_EVERY:,})")
    build(partial, n, seed)
    os.replace(f"{partial}.signing-key", key)
    os.replace(partial, path)  # only a complete build gets the real name
    return path


def baseline(store: SQLiteStore, tenant: Tenant, size: int) -> tuple[float, int]:
    """Seconds spent on bare leaf hashing of every body (bodies read untimed, a chunk at a time), and bytes."""
    sha = hashlib.sha256
    spent = 0.0
    total = 0
    for start in range(0, size, GENERATE):
        bodies = [body for _, _, body in store.read_range(tenant.id, start, min(start + GENERATE, size))]
        total += sum(map(len, bodies))
        t0 = time.perf_counter()
        for body in bodies:
            sha(b"\x00" + body).digest()
        spent += time.perf_counter() - t0
    return spent, total


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), q[18]


def proof_latency(store: SQLiteStore, tenant: Tenant, size: int, samples: int, seed: int) -> None:
    rng = random.Random(seed)
    seqs = [rng.randrange(size) for _ in range(samples)]
    ids = [msgspec.json.decode(store.read_range(tenant.id, s, s + 1)[0][2])["id"] for s in seqs]
    incl: list[float] = []
    for event_id, seq in zip(ids, seqs, strict=True):
        t0 = time.perf_counter()
        p = inclusion(store, tenant.id, event_id, None)
        incl.append((time.perf_counter() - t0) * 1000)
        if p.leaf_index != seq or p.tree_size != size:
            raise SystemExit(f"inclusion proof of seq {seq} came back for {p.leaf_index} at {p.tree_size}")
    cons: list[float] = []
    for _ in range(samples):
        first = rng.randrange(1, size + 1)
        t0 = time.perf_counter()
        consistency(store, tenant.id, first, size)
        cons.append((time.perf_counter() - t0) * 1000)
    for name, ms in (("inclusion proof", incl), ("consistency proof", cons)):
        p50, p95 = percentiles(ms)
        mark = "" if p95 < PROOF_GOAL_MS else f"   ABOVE the {PROOF_GOAL_MS:g} ms goal"
        print(f"{name:<20} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   ({samples} random, {size:,} leaves){mark}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the tenant (default 1,000,000)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes for verify (default: one per CPU)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="baseline and worker runs, alternating (default 3; the median counts)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the demo events and the samples")
    parser.add_argument("--samples", type=int, default=500, help="proofs of each kind to time (default 500)")
    parser.add_argument(
        "--profile", action="store_true", help="profile verify_tenant even when it meets its goal"
    )
    args = parser.parse_args()
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    path = database(args.events, args.seed)
    settings = settings_for(path)
    vkey = load_signer(settings, create=False).vkey
    store = SQLiteStore(str(path), settings)
    try:
        tenant = store.get_tenant(TENANT)
        size = store.tree_size(tenant.id)
        checkpoints = len(store.checkpoints(tenant.id))
        hashing, total = baseline(store, tenant, size)
        print(f"\n{size:,} events ({total / size:,.0f} bytes each on average), {checkpoints} checkpoints")
        print(f"hashing in verify: {'C extension (vigil.ledger._merkle)' if NATIVE else 'pure Python'}")

        workers = args.workers or min(os.cpu_count() or 1, MAX_WORKERS)
        t0 = time.perf_counter()
        report = verify_tenant(store, tenant, vkey, workers=1)
        one = report.events / (time.perf_counter() - t0)
        print(
            f"verify_tenant in one process       {one:>12,.0f} events/s  ({one / (size / hashing):.2f} of the baseline)"
        )
        ratios: list[float] = []
        for r in range(args.rounds):
            if r:
                hashing, _ = baseline(store, tenant, size)
            base_rate = size / hashing
            t0 = time.perf_counter()
            report = verify_tenant(store, tenant, vkey, workers=workers)
            seconds = time.perf_counter() - t0
            rate = report.events / seconds
            ratios.append(rate / base_rate)
            print(
                f"round {r + 1}: baseline {base_rate:>10,.0f} events/s, verify_tenant with {workers} workers "
                f"{rate:>10,.0f} events/s ({seconds:.2f} s): ratio {ratios[-1]:.2f}"
            )
        ratio = statistics.median(ratios)
        goal = "meets" if ratio >= RATIO_GOAL else "BELOW"
        print(
            f"ratio verify / baseline, median of {args.rounds}: {ratio:.2f}   ({goal} the goal of {RATIO_GOAL})\n"
        )

        proof_latency(store, tenant, size, args.samples, args.seed)

        if ratio < RATIO_GOAL or args.profile:
            print("\nverify_tenant in one process under cProfile (top 15 by own time):")
            profiler = cProfile.Profile()
            profiler.runcall(verify_tenant, store, tenant, vkey, workers=1)
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    finally:
        store.close()


if __name__ == "__main__":
    main()
