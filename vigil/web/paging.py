"""One paging shape for every list route: ``{"data": [...], "next_cursor": "..." | null}``, with ``limit`` and
``cursor`` query parameters (``docs/api.md``, "Paging").

A cursor is opaque to clients: base64url of a small JSON object naming the list, the tenant of the key it was
given to, a digest of the filters of the query and the position after the last item. A cursor used by another
tenant's key, on another list or with other filters is a 400, never a page of something else; a position of the
wrong shape is a 400 as well. (Event searches keep their own cursor, with a snapshot, in :mod:`vigil.web.app`;
it has the same properties.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from litestar.params import Parameter

from vigil.errors import InvalidRequest

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50

Limit = Annotated[
    int,
    Parameter(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
]
Cursor = Annotated[str | None, Parameter(max_length=512, description="The next_cursor of the previous page")]

Position = list[str | int]


class _Cursor(msgspec.Struct, forbid_unknown_fields=True):
    k: str  # the list
    t: int  # tenant id of the key the cursor was given to
    f: str  # digest of the query's filters
    p: Position  # where the next page starts (after this item)


def _digest(filters: Mapping[str, Any]) -> str:
    canonical = msgspec.json.encode({k: filters[k] for k in sorted(filters)})
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(
    kind: str, tenant_id: int, filters: Mapping[str, Any], position: Sequence[str | int]
) -> str:
    """The ``next_cursor`` of a page of list ``kind`` whose last item sits at ``position``."""
    raw = msgspec.json.encode(_Cursor(kind, tenant_id, _digest(filters), list(position)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(
    cursor: str, kind: str, tenant_id: int, filters: Mapping[str, Any], shape: Sequence[type]
) -> Position:
    """The position a cursor names, after checking it belongs to this list, tenant and filters and that its
    position has ``shape`` (the type of each part). InvalidRequest (400) otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidRequest("cursor is not one this server gave out") from None
    if data.k != kind or data.t != tenant_id or data.f != _digest(filters):
        raise InvalidRequest("cursor belongs to another query (list, tenant or filters differ)")
    if len(data.p) != len(shape) or not all(
        type(part) is want and (want is not str or 0 < len(str(part)) <= 200)
        for part, want in zip(data.p, shape, strict=False)
    ):
        raise InvalidRequest("cursor is not one this server gave out")
    return data.p


def page_of(items: Sequence[Any], limit: int) -> tuple[Sequence[Any], bool]:
    """The first ``limit`` of ``items`` (fetched as ``limit + 1``) and whether there is a page after them."""
    return items[:limit], len(items) > limit
