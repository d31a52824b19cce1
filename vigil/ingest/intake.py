"""Turn a request body into prepared events: decode → validate → redact → canonicalise → leaf hash.

Every problem of every event is reported (field path and reason); one bad event never loses the good ones.
A body is an array of events, one event, or WorkOS's ``{"organization_id", "event"}``; with an
``Idempotency-Key`` the events without an id get ids made from the key and the body (:func:`vigil.ids.derived_id`),
so a retried request lands on the events it stored before.
The body is read strictly by :mod:`vigil.ingest.decode` (one reader: no duplicate keys, no NUL, no number
beyond a float). The common case, a body whose events are all valid, is converted by msgspec in one typed pass;
only when that fails is each event checked field by field to list all of its problems.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_origin

import msgspec
import rfc8785

from vigil.ids import EVENT_ID_PATTERN, EVENT_ID_RULE, derived_id, event_id, is_uuid_text, uuid7_text
from vigil.ingest.decode import JSON as JSON
from vigil.ingest.decode import NDJSON as NDJSON
from vigil.ingest.decode import Malformed, decode_request, decode_typed
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


@dataclass(slots=True)
class Batch:
    """A prepared request: its events sorted into good and bad, the organization a WorkOS envelope named (the
    caller checks it against the key's tenant), and the fingerprint of its body when it had an idempotency key."""

    good: list[Prepared]
    bad: list[Rejected]
    organization: str | None = None
    fingerprint: bytes = b""


def prepare_batch(
    body: bytes, content_type: str, tenant: str, received_us: int, redactor: Redactor = DEFAULT
) -> tuple[list[Prepared], list[Rejected]]:
    """Decode and prepare every event of a request body for ``tenant``, redacted with ``redactor``."""
    batch = prepare_request(body, content_type, tenant, received_us, redactor)
    return batch.good, batch.bad


def prepare_request(
    body: bytes,
    content_type: str,
    tenant: str,
    received_us: int,
    redactor: Redactor = DEFAULT,
    *,
    max_skew_us: int | None = None,
    idempotency_key: str | None = None,
) -> Batch:
    """:func:`prepare_batch` for the API: events whose ``occurred_at`` is more than ``max_skew_us`` after
    ``received_us`` are rejected (None: no bound), and with ``idempotency_key`` the events without an id get
    the ids that key and this body always give."""
    received_at = rfc3339(received_us)
    good: list[Prepared] = []
    bad: list[Rejected] = []
    # the common case: an array (or NDJSON) of valid events, read straight into typed events; an idempotency key
    # needs the decoded values (its ids and fingerprint come from them), and a WorkOS object takes the strict road
    typed = None if idempotency_key is not None else decode_typed(body, content_type, _ARRAY, _ITEM)
    if typed is not None:
        for i, ev in enumerate(typed):
            _sort(prepare_event(ev, tenant, received_us, received_at, i, redactor, max_skew_us), good, bad)
        return Batch(good, bad)
    items, organization = decode_request(body, content_type)
    fingerprint = b""
    if idempotency_key is not None:
        fingerprint = request_fingerprint(items, body)
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("id") is None:
                item["id"] = derived_id(idempotency_key, fingerprint, i)
    with contextlib.suppress(msgspec.ValidationError, RecursionError):
        typed = msgspec.convert(items, list[EventIn])  # all valid, in one typed pass
    if typed is not None:
        for i, ev in enumerate(typed):
            _sort(prepare_event(ev, tenant, received_us, received_at, i, redactor, max_skew_us), good, bad)
        return Batch(good, bad, organization, fingerprint)
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
                    _echo_id(raw_id, redactor),
                )
            )
            continue
        _sort(prepare_event(ev, tenant, received_us, received_at, i, redactor, max_skew_us), good, bad)
    return Batch(good, bad, organization, fingerprint)


_sorted_json = msgspec.json.Encoder(order="sorted").encode


def request_fingerprint(items: list[Any], body: bytes) -> bytes:
    """SHA-256 of the request's JSON values with keys sorted: the same events, however spaced or ordered, give
    the same fingerprint (the raw body's hash when a value has no such form, like an integer past 64 bits)."""
    try:
        return _sha256(_sorted_json(items)).digest()
    except (OverflowError, TypeError, msgspec.EncodeError):
        return _sha256(body).digest()


