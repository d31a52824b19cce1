"""The server goes away for 30 seconds while the app keeps recording: the client spools, the server comes
back on the same database, and every recorded event is in the log exactly once."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from unittest import mock

import httpx
import pytest
from sdk_support import assert_exactly_once, server_ids, wait_for

from vigil.sdk import Client
from vigil.testing import HOST, ServerProcess, free_port, tenant_with_key

pytestmark = pytest.mark.slow

OUTAGE_S = 30.0
RATE = 150  # events per second the app records, all along


class FixedPortServer(ServerProcess):
    """A ServerProcess that always binds the same port, so a restarted server is where the client points."""

    def __init__(self, database: str, port: int) -> None:
        super().__init__(database)
        self.fixed_port = port

    def _spawn(self, timeout: float) -> bool:
        with mock.patch("vigil.testing.free_port", return_value=self.fixed_port):
            return super()._spawn(timeout)


class App(threading.Thread):
    """Records events at a steady rate until stopped; keeps each id with the time it was recorded."""

    def __init__(self, client: Client) -> None:
        super().__init__(name="app")
        self.client = client
        self.recorded: list[tuple[float, str]] = []
        self.slowest = 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        start = time.monotonic()
        while not self.stopping.is_set():
            t = time.monotonic()
            eid = self.client.record(
                action="document.updated",
                actor_id=f"usr_{i % 17}",
                targets=[{"type": "document", "id": f"doc_{i % 101}"}],
                metadata={"i": i, "token": "not-for-the-log"},
            )
            self.slowest = max(self.slowest, time.monotonic() - t)
            self.recorded.append((time.time(), eid))
            i += 1
            pause = start + i / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def test_an_outage_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    """Record through a 30 s outage (SIGTERM, then a restart on the same database): the client spools while
    the server is away and replays after; the log then holds every recorded event, each once.

    SQLite only, unlike the other SDK tests: the store's part here (a server restarted on the same database,
    replays answered ``duplicate``) runs on PostgreSQL in tests/test_crash.py and in the spool and crash tests
    of this folder, and a PostgreSQL copy would add another 40 s of mostly waiting."""
    database = str(tmp_path / "vigil.db")
    port = free_port()
    server = FixedPortServer(database, port).start()
    _, key = tenant_with_key(database, "acme")
    client = Client(
        f"http://{HOST}:{port}",
        key,
        tmp_path / "spool",
        batch_size=50,
        flush_interval=0.2,
        max_backoff=2.0,
        timeout=5.0,
    )
    app = App(client)
    try:
        app.start()
        time.sleep(3)
        before = client.stats
        assert before.stored > 0 and before.spooled == 0

        server.stop()
        server.remove_log()  # start() makes a new one
        down_from = time.time()
        time.sleep(OUTAGE_S)
        during = client.stats
        up_from = time.time()
        server.start()

        time.sleep(5)
        app.stopping.set()
        app.join()
        assert client.flush(60)
        n = len(app.recorded)
        spool = tmp_path / "spool"

        def delivered() -> bool:
            s = client.stats
            return s.queued == 0 and s.stored + s.duplicates >= n and not list(spool.glob("*.spool"))

        wait_for(delivered, 90, "the spool's replay")
        assert client.close(30)
        stats = client.stats
    finally:
        app.stopping.set()
        client.close(5)
        server.close()

    with ServerProcess(database) as reader:
        on_server = server_ids(reader.url, key)
        recorded = [eid for _, eid in app.recorded]
        assert_exactly_once(recorded, on_server)
        assert len(on_server) == len(recorded)
        # an event recorded during the outage keeps the time it happened, not the time it was delivered
        mid = next(eid for t, eid in app.recorded if t > down_from + OUTAGE_S / 2)
        got = httpx.get(f"{reader.url}/v1/events/{mid}", headers={"Authorization": f"Bearer {key}"}).json()
        occurred = datetime.fromisoformat(got["occurred_at"]).timestamp()
        received = datetime.fromisoformat(got["received_at"]).timestamp()
        assert down_from < occurred < up_from < received
        assert got["metadata"]["token"] == "[REDACTED:secret]"

    assert during.spooled > RATE * OUTAGE_S * 0.8  # nearly everything of the outage went to disk
    assert during.retries > 0 and during.dropped == 0
    assert stats.dropped == 0 and stats.rejected == 0 and stats.dead_lettered == 0
    assert stats.stored + stats.duplicates >= len(recorded)
    # record() never waited for the network: that would show as the request timeout (5 s) or more; the bound
    # is loose because a busy machine stalls threads too
    assert app.slowest < 2.0
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["spool.lock"]
