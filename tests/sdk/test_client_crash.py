"""An app killed with SIGKILL while its server is unreachable loses nothing it flushed: a new client on the
same spool directory delivers every event, once."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sdk_support import Tenant, assert_exactly_once, server_ids, wait_for

from vigil.sdk import Client
from vigil.testing import HOST, free_port

pytestmark = pytest.mark.slow

N = 2000

# The app: records N events for a server nobody runs, flushes (which returns once they are spooled), says so,
# then goes on recording (and spooling) until it is killed in the middle of it.
APP = textwrap.dedent(
    """
    import json, sys, time
    from vigil.sdk import Client

    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(url, "vk_nobody_listens", spool, batch_size=50, flush_interval=0.05, max_backoff=0.2)
    ids = [client.record(action="invoice.sent", actor_id=f"usr_{i % 7}", metadata={"i": i}) for i in range(n)]
    flushed = client.flush(60)
    print(json.dumps({"flushed": flushed, "ids": ids, "stats": client.stats.spooled}), flush=True)
    i = 0
    while True:
        client.record(action="user.login", actor_id="usr_after", metadata={"after": i})
        i += 1
        if i % 20 == 0:
            time.sleep(0.001)
    """
)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the app said nothing within {timeout} s")
    return proc.stdout.readline()


def test_events_flushed_before_a_sigkill_all_arrive_once(tmp_path: Path, tenant: Tenant) -> None:
    """SIGKILL an app after flush() spooled its N events (and while it keeps spooling more); a new client on
    its spool directory, now with a server, delivers all N, each exactly once, and nothing twice."""
    spool = tmp_path / "spool"
    app = subprocess.Popen(
        [sys.executable, "-c", APP, f"http://{HOST}:{free_port()}", str(spool), str(N)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        said = json.loads(_read_line(app, 60))
        time.sleep(0.5)  # let it spool more, so the kill lands in the middle of that
    finally:
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
    assert app.returncode == -signal.SIGKILL
    assert said["flushed"] is True
    assert said["stats"] >= N
    flushed: list[str] = said["ids"]
    assert len(set(flushed)) == N
    assert list(spool.glob("*.spool"))

    client = Client(tenant.url, tenant.key, spool, flush_interval=0.05)  # the dead app's lock went with it
    try:

        def delivered() -> bool:
            return client.stats.queued == 0 and not list(spool.glob("*.spool"))

        try:
            wait_for(delivered, 120, "the spool's replay")
        except AssertionError as exc:  # say where it stood: counters and what is left on disk
            left = {p.name: p.stat().st_size for p in spool.iterdir()}
            raise AssertionError(f"{exc}; stats {client.stats}; spool {left}") from None
        stats = client.stats
    finally:
        assert client.close(30)
    on_server = server_ids(tenant.url, tenant.key)

    assert_exactly_once(flushed, on_server)
    assert stats.replayed == len(on_server) + stats.duplicates
    assert stats.stored == len(on_server)
    assert stats.rejected == stats.dead_lettered == stats.dropped == 0
    extra = set(on_server) - set(flushed)
    assert len(extra) == len(on_server) - N  # events recorded after the flush: those spooled arrive, once
