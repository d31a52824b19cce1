"""Helpers for tests, yours and ours: a real ``vigil serve`` child process, and tenants and keys made through
the CLI. The benchmarks use them too.

    with ServerProcess("audit.db") as server:
        tenant_id, key = tenant_with_key("audit.db", "acme")
        ...  # talk to server.url
"""

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
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vigil_command(*args: str) -> list[str]:
    """The ``vigil`` CLI of the running interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "vigil.cli", *args]


def cli_json(*args: str, timeout: float = 60) -> Any:
    """Run ``vigil ARGS --json`` and return its parsed output; raise with its stderr when it fails."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter running our own CLI
        vigil_command(*args, "--json"), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"vigil {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def tenant_with_key(database: str, slug: str, scopes: str = "ingest,read") -> tuple[int, str]:
    """Create tenant ``slug`` and one key for it with the CLI; returns (tenant id, full key text)."""
    tenant = cli_json("tenants", "create", slug, "--database", database)
    key = cli_json(
        "keys", "create", "--tenant", slug, "--scope", scopes, "--name", "bench", "--database", database
    )
    return int(tenant["id"]), str(key["key"])


class ServerProcess:
    """One ``vigil serve`` child process on loopback, on a free port, with its output in a temp file.

    ``start`` returns once ``/healthz`` answers; ``stop`` sends SIGTERM and, after ``grace`` seconds, SIGKILL;
    ``kill`` is the crash: SIGKILL at once.
    """

    def __init__(
        self, database: str, *, synchronous: str = "FULL", rate_limit: int = 0, extra: Sequence[str] = ()
    ) -> None:
        self.database = database
        self.synchronous = synchronous
        self.rate_limit = rate_limit
        self.extra = tuple(extra)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server is not running")
        return self.proc.pid

    def start(self, timeout: float = 30) -> ServerProcess:
        if self.proc is not None:
            raise RuntimeError("the server is already running")
        for _ in range(3):  # another process may grab the free port between our probe and uvicorn's bind
            if self._spawn(timeout):
                return self
        raise RuntimeError(f"vigil serve did not start:\n{self.output()}")

    def _spawn(self, timeout: float) -> bool:
        self.port = free_port()
        fd, name = tempfile.mkstemp(prefix="vigil-serve-", suffix=".log")
        self.log_path = Path(name)
        cmd = vigil_command(
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
            *self.extra,
        )
        with os.fdopen(fd, "wb") as log:
            # own session: a Ctrl-C in the terminal reaches only us, and we stop the server ourselves
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter running our own CLI
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                if "already in use" in self.output().lower():
                    return False
                raise RuntimeError(f"vigil serve exited early:\n{self.output()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(  # noqa: S310 - our loopback server
                    self.url + "/healthz", timeout=1
                ) as answer,
            ):
                if answer.status == 200:
                    return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"vigil serve did not answer /healthz within {timeout} s:\n{self.output()}")

    def stop(self, grace: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
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
        """SIGKILL: the server gets no chance to finish anything."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def output(self, tail: int = 6000) -> str:
        """The end of the server's stdout and stderr."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the server has used so far (Linux ``/proc``), or None."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, RuntimeError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the server if it still runs and remove its log."""
        self.stop()
        self.remove_log()

    def remove_log(self) -> None:
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if exc[0] is None:
            self.remove_log()
        elif self.log_path is not None:
            print(f"server output kept in {self.log_path}:\n{self.output(2000)}", file=sys.stderr)
