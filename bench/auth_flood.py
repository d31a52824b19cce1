"""A stranger with bad keys must not grow the server: 200,000 requests with random bogus keys through the
in-process ASGI app, with the resident memory (RSS) before and after.

Phases, on one app over a SQLite file (rate limit off, detection and the checkpoint schedule off):

1. warm-up: 5,000 valid-key and 5,000 bogus-key requests, so the allocator and every code path are warm;
2. *baseline*: N requests with one valid key (``GET /v1/checkpoints/latest``, 200): RSS growth of normal use;
3. N requests with random bogus keys, each from a random IPv4 source address (every one a store lookup, and
   the failure throttle's table kept full): the worst case for the caches;
4. N requests with random bogus keys from one address: the throttle answers 429 after ``auth_failure_limit``.

Goal: phases 3 and 4 each leave RSS within 10 MB of where they started. Before the caches were bounded the
key ring kept every unknown key id, about 190 bytes a request.

    python bench/auth_flood.py                 # N = 200,000
    python bench/auth_flood.py --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from _common import make_events

from vigil.auth import create_key
from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.checkpoints import load_signer, make_checkpoint
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import open_store
from vigil.web import create_app

PATH = "/v1/checkpoints/latest"
GOAL_MB = 10.0


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class Driver:
    """Calls the ASGI app directly, one request at a time, counting answer statuses."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: Counter[int] = Counter()

    async def get(self, authorization: str, client: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"bench"), (b"authorization", authorization.encode())],
            "client": (client, 40000),
            "server": ("bench", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1

        await self.app(scope, receive, send)


def bogus() -> str:
    return f"Bearer vk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def random_ipv4(rng: random.Random) -> str:
    n = rng.getrandbits(32)
    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


async def phase(name: str, driver: Driver, n: int, request: Any) -> dict[str, float]:
    driver.statuses.clear()
    before = rss_mb()
    started = time.perf_counter()
    first = before
    for i in range(n):
        auth_header, client = request(i)
        await driver.get(auth_header, client)
        if i + 1 == n // 10:
            first = rss_mb()
    seconds = time.perf_counter() - started
    after = rss_mb()
    answers = ", ".join(f"{s}: {c:,}" for s, c in sorted(driver.statuses.items()))
    print(
        f"{name:<34} {n:>8,} req {n / seconds:>8,.0f} req/s  RSS {before:7.1f} -> {after:7.1f} MB "
        f"({after - before:+6.1f}; first tenth {first - before:+5.1f})  [{answers}]"
    )
    return {"growth": after - before, "first": first - before}


async def run(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vigil-auth-flood-"))
    settings = Settings.load(
        {
            "database": str(tmp / "v.db"),
            "signing_key": str(tmp / "signing-key"),
            "sqlite_synchronous": "NORMAL",
            "rate_limit": 0,
            "detect": False,
            "checkpoint_interval": 0,
        },
        environ={},
    )
    store = open_store(settings.database, settings)
    tenant = store.create_tenant("acme")
    _, key = create_key(store, tenant, frozenset({"read"}), "bench")
    raw, _ = make_events("acme", 1)
    prepared = prepare_event(msgspec.convert(raw[0], EventIn), "acme", time.time_ns() // 1000)
    if not isinstance(prepared, Prepared):
        raise SystemExit(f"bench event rejected: {prepared.errors}")
    store.append(tenant.id, [prepared])
    make_checkpoint(store, load_signer(settings), tenant)
    app = create_app(settings, store)
    driver = Driver(app)
    rng = random.Random(7)
    valid = f"Bearer {key}"
    print(f"vigil auth flood: {n:,} requests a phase, GET {PATH}, in-process ASGI, SQLite\n")
    try:
        async with app.lifespan():
            await phase("warm-up: valid key", driver, 5_000, lambda i: (valid, "192.0.2.1"))
            await phase(
                "warm-up: bogus keys, many sources", driver, 5_000, lambda i: (bogus(), random_ipv4(rng))
            )
            base = await phase("baseline: one valid key", driver, n, lambda i: (valid, "192.0.2.1"))
            many = await phase("bogus keys, random sources", driver, n, lambda i: (bogus(), random_ipv4(rng)))
            one = await phase("bogus keys, one source", driver, n, lambda i: (bogus(), "198.51.100.9"))
            ring = app.state["vigil"].keyring
            print(
                f"\nafter: key cache {len(ring):,} entries, throttle table {len(ring.throttle or ()):,} sources"
            )
    finally:
        store.close()
    floor = max(
        base["growth"], 1.0
    )  # growth near zero would make a ratio of noise: floor the baseline at 1 MB
    for label, res in (("random sources", many), ("one source", one)):
        verdict = "goal met" if res["growth"] <= GOAL_MB else "GOAL MISSED"
        print(
            f"{label:<15} RSS growth {res['growth']:+6.1f} MB vs baseline {base['growth']:+6.1f} MB: "
            f"ratio {res['growth'] / floor:5.2f} (goal: within {GOAL_MB:g} MB: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200_000, help="requests per phase (default 200,000)")
    args = parser.parse_args()
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
