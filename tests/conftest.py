"""Shared fixtures: a real store (SQLite and PostgreSQL), the real ASGI app in-process, keys for two tenants.

Helpers that tests import live in ``support.py``: several conftest modules share the name ``conftest``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pg import fresh_database
from support import Keys

from vigil.auth import create_key
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.web import create_app


@pytest.fixture(autouse=True)
def _verifier_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vigil verify`` remembers what it verified under $XDG_STATE_HOME: one place per test, never the home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "vigil.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def database(request: pytest.FixtureRequest, db_path: Path) -> Iterator[str]:
    """Every test that uses the store runs on both: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(db_path)
    else:
        yield from fresh_database()


@pytest.fixture
def settings(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The test store's settings; ``@pytest.mark.settings(name="value")`` on a test or module adds its own."""
    # detection has its own tests (tests/detect); elsewhere its thread would only add noise
    values = {"database": database, "sqlite_synchronous": "NORMAL", "detect": "false"}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        values.update(marker.kwargs)
    if "://" in database:  # the default key place for a URL is the working directory: keep tests out of it
        values["signing_key"] = str(tmp_path / "vigil.db.signing-key")
    return Settings.load(values, environ={})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.database, settings)
    yield s
    s.close()


@pytest.fixture
def keys(store: Store) -> Keys:
    acme = store.create_tenant("acme", "Acme")
    globex = store.create_tenant("globex", "Globex")
    return Keys(
        ingest=create_key(store, acme, frozenset({"ingest"}))[1],
        read=create_key(store, acme, frozenset({"read"}))[1],
        both=create_key(store, acme, frozenset({"ingest", "read"}))[1],
        other_tenant=create_key(store, globex, frozenset({"ingest", "read"}))[1],
        tenant_id=acme.id,
        other_tenant_id=globex.id,
    )


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(settings, store)) as c:
        yield c
