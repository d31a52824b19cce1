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
    if "://" in database and not database.startswith("sqlite:///"):
        raise ConfigError(f"unsupported database URL {database!r}: give a SQLite file path or sqlite:///path")
    path = database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else database
    return SQLiteStore(path, settings, exclusive=exclusive)


__all__ = ["Store", "open_store"]
