"""What the read side of the SDK shares between its sync and async clients, without any I/O: the typed
results, the query parameters of a search, the error an HTTP answer stands for, and the check of an event's
inclusion proof against a signed checkpoint.

The check uses the project's own verifier (:mod:`vigil.verifier`, RFC 9162 proofs and C2SP signed notes) and
canonical JSON (:mod:`vigil.ledger.canonical`); nothing here is new cryptography.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from vigil.errors import (
    ClientError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    StorageError,
    Unauthorized,
    VigilError,
)
from vigil.ledger.canonical import canonical, scan
from vigil.ledger.trust import origin_of
from vigil.model import StoredEvent
from vigil.verifier import Checkpoint, VerificationError, leaf_hash, verify_checkpoint, verify_inclusion

__all__ = [
    "InclusionProof",
    "Page",
    "ServerUnreachable",
    "StoredEvent",
    "Verified",
    "error_from",
    "query_params",
]


class ServerUnreachable(StorageError):
    """The server could not be reached (no connection, a timeout) for a read, after the retries."""

    code = "server_unreachable"


class Page(msgspec.Struct):
    """One page of ``GET /v1/events``: its events, the cursor of the next page (None on the last) and the
    log's size when the search began (later pages see exactly that snapshot)."""

    data: list[StoredEvent]
    next_cursor: str | None
    snapshot_seq: int


class InclusionProof(msgspec.Struct):
    """``GET /v1/events/{id}/proof``: the RFC 9162 audit path of an event (hashes in hex), and the signed
    checkpoint of ``tree_size`` when the server has one."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str]
    checkpoint: str | None = None


@dataclass(frozen=True)
class Verified:
    """An event proven to be in its tenant's log: its leaf is in the tree of ``tree_size`` leaves whose root
    the log's key signed in ``checkpoint``. ``key_pinned`` is False when the verifier key was fetched from the
    same server (a key you pinned proves more: see docs/sdk.md)."""

    event: StoredEvent
    seq: int
    tree_size: int
    root_hash: str
    checkpoint: str
    vkey: str
    key_pinned: bool


_FILTER_TYPES = "str, int, bool, a timezone-aware datetime, or a date"


def filter_value(name: str, value: object) -> str:
    """One query parameter's text: datetimes as RFC 3339 in UTC, dates as ``YYYY-MM-DD``, booleans as
    ``true``/``false``. Raises ``TypeError`` for anything else (the server validates the rest)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{name}= must be a timezone-aware datetime (datetime.now(UTC), for instance)")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{name}= must be a {_FILTER_TYPES}; got {type(value).__name__}")


def query_params(filters: Mapping[str, object]) -> dict[str, str]:
    """The query parameters of ``filters``, passed through by name (those left as None are left out), so a
    filter the server gains works here at once, and one it does not know is its 400 (never ignored)."""
    return {name: filter_value(name, v) for name, v in filters.items() if v is not None}


# -- errors -------------------------------------------------------------------------------------------------


def _error_classes() -> dict[str, type[VigilError]]:
    out: dict[str, type[VigilError]] = {}
    todo: list[type[VigilError]] = [ClientError, StorageError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


_BY_CODE = _error_classes()
_BY_STATUS: dict[int, type[VigilError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 429: RateLimited}
_error_body = msgspec.json.Decoder(dict[str, Any])


def error_from(status: int, content: bytes, retry_after: float | None = None) -> VigilError:
    """The exception of :mod:`vigil.errors` that an error answer stands for, with the server's message and
    details (by the answer's ``error.type``, else by its status)."""
    message, code, details = f"HTTP {status}", "", None
    try:
        err = _error_body.decode(content)["error"]
        message, code = str(err["message"]), str(err.get("type", ""))
        details = err.get("details") if isinstance(err.get("details"), list) else None
    except (msgspec.DecodeError, KeyError, TypeError):
        text = content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status}: {text}" if text else message  # not Vigil's answer: a proxy's, perhaps
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        if status < 500:
            cls = InvalidRequest if status == 400 else ClientError
        else:
            cls = StorageError if status == 503 else VigilError
    if issubclass(cls, RateLimited):
        return cls(message, retry_after=retry_after if retry_after is not None else 1.0)
    return cls(message, details=details)


# -- verification -------------------------------------------------------------------------------------------


def _hex(what: str, text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except (ValueError, TypeError):
        raise VerificationError(f"{what} is not hex", found=repr(text)[:80]) from None


def leaf_of(raw_event: bytes) -> tuple[StoredEvent, bytes]:
    """The event of ``GET /v1/events/{id}`` and the leaf hash of its content, computed here: the RFC 8785
    bytes of the event as shown (``seq`` and ``leaf_hash`` are the log's, not the event's)."""
    try:
        body = msgspec.json.decode(raw_event)
        event = msgspec.json.decode(raw_event, type=StoredEvent)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise VerificationError(f"the server's event is not one: {exc}") from None
    if not isinstance(body, dict):
        raise VerificationError("the server's event is not a JSON object")
    body.pop("seq", None)
    body.pop("leaf_hash", None)
    try:
        data = canonical(body, slow=scan(body))
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"the event has no canonical form: {exc}") from None
    return event, leaf_hash(data)


def check_proof(
    raw_event: bytes, proof: InclusionProof, vkey: str, *, key_pinned: bool, event_id: str
) -> Verified:
    """Prove ``raw_event`` is in its tenant's log: its content hashes to the leaf the proof starts from, the
    proof leads to the root of a checkpoint signed by ``vkey`` for that tenant's log, and the sizes agree.
    Raises :class:`vigil.verifier.VerificationError` with what was expected and found; returns nothing less."""
    event, computed = leaf_of(raw_event)
    if event.id not in (event_id, event_id.lower()):  # the server keeps UUIDs in lower case
        raise VerificationError("the server answered with another event", expected=event_id, found=event.id)
    if event.leaf_hash != computed.hex():
        raise VerificationError(
            "the event's content does not hash to the leaf the log gives it",
            expected=computed.hex(),
            found=event.leaf_hash,
        )
    if proof.leaf_index != event.seq or _hex("proof leaf hash", proof.leaf_hash) != computed:
        raise VerificationError(
            "the proof is for another leaf",
            expected=f"seq {event.seq}, leaf {computed.hex()}",
            found=f"seq {proof.leaf_index}, leaf {proof.leaf_hash}",
        )
    if proof.checkpoint is None:
        raise VerificationError(
            f"no signed checkpoint covers event {event_id} (seq {event.seq}) yet: nothing signed proves it. "
            "Wait for the next scheduled checkpoint, or sign one now (POST /v1/checkpoints, admin key)"
        )
    cp: Checkpoint = verify_checkpoint(proof.checkpoint, vkey, origin=origin_of(event.tenant))
    if cp.size != proof.tree_size:
        raise VerificationError(
            "the checkpoint is not of the proof's tree size", expected=proof.tree_size, found=cp.size
        )
    path = [_hex(f"audit path hash {i}", h) for i, h in enumerate(proof.audit_path)]
    verify_inclusion(computed, event.seq, cp.size, path, cp.root)
    return Verified(event, event.seq, cp.size, cp.root.hex(), proof.checkpoint, vkey, key_pinned)


def clean_vkey(text: str) -> str:
    """The verifier key served at ``/v1/checkpoints/key`` (one line); its form is checked when it is used."""
    key = text.strip()
    if not key or "\n" in key or len(key) > 512:
        raise VerificationError("the server's verifier key is not one line", found=repr(text[:80]))
    return key
