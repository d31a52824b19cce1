"""UUIDv7 identifiers (RFC 9562): time-ordered, so the log's id index only ever grows at its right edge."""

from __future__ import annotations

import os
import time
import uuid


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
