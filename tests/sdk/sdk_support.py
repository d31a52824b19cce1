"""Helpers of the SDK tests: a scripted stand-in for the ingest route on loopback, and reading a real server's log.

The stand-in is a real HTTP server (``http.server`` in a thread): the client under test talks HTTP to it exactly
as to Vigil, and the test reads back the exact bytes it received. Tests that need Vigil's own behaviour
(dedup, validation, storage) use the real server (``vigil.testing.ServerProcess``) instead.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from vigil.testing import HOST


@dataclass
class Tenant:
    """A tenant of the session's real server (the ``tenant`` fixture), with a key that can ingest and read."""

    url: str
    key: str
    slug: str


@dataclass
class Received:
    """One request the stand-in received."""

    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body))

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


# an answer: (status, headers, JSON body); a body of None means "Vigil's answer: stored, or duplicate"
Answer = tuple[int, dict[str, str], Any]
Script = Callable[[int, list[dict[str, Any]]], Answer | None]


@dataclass
class FakeVigil:
    """``POST /v1/events`` on loopback: answers by ``script`` (request number, events) and records every request.

    When the script returns None (or there is none), it answers as Vigil does: ``stored`` for a new id,
    ``duplicate`` with the original seq for one it has seen. ``hold`` blocks answers while it is clear.
    """

    script: Script | None = None
    received: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    seqs: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.hold.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one write per answer: headers and body in separate packets meet delayed ACKs

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":  # as the real server does
                    body = gzip.decompress(body)
                status, headers, answer = fake.answer(dict(self.headers.items()), body)
                out = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def answer(self, headers: dict[str, str], body: bytes) -> Answer:
        with self.lock:
            n = len(self.received)
            self.received.append(Received(time.monotonic(), headers, body))
        self.hold.wait(30)
        events = json.loads(body)
        scripted = self.script(n, events) if self.script else None
        return scripted if scripted is not None else (200, {}, self.vigil_answer(events))

    def vigil_answer(self, events: list[dict[str, Any]], rejected: frozenset[int] = frozenset()) -> Any:
        """Vigil's answer: stored or duplicate per id, and ``rejected`` for the indexes given."""
        results: list[dict[str, Any]] = []
        with self.lock:
            for i, ev in enumerate(events):
                if i in rejected:
                    err = [{"field": "action", "message": "not allowed here"}]
                    results.append({"index": i, "status": "rejected", "id": ev["id"], "errors": err})
                    continue
                seq = self.seqs.get(ev["id"])
                status = "duplicate" if seq is not None else "stored"
                if seq is None:
                    seq = self.seqs[ev["id"]] = len(self.seqs)
                results.append({"index": i, "status": status, "id": ev["id"], "seq": seq, "leaf_hash": "00"})
        bad = len(rejected & set(range(len(events))))
        return {"accepted": len(events) - bad, "rejected": bad, "results": results}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}"

    @property
    def ids(self) -> list[str]:
        """Every event id received, in order, resends included."""
        return [i for r in list(self.received) for i in r.ids]

    def __enter__(self) -> FakeVigil:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def server_ids(url: str, key: str) -> list[str]:
    """Every event id in the key's tenant log, in log order, read through all pages of the search API."""
    ids: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"order": "seq", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/events", params=params)
            page.raise_for_status()
            body = page.json()
            ids.extend(e["id"] for e in body["data"])
            cursor = body["next_cursor"]
            if not cursor:
                return ids


def assert_exactly_once(recorded: list[str], on_server: list[str]) -> None:
    """Every recorded id is on the server, and no id is there twice."""
    twice = {i for i, n in Counter(on_server).items() if n > 1}
    assert not twice, f"{len(twice)} ids stored more than once, e.g. {sorted(twice)[:3]}"
    missing = set(recorded) - set(on_server)
    assert not missing, f"{len(missing)} of {len(recorded)} recorded events never reached the server"
