"""A real ``vigil serve`` child process for tests that need one (crash and restart), plus the CLI calls that
prepare its database. ``bench/_common.py`` has the same helpers for the benchmarks, which are scripts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vigil(*args: str) -> list[str]:
    """The ``vigil`` CLI of this interpreter."""
    return [sys.executable, "-m", "vigil.cli", *args]


def cli_json(*args: str) -> Any:
    """Run ``vigil ARGS --json``; its parsed output, or an error with its stderr."""
    proc = subprocess.run(vigil(*args, "--json"), capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"vigil {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def tenant_with_key(database: str, slug: str, scopes: str = "ingest,read") -> tuple[int, str]:
    """Create tenant ``slug`` and a key for it; (tenant id, key text)."""
    tenant = cli_json("tenants", "create", slug, "--database", database)
    key = cli_json("keys", "create", "--tenant", slug, "--scope", scopes, "--database", database)
    return int(tenant["id"]), str(key["key"])


class Server:
    """``vigil serve`` on a free loopback port; ``start`` waits for ``/healthz``, ``stop`` is SIGTERM then
    SIGKILL, ``kill`` is SIGKILL at once. Its output goes to a temp file, shown by ``output``."""

    def __init__(self, database: str, *, synchronous: str = "FULL", rate_limit: int = 0) -> None:
        self.database = database
        self.synchronous = synchronous
        self.rate_limit = rate_limit
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="vigil-serve-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        for _ in range(3):  # the free port may be taken between our probe and uvicorn's bind
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    vigil(
                        "serve",
                        "--database",
                        self.database,
                        "--host",
                        HOST,
                        "--port",
                        str(self.port),
                        "--rate-limit",
                        str(self.rate_limit),
                        "--sqlite-synchronous",
                        self.synchronous,
                        "--log-level",
                        "warning",
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self.proc = None
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                        return self
                time.sleep(0.05)
            else:
                self.stop()
                raise RuntimeError(f"vigil serve did not answer /healthz in {timeout} s:\n{self.output()}")
            if "address already in use" not in self.output().lower():
                break
        raise RuntimeError(f"vigil serve exited early:\n{self.output()}")

    def stop(self, grace: float = 15) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]

    def close(self) -> None:
        """Stop the server if it still runs and remove its log."""
        self.stop()
        self.log.unlink(missing_ok=True)
