"""Turn a request body into prepared events: decode → validate → redact → canonicalise → leaf hash.

Every problem of every event is reported (field path and reason); one bad event never loses the good ones.
The body is read strictly by :mod:`vigil.ingest.decode` (one reader: no duplicate keys, no NUL, no number
beyond a float). The common case, a body whose events are all valid, is converted by msgspec in one typed pass;
only when that fails is each event checked field by field to list all of its problems.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_origin

import msgspec
import rfc8785

from vigil.ids import uuid7_text
from vigil.ingest.decode import JSON as JSON
from vigil.ingest.decode import NDJSON as NDJSON
from vigil.ingest.decode import Malformed, decode_typed
from vigil.ingest.decode import decode_body as decode_body
from vigil.ingest.redact import (
    DEFAULT,
    Hot,
    Redactor,
    strings,
)
from vigil.ledger.canonical import MAX_SAFE_INT, NotCanonicalizable, canonical, scan
from vigil.model import (
    ACTION_PATTERN,
    FIELD_LIMITS,
    ID_PATTERN,
    MAX_CHANGES,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_METADATA_KEY_LEN,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LEN,
    UUID7_PATTERN,
    Actor,
    Context,
    Event,
    EventIn,
    Target,
)

_sha256 = hashlib.sha256


@dataclass(slots=True)
class Prepared:
    """An event ready for the ledger: its stored form, canonical bytes, leaf hash and index columns."""

    index: int
    id: str
    occurred_us: int
    event: Event
    body: bytes
    leaf: bytes
    text: str

    @property
    def targets(self) -> list[tuple[str, str]]:
        return [(t.type, t.id) for t in self.event.targets]


@dataclass(slots=True)
class Rejected:
    """An event that was not accepted, with every reason."""

    index: int
    errors: list[dict[str, str]]
    id: str | None = None


def to_us(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (dt - _EPOCH) // _ONE_US


def dt_rfc3339(dt: datetime) -> str:
    """RFC 3339 UTC text (microseconds, ``Z``) of an aware datetime."""
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")[:26] + "Z"


def rfc3339(us: int) -> str:
    """RFC 3339 UTC text (microsecond precision, ``Z``) of microseconds since the epoch."""
    secs, frac = divmod(us, 1_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:06d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


_ARRAY = msgspec.json.Decoder(list[EventIn])
_ITEM = msgspec.json.Decoder(EventIn)


def prepare_batch(
    body: bytes, content_type: str, tenant: str, received_us: int, redactor: Redactor = DEFAULT
) -> tuple[list[Prepared], list[Rejected]]:
    """Decode and prepare every event of a request body for ``tenant``, redacted with ``redactor``."""
    received_at = rfc3339(received_us)
    good: list[Prepared] = []
    bad: list[Rejected] = []
    typed: list[EventIn] | None = decode_typed(body, content_type, _ARRAY, _ITEM)  # the common case
    items: list[Any] = []
    if typed is None:
        items = decode_body(body, content_type)
        with contextlib.suppress(msgspec.ValidationError, RecursionError):
            typed = msgspec.convert(items, list[EventIn])  # all valid, in one typed pass
    if typed is not None:
        for i, ev in enumerate(typed):
            _sort(prepare_event(ev, tenant, received_us, received_at, i, redactor), good, bad)
        return good, bad
    for i, item in enumerate(items):
        if isinstance(item, Malformed):
            bad.append(Rejected(i, [{"field": item.field, "message": item.message}]))
            continue
        try:
            ev = msgspec.convert(item, EventIn)
        except (msgspec.ValidationError, RecursionError):
            errors = struct_errors(item, EventIn, "")
            raw_id = item.get("id") if isinstance(item, dict) else None
            bad.append(
                Rejected(
                    i,
                    errors or [{"field": "", "message": "invalid event"}],
                    raw_id[:64] if isinstance(raw_id, str) else None,
                )
            )
            continue
        _sort(prepare_event(ev, tenant, received_us, received_at, i, redactor), good, bad)
    return good, bad


def _sort(item: Prepared | Rejected, good: list[Prepared], bad: list[Rejected]) -> None:
    if isinstance(item, Prepared):
        good.append(item)
    else:
        bad.append(item)


def prepare_event(
    ev: EventIn,
    tenant: str,
    received_us: int,
    received_at: str | None = None,
    i: int = 0,
    redactor: Redactor = DEFAULT,
) -> Prepared | Rejected:
    """Validate, redact and canonicalise one decoded event for ``tenant``."""
    if received_at is None:
        received_at = rfc3339(received_us)
    errors: list[dict[str, str]] = []
    # the id's UUIDv7 shape was checked by the decoder's pattern; lower-case it so retries match
    eid = uuid7_text(received_us // 1000) if ev.id is None else ev.id.lower()
    metadata, slow = _metadata(ev.metadata, errors) if ev.metadata else (ev.metadata, False)
    changes = ev.changes
    if changes:
        if len(changes) > MAX_CHANGES:
            errors.append(
                {"field": "changes", "message": f"at most {MAX_CHANGES} fields; got {len(changes)}"}
            )
        for key, pair in changes.items():
            if len(pair) != 2:
                errors.append({"field": f"changes.{key[:60]}", "message": "must be a [before, after] pair"})
        try:
            slow = scan(changes, MAX_DEPTH - 1) or slow
        except NotCanonicalizable as exc:
            errors.append({"field": "changes", "message": str(exc)})
    context = ev.context
    if context is not None and isinstance(context.status, float):
        if context.status.is_integer():
            context = msgspec.structs.replace(context, status=int(context.status))
        else:
            errors.append({"field": "context.status", "message": f"must be an integer; got {context.status}"})
    if errors:
        return Rejected(i, errors, eid)
    redacted = redact_event(ev, metadata, changes, context, redactor)
    if isinstance(redacted, str):
        why = f"looks like a credential ({redacted}); an action name is never stored redacted"
        return Rejected(i, [{"field": "action", "message": why}], eid)
    actor, targets, context, changes, metadata, reason, message = redacted
    if ev.occurred_at is None:
        occurred_us, occurred_at = received_us, received_at
    else:
        try:
            occurred_us, occurred_at = to_us(ev.occurred_at), dt_rfc3339(ev.occurred_at)
        except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            return Rejected(
                i, [{"field": "occurred_at", "message": "is outside the years 1 to 9999 in UTC"}], eid
            )
    if actor.type is None:
        actor = msgspec.structs.replace(actor, type="user")
    event = Event(
        id=eid,
        tenant=tenant,
        occurred_at=occurred_at,
        received_at=received_at,
        action=ev.action,
        actor=actor,
        category=ev.category,
        outcome=ev.outcome,
        targets=targets,
        context=context,
        changes=changes,
        reason=reason,
        message=message,
        metadata=metadata,
    )
    body = canonical(event, slow=slow)
    if len(body) > MAX_EVENT_BYTES:
        too_big = f"an event is at most {MAX_EVENT_BYTES} bytes; this one is {len(body)}"
        return Rejected(i, [{"field": "", "message": too_big}], eid)
    return Prepared(i, eid, occurred_us, event, body, _sha256(b"\x00" + body).digest(), search_text(event))


def _metadata(metadata: dict[str, Any], errors: list[dict[str, str]]) -> tuple[dict[str, Any], bool]:
    """One pass over a metadata map: limits and canonical-form checks. Returns (map, needs_slow)."""
    if len(metadata) > MAX_METADATA_KEYS:
        errors.append(
            {"field": "metadata", "message": f"at most {MAX_METADATA_KEYS} keys; got {len(metadata)}"}
        )
    slow = False
    for key, value in metadata.items():
        if not 0 < len(key) <= MAX_METADATA_KEY_LEN:
            errors.append(
                {
                    "field": f"metadata.{key[:60]}",
                    "message": f"keys must be 1 to {MAX_METADATA_KEY_LEN} characters",
                }
            )
        if not key.isascii():
            slow = True
        kind = type(value)
        if kind is str:
            if len(value) > MAX_METADATA_VALUE_LEN:
                errors.append(
                    {
                        "field": f"metadata.{key[:60]}",
                        "message": f"values must be at most {MAX_METADATA_VALUE_LEN} characters",
                    }
                )
        elif kind is int:
            if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                errors.append(
                    {
                        "field": f"metadata.{key[:60]}",
                        "message": f"integer {value} is outside the JSON-safe range ±(2**53-1)",
                    }
                )
        elif kind is float:
            if value != value or value in (math.inf, -math.inf):
                errors.append(
                    {"field": f"metadata.{key[:60]}", "message": "NaN and infinity have no JSON form"}
                )
            slow = True
    return metadata, slow


_ACTOR_FIELDS = ("id", "name", "email", "session_id")
_TARGET_FIELDS = ("type", "id", "name")
_CONTEXT_FIELDS = ("ip", "user_agent", "request_id", "trace_id", "method", "route", "location")
Redacted = tuple[
    Actor,
    list[Target],
    Context | None,
    dict[str, list[Any]] | None,
    dict[str, Any] | None,
    str | None,
    str | None,
]


def redact_event(
    ev: EventIn,
    metadata: dict[str, Any] | None,
    changes: dict[str, list[Any]] | None,
    context: Context | None,
    red: Redactor,
) -> Redacted | str:
    """Every string of the event with its secrets replaced; or the kind of secret its action holds.

    The strings are joined and checked for the detectors' triggers once; a clean event (almost all of them)
    then costs only the key-name rules of its metadata and changes."""
    a = ev.actor
    texts = [ev.action, ev.reason, ev.message, a.id, a.name, a.email, a.session_id]
    for t in ev.targets:
        texts += (t.type, t.id, t.name)
    if context is not None:
        c = context
        texts += (c.ip, c.user_agent, c.request_id, c.trace_id, c.method, c.route, c.location)
    if metadata:
        texts += metadata
        texts += [v for v in metadata.values() if type(v) is str]
    if changes:
        texts += strings(changes)
    hot = red.scan([t for t in texts if t])
    if hot or red.patterns:
        kind = red.first_kind(ev.action) if ev.action in hot or red.patterns else None
        if kind is not None:
            return kind
    if metadata:
        metadata = red.mapping(metadata, "metadata", hot, MAX_METADATA_VALUE_LEN)
    if changes:
        changes = red.changes(changes, "changes", hot)
    if not hot and not red.patterns:
        return ev.actor, ev.targets, context, changes, metadata, ev.reason, ev.message
    actor = _struct(ev.actor, "actor.", _ACTOR_FIELDS, red, hot)
    targets = [_struct(t, "targets.", _TARGET_FIELDS, red, hot) for t in ev.targets]
    if context is not None:
        context = _struct(context, "context.", _CONTEXT_FIELDS, red, hot)
    reason = _field(ev.reason, "reason", red, hot)
    message = _field(ev.message, "message", red, hot)
    return actor, targets, context, changes, metadata, reason, message


def _field(value: str | None, path: str, red: Redactor, hot: Hot) -> str | None:
    if value is None or path in red.allow:
        return value
    return red.text(value, FIELD_LIMITS.get(path), hot)


def _struct(obj: Any, prefix: str, names: tuple[str, ...], red: Redactor, hot: Hot) -> Any:
    new = {}
    for name in names:
        value = getattr(obj, name)
        out = _field(value, prefix + name, red, hot)
        if out is not value:
            new[name] = out
    return msgspec.structs.replace(obj, **new) if new else obj


def search_text(event: Event) -> str:
    """The words free-text search finds an event by: its message and its metadata keys and values."""
    md = event.metadata
    if not md:
        return event.message or ""
    return " ".join([event.message or "", *md, *(_word(v) for v in md.values() if v is not None)])


def _word(value: Any) -> str:
    # Numbers as the canonical bytes write them (1.0 is "1"), so the text can be recomputed from the ledger and
    # checked against the index (vigil.store.indexcheck).
    return rfc8785.dumps(value).decode() if type(value) is float else str(value)


def struct_errors(value: Any, struct: type[msgspec.Struct], prefix: str) -> list[dict[str, str]]:
    """Every problem of ``value`` as an instance of ``struct``, one entry per field (recursing into structs)."""

    def path(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    if not isinstance(value, dict):
        return [{"field": prefix, "message": f"expected an object, got {_json_type(value)}"}]
    errors: list[dict[str, str]] = []
    info = msgspec.structs.fields(struct)
    names = {f.encode_name for f in info}
    for key in value:
        if key not in names:
            errors.append({"field": path(str(key)), "message": "unknown field"})
    for f in info:
        if f.encode_name not in value:
            if f.required:
                errors.append({"field": path(f.encode_name), "message": "required"})
            continue
        item = value[f.encode_name]
        try:
            msgspec.convert(item, f.type)
        except RecursionError:
            errors.append({"field": path(f.encode_name), "message": "nested too deeply"})
        except msgspec.ValidationError as exc:
            inner, sub = _struct_of(f.type), _list_struct_of(f.type)
            if inner is not None and isinstance(item, dict):
                errors.extend(struct_errors(item, inner, path(f.encode_name)))
            elif sub is not None and isinstance(item, list):
                before = len(errors)
                for j, elem in enumerate(item):
                    errors.extend(struct_errors(elem, sub, f"{path(f.encode_name)}[{j}]"))
                if len(errors) == before:
                    errors.append({"field": path(f.encode_name), "message": _reason(exc)})
            else:
                errors.append({"field": path(f.encode_name) + _suffix(exc), "message": _reason(exc)})
    return errors


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc).split(" - at `", 1)[0]
    if "matching regex" in text:
        for pattern, rule in _PATTERN_RULES.items():
            if repr(pattern) in text:
                return rule
    return text


# what the identifier patterns mean, in words: a regular expression is not a message
_PATTERN_RULES = {
    ACTION_PATTERN: "must be a dotted lower-case name like user.login (a-z, 0-9 and _ between the dots; "
    "no spaces, newlines or other characters)",
    ID_PATTERN: "must be visible ASCII characters only (no spaces, newlines, control or non-ASCII characters)",
    UUID7_PATTERN: "must be a UUIDv7 (leave it out and the server makes one)",
}


def _suffix(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if " - at `$" in text:
        return text.split(" - at `$", 1)[1].rstrip("`")
    return ""


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    for cand in (tp, *get_args(tp)):
        if isinstance(cand, type) and issubclass(cand, msgspec.Struct):
            return cand
    return None


def _list_struct_of(tp: Any) -> type[msgspec.Struct] | None:
    for cand in (tp, *get_args(tp)):
        if get_origin(cand) is list:
            return _struct_of(get_args(cand)[0])
        inner = get_args(cand)
        if inner and get_origin(inner[0]) is list:
            return _struct_of(get_args(inner[0])[0])
    return None


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
