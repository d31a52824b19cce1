"""Routes that prove the log: inclusion and consistency proofs, signed checkpoints, verifiable exports."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from vigil.errors import IntegrityError, InvalidRequest, NotFound
from vigil.export import EXTENSIONS, encode, pages
from vigil.filters import given, make_query
from vigil.ledger.bundle import write_bundle
from vigil.ledger.checkpoints import make_checkpoint
from vigil.ledger.proofs import consistency, inclusion
from vigil.web.common import BEARER, EventIdPath, errors, path_event_id
from vigil.web.search_routes import (
    MAX_SIZE,
    Action,
    ActorEmail,
    ActorId,
    ActorName,
    CategoryParam,
    Ip,
    OutcomeParam,
    Since,
    TargetId,
    TargetType,
    Until,
    Words,
)

if TYPE_CHECKING:
    from vigil.web.app import App


class InclusionProof(msgspec.Struct):
    """RFC 9162 inclusion proof; hashes are hex. ``checkpoint`` is the signed note at ``tree_size`` if one exists."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str]
    checkpoint: str | None


class ConsistencyProof(msgspec.Struct):
    """RFC 9162 consistency proof between two tree sizes; hashes are hex."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


_MEDIA = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}
_NOTE = {
    200: ResponseSpec(
        data_container=str, description="A C2SP signed note (text/plain)", media_type="text/plain"
    )
}


def ledger_routes(app: App) -> list[Any]:
    """The proof, checkpoint and export handlers, bound to ``app``."""

    @get(
        "/v1/events/{event_id:str}/proof",
        summary="Inclusion proof of an event",
        tags=["proofs"],
        security=BEARER,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def event_proof(
        request: Request[Any, Any, Any],
        event_id: EventIdPath,
        tree_size: Annotated[
            int | None,
            Parameter(
                ge=1,
                le=MAX_SIZE,
                description="Tree size to prove against (default: the "
                "newest checkpoint that covers the event)",
            ),
        ] = None,
    ) -> InclusionProof:
        """The audit path of an event in the tenant's tree, verifiable with ``vigil.verifier.verify_inclusion``."""
        key = app.auth(request, "read", "auditor")
        event_id = path_event_id(event_id)
        p = await asyncio.to_thread(inclusion, app.store, key.tenant_id, event_id, tree_size)
        app.record_access(
            key, "audit_log.proof.viewed", {"event_id": event_id[:64], "tree_size": p.tree_size}
        )
        return InclusionProof(
            p.leaf_index,
            p.tree_size,
            p.leaf_hash.hex(),
            p.root_hash.hex(),
            [h.hex() for h in p.audit_path],
            p.checkpoint,
        )

    @get(
        "/v1/checkpoints/consistency",
        summary="Consistency proof",
        tags=["proofs"],
        security=BEARER,
        responses=errors(400, 401, 403, 429),
    )
    async def consistency_route(
        request: Request[Any, Any, Any],
        first: Annotated[int, Parameter(ge=1, le=MAX_SIZE, description="The older tree size")],
        second: Annotated[
            int | None,
            Parameter(ge=1, le=MAX_SIZE, description="The newer size (default: newest checkpoint)"),
        ] = None,
    ) -> ConsistencyProof:
        """Proof that the tree of size ``second`` extends the tree of size ``first`` (RFC 9162 §2.1.4)."""
        key = app.auth(request, "read", "auditor")
        c = await asyncio.to_thread(consistency, app.store, key.tenant_id, first, second)
        return ConsistencyProof(
            c.first, c.second, c.first_root.hex(), c.second_root.hex(), [h.hex() for h in c.proof]
        )

    @get(
        "/v1/checkpoints/latest",
        summary="Newest signed checkpoint",
        tags=["checkpoints"],
        security=BEARER,
        responses={**errors(401, 403, 404, 429), **_NOTE},
    )
    async def latest(request: Request[Any, Any, Any]) -> Response[str]:
        """The tenant's newest checkpoint as a C2SP signed note."""
        key = app.auth(request, "read", "auditor")
        cp = await asyncio.to_thread(app.store.checkpoint, key.tenant_id)
        if cp is None:
            raise NotFound("this tenant has no checkpoint yet; POST /v1/checkpoints makes one")
        return _text(cp.note)

    @get(
        "/v1/checkpoints",
        summary="Signed checkpoint at a tree size",
        tags=["checkpoints"],
        security=BEARER,
        responses={**errors(400, 401, 403, 404, 429), **_NOTE},
    )
    async def at_size(
        request: Request[Any, Any, Any],
        size: Annotated[int, Parameter(ge=1, le=MAX_SIZE, description="Tree size of the checkpoint")],
    ) -> Response[str]:
        """The tenant's checkpoint of exactly ``size`` leaves, as a C2SP signed note."""
        key = app.auth(request, "read", "auditor")
        cp = await asyncio.to_thread(app.store.checkpoint, key.tenant_id, size)
        if cp is None:
            raise NotFound(f"no checkpoint of size {size}")
        return _text(cp.note)

    @post(
        "/v1/checkpoints",
        summary="Sign a checkpoint now",
        tags=["checkpoints"],
        security=BEARER,
        status_code=201,
        responses={**errors(400, 401, 403, 503), 201: _NOTE[200]},
    )
    async def create(request: Request[Any, Any, Any]) -> Response[str]:
        """Sign and store a checkpoint of the tenant's log as it is now (admin)."""
        key = app.auth(request, "admin")
        tenant = await asyncio.to_thread(app.store.get_tenant, key.tenant)
        try:
            cp = await asyncio.to_thread(make_checkpoint, app.store, app.signer, tenant)
        except IntegrityError as exc:
            app.integrity_failed(tenant, exc)
            raise
        if cp is None:
            raise InvalidRequest("the log is empty: nothing to checkpoint")
        return _text(cp.note, 201)

    @get("/v1/checkpoints/key", summary="Verifier key", tags=["checkpoints"], responses=_NOTE)
    async def verifier_key() -> Response[str]:
        """The signed-note verifier key (``name+hash+base64``) that checks every checkpoint."""
        return _text(app.signer.vkey + "\n")

    @get(
        "/v1/export",
        summary="Export events",
        tags=["export"],
        security=BEARER,
        responses={
            **errors(400, 401, 403, 429, 503),
            200: ResponseSpec(
                data_container=bytes,
                description="A bundle (zip), CSV, a JSON array or NDJSON, streamed",
                media_type="application/zip",
            ),
        },
    )
    async def export(
        request: Request[Any, Any, Any],
        format: Annotated[
            Literal["bundle", "csv", "json", "ndjson"],
            Parameter(
                description="bundle: a zip with events, signed checkpoint, proofs and verifier key (a contiguous "
                "slice: no filters); csv, json (one array) or ndjson: the events with seq and leaf_hash"
            ),
        ] = "bundle",
        from_seq: Annotated[int, Parameter(ge=0, le=MAX_SIZE)] = 0,
        to_seq: Annotated[
            int | None, Parameter(ge=1, le=MAX_SIZE, description="Seq after the last (default: log end)")
        ] = None,
        actor_id: ActorId = None,
        actor_name: ActorName = None,
        actor_email: ActorEmail = None,
        action: Action = None,
        target_type: TargetType = None,
        target_id: TargetId = None,
        outcome: OutcomeParam = None,
        category: CategoryParam = None,
        ip: Ip = None,
        since: Since = None,
        until: Until = None,
        q: Words = None,
    ) -> Stream:
        """A slice of the tenant's log in seq order, with the search's filters; a bundle is checkable offline
        with ``vigil verify-bundle``. Every export is recorded in the platform log."""
        key = app.auth(request, "read", "auditor")
        app.export_limiter.take(key.key_id)  # an export reads a whole log: its own, smaller budget per key
        values = {
            "actor_id": actor_id,
            "actor_name": actor_name,
            "actor_email": actor_email,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "outcome": outcome,
            "category": category,
            "ip": ip,
            "since": since,
            "until": until,
            "q": q,
        }
        filters = given(values)
        if format == "bundle" and filters:
            raise InvalidRequest(
                "a bundle is a contiguous slice of the log with its proofs: it takes from_seq and to_seq, "
                f"not filters ({', '.join(filters)}); export csv, json or ndjson to filter"
            )
        query = make_query(values, order="seq") if filters else None
        tenant = await asyncio.to_thread(app.store.get_tenant, key.tenant)
        size = await asyncio.to_thread(app.store.tree_size, tenant.id)
        end = to_seq if to_seq is not None else size
        if not 0 <= from_seq < end <= size:
            raise InvalidRequest(f"need from_seq < to_seq <= {size} (the log's size); got {from_seq}..{end}")
        name = f"{tenant.slug}-{from_seq}-{end}.{EXTENSIONS[format]}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        record = {"format": format, "from_seq": from_seq, "to_seq": end, **filters}
        if format != "bundle":
            events = pages(app.store, tenant.id, query, from_seq, end)
            # the first page before the answer starts: a hole or a bad filter there is an error response
            first = await asyncio.to_thread(next, events, None)
            app.record_access(key, "audit_log.exported", record)
            chunks = encode(format, itertools.chain([] if first is None else [first], events))
            return Stream(_stream(chunks), media_type=_MEDIA[format], headers=headers)
        spool: Any = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 - closed by the stream
        try:
            await asyncio.to_thread(write_bundle, app.store, app.signer, tenant, spool, from_seq, end)
        except IntegrityError as exc:  # no bundle is signed over a log that contradicts the trusted state
            spool.close()
            app.integrity_failed(tenant, exc)
            raise
        app.record_access(key, "audit_log.exported", record)
        spool.seek(0)
        return Stream(_chunks(spool), media_type="application/zip", headers=headers)

    return [event_proof, consistency_route, latest, at_size, create, verifier_key, export]


def _text(text: str, status: int = 200) -> Response[str]:
    # "text/plain" alone: the framework appends "; charset=utf-8" to every text/* type itself.
    return Response(text, status_code=status, media_type="text/plain")


async def _stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking iterator of export chunks, each read on a worker thread (the store's reads block)."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


async def _chunks(spool: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(spool.read, 1 << 20):
            yield chunk
    finally:
        spool.close()
