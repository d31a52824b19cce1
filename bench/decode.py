"""The intake decoder alone: CPU per event of ``prepare_batch`` on realistic bodies, against msgspec's typed decode
of the same bytes (the fastest a reader of these events can be) measured in the same run.

    python bench/decode.py [--events 1000] [--rounds 30]

Prints, per body kind (a JSON array, the same events as NDJSON), the best of ``--rounds`` runs in thread CPU time
(so other work on the machine does not count), per event: msgspec's typed decode (the baseline), the strict reader
(``decode_body``: UTF-8, duplicate keys, number range, NUL and surrogates), and the whole of ``prepare_batch``
(read, validate, redact, canonicalise, hash); and the ratio baseline / prepare_batch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import msgspec
from _common import make_events

from vigil.ingest.decode import decode_body
from vigil.ingest.intake import prepare_batch
from vigil.model import EventIn


def _best(fn: Callable[[], object], rounds: int, n: int) -> float:
    """Best thread-CPU time of ``fn`` over ``rounds`` runs, in µs per event."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1000, help="events per body (at most 1000)")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    events, source = make_events("acme", args.events)
    n = len(events)
    bodies = {
        "application/json": msgspec.json.encode(events),
        "application/x-ndjson": b"\n".join(msgspec.json.encode(e) for e in events),
    }
    typed = msgspec.json.Decoder(list[EventIn])
    lines = msgspec.json.Decoder(EventIn)
    print(f"{n} events from {source}, {len(bodies['application/json']) / n:.0f} JSON bytes/event")
    for kind, body in bodies.items():
        if kind == "application/json":
            baseline = _best(lambda b=body: typed.decode(b), args.rounds, n)  # type: ignore[misc]
        else:
            baseline = _best(
                lambda b=body: [lines.decode(x) for x in b.split(b"\n")],  # type: ignore[misc]
                args.rounds,
                n,
            )
        reader = _best(lambda b=body, k=kind: decode_body(b, k), args.rounds, n)  # type: ignore[misc]
        whole = _best(
            lambda b=body, k=kind: prepare_batch(b, k, "acme", 1_700_000_000_000_000),  # type: ignore[misc]
            args.rounds,
            n,
        )
        print(
            f"{kind:22} msgspec typed decode {baseline:5.2f} µs/event | strict reader {reader:5.2f} | "
            f"prepare_batch {whole:5.2f} | ratio baseline/prepare_batch {baseline / whole:.2f}"
        )


if __name__ == "__main__":
    main()
