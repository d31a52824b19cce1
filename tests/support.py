"""Helpers the tests import: key bundles, auth headers and a small valid event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
