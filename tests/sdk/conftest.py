"""Fixtures of the SDK tests: one real ``vigil serve`` for the session, and a fresh tenant and key per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_support import Tenant

from vigil.auth import create_key
from vigil.store.sqlite import SQLiteStore
from vigil.testing import ServerProcess

_tenants = itertools.count()


@pytest.fixture(scope="session")
def vigil_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    database = str(tmp_path_factory.mktemp("vigil-server") / "vigil.db")
    with ServerProcess(database, synchronous="NORMAL") as server:
        yield server


@pytest.fixture
def tenant(vigil_server: ServerProcess) -> Tenant:
    """A new tenant (so its log holds only this test's events) and an ``ingest,read`` key for it."""
    slug = f"sdk-test-{next(_tenants)}"
    store = SQLiteStore(vigil_server.database)
    try:
        t = store.create_tenant(slug)
        key = create_key(store, t, frozenset({"ingest", "read"}))[1]
    finally:
        store.close()
    return Tenant(vigil_server.url, key, slug)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"
