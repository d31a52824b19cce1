"""The audit event: what clients send (:class:`EventIn`) and what the log stores (:class:`Event`).

The shape follows DESIGN.md ("The event"). Fields a client leaves out are left out of the stored event too
(``omit_defaults``), so the canonical bytes that are hashed hold exactly what was said.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect

from vigil.ids import EVENT_ID_PATTERN, MAX_EVENT_ID_LEN

# Limits from the issue tracker (WorkOS's metadata caps; our own event and request caps).
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LEN = 40
MAX_METADATA_VALUE_LEN = 500
MAX_EVENT_BYTES = 64 * 1024
MAX_REQUEST_EVENTS = 1000
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_TARGETS = 50
MAX_CHANGES = 100
MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32  # arrays and objects an event nests, the event itself included
MAX_VERSION = 2**31 - 1  # the schema version an event may name (WorkOS's "version")
# Identifiers are matched exactly. Python's "$" also matches before a final newline, so "user.login\n" would pass
# and then escape every search for user.login: the patterns end in "\Z" here, and in "$" (which means the end of
# the text in JSON Schema's regular expressions) in the documented schema.
# Ids and types of actors and targets: visible ASCII, no space, no control or invisible character, so an id
# looks like what it is and matches itself only.
ID_PATTERN = r"^[!-~]+\Z"

Category = Literal["activity", "audit", "data_access", "change", "system"]
Outcome = Literal["success", "failure", "denied", "error"]
ActorType = Literal["user", "api_key", "service", "operator", "system", "anonymous"]
CATEGORIES: tuple[str, ...] = ("activity", "audit", "data_access", "change", "system")
OUTCOMES: tuple[str, ...] = ("success", "failure", "denied", "error")
ACTOR_TYPES: tuple[str, ...] = ("user", "api_key", "service", "operator", "system", "anonymous")

ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z"

Action = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        pattern=ACTION_PATTERN,
        description="Dotted action name, e.g. user.login",
    ),
]
Ident = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=256, pattern=ID_PATTERN, description="Visible ASCII, no spaces"),
]
TypeName = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=64, pattern=ID_PATTERN, description="Visible ASCII, no spaces"),
]
OptText = Annotated[str, msgspec.Meta(max_length=256)]
LongText = Annotated[str, msgspec.Meta(max_length=2000)]
Scalar = str | int | float | bool | None
EventId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_EVENT_ID_LEN,
        pattern=EVENT_ID_PATTERN,
        description="A UUID (any version), or 1 to 128 of A-Z a-z 0-9 . _ : - starting with a letter or digit",
    ),
]


class Actor(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Who did it."""

    id: Ident
    type: ActorType | None = None  # "user" when the client says nothing; the stored event always has it
    name: OptText | None = None
    email: OptText | None = None
    session_id: OptText | None = None
    metadata: dict[str, Scalar] | None = None  # WorkOS's actor.metadata: a flat map, with the event's limits


