"""Storage faults: the server never acknowledges an event it cannot find again, `/readyz` says whether a write
would succeed, and one SQLite file has one server."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from support import auth, event, prepared_events, unavailable

from vigil.auth import create_key
from vigil.errors import StoreInUse
from vigil.settings import Settings
from vigil.store import open_store
from vigil.store.sqlite import SQLiteStore
from vigil.testing import ServerProcess, tenant_with_key
from vigil.web import create_app

ROOT = os.geteuid() == 0


def _settings(path: Path, **extra: Any) -> Settings:
    values = {
        "database": str(path),
        "sqlite_synchronous": "NORMAL",
        "detect": "false",
        "checkpoint_interval": 0,
    }
    return Settings.load({**values, **extra}, environ={})


def _tenant_key(path: Path, **extra: Any) -> str:
    """A tenant and an ingest key in the SQLite file at ``path`` (made with a store closed again)."""
    store = open_store(str(path), _settings(path, **extra))
    try:
        tenant = store.create_tenant("acme")
        return create_key(store, tenant, frozenset({"ingest", "read"}))[1]
    finally:
        store.close()


@contextlib.contextmanager
def serving(path: Path, **extra: Any) -> Iterator[TestClient[Any]]:
    """The real app in-process over the real SQLite file at ``path``, opening (and locking) it itself."""
    with TestClient(app=create_app(_settings(path, **extra))) as client:
        yield client


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def _post(client: TestClient[Any], key: str, n: int = 1) -> httpx.Response:
    return client.post("/v1/events", json=[event() for _ in range(n)], headers=auth(key))


class _Records(logging.Handler):
    """Records of one logger (the app's logging setup replaces the root handlers caplog relies on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_deleted_directory_stops_writes_and_readiness(data_dir: Path) -> None:
    """With the database's directory deleted, no event is acknowledged: 503 saying why, logged once; not ready."""
    db = data_dir / "vigil.db"
    key = _tenant_key(db)
    with serving(db) as client:
        assert _post(client, key, 5).status_code == 200
        assert client.get("/readyz").status_code == 200
        shutil.rmtree(data_dir)
        records = _Records()
        logging.getLogger("vigil").addHandler(records)
        try:
            answers = [_post(client, key, 10) for _ in range(20)]
        finally:
            logging.getLogger("vigil").removeHandler(records)
        assert {r.status_code for r in answers} == {503}
        err = answers[0].json()["error"]
        assert err["type"] == "storage_unavailable"
        assert "was removed while the server ran" in err["message"] and str(db) in err["message"]
        assert sum("was removed" in r.getMessage() for r in records.records) == 1  # once, not per request
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "was removed" in ready.json()["error"]["message"]


def test_a_replaced_file_stops_writes(data_dir: Path) -> None:
    """Another database moved onto the path: the commit that notices is refused, and so is every later one."""
    db = data_dir / "vigil.db"
    key = _tenant_key(db)
    other = data_dir / "other.db"
    open_store(str(other), _settings(other)).close()
    with serving(db) as client:
        assert _post(client, key).status_code == 200
        os.replace(other, db)
        r = _post(client, key)
        assert r.status_code == 503 and "replaced by another file" in r.json()["error"]["message"]
        assert _post(client, key).status_code == 503
        assert client.get("/readyz").status_code == 503
    # what was acknowledged before is in the file that was served, and nothing after it
    moved = SQLiteStore(str(db))
    try:
        assert [t.slug for t in moved.list_tenants()] == ["vigil"]
    finally:
        moved.close()


def test_a_deleted_write_ahead_log_stops_writes(data_dir: Path) -> None:
    """The -wal file holds commits until a checkpoint: losing it is losing them, so it is watched too."""
    db = data_dir / "vigil.db"
    key = _tenant_key(db)
    with serving(db) as client:
        assert _post(client, key).status_code == 200
        os.unlink(str(db) + "-wal")
        r = _post(client, key)
        assert r.status_code == 503 and "write-ahead log" in r.json()["error"]["message"]


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files: chmod for a user, the immutable flag for root (who ignores modes)."""
    if ROOT:
        if shutil.which("chattr") is None:
            unavailable("running as root without chattr: cannot make a directory read-only")
        if subprocess.run(["chattr", "+i", str(directory)], check=False).returncode != 0:
            unavailable("chattr +i is not allowed here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)


def test_a_read_only_directory_makes_the_server_not_ready(data_dir: Path) -> None:
    """`/readyz` fails while the database's directory is read-only and recovers when it is writable again."""
    db = data_dir / "vigil.db"
    key = _tenant_key(db)
    with serving(db) as client:
        assert _post(client, key).status_code == 200
        with unwritable(data_dir):
            r = client.get("/readyz")
            assert r.status_code == 503
            assert "is not writable" in r.json()["error"]["message"]
        assert client.get("/readyz").status_code == 200
        assert _post(client, key).status_code == 200


def test_free_space_under_the_minimum_refuses_writes_and_readiness(data_dir: Path) -> None:
    """A minimum above what is free (a full disk, simulated): 503 on write and on /readyz, with the figures."""
    db = data_dir / "vigil.db"
    key = _tenant_key(db)
    with serving(db, sqlite_min_free_mb=10**12) as client:
        r = _post(client, key)
        assert r.status_code == 503
        assert (
            "MB free" in r.json()["error"]["message"] and "sqlite_min_free_mb" in r.json()["error"]["message"]
        )
        assert client.get("/readyz").status_code == 503


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that really fills up (root only)."""
    if not ROOT:
        unavailable("mounting a tmpfs needs root; the simulated minimum test covers the rest")
    mount = tmp_path / "small"
    mount.mkdir()
    ok = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=False, capture_output=True
    )
    if ok.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {ok.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    # the suppress is outermost: closing the file flushes what the last short write left and fails too
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_a_full_disk_makes_the_server_not_ready_until_space_is_freed(small_disk: Path) -> None:
    """On a real full filesystem writes get a clear 503 and `/readyz` fails; freeing space brings both back."""
    db = small_disk / "vigil.db"
    key = _tenant_key(db, sqlite_min_free_mb=1)
    with serving(db, sqlite_min_free_mb=1) as client:
        assert _post(client, key).status_code == 200
        filler = _fill(small_disk)
        r = _post(client, key)
        assert r.status_code == 503 and "MB free" in r.json()["error"]["message"]
        assert client.get("/readyz").status_code == 503
        filler.unlink()
        assert client.get("/readyz").status_code == 200
        assert _post(client, key).status_code == 200


def test_a_second_server_on_one_file_is_refused_at_start(data_dir: Path) -> None:
    """Two serving stores on one SQLite file: the second is refused, naming the holder; read-only use works."""
    db = str(data_dir / "vigil.db")
    first = open_store(db, exclusive=True)
    try:
        with pytest.raises(StoreInUse, match=rf"already being served by process {os.getpid()}"):
            open_store(db, exclusive=True)
        reader = open_store(db)  # the CLI's read commands do not take the lock
        try:
            assert [t.slug for t in reader.list_tenants()] == ["vigil"]
        finally:
            reader.close()
    finally:
        first.close()
    open_store(db, exclusive=True).close()  # released on close


def test_two_writers_on_one_file_take_turns(data_dir: Path) -> None:
    """Without the lock (a server and a CLI command, say) two writers on one file each re-read the log's end in
    their write transaction, so their appends follow each other: no seq collision, one consistent tree."""
    from vigil.ledger.integrity import verify_tenant

    db = str(data_dir / "vigil.db")
    a, b = SQLiteStore(db), SQLiteStore(db)
    try:
        tenant = a.create_tenant("acme")
        a.append(tenant.id, prepared_events(2))
        b.append(tenant.id, prepared_events(2))
        assert [x.seq for x in a.append(tenant.id, prepared_events(2))] == [4, 5]
        assert a.tree_size(tenant.id) == 6
        assert verify_tenant(a, tenant, "").events == 6
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_vigil_serve_refuses_a_file_another_server_serves(data_dir: Path) -> None:
    """A real second `vigil serve` exits at start with a clear message; `vigil tenants list` still works."""
    db = str(data_dir / "vigil.db")
    tenant_with_key(db, "acme")
    with ServerProcess(db) as server:
        second = ServerProcess(db)
        with pytest.raises(RuntimeError, match="exited early") as refused:
            second.start()
        second.remove_log()
        assert f"already being served by process {server.pid}" in str(refused.value)
        listed = subprocess.run(
            [*_cli(), "tenants", "list", "--database", db], capture_output=True, text=True, check=False
        )
        assert listed.returncode == 0 and "acme" in listed.stdout


def _cli() -> list[str]:
    from vigil.testing import vigil_command

    return vigil_command()


@pytest.mark.slow
def test_a_real_server_acknowledges_nothing_after_its_directory_is_deleted(data_dir: Path) -> None:
    """The reported case end to end: `vigil serve`, the directory deleted under load, every later batch 503,
    the fault logged once, and nothing acknowledged that is not in the file."""
    db = str(data_dir / "vigil.db")
    _, key = tenant_with_key(db, "acme")
    with ServerProcess(db) as server, httpx.Client(base_url=server.url, headers=auth(key)) as http:
        acked = 0
        for _ in range(5):
            r = http.post("/v1/events", json=[event() for _ in range(50)])
            assert r.status_code == 200
            acked += r.json()["accepted"]
        shutil.rmtree(data_dir)
        later = [http.post("/v1/events", json=[event() for _ in range(50)]) for _ in range(40)]
        assert {r.status_code for r in later} == {503}
        assert http.get("/readyz").status_code == 503
        time.sleep(2.5)  # detection polls every second: give it a couple of retries
        output = server.output()
        assert output.count("was removed while the server ran") == 1, output
        assert "Traceback" not in output, (
            output
        )  # detection and checkpoints retry quietly: it was logged once
        assert acked == 250
