"""Stores: where tenants, keys and the logs live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.errors import ConfigError
from vigil.store.base import Store

if TYPE_CHECKING:
    from vigil.settings import Settings


def open_store(
    database: str, settings: Settings | None = None, *, readonly: bool = False, exclusive: bool = False
) -> Store:
    """Open the store a ``--database`` value names: a SQLite path, ``sqlite:///path`` or ``postgresql://…``.

    ``exclusive`` is for ``vigil serve``: a SQLite file is then locked for this process until the store closes,
    and a second server on it is refused (:class:`~vigil.errors.StoreInUse`). PostgreSQL needs no such lock."""
    from vigil.store.sqlite import SQLiteStore

    if database.startswith(("postgresql://", "postgres://")):
        from vigil.store.postgres import PostgresStore

        return PostgresStore(database, settings)
    return SQLiteStore(_sqlite_path(database), settings, exclusive=exclusive)


def _sqlite_path(database: str) -> str:
    if "://" in database and not database.startswith("sqlite:///"):
        raise ConfigError(f"unsupported database URL {database!r}: give a SQLite file path or sqlite:///path")
    return database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else database


def database_exists(database: str) -> bool:
    """Whether ``database`` holds a Vigil database already, found without creating or migrating anything."""
    if database.startswith(("postgresql://", "postgres://")):
        from vigil.store.postgres import database_exists as pg_exists

        return pg_exists(database)
    import sqlite3
    from pathlib import Path

    path = Path(_sqlite_path(database)).expanduser()
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # a file we cannot read as SQLite: opening it gives the clear error
    return found is not None


__all__ = ["Store", "database_exists", "open_store"]
