"""Cost of the SQLite file guard per commit: commits with the guard against the same commits without it.

    python bench/store_guard.py [--commits 500] [--batch 1] [--rounds 15] [--synchronous NORMAL]

After every commit the store checks that the database path still names the file (and write-ahead log) it
writes, with two ``stat`` calls, and before every write that free space is over ``sqlite_min_free_mb`` (one
``statvfs``). This appends ``--commits`` commits of ``--batch`` events each to a fresh SQLite file through
``SQLiteStore.append`` (the real writer thread), once with the guard and once with a no-op guard in its place,
alternating ``--rounds`` times (the machine drifts), and prints the median per-commit time of each, their ratio,
and the guard's own calls timed alone. Small commits (one event, synchronous=NORMAL) are the worst case: the
fixed cost of the check is the largest share of a commit there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store.guard import FileGuard
from vigil.store.sqlite import SQLiteStore


def prepared_events(n: int) -> list[Prepared]:
    """``n`` small events, prepared by the real intake."""
    now = time.time_ns() // 1000
    out = []
    for i in range(n):
        raw = {"action": "user.login", "actor": {"id": f"u{i % 7}"}, "message": f"event {i}"}
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        if not isinstance(p, Prepared):
            raise SystemExit(f"bench event rejected: {p}")
        out.append(p)
    return out


class NoGuard(FileGuard):
    """The baseline: the same calls, doing nothing."""

    def before_write(self) -> None:
        return None

    def after_commit(self) -> None:
        return None


def run(directory: Path, name: str, commits: int, batch: int, synchronous: str, guarded: bool) -> float:
    """Seconds per commit for ``commits`` appends of ``batch`` events."""
    path = directory / f"{name}.db"
    settings = Settings.load({"database": str(path), "sqlite_synchronous": synchronous}, environ={})
    store = SQLiteStore(str(path), settings)
    try:
        if not guarded:
            store._guard = NoGuard(store.path, 0)
        tenant = store.create_tenant("acme")
        events = prepared_events(commits * batch)
        store.append(tenant.id, events[:batch])  # warm up: the frontier, the WAL, the statement cache
        started = time.perf_counter()
        for i in range(1, commits):
            store.append(tenant.id, events[i * batch : (i + 1) * batch])
        return (time.perf_counter() - started) / (commits - 1)
    finally:
        store.close()


def guard_alone(directory: Path, calls: int = 20000) -> float:
    """Seconds for one before_write plus one after_commit on a real file."""
    path = directory / "alone.db"
    SQLiteStore(str(path)).close()
    (directory / "alone.db-wal").write_bytes(b"")
    guard = FileGuard(str(path), 64)
    started = time.perf_counter()
    for _ in range(calls):
        guard.before_write()
        guard.after_commit()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--synchronous", default="NORMAL", choices=("NORMAL", "FULL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-guard-") as tmp:
        directory = Path(tmp)
        with_guard: list[float] = []
        without: list[float] = []
        for r in range(args.rounds):
            without.append(run(directory, f"base{r}", args.commits, args.batch, args.synchronous, False))
            with_guard.append(run(directory, f"guard{r}", args.commits, args.batch, args.synchronous, True))
        alone = guard_alone(directory)
    base, guarded = statistics.median(without), statistics.median(with_guard)
    print(f"commits of {args.batch} event(s), synchronous={args.synchronous}, median of {args.rounds} rounds")
    print(f"  without the guard: {base * 1e6:8.1f} µs per commit")
    print(f"  with the guard:    {guarded * 1e6:8.1f} µs per commit")
    print(f"  ratio (with / without): {guarded / base:.3f}")
    print(
        f"  the guard alone (statvfs + 2 stat): {alone * 1e6:.2f} µs per commit, "
        f"{alone / base:.1%} of a commit without it (the ratio above is within the machine's noise when this "
        "is small)"
    )


if __name__ == "__main__":
    main()
