"""Fixtures of the SDK tests: one real ``vigil serve`` per store for the session (a SQLite file, and a fresh
PostgreSQL database), and a fresh tenant and key per test; every test that talks to it runs on both stores."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import fresh_database
from sdk_support import Tenant

from vigil.auth import create_key
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.testing import ServerProcess

_tenants = itertools.count()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def server_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The settings of the session's server: its database, and its signing key in a temp dir for a URL (whose
    default place, the working directory, tests keep out of)."""
    where = tmp_path_factory.mktemp(f"vigil-server-{request.param}")
    values = {"sqlite_synchronous": "NORMAL"}
    if request.param == "sqlite":
        yield Settings.load({**values, "database": str(where / "vigil.db")}, environ={})
        return
    for url in fresh_database():  # dropped when the session's last PostgreSQL test is done
        yield Settings.load(
            {**values, "database": url, "signing_key": str(where / "signing-key")}, environ={}
        )


@pytest.fixture(scope="session")
def vigil_server(server_settings: Settings) -> Iterator[ServerProcess]:
    key = ["--signing-key", server_settings.signing_key] if server_settings.signing_key else []
    # no checkpoint schedule: a test that verifies signs the checkpoint it needs, and one that proves an event
    # is not covered yet is not raced by the schedule
    extra = [*key, "--checkpoint-interval", "0"]
    with ServerProcess(server_settings.database, synchronous="NORMAL", extra=extra) as server:
        yield server


@pytest.fixture(scope="session")
def server_store(vigil_server: ServerProcess, server_settings: Settings) -> Iterator[Store]:
    """The session server's database, opened in this process too (as ``vigil tenants``/``vigil keys`` would)."""
    store = open_store(server_settings.database, server_settings)
    yield store
    store.close()


@pytest.fixture
def tenant(vigil_server: ServerProcess, server_store: Store) -> Tenant:
    """A new tenant (so its log holds only this test's events) and an ``ingest,read`` key for it."""
    slug = f"sdk-test-{next(_tenants)}"
    t = server_store.create_tenant(slug)
    key = create_key(server_store, t, frozenset({"ingest", "read"}))[1]
    return Tenant(vigil_server.url, key, slug)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"
