"""What the built-in rules read of a committed event: its actor, source address, sign-in outcome, records."""

from __future__ import annotations

from typing import Any

from vigil.detect.rules import Ev


def actor(ev: Ev) -> dict[str, Any]:
    found: dict[str, Any] = ev.doc.get("actor") or {}
    return found


def ip(ev: Ev) -> str:
    return str((ev.doc.get("context") or {}).get("ip") or "")


def who(ev: Ev) -> str:
    """The actor as people name them: e-mail, else name, else id."""
    a = actor(ev)
    return str(a.get("email") or a.get("name") or a.get("id") or "?")


def login(ev: Ev, outcome: str) -> bool:
    return ev.doc.get("action") == "user.login" and ev.doc.get("outcome") == outcome


def records(ev: Ev) -> int:
    """``metadata.record_count`` when it is a positive integer, else 0."""
    value = (ev.doc.get("metadata") or {}).get("record_count")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
