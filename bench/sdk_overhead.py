"""Latency that ``vigil.sdk.asgi.VigilMiddleware`` adds to an audited request of a FastAPI app.

    python bench/sdk_overhead.py [--requests 20000] [--sqlite-requests 2000] [--journal DELETE]

Three FastAPI apps, alike but for auditing, each with the same route (``POST /projects/{project_id}/members``,
an async handler that validates a small JSON body with pydantic) behind the same stub authentication middleware
(Starlette's ``AuthenticationMiddleware``, a bearer token mapped to a user):

- *plain*: no auditing;
- *vigil*: ``VigilMiddleware`` with a real :class:`vigil.sdk.Client` whose worker sends to a real ``vigil serve``
  child process during the run (so the worker competes for the GIL as in an app), the actor from
  ``scope["user"]``, one allow-listed body field;
- *sqlite*: for reference, the django-auditlog pattern: an ASGI middleware that writes the audit row to the
  app's own SQLite file with ``sqlite3`` and commits it before the response starts, as a model save in the
  view would (SQLite's and Django's defaults: ``journal_mode=DELETE``, ``synchronous=FULL``; ``--journal WAL``
  to compare).

Each request is one direct call of the ASGI app with a fresh minimal scope and ``receive``/``send`` callables
(no HTTP client, no server), timed alone with ``time.perf_counter_ns`` on one event loop: until the last body
message is sent (what the client waits for: a server writes the bytes then) and until the call returns (the
server's time, which includes ``record``: ``VigilMiddleware`` records after the response is sent). The apps take
turns by blocks of 500 requests so that all meet the same machine; each is warmed up with 500 untimed requests
first. It prints p50 and p99 per request of each, the overhead (the difference of the percentiles) of the two
audited ones over *plain*, and the ratio of their p50 overheads. Goal: p50 overhead of *vigil*, whole call,
under 50 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Server, create_tenant_and_key

from vigil.sdk import Client
from vigil.sdk.asgi import VigilMiddleware

try:
    from fastapi import FastAPI
    from pydantic import BaseModel
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection
except ImportError:
    sys.exit("this benchmark needs FastAPI: pip install -e '.[examples]'")

BLOCK = 500
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class NewMember(BaseModel):
    user_id: str
    role: str = "viewer"


class Tokens(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        token = conn.headers.get("authorization", "").removeprefix("Bearer ")
        return (AuthCredentials(["authenticated"]), SimpleUser(token)) if token else None


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/projects/{project_id}/members", status_code=201)
    async def add_member(project_id: int, body: NewMember) -> dict[str, Any]:
        return {"project_id": project_id, "user_id": body.user_id, "role": body.role}

    app.add_middleware(AuthenticationMiddleware, backend=Tokens())
    return app


class SQLiteAudit:
    """The reference: write the audit row to the app's own SQLite file, committed before the request ends."""

    def __init__(self, app: App, path: Path, journal: str) -> None:
        self.app = app
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA journal_mode={journal}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS audit_log (id INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT,"
            " method TEXT, path TEXT, status INTEGER, ip TEXT, user_agent TEXT, changes TEXT)"
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_after_audit(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.write(scope, message["status"])  # as a model save in the view would: before the answer
            await send(message)

        await self.app(scope, receive, send_after_audit)

    def write(self, scope: dict[str, Any], status: int) -> None:
        user = scope.get("user")
        headers = dict(scope["headers"])
        with self.db:  # one transaction, committed (and, with synchronous=FULL, fsynced)
            self.db.execute(
                "INSERT INTO audit_log (at, actor, action, method, path, status, ip, user_agent, changes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now(UTC).isoformat(),
                    getattr(user, "username", None),
                    "projects.members.create",
                    scope["method"],
                    scope["path"],
                    status,
                    scope["client"][0],
                    headers.get(b"user-agent", b"").decode(),
                    json.dumps({"role": [None, "editor"]}),
                ),
            )


HEADERS = [
    (b"host", b"app.example"),
    (b"authorization", b"Bearer usr_42"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"Mozilla/5.0 (bench)"),
    (b"x-request-id", b"req-0001"),
]
BODY = b'{"user_id": "usr_7", "role": "editor"}'


async def request(app: App) -> tuple[int, int]:
    """One request through ``app``: nanoseconds until its response was sent, and until the call returned."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/projects/42/members",
        "raw_path": b"/projects/42/members",
        "root_path": "",
        "query_string": b"",
        "headers": list(HEADERS),
        "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8000),
    }
    done = False
    status = 0
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            await asyncio.sleep(3600)  # as a server does: nothing more until the client goes away
        done = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, sent
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            sent = time.perf_counter_ns()  # a server writes the last bytes to the socket here

    t = time.perf_counter_ns()
    await app(scope, receive, send)
    returned = time.perf_counter_ns()
    if status != 201:
        raise RuntimeError(f"the app answered {status}")
    return sent - t, returned - t


def summary(ns: list[int]) -> dict[str, float]:
    q = statistics.quantiles(ns, n=100, method="inclusive")
    return {"p50": q[49] / 1000, "p99": q[98] / 1000, "mean": statistics.fmean(ns) / 1000}


async def run(apps: dict[str, App], counts: dict[str, int]) -> dict[str, list[tuple[int, int]]]:
    for app in apps.values():
        for _ in range(BLOCK):
            await request(app)
    gc.collect()
    times: dict[str, list[tuple[int, int]]] = {name: [] for name in apps}
    while any(len(times[n]) < counts[n] for n in apps):
        for name, app in apps.items():
            share = max(1, BLOCK * counts[name] // max(counts.values()))
            for _ in range(min(share, counts[name] - len(times[name]))):
                times[name].append(await request(app))
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20_000, help="timed requests of plain and vigil, each")
    ap.add_argument(
        "--sqlite-requests", type=int, default=2_000, help="timed requests of the sqlite reference"
    )
    ap.add_argument("--journal", default="DELETE", help="journal_mode of the reference's SQLite file")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-overhead-"))
    database = str(workdir / "vigil.sqlite")
    try:
        with Server(database) as server:
            _, key = create_tenant_and_key(database, "acme")
            client = Client(server.url, key)
            try:
                plain = make_app()
                vigil = make_app()
                vigil.add_middleware(
                    VigilMiddleware,
                    client=client,
                    body_fields={"POST /projects/{project_id}/members": ["role"]},
                )
                reference = SQLiteAudit(make_app(), workdir / "app.sqlite", args.journal)
                apps: dict[str, App] = {"plain": plain, "vigil": vigil, "sqlite": reference}
                counts = {"plain": args.requests, "vigil": args.requests, "sqlite": args.sqlite_requests}
                print(
                    f"[requests] plain and vigil {args.requests:,} each, sqlite {args.sqlite_requests:,}, "
                    f"in turns ...",
                    flush=True,
                )
                t = time.perf_counter()
                times = asyncio.run(run(apps, counts))
                loop_s = time.perf_counter() - t
                flushed = client.flush(120)
                stats = client.stats
            finally:
                client.close(30)
    except RuntimeError as exc:  # the CLI or the server failed; its message says why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    labels = {
        "plain": "FastAPI app, no audit",
        "vigil": "+ VigilMiddleware (record)",
        "sqlite": f"+ SQLite audit row ({args.journal})",
    }
    print()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()}")
    over: dict[str, dict[str, float]] = {}
    for which, title in ((1, "the whole call (the server's time)"), (0, "until the response is sent")):
        s = {name: summary([t[which] for t in ns]) for name, ns in times.items()}
        print(f"\nper request, {title}")
        print(f"{'':34} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9}")
        for name, label in labels.items():
            print(f"{label:34} {s[name]['p50']:9.1f} {s[name]['p99']:9.1f} {s[name]['mean']:9.1f}")
        print(f"{'overhead over the plain app':34} {'p50 µs':>9} {'p99 µs':>9}")
        for name in ("vigil", "sqlite"):
            diff = {k: s[name][k] - s["plain"][k] for k in ("p50", "p99")}
            print(f"{labels[name]:34} {diff['p50']:9.1f} {diff['p99']:9.1f}")
            over.setdefault(name, diff)  # the whole call's, for the ratio and the goal
    ratio = over["sqlite"]["p50"] / over["vigil"]["p50"] if over["vigil"]["p50"] > 0 else float("inf")
    print(f"\nratio of the p50 overheads (whole call), sqlite / vigil: {ratio:.1f}")
    goal = "met" if over["vigil"]["p50"] < 50 else "NOT met"
    print(f"goal, p50 overhead of the whole call < 50 µs: {goal}")
    print(
        f"worker: {stats.stored:,} events stored, {stats.dropped} dropped, {stats.retries} retries; "
        f"the timed loop took {loop_s:.1f} s (flush: {flushed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
