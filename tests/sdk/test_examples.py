"""The examples run as their docstrings say (``python examples/...``, reading VIGIL_URL and VIGIL_API_KEY), serve
on loopback, and their audited requests reach a real Vigil server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sdk_support import Tenant
from test_asgi import EXAMPLES, server_events

from vigil.testing import HOST, free_port

COMMANDS = {
    "fastapi": ["fastapi_app.py"],
    "flask": ["flask_app.py"],
    "django": ["django_app/manage.py", "runserver", "{host}:{port}", "--noreload"],
}
CREATE = {"fastapi": "/projects", "flask": "/projects", "django": "/projects/"}
ACTION = {"fastapi": "project.created", "flask": "projects.create", "django": "projects.create"}


def _wait_for_events(tenant: Tenant, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = server_events(tenant)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_example_runs_and_its_requests_reach_vigil(name: str, tenant: Tenant, tmp_path: Path) -> None:
    """Start the example on a free loopback port with VIGIL_URL/VIGIL_API_KEY, sign in as Ada, create a
    project: the server gets the event (and, for FastAPI, the row's change event), and the example stops on
    SIGINT."""
    port = free_port()
    script, *args = COMMANDS[name]
    command = [sys.executable, str(EXAMPLES / script), *(a.format(host=HOST, port=port) for a in args)]
    env = {**os.environ, "VIGIL_URL": tenant.url, "VIGIL_API_KEY": tenant.key, "PORT": str(port)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "example.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the example exited early:\n{log.read_text()}"
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the example did not answer:\n{log.read_text()}"
            time.sleep(0.1)
        r = httpx.post(url + CREATE[name], json={"name": "Apollo"}, headers={"Authorization": "Bearer ada"})
        assert r.status_code == 201, r.text
        expected = 2 if name == "fastapi" else 1
        events = _wait_for_events(tenant, expected, timeout=15)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert [e["action"] for e in events if e["category"] == "activity"] == [ACTION[name]], log.read_text()
    assert all(e["actor"]["id"] == "usr_ada" for e in events)
    if name == "fastapi":
        [change] = [e for e in events if e["category"] == "change"]
        assert change["action"] == "projects.created"
        assert change["changes"]["name"] == [None, "Apollo"]
