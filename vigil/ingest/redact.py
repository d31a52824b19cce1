"""Secret redaction, applied before anything is hashed or stored (and by the SDK before an event leaves the app).

A value is replaced when its key names a secret. Keys are compared after lower-casing and dropping ``-``, ``_``,
``.`` and spaces, so ``API-Key``, ``api_key`` and ``apiKey`` all match. Matching is by substring on purpose: a
false positive costs a redacted value, a false negative leaks a credential into a log that can never be edited.
"""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "[REDACTED]"

SECRET_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
    "accesskey",
    "signature",
    "sessionkey",
)
_SECRET_KEY = re.compile("|".join(SECRET_WORDS))
_STRIP = str.maketrans("", "", "-_. ")
# Values that carry a credential whatever their key: HTTP auth headers and JWTs.
_SECRET_VALUE = re.compile(r"^(Bearer|Basic)\s+\S+|^eyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]+", re.IGNORECASE)


@functools.lru_cache(maxsize=8192)  # apps reuse a few hundred keys; the regex is the costly part
def is_secret_key(key: str) -> bool:
    """True when a metadata or change key names a secret."""
    return _SECRET_KEY.search(key.lower().translate(_STRIP)) is not None


def is_secret_value(value: Any) -> bool:
    """True when a string value is itself a credential (an auth header or a JWT)."""
    if type(value) is not str or len(value) < 8:
        return False
    # cheap prefix test first: almost no value starts like a credential, and the regex costs microseconds
    head = value[:3].lower()
    return head in _HEADS and _SECRET_VALUE.match(value) is not None


_HEADS = frozenset({"bea", "bas", "eyj"})


def redact_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy of a flat metadata map with secret values replaced (the same object when nothing changes)."""
    out: dict[str, Any] | None = None
    for key, value in metadata.items():
        if value != REDACTED and (is_secret_key(key) or is_secret_value(value)):
            if out is None:
                out = dict(metadata)
            out[key] = REDACTED
    return metadata if out is None else out


def redact_changes(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """A copy of a change map with the before and after of secret fields replaced."""
    out: dict[str, list[Any]] | None = None
    for key, pair in changes.items():
        if is_secret_key(key) or any(is_secret_value(v) for v in pair):
            if out is None:
                out = dict(changes)
            out[key] = [REDACTED if v is not None else None for v in pair]
    return changes if out is None else out