def _echo_id(raw: Any, red: Redactor) -> str | None:
    """A rejected event's id, for its result: only a valid id, and never one that holds a credential."""
    eid = event_id(raw) if isinstance(raw, str) else None
    return eid if eid is not None and red.first_kind(eid) is None else None


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
    max_skew_us: int | None = None,
) -> Prepared | Rejected:
    """Validate, redact and canonicalise one decoded event for ``tenant``; an ``occurred_at`` more than
    ``max_skew_us`` after ``received_us`` is rejected (None: no bound)."""
    if received_at is None:
        received_at = rfc3339(received_us)
    errors: list[dict[str, str]] = []
    # the decoder's pattern checked the id; a UUID is a number whose text ignores case: lower-cased, retries match
    if ev.id is None:
        eid, client_id = uuid7_text(received_us // 1000), None
    else:
        eid = client_id = ev.id.lower() if len(ev.id) == 36 and is_uuid_text(ev.id) else ev.id
    metadata, slow = _metadata(ev.metadata, errors, "metadata") if ev.metadata else (ev.metadata, False)
    if ev.actor.metadata:
        slow = _metadata(ev.actor.metadata, errors, "actor.metadata")[1] or slow
    for j, t in enumerate(ev.targets):
        if t.metadata:
            slow = _metadata(t.metadata, errors, f"targets[{j}].metadata")[1] or slow
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
    version: int | float | None = ev.version
    if isinstance(version, float):
        if version.is_integer():
            version = int(version)
        else:
            errors.append({"field": "version", "message": f"must be an integer; got {version}"})
    if errors:
        return Rejected(i, errors, _echo_id(client_id, redactor))
    redacted = redact_event(ev, metadata, changes, context, redactor, client_id)
    if isinstance(redacted, Refusal):
        what = "an action name" if redacted.field == "action" else "an event id"
        why = f"looks like a credential ({redacted.kind}); {what} is never stored redacted"
        echo = None if redacted.field == "id" else _echo_id(eid, redactor)
        return Rejected(i, [{"field": redacted.field, "message": why}], echo)
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
        if max_skew_us is not None and occurred_us - received_us > max_skew_us:
            return Rejected(
                i, [_future(occurred_at, occurred_us, received_at, received_us, max_skew_us)], eid
            )
    if actor.type is None:
        actor = msgspec.structs.replace(actor, type="user")
    if context is not None and context.ip is None and context.location:
        # WorkOS's context.location is the client's IP address: also kept as context.ip, where searches and the
        # network detections look (location stays as sent)
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(context.location)
            context = msgspec.structs.replace(context, ip=context.location)
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
        version=None if version is None else int(version),
    )
    body = canonical(event, slow=slow)
    if len(body) > MAX_EVENT_BYTES:
        too_big = f"an event is at most {MAX_EVENT_BYTES} bytes; this one is {len(body)}"
        return Rejected(i, [{"field": "", "message": too_big}], eid)
    return Prepared(i, eid, occurred_us, event, body, _sha256(b"\x00" + body).digest(), search_text(event))


def _future(
    occurred_at: str, occurred_us: int, received_at: str, received_us: int, skew_us: int
) -> dict[str, str]:
    ahead = (occurred_us - received_us) / 1_000_000
    return {
        "field": "occurred_at",
        "message": f"is {occurred_at}, {_span(ahead)} after the server's clock ({received_at}); an event may be "
        f"at most {_span(skew_us / 1_000_000)} ahead (setting max_clock_skew): check the sender's clock",
    }


