"""PostgreSQL connection faults: killed backends are replaced, and `/readyz` fails while the server is out of
reach and recovers when it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient
from pg import admin_connection, fresh_database
from support import prepared_events

from vigil.errors import StorageError
from vigil.settings import Settings
from vigil.store.postgres import PostgresStore
from vigil.web import create_app

pytestmark = pytest.mark.service


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_database()


@pytest.fixture
def pg(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url)
    yield s
    s.close()


def _kill_backends(url: str) -> int:
    """Terminate every connection to the database of ``url`` (a restart, a failover, an idle-timeout cut)."""
    name = urlsplit(url).path.lstrip("/")
    admin = admin_connection()
    try:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
        return len(rows)
    finally:
        admin.close()


def _allow_connections(url: str, allow: bool) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = admin_connection()
    try:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
    finally:
        admin.close()


def test_the_writer_reconnects_after_its_connection_is_killed(pg: PostgresStore, url: str) -> None:
    """After every backend is terminated, the store is ready again and appends continue the same log."""
    tenant = pg.create_tenant("acme")
    pg.append(tenant.id, prepared_events(3))
    assert _kill_backends(url) >= 1
    pg.check()  # the probe finds the dead connection, reconnects and proves the new one works
    appended = pg.append(tenant.id, prepared_events(2))
    assert [a.seq for a in appended] == [3, 4]
    assert pg.tree_size(tenant.id) == 5


def test_a_killed_connection_costs_at_most_one_failed_append(pg: PostgresStore, url: str) -> None:
    """Without a readiness probe in between, the first append after the kill may fail; the next one lands."""
    tenant = pg.create_tenant("acme")
    pg.append(tenant.id, prepared_events(1))
    _kill_backends(url)
    try:
        pg.append(tenant.id, prepared_events(1))
        failed = 0
    except StorageError:
        failed = 1
    pg.append(tenant.id, prepared_events(1))
    assert pg.tree_size(tenant.id) == 3 - failed


def test_readyz_fails_while_postgresql_is_unreachable_and_recovers(url: str, tmp_path: Path) -> None:
    """Connections refused: `/readyz` is 503 in the one error shape; allowed again: 200 and writes work."""
    settings = Settings.load(
        {
            "database": url,
            "detect": "false",
            "checkpoint_interval": 0,
            "signing_key": str(tmp_path / "signing-key"),
        },
        environ={},
    )
    store = PostgresStore(url, settings)
    tenant = store.create_tenant("acme")
    try:
        with TestClient(app=create_app(settings, store)) as client:
            assert client.get("/readyz").status_code == 200
            _allow_connections(url, False)
            try:
                _kill_backends(url)
                r: Any = client.get("/readyz")
                assert r.status_code == 503
                assert r.json()["error"]["type"] == "storage_unavailable"
                with pytest.raises(StorageError):
                    store.append(tenant.id, prepared_events(1))
            finally:
                _allow_connections(url, True)
            assert client.get("/readyz").status_code == 200
            assert [a.seq for a in store.append(tenant.id, prepared_events(1))] == [0]
    finally:
        store.close()
