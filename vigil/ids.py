"""Event ids: UUIDv7 for the ids Vigil makes (RFC 9562), and the rule for the ids clients choose.

Vigil makes time-ordered UUIDv7s, so the log's id index only ever grows at its right edge. A client may keep its
own ids instead (a retry with the same id is then a duplicate, never a second event):

- any UUID, of any version (a UUIDv4, AWS CloudTrail's ``eventID``), in the canonical 8-4-4-4-12 hex form. A UUID
  is a number, and RFC 9562 says its text is read without regard to case, so it is kept lower-cased: ``ABC…`` and
  ``abc…`` are the same event;
- or an opaque id (``evt_123``, ``audit_event_01H…``): 1 to 128 letters, digits, ``.``, ``_``, ``:`` and ``-``,
  starting with a letter or a digit (so never ``.`` or ``..``, which a URL would read as a path step, nor ``-x``,
  which a command line would read as a flag). Opaque ids are kept exactly as sent: case matters.

Ids made from an ``Idempotency-Key`` (see :func:`derived_id`) are UUIDv5s: the same key and request always give
the same ids, so a retry after a lost answer lands on the events already stored.
"""

from __future__ import annotations

import os
import re
import time
import uuid

MAX_EVENT_ID_LEN = 128
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"
"""What a client id may be, for the decoder (a UUID passes it too). ``\\Z``: ``$`` would pass ``evt_1\\n``."""
EVENT_ID_RULE = (
    "must be a UUID (any version, 8-4-4-4-12 hex digits), or 1 to 128 letters, digits, '.', '_', ':' and '-' "
    "starting with a letter or a digit (leave it out and the server makes a UUIDv7)"
)
"""The rule in words, for error messages: a regular expression is not a message."""

_event_id = re.compile(EVENT_ID_PATTERN).match
_uuid_text = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
).match
_DERIVED = uuid.UUID(
    "6f1c1d3e-2b7a-5c36-9a0e-5d1f4c9b8e21"
)  # the namespace of ids made from idempotency keys


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7 for the given Unix time in milliseconds (now by default)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return uuid.UUID(int=value)


def is_uuid7(value: uuid.UUID) -> bool:
    """True when ``value`` is a version-7, RFC 9562 variant UUID."""
    return value.version == 7 and value.variant == uuid.RFC_4122


def uuid7_text(unix_ms: int | None = None) -> str:
    """A new UUIDv7 as canonical lower-case text, without building a UUID object (ingest hot path)."""
    h = f"{uuid7(unix_ms).int:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid_text(text: str) -> bool:
    """True when ``text`` is a UUID in the canonical 8-4-4-4-12 form, in either case."""
    return len(text) == 36 and _uuid_text(text) is not None


def event_id(text: str) -> str | None:
    """The id an event is kept under for ``text`` (a UUID lower-cased, an opaque id as it is), or None when
    ``text`` breaks the rule (:data:`EVENT_ID_RULE`)."""
    if not _event_id(text):
        return None
    return text.lower() if len(text) == 36 and _uuid_text(text) else text


def derived_id(key: str, fingerprint: bytes, index: int) -> str:
    """The id of the ``index``-th event of a request sent with Idempotency-Key ``key`` whose body has
    ``fingerprint``: the same request always gets the same ids; another body under the same key, other ones."""
    return str(uuid.uuid5(_DERIVED, f"{fingerprint.hex()}/{index}/{key}"))
