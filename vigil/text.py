"""Small helpers for the sentences Vigil prints: "1 event", "2 events", never "1 events"."""

from __future__ import annotations


def noun(count: int, singular: str, many: str | None = None) -> str:
    """``singular`` for a count of one, else ``many`` (by default ``singular`` + "s")."""
    return singular if count == 1 else many or singular + "s"


def plural(count: int, singular: str, many: str | None = None) -> str:
    """The count with its noun: "1 day", "30 days", "12,000 events" (thousands separated)."""
    return f"{count:,} {noun(count, singular, many)}"
