"""Where a Sigma field name points in a stored Vigil event, and how its values are read.

Rules under ``logsource: product: vigil`` name fields by their dotted path in the stored event (DESIGN.md, "The
event"): ``action``, ``actor.email``, ``context.ip``, ``targets.type``, ``metadata.record_count``,
``changes.enabled.after``. A small alias map lets rules written for common SaaS logs (Okta, CloudTrail) keep their
field names. A name that is neither a path of the event nor an alias is refused at load time, because a rule
testing a field the event never has would load fine and never fire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ALIASES: dict[str, str] = {
    "src_ip": "context.ip",
    "client.ipAddress": "context.ip",  # Okta System Log
    "sourceIPAddress": "context.ip",  # AWS CloudTrail
    "user": "actor.email",
    "actor.alternateId": "actor.email",  # Okta
    "eventName": "action",  # CloudTrail
    "eventType": "action",  # Okta
    "eventtype": "action",
    "outcome.result": "outcome",  # Okta (SUCCESS / FAILURE match ours: values compare without case)
    "userAgent": "context.user_agent",  # CloudTrail
    "client.userAgent.rawUserAgent": "context.user_agent",  # Okta
}
"""Field names of other audit logs that rules may use for ours; documented in docs/sigma.md."""

SCALARS = frozenset(
    ("id", "tenant", "occurred_at", "received_at", "action", "category", "outcome", "reason", "message")
)
OBJECTS: dict[str, frozenset[str]] = {
    "actor": frozenset(("id", "type", "name", "email", "session_id")),
    "context": frozenset(
        ("ip", "user_agent", "request_id", "trace_id", "method", "route", "status", "location")
    ),
    "targets": frozenset(("type", "id", "name")),  # a list: a path through it matches any element
}
OPEN_MAPS = frozenset(("metadata", "changes"))
CONTAINERS = frozenset(OBJECTS) | OPEN_MAPS
_PAIR = {"before": 0, "after": 1}

Values = Callable[[dict[str, Any]], list[Any]]
"""The values a field holds in an event: one for a scalar, one per element through a list, none when absent
(an explicit JSON null is the value ``None``)."""


class FieldError(ValueError):
    """A field name that does not exist in Vigil's events."""


@dataclass(frozen=True)
class FieldPath:
    """A resolved field: its canonical dotted name and how to read it."""

    name: str  # canonical, after aliases: "context.ip"
    keys: tuple[str | int, ...]  # dict keys, or an index into a [before, after] pair
    container: bool  # names a whole object: only ``exists`` and ``null`` make sense on it

    @property
    def simple(self) -> bool:
        """A single top-level key (no nesting): the fast path of the matcher."""
        return len(self.keys) == 1 and not self.container


def resolve(field: str) -> FieldPath:
    """The path of ``field`` in a stored event, after aliases; :class:`FieldError` when events never have it."""
    name = ALIASES.get(field, field)
    parts = name.split(".")
    head = parts[0]
    if len(parts) == 1:
        if head in SCALARS:
            return FieldPath(name, (head,), False)
        if head in CONTAINERS:
            return FieldPath(name, (head,), True)
    elif head in OBJECTS:
        if len(parts) == 2 and parts[1] in OBJECTS[head]:
            return FieldPath(name, (head, parts[1]), False)
    elif head == "metadata":
        # metadata is a flat map: everything after the first dot is one key, dots and all
        return FieldPath(name, (head, name[len("metadata.") :]), False)
    elif head == "changes":
        if len(parts) >= 3 and parts[-1] in _PAIR:
            return FieldPath(name, (head, ".".join(parts[1:-1]), _PAIR[parts[-1]]), False)
        return FieldPath(name, (head, ".".join(parts[1:])), False)
    known = ", ".join(sorted(SCALARS | CONTAINERS))
    raise FieldError(
        f"field '{field}' does not exist in Vigil events (top-level fields: {known}; "
        f"objects are read with dotted paths such as actor.email or context.ip)"
    )


def values_of(path: FieldPath) -> Values:
    """A reader of ``path``'s values, flattening lists on the way and at the end."""
    keys = path.keys
    if len(keys) == 1:
        (k,) = keys

        def one(doc: dict[str, Any]) -> list[Any]:
            if k not in doc:
                return []
            v = doc[k]
            return list(v) if type(v) is list and not path.container else [v]

        return one

    def walk(doc: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        _walk(doc, keys, 0, out)
        return out

    return walk


def _walk(node: Any, keys: tuple[str | int, ...], i: int, out: list[Any]) -> None:
    if i == len(keys):
        if type(node) is list:
            out.extend(node)
        else:
            out.append(node)
        return
    key = keys[i]
    if type(node) is list:
        if type(key) is int:
            if len(node) > key:
                _walk(node[key], keys, i + 1, out)
            return
        for item in node:
            _walk(item, keys, i, out)
    elif type(node) is dict and key in node:
        _walk(node[key], keys, i + 1, out)


def text(v: Any) -> str | None:
    """A scalar as the text Sigma string values are compared with; ``None`` for null, objects and lists."""
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return str(v)
    return None


def number(v: Any) -> float | int | None:
    """A scalar as a number for ``gt``/``lt`` comparisons: numbers, and strings spelling one."""
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[no-any-return]
    if t is str:
        try:
            return float(v)
        except ValueError:
            return None
    return None


def strings(doc: Any) -> Iterator[str]:
    """Every scalar value of an event as text, depth first: what a keyword (fieldless) search looks in."""
    if type(doc) is dict:
        for v in doc.values():
            yield from strings(v)
    elif type(doc) is list:
        for v in doc:
            yield from strings(v)
    else:
        s = text(doc)
        if s is not None:
            yield s
