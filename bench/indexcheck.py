"""Cost per event of the index check (``vigil verify``'s second half) against the ledger check, same run.

    python bench/indexcheck.py [--events 200000] [--seed 7] [--rounds 3] [--workers 1]

Builds (or reuses) the database ``bench/verify.py`` builds (tenant ``acme`` with ``--events`` realistic events,
``verify-<events>.sqlite`` under the temp directory's ``vigil-bench/``), then times, alternately ``--rounds``
times, ``verify_tenant`` (the ledger check, with ``--workers`` processes: 1 compares one core with one core)
and ``check_indexes`` on the same tenant (one process: it streams columns, target rows, the full-text index and
the time blocks), and prints µs per event of each and their ratio (medians).
"""

from __future__ import annotations

import argparse
import statistics
import time

from verify import database, settings_for

from vigil.ledger.checkpoints import load_signer
from vigil.ledger.integrity import verify_tenant
from vigil.store.indexcheck import check_indexes
from vigil.store.sqlite import SQLiteStore


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events of tenant acme (default 200,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="ledger check processes (default 1)")
    args = parser.parse_args()
    path = database(args.events, args.seed)
    settings = settings_for(path)
    store = SQLiteStore(str(path), settings)
    try:
        tenant = store.get_tenant("acme")
        vkey = load_signer(settings, create=False).vkey
        size = store.tree_size(tenant.id)
        ledger, index = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            verify_tenant(store, tenant, vkey, workers=args.workers)
            ledger.append((time.perf_counter() - started) / size * 1e6)
            started = time.perf_counter()
            report = check_indexes(store, [tenant], every=False)
            index.append((time.perf_counter() - started) / size * 1e6)
            if not report.ok:
                raise SystemExit(f"the index check failed on an untouched database: {report.shown[0]}")
    finally:
        store.close()
    lm, im = statistics.median(ledger), statistics.median(index)
    print(f"{size:,} events, {args.rounds} rounds, ledger check with {args.workers} process(es)")
    print(f"ledger check  {lm:8.2f} µs/event  ({1e6 / lm:12,.0f} events/s)")
    print(f"index check   {im:8.2f} µs/event  ({1e6 / im:12,.0f} events/s)")
    print(f"ratio index / ledger: {im / lm:.1f}")


if __name__ == "__main__":
    main()
