"""``verify_tenant``'s worker processes: they open the store again by its SQLite path or PostgreSQL URL, never see
that URL on a command line, and when they cannot start the log is checked in this process instead.

What the workers find (pass, or the same failure as one process) is pinned by the worker test in test_tamper.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from vigil.ledger import integrity
from vigil.ledger.checkpoints import Signer
from vigil.ledger.integrity import verify_tenant
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import Tenant

Fill = Callable[..., Tenant]


def _not_in_this_process(*args: object) -> NoReturn:
    raise AssertionError("a span was checked in this process, not in a worker")


def _with_password(url: str) -> tuple[str, str]:
    """``url`` with a password in it (its own, PGPASSWORD's, or a made-up one trust auth ignores), and that."""
    parts = urlsplit(url)
    password = parts.password or os.environ.get("PGPASSWORD") or "not-on-any-command-line-4d1f"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or 'postgres'}:{password}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), password


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.service)], indirect=True)
def test_postgres_workers_get_the_url_without_it_on_a_command_line(
    store: Store, fill: Fill, signer: Signer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the workers open the store by its URL, password included, which reaches them pickled
    through a pipe: it is on no worker's command line."""
    if not Path("/proc/self/cmdline").exists():  # Linux only; CI runs Linux, so there this never skips
        pytest.skip("reads the workers' command lines from /proc, which only Linux has (as in CI)")
    acme = fill("acme", (100, 300), total=600)
    url, password = _with_password(settings.database)
    seen: list[bytes] = []

    def look(_: int) -> None:  # called here while the workers are alive
        seen.extend(Path(f"/proc/{p.pid}/cmdline").read_bytes() for p in multiprocessing.active_children())

    monkeypatch.setattr(integrity, "STEAL", False)  # this process would otherwise take queued jobs too
    monkeypatch.setattr(integrity, "_check_span", _not_in_this_process)
    again = open_store(url, settings)
    try:
        report = verify_tenant(again, acme, signer.vkey, look, workers=2)
    finally:
        again.close()
    assert (report.events, report.checkpoints) == (600, 2)
    assert seen, "no worker process was running"
    secret = f":{password}@".encode()
    assert not [c for c in seen if secret in c or url.encode() in c]


class _Unreachable:
    """The store, naming a path or URL no worker can open."""

    def __init__(self, inner: Store, tmp_path: Path) -> None:
        self.inner = inner
        if hasattr(inner, "url"):
            parts = urlsplit(inner.url)
            self.url = urlunsplit(parts._replace(path="/vigil_no_such_database"))
        else:
            self.path = str(tmp_path)  # a directory: SQLite cannot open it

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_workers_that_cannot_open_the_store_leave_the_check_to_this_process(
    store: Store,
    fill: Fill,
    signer: Signer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the workers cannot open the store, verify says so in a warning and checks every span itself."""
    acme = fill("acme", (100, 300), total=600)
    expected = verify_tenant(store, acme, signer.vkey, workers=1)
    spans: list[int] = []

    def check_span(*args: Any) -> Any:
        spans.append(args[3])  # lo
        return check(*args)

    check = integrity._check_span
    monkeypatch.setattr(integrity, "_check_span", check_span)
    with caplog.at_level(logging.WARNING, logger="vigil.verify"):
        report = verify_tenant(_Unreachable(store, tmp_path), acme, signer.vkey, workers=2)
    assert (report.events, report.checkpoints) == (expected.events, expected.checkpoints) == (600, 2)
    assert "verify workers could not start" in caplog.text
    assert sorted(spans) == [0, 256, 512]  # each once; this process may take them from the end