def _span(seconds: float) -> str:
    """``5 minutes``, ``3 days``: a span in its largest whole unit (rounded down), for a message."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return ""


def _metadata(
    metadata: dict[str, Any], errors: list[dict[str, str]], where: str
) -> tuple[dict[str, Any], bool]:
    """One pass over a metadata map at ``where``: limits and canonical-form checks. Returns (map, needs_slow)."""
    if len(metadata) > MAX_METADATA_KEYS:
        errors.append({"field": where, "message": f"at most {MAX_METADATA_KEYS} keys; got {len(metadata)}"})
    slow = False
    for key, value in metadata.items():
        if not 0 < len(key) <= MAX_METADATA_KEY_LEN:
            errors.append(
                {
                    "field": f"{where}.{key[:60]}",
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
                        "field": f"{where}.{key[:60]}",
                        "message": f"values must be at most {MAX_METADATA_VALUE_LEN} characters",
                    }
                )
        elif kind is int:
            if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                errors.append(
                    {
                        "field": f"{where}.{key[:60]}",
                        "message": f"integer {value} is outside the JSON-safe range ±(2**53-1)",
                    }
                )
        elif kind is float:
            if value != value or value in (math.inf, -math.inf):
                errors.append(
                    {"field": f"{where}.{key[:60]}", "message": "NaN and infinity have no JSON form"}
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


@dataclass(slots=True)
class Refusal:
    """An identifier that holds a credential: it cannot be rewritten (searches, rules and dedup match it
    exactly), so the event is refused."""

    field: str
    kind: str


def redact_event(
    ev: EventIn,
    metadata: dict[str, Any] | None,
    changes: dict[str, list[Any]] | None,
    context: Context | None,
    red: Redactor,
    client_id: str | None = None,
) -> Redacted | Refusal:
    """Every string of the event with its secrets replaced; or the identifier (the action, the client's id)
    that holds a credential.

    The strings are joined and checked for the detectors' triggers once; a clean event (almost all of them)
    then costs only the key-name rules of its metadata and changes."""
    a = ev.actor
    texts = [ev.action, ev.reason, ev.message, a.id, a.name, a.email, a.session_id]
    if client_id is not None and len(client_id) != 36:  # a UUID holds no credential; an opaque id may
        texts.append(client_id)
    if a.metadata:
        texts += a.metadata
        texts += [v for v in a.metadata.values() if type(v) is str]
    target_metadata = False
    for t in ev.targets:
        texts += (t.type, t.id, t.name)
        if t.metadata:
            target_metadata = True
            texts += t.metadata
            texts += [v for v in t.metadata.values() if type(v) is str]
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
        for name, value in (("action", ev.action), ("id", client_id)):
            kind = red.first_kind(value) if value and (value in hot or red.patterns) else None
            if kind is not None:
                return Refusal(name, kind)
    if metadata:
        metadata = red.mapping(metadata, "metadata", hot, MAX_METADATA_VALUE_LEN)
    actor, targets = ev.actor, ev.targets
    if a.metadata:
        actor = _with_metadata(actor, red.mapping(a.metadata, "actor.metadata", hot, MAX_METADATA_VALUE_LEN))
    if target_metadata:
        targets = [
            _with_metadata(t, red.mapping(t.metadata, "targets.metadata", hot, MAX_METADATA_VALUE_LEN))
            if t.metadata
            else t
            for t in targets
        ]
    if changes:
        changes = red.changes(changes, "changes", hot)
    if not hot and not red.patterns:
        return actor, targets, context, changes, metadata, ev.reason, ev.message
    actor = _struct(actor, "actor.", _ACTOR_FIELDS, red, hot)
    targets = [_struct(t, "targets.", _TARGET_FIELDS, red, hot) for t in targets]
    if context is not None:
        context = _struct(context, "context.", _CONTEXT_FIELDS, red, hot)
    reason = _field(ev.reason, "reason", red, hot)
    message = _field(ev.message, "message", red, hot)
    return actor, targets, context, changes, metadata, reason, message


def _with_metadata(obj: Any, metadata: dict[str, Any]) -> Any:
    return obj if metadata is obj.metadata else msgspec.structs.replace(obj, metadata=metadata)


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
            elif f.encode_name == "metadata" and isinstance(item, dict):
                found = _flat_map_errors(item, path(f.encode_name))
                errors.extend(found or [{"field": path("metadata"), "message": _reason(exc)}])
            elif struct is EventIn and f.encode_name == "id" and isinstance(item, str):
                errors.append({"field": "id", "message": EVENT_ID_RULE})
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
    EVENT_ID_PATTERN: EVENT_ID_RULE,
}


def _flat_map_errors(value: dict[str, Any], where: str) -> list[dict[str, str]]:
    """Each value of a flat map (metadata) that is not a string, number, boolean or null, named by its key."""
    errors = []
    for key, item in value.items():
        if item is None or type(item) in (str, int, float, bool):
            continue
        example = ""
        if isinstance(item, dict) and item:
            sub = next(iter(item))
            example = f' (write it as its own key, such as "{key[:40]}.{str(sub)[:40]}")'
        errors.append(
            {
                "field": f"{where}.{key[:60]}",
                "message": f"must be a string, number, boolean or null, not an {_json_type(item)}: {where} is a "
                f"flat map{example}",
            }
        )
    return errors


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
