"""Shared fixtures: a real SQLite file, the real ASGI app in-process, and keys for two tenants.

Helpers that tests import live in ``support.py``: several conftest modules share the name ``conftest``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys

from vigil.auth import create_key
from vigil.settings import Settings
from vigil.store.sqlite import SQLiteStore
from vigil.web import create_app


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "vigil.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.load({"database": str(db_path), "sqlite_synchronous": "NORMAL"}, environ={})


@pytest.fixture
def store(settings: Settings) -> Iterator[SQLiteStore]:
    s = SQLiteStore(settings.database, settings)
    yield s
    s.close()


@pytest.fixture
def keys(store: SQLiteStore) -> Keys:
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
def client(settings: Settings, store: SQLiteStore) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(settings, store)) as c:
        yield c
