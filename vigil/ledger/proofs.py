"""Inclusion and consistency proofs over a tenant's log, ready for the API and export bundles."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.errors import InvalidRequest, NotFound
from vigil.ledger.merkle import consistency_proof, inclusion_proof, root_at
from vigil.store.base import Store


@dataclass(frozen=True)
class Inclusion:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    audit_path: list[bytes]
    checkpoint: str | None


@dataclass(frozen=True)
class Consistency:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: list[bytes]


def default_size(store: Store, tenant_id: int, at_least: int) -> int:
    """The newest checkpoint's size when it covers ``at_least`` leaves, else the current tree size."""
    latest = store.checkpoint(tenant_id)
    if latest is not None and latest.size >= at_least:
        return latest.size
    return store.tree_size(tenant_id)


def inclusion(store: Store, tenant_id: int, event_id: str, tree_size: int | None) -> Inclusion:
    """The audit path of an event in the tree of ``tree_size`` leaves (default: the newest checkpoint)."""
    raw = store.get_event(tenant_id, event_id)
    if raw is None:
        raise NotFound(f"no event {event_id!r} in this tenant's log")
    seq, leaf, _ = raw
    size = default_size(store, tenant_id, seq + 1) if tree_size is None else tree_size
    current = store.tree_size(tenant_id)
    if not seq < size <= current:
        raise InvalidRequest(
            f"tree_size must be more than the event's seq ({seq}) and at most the log's size ({current}); got {size}"
        )
    reader = store.subtree_reader(tenant_id)
    cp = store.checkpoint(tenant_id, size)
    return Inclusion(
        seq, size, leaf, root_at(size, reader), inclusion_proof(seq, size, reader), cp.note if cp else None
    )


def consistency(store: Store, tenant_id: int, first: int, second: int | None) -> Consistency:
    """RFC 9162 consistency proof between two sizes of the log (default second: the newest checkpoint)."""
    current = store.tree_size(tenant_id)
    second = default_size(store, tenant_id, first) if second is None else second
    if not 1 <= first <= second <= current:
        raise InvalidRequest(
            f"need 1 <= first <= second <= {current} (the log's size); got first={first}, second={second}"
        )
    reader = store.subtree_reader(tenant_id)
    return Consistency(
        first,
        second,
        root_at(first, reader),
        root_at(second, reader),
        consistency_proof(first, second, reader),
    )
