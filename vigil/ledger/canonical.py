"""RFC 8785 (JCS) canonical bytes of a stored event: the exact bytes that become its Merkle leaf.

msgspec with sorted keys writes the same bytes as JCS for everything but three cases: floats (JCS uses the
ECMAScript number form), integers beyond 2**53 (JCS refuses them) and object keys outside ASCII (JCS sorts by
UTF-16 code units). :func:`scan` finds those cases while validation walks the free-form parts of the event anyway;
only then does :func:`canonical` fall back to the reference implementation. A property test pins that both paths
give identical bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import rfc8785

MAX_SAFE_INT = 2**53 - 1

_encoder = msgspec.json.Encoder(order="sorted")


class NotCanonicalizable(ValueError):
    """The value has no RFC 8785 form (an integer beyond 2**53, a NaN or an infinity)."""


def scan(value: Any, max_depth: int = 1 << 30) -> bool:
    """Walk a free-form JSON value; True when it needs the reference encoder. Raises on unencodable values and
    on arrays and objects nested more than ``max_depth`` levels (``value`` itself is level 1)."""
    slow = False
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                raise NotCanonicalizable(f"integer {v} is outside the JSON-safe range ±(2**53-1)")
        elif t is float:
            if v != v or v in (float("inf"), float("-inf")):
                raise NotCanonicalizable("NaN and infinity have no JSON form")
            slow = True
        elif t is dict or t is list or t is tuple:
            if depth > max_depth:
                raise NotCanonicalizable(f"arrays and objects nest at most {max_depth} levels here")
            if t is dict:
                for k, item in v.items():
                    if not k.isascii():
                        slow = True
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in v)
        else:
            raise NotCanonicalizable(f"{t.__name__} is not a JSON value")
    return slow


def canonical(obj: Any, *, slow: bool = False) -> bytes:
    """The RFC 8785 bytes of ``obj`` (a msgspec Struct or plain JSON value); ``slow`` forces the reference path."""
    if slow:
        return rfc8785.dumps(msgspec.to_builtins(obj))
    return _encoder.encode(obj)