class Target(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What it was done to."""

    type: TypeName
    id: Ident
    name: OptText | None = None
    metadata: dict[str, Scalar] | None = None  # WorkOS's targets[].metadata, as actor.metadata


class Context(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Where and how it happened."""

    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    request_id: OptText | None = None
    trace_id: OptText | None = None
    method: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    route: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    # JSON Schema's "integer" admits 100.0; intake stores such a value as the integer it is
    status: (
        Annotated[int, msgspec.Meta(ge=100, le=599)] | Annotated[float, msgspec.Meta(ge=100, le=599)] | None
    ) = None
    location: OptText | None = None


class EventIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One event as a client sends it."""

    action: Action
    actor: Actor
    id: EventId | None = None
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    category: Category = "activity"
    outcome: Outcome = "success"
    targets: Annotated[list[Target], msgspec.Meta(max_length=MAX_TARGETS)] = []
    context: Context | None = None
    changes: dict[str, list[Any]] | None = None
    reason: LongText | None = None
    message: LongText | None = None
    metadata: dict[str, Scalar] | None = None
    # WorkOS's schema version; JSON Schema's "integer" admits 2.0, which intake stores as the integer it is
    version: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
        | Annotated[float, msgspec.Meta(ge=1, le=MAX_VERSION)]
        | None
    ) = None


def _max_lengths() -> dict[str, int]:
    """``{"actor.name": 256, "context.route": 1024, "message": 2000, …}``: the length limit of every text field."""
    out: dict[str, int] = {}
    for prefix, struct in (("", EventIn), ("actor.", Actor), ("targets.", Target), ("context.", Context)):
        info = msgspec.inspect.type_info(struct)
        if not isinstance(info, msgspec.inspect.StructType):
            continue
        for f in info.fields:
            options = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
            for t in options:
                if isinstance(t, msgspec.inspect.StrType) and t.max_length is not None:
                    out[prefix + f.encode_name] = t.max_length
    return out


FIELD_LIMITS: dict[str, int] = _max_lengths()
"""Redaction can make a text longer (a short secret becomes ``[REDACTED:kind]``); it cuts to these."""


class Event(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One event as the log stores it; its canonical JSON is the Merkle leaf."""

    id: str
    tenant: str
    occurred_at: str
    received_at: str
    action: str
    actor: Actor
    category: str
    outcome: str
    targets: list[Target] = []
    context: Context | None = None
    changes: dict[str, list[Any]] | None = None
    reason: str | None = None
    message: str | None = None
    metadata: dict[str, Scalar] | None = None
    # Absent unless the client sent it, so the canonical bytes of every event without one are what they were.
    version: int | None = None


class StoredEvent(Event, kw_only=True):
    """An event read back from the log, with its place in the tenant's Merkle tree (leaf index and hash)."""

    seq: int
    leaf_hash: str


def stored_json(seq: int, leaf: bytes, body: bytes) -> bytes:
    """The API form of a stored event: its canonical body with ``seq`` and ``leaf_hash`` spliced in front.

    Splicing bytes instead of decoding and re-encoding keeps reads cheap; the canonical body is always a
    non-empty JSON object.
    """
    return b'{"seq":%d,"leaf_hash":"%s",' % (seq, leaf.hex().encode()) + body[1:]


_stored_decoder = msgspec.json.Decoder(StoredEvent)


def decode_stored(seq: int, leaf: bytes, body: bytes) -> StoredEvent:
    """A stored event as a Python object."""
    return _stored_decoder.decode(stored_json(seq, leaf, body))


class EventResult(msgspec.Struct, omit_defaults=True):
    """Per-event answer of ``POST /v1/events``: ``seq`` and ``leaf_hash`` (stored, duplicate), ``errors``
    (rejected), or both (conflict: the id is taken by another event, whose seq and leaf hash these are)."""

    index: int
    status: Literal["stored", "duplicate", "conflict", "rejected"]
    id: str | None = None
    seq: int | None = None
    leaf_hash: str | None = None
    errors: list[dict[str, str]] | None = None


class IngestResponse(msgspec.Struct):
    """Answer of ``POST /v1/events``: ``accepted`` counts stored and duplicate events, ``rejected`` the rest
    (rejected and conflict)."""

    accepted: int
    rejected: int
    results: list[EventResult]


def event_in_schema(
    ref_template: str = "#/components/schemas/{name}",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON Schema of a request body (a list of :class:`EventIn`, one event, or WorkOS's ``{organization_id,
    event}``) and its components, with every limit.

    The struct decodes leniently so that intake can list every problem of an event at once; the limits it
    checks by hand (metadata caps, JSON-safe integers, change pairs) are written into the documented schema
    here, so a schema-valid event is an acceptable one (but for the clock: see ``max_clock_skew``).
    """
    body, components = msgspec.json.schema_components(
        [Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_REQUEST_EVENTS)]],
        ref_template=ref_template,
    )
    safe_int = {"type": "integer", "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}
    components["JsonValue"] = {
        "anyOf": [
            {"type": "string"},
            safe_int,
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": ref_template.format(name="JsonValue")}},
            {"type": "object", "additionalProperties": {"$ref": ref_template.format(name="JsonValue")}},
        ]
    }
    components["Context"]["properties"]["status"] = {
        "anyOf": [{"type": "integer", "minimum": 100, "maximum": 599}, {"type": "null"}],
        "description": "HTTP status of the request (100.0 is taken as 100)",
    }
    _json_schema_patterns(components)
    props = components["EventIn"]["properties"]
    props["version"] = {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_VERSION}, {"type": "null"}],
        "description": "The event's schema version (WorkOS's version); 2.0 is taken as 2",
    }
    props["id"] = {
        "anyOf": [
            {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_EVENT_ID_LEN,
                "pattern": EVENT_ID_PATTERN[:-2] + "$",
            },
            {"type": "null"},
        ],
        "description": "A UUID (any version; kept lower-cased) or an opaque id of 1 to 128 letters, digits, "
        "'.', '_', ':' and '-' starting with a letter or digit (kept as sent); a UUIDv7 is made when absent. "
        "Resending an id with the same event is a duplicate; with another event, a conflict.",
    }
    components["Metadata"] = {
        "anyOf": [
            {
                "type": "object",
                "maxProperties": MAX_METADATA_KEYS,
                "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY_LEN},
                "additionalProperties": {
                    "anyOf": [
                        {"type": "string", "maxLength": MAX_METADATA_VALUE_LEN},
                        safe_int,
                        {"type": "number"},
                        {"type": "boolean"},
                        {"type": "null"},
                    ]
                },
            },
            {"type": "null"},
        ],
        "description": "Flat map; values of secret-named keys are stored as [REDACTED].",
    }
    metadata = {"$ref": ref_template.format(name="Metadata")}
    props["metadata"] = metadata
    components["Actor"]["properties"]["metadata"] = metadata
    components["Target"]["properties"]["metadata"] = metadata
    props["changes"] = {
        "anyOf": [
            {
                "type": "object",
                "maxProperties": MAX_CHANGES,
                "additionalProperties": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": {"$ref": ref_template.format(name="JsonValue")},
                },
            },
            {"type": "null"},
        ],
        "description": "{field: [before, after]}",
    }
    event = {"$ref": ref_template.format(name="EventIn")}
    components["WorkOSEnvelope"] = {
        "type": "object",
        "required": ["event"],
        "additionalProperties": False,
        "properties": {
            "organization_id": {
                "type": "string",
                "description": "Must name the key's own tenant (its slug or its name); the key decides the tenant",
            },
            "event": event,
        },
        "description": "A WorkOS Create Event body: one event",
    }
    request = {
        "anyOf": [body[0], event, {"$ref": ref_template.format(name="WorkOSEnvelope")}],
        "description": "An array of events, one event, or a WorkOS Create Event body",
    }
    return request, components


def _json_schema_patterns(node: Any) -> None:
    """Write every pattern's Python end-of-text anchor as JSON Schema's, in place."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("\\Z"):
            node["pattern"] = pattern[:-2] + "$"
        for value in node.values():
            _json_schema_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _json_schema_patterns(value)
