"""The search filters, read once for every edge: ``GET /v1/events``, ``GET /v1/export``, ``vigil search`` and
``vigil export`` take the same names, the same forms and get the same errors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal, get_args

from vigil.errors import InvalidRequest
from vigil.model import Category, Outcome
from vigil.store.base import SearchQuery
from vigil.store.search import ip_range, search_words
from vigil.times import time_range

FILTERS: dict[str, str] = {
    "actor_id": "Only events by this actor id (exact).",
    "actor_name": "Only events whose actor.name is this (exact, case-insensitive).",
    "actor_email": "Only events whose actor.email is this (exact, case-insensitive).",
    "action": "Exact action, or a prefix ending in .* (user.*).",
    "target_type": "Events with a target of this type.",
    "target_id": "Events with a target of this id.",
    "outcome": "success, failure, denied or error.",
    "category": "activity, audit, data_access, change or system.",
    "ip": "context.ip is this address, or in this CIDR block (203.0.113.7, 203.0.113.0/24, 2001:db8::/32).",
    "since": "occurred_at >= since: an RFC 3339 time, a date (UTC midnight) or a duration ago (30d, 12h).",
    "until": "occurred_at < until, in the same forms as since.",
    "q": "Words in the message or metadata, all required (word* for a prefix).",
}
"""Every filter's name and what it does: the API's query parameters and the CLI's options (``--actor-id`` …)."""

MAX_LENGTH = {"action": 130, "target_type": 64, "ip": 64, "q": 512, "since": 64, "until": 64}
"""The longest value of each filter (256 for the rest): no stored value is longer."""

PATTERNS = {
    "since": r"^(\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))?|\d{1,9}[smhdw])$",
    "until": r"^(\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))?|\d{1,9}[smhdw])$",
    "ip": r"^[0-9A-Fa-f:.]+(/\d{1,3})?$",
}
"""The shape of the filters that have one, for the OpenAPI document (the values are then checked in full)."""

OUTCOMES: tuple[str, ...] = get_args(Outcome)
CATEGORIES: tuple[str, ...] = get_args(Category)


def make_query(
    values: Mapping[str, str | None],
    *,
    order: Literal["newest", "seq"] = "newest",
    limit: int = 50,
    now_us: int | None = None,
) -> SearchQuery:
    """The :class:`SearchQuery` of the filters in ``values`` (names of :data:`FILTERS`; None or absent: not
    given). Every value is checked here, with a 400 that names it."""
    unknown = sorted(set(values) - set(FILTERS))
    if unknown:
        raise InvalidRequest(f"unknown filters: {', '.join(unknown)}; the filters are {', '.join(FILTERS)}")
    v = {k: x for k, x in values.items() if x is not None}
    for name, value in v.items():
        if len(value) > MAX_LENGTH.get(name, 256):
            raise InvalidRequest(f"{name} is at most {MAX_LENGTH.get(name, 256)} characters")
    action = v.get("action")
    if action is not None and action.endswith("*") and not action.endswith(".*"):
        raise InvalidRequest("an action prefix ends in .* (for example user.*)")
    if v.get("outcome") is not None and v["outcome"] not in OUTCOMES:
        raise InvalidRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    if v.get("category") is not None and v["category"] not in CATEGORIES:
        raise InvalidRequest(f"category must be one of {', '.join(CATEGORIES)}")
    if "ip" in v:
        ip_range(v["ip"])
    if "q" in v:
        search_words(v["q"])
    since, until = time_range(v.get("since"), v.get("until"), now_us=now_us or time.time_ns() // 1000)
    return SearchQuery(
        actor_id=v.get("actor_id"),
        actor_name=v.get("actor_name"),
        actor_email=v.get("actor_email"),
        action=action,
        target_type=v.get("target_type"),
        target_id=v.get("target_id"),
        outcome=v.get("outcome"),
        category=v.get("category"),
        ip=v.get("ip"),
        since_us=since,
        until_us=until,
        text=v.get("q"),
        order=order,
        limit=limit,
    )


def given(values: Mapping[str, str | None]) -> dict[str, str]:
    """The filters given, as they were typed (for the record of the read in the platform log)."""
    return {k: x for k, x in values.items() if x is not None and k in FILTERS}
