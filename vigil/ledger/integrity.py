"""``vigil verify``: re-derive every tenant's tree from the stored events and check it against everything stored.

For each tenant it recomputes every leaf hash from the stored canonical bytes, checks that ``seq`` runs from 0
without a gap, rebuilds the tree and compares it with the stored tree data and with the root of every stored
checkpoint, checks each checkpoint's signature, and checks the consistency proofs between consecutive
checkpoints. It stops at the first failure with a :class:`~vigil.verifier.VerificationError` naming the tenant,
the ``seq`` or checkpoint, what was expected and what was found.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.ledger.checkpoints import origin_of
from vigil.ledger.merkle import CompactRange, consistency_proof, decompose
from vigil.ledger.tiles import TILE_HEIGHT, TILE_WIDTH
from vigil.store.base import Store, Tenant
from vigil.verifier import VerificationError, verify_checkpoint, verify_consistency

CHUNK = 16 * TILE_WIDTH


@dataclass(frozen=True)
class TenantReport:
    tenant: str
    events: int
    checkpoints: int
    seconds: float


def _fail(
    tenant: str, where: str, what: str, expected: object = None, found: object = None
) -> VerificationError:
    return VerificationError(f"tenant {tenant}, {where}: {what}", expected=expected, found=found)


def _block_root(leaves: list[bytes]) -> bytes:
    """Root of a perfect subtree from its leaf hashes (len is a power of two)."""
    sha = hashlib.sha256
    level = leaves
    while len(level) > 1:
        level = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def _root(upper: CompactRange, block: list[bytes]) -> bytes:
    """Root of the tree made of the complete 256-leaf blocks in ``upper`` plus a partial ``block``."""
    hashes = list(upper.hashes)
    off = 0
    for level, _ in decompose(len(block)):
        hashes.append(_block_root(block[off : off + (1 << level)]))
        off += 1 << level
    if not hashes:
        return hashlib.sha256(b"").digest()
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = hashlib.sha256(b"\x01" + left + h).digest()
    return h


def verify_tenant(
    store: Store, tenant: Tenant, vkey: str, progress: Callable[[int], None] | None = None
) -> TenantReport:
    """Verify one tenant's log end to end; raise VerificationError at the first failure."""
    started = time.perf_counter()
    slug, tid = tenant.slug, tenant.id
    size = store.tree_size(tid)
    cps = store.checkpoints(tid)
    origin = origin_of(slug)
    roots: dict[int, bytes] = {}
    for cp in cps:
        where = f"checkpoint at size {cp.size}"
        try:
            signed = verify_checkpoint(cp.note, vkey, origin=origin)
        except VerificationError as exc:
            raise _fail(slug, where, f"signature or format does not verify: {exc}") from None
        if signed.size != cp.size or signed.root != cp.root:
            raise _fail(
                slug,
                where,
                "stored size and root differ from the signed note",
                f"{signed.size} {signed.root.hex()}",
                f"{cp.size} {cp.root.hex()}",
            )
        if cp.size > size:
            raise _fail(
                slug,
                where,
                f"the log holds only {size} events: events after seq {size - 1} were removed",
                cp.size,
                size,
            )
        roots[cp.size] = signed.root
    nodes = {(level, idx): h for level, idx, h in store.tree_nodes(tid)}
    tenant_mark = b'"tenant":"' + slug.encode() + b'"'
    sha = hashlib.sha256
    upper = CompactRange()  # the tree over complete 256-leaf blocks: its "leaves" are level-8 roots
    block: list[bytes] = []
    expected = 0
    pending = sorted(roots)
    next_cp = pending.pop(0) if pending else None
    while expected < size:
        rows = store.read_range(tid, expected, min(expected + CHUNK, size))
        if not rows:
            raise _fail(slug, f"seq {expected}", "event is missing", expected, "nothing")
        for seq, leaf, body in rows:
            if seq != expected:
                raise _fail(
                    slug,
                    f"seq {expected}",
                    f"event is missing (the next stored event is seq {seq})",
                    expected,
                    seq,
                )
            computed = sha(b"\x00" + body).digest()
            if computed != leaf:
                raise _fail(
                    slug, f"seq {seq}", "stored leaf hash does not match the event's bytes", computed, leaf
                )
            if tenant_mark not in body:
                raise _fail(slug, f"seq {seq}", "the event names another tenant")
            block.append(computed)
            expected += 1
            if len(block) == TILE_WIDTH:
                for up, idx, h in upper.append(_block_root(block)):
                    if up % TILE_HEIGHT:
                        continue  # only every eighth level is stored
                    level = up + TILE_HEIGHT
                    stored = nodes.pop((level, idx), None)
                    if stored != h:
                        lo = idx << level
                        raise _fail(
                            slug,
                            f"tree data for seqs {lo}..{lo + (1 << level) - 1}",
                            "stored subtree hash does not match the events",
                            h,
                            stored,
                        )
                block = []
            while next_cp is not None and expected == next_cp:
                root = _root(upper, block)
                if root != roots[next_cp]:
                    prior = max((s for s in roots if s < next_cp), default=0)
                    raise _fail(
                        slug,
                        f"checkpoint at size {next_cp}",
                        f"root recomputed from the events differs: events in seqs {prior}..{next_cp - 1} "
                        "were changed, reordered or replaced",
                        roots[next_cp],
                        root,
                    )
                next_cp = pending.pop(0) if pending else None
        if progress is not None:
            progress(len(rows))
    leftover = sorted(k for k in nodes if k[0] % TILE_HEIGHT == 0)
    if leftover:
        level, idx = leftover[0]
        raise _fail(
            slug,
            f"tree data at level {level}, index {idx}",
            f"covers events beyond the log's end (seq {size - 1}): events were removed",
        )
    reader = store.subtree_reader(tid)
    for a, b in itertools.pairwise(cps):
        proof = consistency_proof(a.size, b.size, reader)
        try:
            verify_consistency(a.size, b.size, proof, roots[a.size], roots[b.size])
        except VerificationError as exc:
            raise _fail(
                slug, f"checkpoints at sizes {a.size} and {b.size}", f"not consistent: {exc}"
            ) from None
    return TenantReport(slug, size, len(cps), time.perf_counter() - started)
