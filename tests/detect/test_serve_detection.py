"""Detection inside a real `vigil serve` process: an attack posted over HTTP becomes an alert, and a server
killed (SIGKILL) in the middle of an attack still raises it exactly once after the restart."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from vigil.settings import Settings
from vigil.store import open_store
from vigil.testing import ServerProcess, cli_json, tenant_with_key

pytestmark = pytest.mark.slow


def _failures(n: int, account: str = "usr_victim") -> list[dict[str, Any]]:
    return [
        {
            "action": "user.login",
            "outcome": "failure",
            "actor": {"id": account},
            "context": {"ip": "198.51.100.5"},
        }
        for _ in range(n)
    ]


def _alerts(server: ServerProcess, key: str, want: int, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(server.url + "/v1/alerts", headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()["data"]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_an_attack_survives_a_sigkill_of_the_server(settings: Settings) -> None:
    """6 failures, SIGKILL, restart, 5 failures: one brute-force alert, holding all ten that made it fire."""
    db = settings.database
    _, ingest = tenant_with_key(db, "acme", "ingest")
    security = str(
        cli_json("keys", "create", "--tenant", "acme", "--scope", "security", "--database", db)["key"]
    )
    key = ["--signing-key", settings.signing_key] if settings.signing_key else []
    server = ServerProcess(db, extra=["--checkpoint-interval", "0", *key]).start()
    try:
        r = httpx.post(
            server.url + "/v1/events", json=_failures(6), headers={"Authorization": f"Bearer {ingest}"}
        )
        assert r.status_code == 200
        first = [x["id"] for x in r.json()["results"]]
        time.sleep(0.5)  # let the engine process them: the restart must rebuild its window from the log
        assert _alerts(server, security, 1, timeout=0) == []
        server.kill()
        store = open_store(db, settings)
        try:  # the six were processed before the kill: after the restart only the replay remembers them
            assert store.detect_cursor(store.get_tenant("acme").id) == 6
        finally:
            store.close()
        server.start()
        r = httpx.post(
            server.url + "/v1/events", json=_failures(5), headers={"Authorization": f"Bearer {ingest}"}
        )
        second = [x["id"] for x in r.json()["results"]]
        (alert,) = _alerts(server, security, 1)
        assert alert["rule"] == "vigil.brute_force" and alert["hits"] == 1
        assert [e["id"] for e in alert["evidence"]] == first + second[:4]
        server.stop()
        server.start()  # and a clean restart raises nothing new
        time.sleep(1.0)
        assert len(_alerts(server, security, 2, timeout=1)) == 1
    finally:
        server.stop()
