"""Helpers the tests import: key bundles, auth headers, CLI database flags and a small valid event."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings


@dataclass
class Keys:
    ingest: str
    read: str
    both: str
    other_tenant: str
    tenant_id: int
    other_tenant_id: int


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def database_args(settings: Settings) -> list[str]:
    """The CLI flags that open the store of ``settings`` with the same signing key."""
    key = ["--signing-key", settings.signing_key] if settings.signing_key else []
    return ["--database", settings.database, *key]


def event(action: str = "user.login", **extra: Any) -> dict[str, Any]:
    """A small valid input event."""
    ev: dict[str, Any] = {
        "action": action,
        "actor": {"id": "usr_1", "type": "user", "name": "Ada"},
        "outcome": "success",
        "category": "audit",
        "context": {"ip": "203.0.113.9", "user_agent": "pytest"},
    }
    ev.update(extra)
    return ev


def prepared_events(n: int, tenant: str = "acme", action: str = "user.login") -> list[Prepared]:
    """``n`` small events, validated and canonicalised as the intake does it."""
    now = time.time_ns() // 1000
    out = []
    for i in range(n):
        raw = {
            "action": action,
            "actor": {"id": f"u{i % 7}"},
            "message": f"event {i}",
            "targets": [{"type": "doc", "id": f"d{i % 3}"}],
        }
        p = prepare_event(msgspec.convert(raw, EventIn), tenant, now)
        assert isinstance(p, Prepared)
        out.append(p)
    return out


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes, straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def unavailable(reason: str) -> None:
    """A test that needs what this machine lacks: skipped on a laptop, a failure in CI (which must provide it)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)
