"""Latency from an event's commit to its alert's commit, in embedded mode (one ``vigil serve`` on SQLite).

    python bench/alert_latency.py [--rate 1000] [--seconds 30] [--attacks-per-second 2]

Starts a real ``vigil serve`` (SQLite, synchronous FULL, detection on, as shipped) and sends it ``--rate``
events per second for ``--seconds`` seconds in batches of 50, from one client paced by the clock: benign
traffic (the demo generator's events for one tenant) with, ``--attacks-per-second`` times a second, a batch
that also holds ten failed sign-ins to a fresh account, which makes the brute-force rule fire.

For every attack it notes when the POST went out and when its answer came back: the answer comes only after the
events are committed, so the commit lies between the two. The alert's own commit time is its ``created_at``
(the server's clock, this machine's clock). Printed: p50, p95, p99 and max of alert commit minus the answer
(how long detection took after the commit was acknowledged) and of alert commit minus the send (an upper bound
that includes intake and the commit itself). Goal: p99 under 1 s at 1,000 events/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from vigil.demo import generate
from vigil.ids import uuid7_text
from vigil.testing import ServerProcess, cli_json, tenant_with_key


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000, help="events per second sent (default 1000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to send (default 30)")
    ap.add_argument("--attacks-per-second", type=float, default=2.0, help="brute-force bursts per second")
    args = ap.parse_args()

    batch = 50
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-latency-"))
    db = str(workdir / "latency.db")
    _, ingest = tenant_with_key(db, "acme", "ingest")
    security = str(
        cli_json("keys", "create", "--tenant", "acme", "--scope", "security", "--database", db)["key"]
    )
    total = int(args.rate * args.seconds)
    benign, _ = generate("acme", total + 1000, days=1, seed=3)
    benign = [e for e in benign if e["action"] != "user.login"][
        :total
    ]  # keep sign-in failures to the attacks
    server = ServerProcess(db, extra=["--checkpoint-interval", "0"]).start()
    print(
        f"vigil serve on {server.url}, SQLite FULL, detection on; {args.rate} events/s for {args.seconds:.0f} s"
    )
    sent_at: dict[str, tuple[float, float]] = {}
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ingest}"}, timeout=30
        ) as client:
            start = time.time()
            interval = batch / args.rate
            attack_every = max(1, round(args.rate / batch / args.attacks_per_second))
            sent = 0
            for n, i in enumerate(range(0, len(benign), batch)):
                due = start + n * interval
                if (wait := due - time.time()) > 0:
                    time.sleep(wait)
                events = [{**e, "id": uuid7_text()} for e in benign[i : i + batch]]
                account = None
                if n % attack_every == attack_every - 1:
                    account = f"usr_bench_{n:06d}"
                    failures = [
                        {
                            "action": "user.login",
                            "outcome": "failure",
                            "category": "audit",
                            "actor": {"id": account, "type": "user"},
                            "context": {"ip": "198.51.100.9"},
                        }
                        for _ in range(10)
                    ]
                    events = events[: batch - 10] + failures
                t0 = time.time()
                r = client.post("/v1/events", json=events)
                t1 = time.time()
                r.raise_for_status()
                sent += len(events)
                if account is not None:
                    sent_at[account] = (t0, t1)
            elapsed = time.time() - start
        print(
            f"sent {sent:,} events in {elapsed:.1f} s: {sent / elapsed:,.0f} events/s; {len(sent_at)} attacks"
        )
        alerts: dict[str, float] = {}
        deadline = time.time() + 30
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {security}"}) as reader:
            while len(alerts) < len(sent_at) and time.time() < deadline:
                page = reader.get("/v1/alerts", params={"rule": "vigil.brute_force", "limit": 1000}).json()
                for a in page["alerts"]:
                    created = datetime.fromisoformat(a["created_at"]).timestamp()
                    alerts[a["group"]["account"]] = created
                time.sleep(0.2)
    finally:
        server.stop()
    missing = sorted(set(sent_at) - set(alerts))
    if missing:
        print(f"MISSING: {len(missing)} attacks raised no alert: {missing[:5]}", file=sys.stderr)
    after_ack = [alerts[a] - sent_at[a][1] for a in alerts if a in sent_at]
    after_send = [alerts[a] - sent_at[a][0] for a in alerts if a in sent_at]
    for name, values in (
        ("alert commit - ingest answer", after_ack),
        ("alert commit - ingest sent", after_send),
    ):
        ms = [v * 1000 for v in values]
        print(
            f"{name:<30} p50 {statistics.median(ms):7.1f} ms   p95 {_pct(ms, 0.95):7.1f} ms   "
            f"p99 {_pct(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms   (n={len(ms)}; goal p99 < 1000 ms)"
        )


if __name__ == "__main__":
    main()
