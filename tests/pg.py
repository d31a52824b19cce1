"""A fresh PostgreSQL database per test, on the server CI starts (or a developer's own).

``VIGIL_TEST_POSTGRES`` names an admin URL (default: postgres on 127.0.0.1:5432, trust auth). Without a server,
PostgreSQL tests are skipped on a laptop and fail in CI: CI must never pass by not testing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def admin_connection():  # type: ignore[no-untyped-def]
    try:
        import psycopg

        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {ADMIN_URL}: {exc}")
        reason = f"no PostgreSQL at {ADMIN_URL} (set VIGIL_TEST_POSTGRES): {exc}"
        pytest.skip(reason)  # laptops only: with CI set, the line above fails instead


def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def fresh_database() -> Iterator[str]:
    """Create a new database, yield its URL, then drop it and the roles Vigil made for it."""
    admin = admin_connection()
    name = f"vigil_t_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for (role,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"vigil_{name}%",)
        ):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()
