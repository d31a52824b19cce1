"""The caller's side of ``record()``: check what is obviously wrong, redact, give the event its id and encode it.

Everything here runs on the application's thread, so it does no I/O and stays within a few microseconds. The
server checks every limit again; the client only refuses what can never be stored (no action, no actor), and
redacts with the server's own rules so that secrets never leave the process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from vigil.ids import EVENT_ID_RULE, uuid7_text
from vigil.ids import event_id as kept_id
from vigil.ingest.redact import DEFAULT
from vigil.model import ACTION_PATTERN, CATEGORIES, FIELD_LIMITS, MAX_EVENT_BYTES, OUTCOMES

_action_ok = re.compile(ACTION_PATTERN).match
_encode = msgspec.json.Encoder().encode
_OUTCOMES = frozenset(OUTCOMES)
_CATEGORIES = frozenset(CATEGORIES)


def encode_event(
    action: str | None,
    actor: Mapping[str, Any] | None,
    actor_id: str | None,
    targets: Sequence[Mapping[str, Any]] | None,
    outcome: str | None,
    category: str | None,
    context: Mapping[str, Any] | None,
    changes: Mapping[str, Sequence[Any]] | None,
    metadata: Mapping[str, Any] | None,
    message: str | None,
    reason: str | None,
    occurred_at: datetime | None,
    event_id: str | None,
) -> tuple[str, bytes]:
    """The event's id and its JSON bytes, redacted; raises ``ValueError`` for what the server can never take.

    ``occurred_at`` defaults to now: an event that waits in the spool through an outage keeps the time it
    happened, not the time the server finally received it.
    """
    if type(action) is not str or not action:
        raise ValueError("record() needs action=, a dotted lower-case name such as 'user.login'")
    if len(action) > 128 or _action_ok(action) is None:
        raise ValueError(f"action {action[:140]!r} is not a dotted lower-case name such as 'user.login'")
    if actor is None:
        if type(actor_id) is not str or not actor_id:
            raise ValueError("record() needs actor={'id': ...} or actor_id=...")
        actor = {"id": actor_id}
    elif actor_id is not None:
        raise ValueError("record() takes actor= or actor_id=, not both")
    elif not isinstance(actor, Mapping) or not actor.get("id"):
        raise ValueError("actor= needs a non-empty 'id'")
    if event_id is None:
        event_id = uuid7_text()
    else:
        kept = kept_id(event_id) if type(event_id) is str else None
        if kept is None:
            raise ValueError(f"id={event_id!r}: an event id {EVENT_ID_RULE}")
        event_id = kept  # as the server keeps it (a UUID lower-cased), so the client's answers match
    if occurred_at is None:
        occurred_at = datetime.now(UTC)
    elif not isinstance(occurred_at, datetime) or occurred_at.utcoffset() is None:
        raise ValueError("occurred_at= must be a timezone-aware datetime (datetime.now(UTC), for instance)")
    ev: dict[str, Any] = {"id": event_id, "action": action, "actor": actor, "occurred_at": occurred_at}
    if outcome is not None:
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome={outcome!r} is not one of {', '.join(OUTCOMES)}")
        ev["outcome"] = outcome
    if category is not None:
        if category not in _CATEGORIES:
            raise ValueError(f"category={category!r} is not one of {', '.join(CATEGORIES)}")
        ev["category"] = category
    if targets:
        ev["targets"] = targets
    if context:
        ev["context"] = context
    if changes:
        ev["changes"] = cast(dict[str, list[Any]], changes if type(changes) is dict else dict(changes))
    if metadata:
        ev["metadata"] = metadata if type(metadata) is dict else dict(metadata)
    if message is not None:
        ev["message"] = message
    if reason is not None:
        ev["reason"] = reason
    kind = DEFAULT.first_kind(action)
    if kind is not None:
        raise ValueError(f"action looks like a credential ({kind}); it is never sent")
    ev = DEFAULT.event(
        ev, FIELD_LIMITS
    )  # every string, with the server's rules: secrets never leave the process
    try:
        data = _encode(ev)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the event cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"an event is at most {MAX_EVENT_BYTES} bytes of JSON; this one is {len(data)}")
    return event_id, data


def event_summary(data: bytes) -> str:
    """``id (action)`` of an encoded event, for log lines about it."""
    try:
        ev = msgspec.json.decode(data)
        return f"{ev.get('id')} ({ev.get('action')})"
    except (msgspec.DecodeError, AttributeError):
        return f"<{len(data)} bytes>"
