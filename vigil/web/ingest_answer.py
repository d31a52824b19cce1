"""The answer of ``POST /v1/events``: the prepared events appended, and a result for every event of the request.

``accepted`` counts ``stored`` and ``duplicate`` results; ``rejected`` counts ``rejected`` and ``conflict``
ones. A request of which no event is taken is an error listing each (409 when every one is a conflict, else
422): a client that only looks at the status code never takes a refusal for a success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from vigil.errors import ClientError
from vigil.ingest.intake import Prepared, Rejected
from vigil.model import EventResult, IngestResponse
from vigil.store.base import Store

_encode = msgspec.json.Encoder().encode


class NoneTaken(ClientError):
    """No event of the request was taken; ``results`` says why for each, in request order."""

    status = 422

    def __init__(self, results: list[EventResult], conflict: bool = False) -> None:
        super().__init__(
            "every event's id is held by another event in the log"
            if conflict
            else "every event of the request was rejected"
        )
        self.results = results
        self.conflict = conflict


async def append_and_answer(
    store: Store,
    tenant_id: int,
    good: list[Prepared],
    bad: list[Rejected],
    counted: Callable[[list[EventResult]], None] | None = None,
) -> bytes:
    """Append ``good`` to the tenant's log (bounded: 429 when its queue is full) and answer for every event: the
    JSON of an :class:`~vigil.model.IngestResponse`. Raises :class:`NoneTaken` when no event is taken.
    ``counted`` sees every per-event result (the metrics), whether or not an event was taken."""
    results: list[EventResult | None] = [None] * (len(good) + len(bad))
    for r in bad:
        results[r.index] = EventResult(r.index, "rejected", id=r.id, errors=r.errors)
    if not good:
        rejected = [r for r in results if r is not None]
        if counted is not None:
            counted(rejected)
        raise NoneTaken(rejected)
    appended = await store.append_async(tenant_id, good, bounded=True)
    accepted = conflicts = 0
    for p, a in zip(good, appended, strict=True):
        status: Literal["stored", "duplicate", "conflict"] = "stored"
        errors: list[dict[str, str]] | None = None
        if a.conflict:
            status, conflicts = "conflict", conflicts + 1
            errors = [
                {"field": "id", "message": f"the log already holds another event with this id (seq {a.seq})"}
            ]
        else:
            accepted += 1
            if a.duplicate:
                status = "duplicate"
        results[p.index] = EventResult(
            p.index, status, id=p.id, seq=a.seq, leaf_hash=a.leaf.hex(), errors=errors
        )
    listed = [r for r in results if r is not None]
    if counted is not None:
        counted(listed)
    if not accepted:
        raise NoneTaken(listed, conflict=not bad)
    return _encode(IngestResponse(accepted, len(bad) + conflicts, listed))
