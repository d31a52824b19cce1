"""``vigil verify``: re-derive every tenant's tree from the stored events and check it against everything stored.

For each tenant it recomputes every leaf hash from the stored canonical bytes, checks that ``seq`` runs from 0
without a gap, rebuilds the tree and compares it with the stored tree data and with the root of every stored
checkpoint, checks each checkpoint's signature, and checks the consistency proofs between consecutive
checkpoints. It stops at the first failure with a :class:`~vigil.verifier.VerificationError` naming the tenant,
the ``seq`` or checkpoint, what was expected and what was found.

The events are read and hashed a span at a time. Spans start on 256-leaf block boundaries, so each one reduces to
the roots of its complete blocks (plus the leaves a checkpoint needs), and large logs have their spans checked by
worker processes in parallel; the tree above the blocks, the tree data and the checkpoints are checked here, in
log order, so the first failure reported is the same either way. Within a span, events are read 4,096 at a time
as one packed row and hashed in bulk (``vigil.ledger.bulk``); a chunk where anything looks off is read again
row by row, with its seqs, to name the first bad event.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.util
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from vigil.ledger.bulk import joined_leaf_hashes, subtree_roots
from vigil.ledger.merkle import HASH_SIZE, CompactRange, consistency_proof, decompose
from vigil.ledger.tiles import TILE_HEIGHT, TILE_WIDTH
from vigil.ledger.trust import check_chain, origin_of
from vigil.store.base import Store, Tenant
from vigil.verifier import Checkpoint, VerificationError, verify_checkpoint, verify_consistency

log = logging.getLogger("vigil.verify")

CHUNK = 16 * TILE_WIDTH
SPAN = 1 << 16
"""Most events one worker task checks (a multiple of TILE_WIDTH)."""
PARALLEL_MIN = 1 << 18
"""Logs smaller than this are checked in this process: starting workers would cost more than they save."""
MAX_WORKERS = 8


@dataclass(frozen=True)
class TenantReport:
    tenant: str
    events: int
    checkpoints: int
    seconds: float
    trusted: int = 0
    """How many checkpoints kept outside the database (server state, verifier memory) the log was held to."""


@dataclass(frozen=True)
class Anchor:
    """A checkpoint kept outside the database that the log must extend, and where it was kept."""

    checkpoint: Checkpoint
    source: str


def _fail(
    tenant: str, where: str, what: str, expected: object = None, found: object = None
) -> VerificationError:
    return VerificationError(f"tenant {tenant}, {where}: {what}", expected=expected, found=found)


def _root(upper: CompactRange, block: bytes) -> bytes:
    """Root of the tree made of the complete 256-leaf blocks in ``upper`` plus the leaf hashes of a partial
    ``block`` (32 bytes each, concatenated)."""
    hashes = list(upper.hashes)
    off = 0
    for level, _ in decompose(len(block) // HASH_SIZE):
        end = off + (HASH_SIZE << level)
        hashes.append(subtree_roots(block[off:end], 1 << level))
        off = end
    if not hashes:
        return hashlib.sha256(b"").digest()
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = hashlib.sha256(b"\x01" + left + h).digest()
    return h


@dataclass
class _Span:
    """What checking events [lo, hi) found: complete block roots, checkpoint leaves, and the first bad event."""

    lo: int
    blocks: list[bytes] = field(default_factory=list)
    """Roots of the complete 256-leaf blocks from ``lo``, in order (only those before a bad event)."""
    partial: dict[int, bytes] = field(default_factory=dict)
    """For each checkpoint size not on a block boundary: the leaf hashes of its last, incomplete block."""
    error: tuple[int, str, object, object] | None = None
    """(seq, what, expected, found) of the first bad event."""


def _read_checked(
    store: Store, tenant_id: int, expected: int, end: int, span: _Span
) -> list[tuple[bytes, bytes]]:
    """(leaf hash, body) of seqs [expected, end) read with their seqs; on a gap, record it in ``span`` and return
    what precedes it."""
    rows = store.read_range(tenant_id, expected, end)
    good = len(rows)
    if not rows:  # the span ends in a gap: say where the log goes on, if it does nearby
        ahead = store.read_range(tenant_id, expected, expected + CHUNK)
        if ahead:
            seq = ahead[0][0]
            span.error = (expected, f"event is missing (the next stored event is seq {seq})", expected, seq)
        else:
            span.error = (expected, "event is missing", expected, "nothing")
    elif rows[0][0] != expected or rows[-1][0] != expected + good - 1:
        good = next(i for i, row in enumerate(rows) if row[0] != expected + i)
        seq = rows[good][0]
        span.error = (
            expected + good,
            f"event is missing (the next stored event is seq {seq})",
            expected + good,
            seq,
        )
    return [(leaf, body) for _, leaf, body in rows[:good]]


def _split(hashes: bytes) -> list[bytes]:
    return [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]


def _read_packed(store: Store, tenant_id: int, lo: int, hi: int, tail: bytes) -> bytes | None:
    """The leaf hashes of seqs [lo, hi) (32 bytes each, concatenated), recomputed from one packed read, when the
    whole chunk checks out: every seq stored, every stored leaf hash matching its body, every body ending with
    ``tail``. None when anything is off, or merely looks odd: the caller then reads the chunk row by row to
    find and name what is wrong."""
    n = hi - lo
    count, stored, joined = store.read_packed(tenant_id, lo, hi)
    if count != n or len(stored) != HASH_SIZE * n:
        return None
    # Canonical JSON holds no raw newline, so the parts are the bodies (a body holding one, which only a tampered
    # one can, changes the number of parts), and each ends with the tenant mark.
    hashes = joined_leaf_hashes(joined, n, tail)
    return hashes if hashes is not None and hashes == stored else None


def _check_rows(store: Store, tenant_id: int, lo: int, hi: int, mark: bytes, span: _Span) -> bytes:
    """The leaf hashes of the good events at the start of [lo, hi), read and checked row by row; the first bad
    one (a missing seq, a leaf hash that does not match, another tenant's event) is recorded in ``span``."""
    sha = hashlib.sha256
    rows = _read_checked(store, tenant_id, lo, hi, span)
    hashes = [sha(b"\x00" + body).digest() for _, body in rows]
    good = len(rows)
    for i, (h, (leaf, body)) in enumerate(zip(hashes, rows, strict=True)):
        if h != leaf:
            good = i
            span.error = (lo + i, "stored leaf hash does not match the event's bytes", h, leaf)
            break
        if mark not in body:
            good = i
            span.error = (lo + i, "the event names another tenant", None, None)
            break
    return b"".join(hashes[:good])


def _check_span(store: Store, tenant_id: int, slug: str, lo: int, hi: int, sizes: list[int]) -> _Span:
    """Check events [lo, hi) (``lo`` on a block boundary) on their own: no gap, leaf hashes, tenant."""
    mark = b'"tenant":"' + slug.encode() + b'"'
    # Canonical JSON sorts keys and "tenant" sorts last, so the mark ends every body of the tenant: a cheap test
    # on packed bodies. Row by row, only its presence is required.
    tail = mark + b"}"
    want = [c for c in sizes if lo < c <= hi and c % TILE_WIDTH]
    span = _Span(lo)
    expected = lo
    while expected < hi:
        end = min(expected + CHUNK, hi)
        hashes = _read_packed(store, tenant_id, expected, end, tail)
        if hashes is None:
            hashes = _check_rows(store, tenant_id, expected, end, mark, span)
        good = len(hashes) // HASH_SIZE
        # Chunks start on block boundaries (CHUNK is a multiple of the block size) until a bad event shows up,
        # and then nothing after it is used.
        while want and want[0] <= expected + good:
            c = want.pop(0)
            span.partial[c] = hashes[(c - c % TILE_WIDTH - expected) * HASH_SIZE : (c - expected) * HASH_SIZE]
        complete = good - good % TILE_WIDTH
        span.blocks.extend(_split(subtree_roots(hashes[: complete * HASH_SIZE], TILE_WIDTH)))
        if span.error is not None:
            return span
        expected += good
    return span


_worker_store: Store | None = None


def _locator(store: Store) -> str | None:
    """What a worker passes to ``open_store`` to open ``store`` again: its SQLite file path or its PostgreSQL
    URL; None for a store no other process can open (then everything is checked in this process)."""
    for name in ("path", "url"):  # SQLiteStore.path, PostgresStore.url
        value = getattr(store, name, None)
        if isinstance(value, str):
            return value
    return None


def _open_worker(database: str) -> None:
    # The path or URL arrives pickled through a pipe (the fork server's or spawn's), never on the worker's
    # command line: a PostgreSQL URL may hold a password. Workers only read, so neither store needs settings
    # here (the signing key stays with the caller, which checks the signatures).
    global _worker_store
    from vigil.store import open_store

    _worker_store = open_store(database)
    # so a PostgreSQL server sees its connections closed, not dropped: a worker forked by the fork server ends
    # without running atexit, but multiprocessing runs its own finalizers in every worker it starts
    multiprocessing.util.Finalize(None, _worker_store.close, exitpriority=10)


def _span_job(job: tuple[int, str, int, int, list[int]]) -> _Span:
    if _worker_store is None:
        raise RuntimeError("worker store not opened")
    return _check_span(_worker_store, *job)


STEAL = True
"""Whether this process checks queued jobs itself while it waits for the workers (tests turn it off to pin
that the workers did the checking)."""


def _pool(database: str, workers: int) -> ProcessPoolExecutor:
    """Worker processes that open the store at ``database`` (a path or URL) as they start."""
    # Not fork: this process runs threads (the store's writer), which a forked child must not inherit. A fork
    # server is one fresh interpreter that imports what the workers need once and forks them from there, so the
    # workers start sooner than spawned ones that each import it all; where there is none, spawn.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx: multiprocessing.context.BaseContext = multiprocessing.get_context("forkserver")
        # Not "__main__": a script calling verify without the ``if __name__ == "__main__":`` guard would then
        # run again in the server itself. Each worker imports it, as with spawn, and fails fast without one.
        ctx.set_forkserver_preload(["vigil.ledger.integrity", "vigil.store.sqlite"])
    else:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_open_worker,
        initargs=(database,),
    )


def _gather(
    pool: ProcessPoolExecutor, store: Store, jobs: list[tuple[int, str, int, int, list[int]]]
) -> Iterator[_Span]:
    """The spans of ``jobs`` in order, checked by the workers and by this process alike.

    Workers take jobs from the front; while the next result is not ready, this process takes the last job no
    worker has started (a queued future can still be cancelled) and checks it itself. So it works while the
    workers start and at the end, instead of waiting. If the workers cannot start (a script without an
    ``if __name__ == "__main__":`` guard, which each worker re-runs, or a store that refuses more connections),
    every job is checked here.
    """
    futures = [pool.submit(_span_job, job) for job in jobs]
    local: dict[int, _Span] = {}
    last = len(jobs) - 1
    broken = False
    for i, fut in enumerate(futures):
        while STEAL and i not in local and last > i and not fut.done():
            if not futures[last].cancel():
                last = i  # workers start jobs in order: everything before this one is taken too
                break
            local[last] = _check_span(store, *jobs[last])
            last -= 1
        if i in local:
            yield local.pop(i)
            continue
        try:
            yield fut.result()
        except BrokenProcessPool as exc:
            if not broken:
                log.warning("verify workers could not start (%s); verifying in this process", exc)
                broken = True
            yield _check_span(store, *jobs[i])


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def verify_tenant(
    store: Store,
    tenant: Tenant,
    vkey: str,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
    anchors: Sequence[Anchor] = (),
) -> TenantReport:
    """Verify one tenant's log end to end; raise VerificationError at the first failure.

    ``workers`` processes check the events in parallel, each with the store opened again by its SQLite path or
    PostgreSQL URL; the default is one per CPU (at most 8) for logs of at least PARALLEL_MIN events, else 1 (all
    in this process).
    Workers import the calling script again, so a script calling this needs the usual
    ``if __name__ == "__main__":`` guard; without one the workers cannot start and the log is checked in this
    process.

    ``anchors`` are checkpoints kept outside the database (the server's trusted state, the verifier's memory):
    the log must hold them, their roots must match the events, and they must still be stored; that catches a
    truncation, a rewrite and deleted checkpoints that the database alone cannot show. The ``vigil-previous``
    line of each stored checkpoint must name a stored one, which catches checkpoints deleted in between.
    """
    started = time.perf_counter()
    slug, tid = tenant.slug, tenant.id
    # Checkpoints first, then the size: the log may grow while we read (a live server), and a checkpoint read
    # before the size can then never look larger than the log unless events were removed.
    cps = store.checkpoints(tid)
    size = store.tree_size(tid)
    origin = origin_of(slug)
    roots: dict[int, bytes] = {}
    labels: dict[int, str] = {}
    chain: list[tuple[int, Checkpoint]] = []
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
                f"the log holds only {size} events: seqs {size}..{cp.size - 1} were removed",
                cp.size,
                size,
            )
        roots[cp.size] = signed.root
        labels[cp.size] = f"checkpoint at size {cp.size}"
        chain.append((cp.size, signed))
    gap = check_chain(slug, chain)
    if gap is not None:
        raise _fail(slug, "checkpoint chain", gap.message)
    for anchor in anchors:
        head = anchor.checkpoint
        where = f"checkpoint at size {head.size} in {anchor.source}"
        if head.size > size:
            raise _fail(
                slug,
                where,
                f"the log holds only {size} events: seqs {size}..{head.size - 1} were removed",
                head.size,
                size,
            )
        if head.size in roots and roots[head.size] != head.root:
            raise _fail(
                slug,
                where,
                "differs from the stored checkpoint of the same size, both signed: the log was forked",
                head.root.hex(),
                roots[head.size].hex(),
            )
        roots.setdefault(head.size, head.root)
        labels.setdefault(head.size, where)
    nodes = {(level, idx): h for level, idx, h in store.tree_nodes(tid)}
    sizes = sorted(roots)
    database = _locator(store)
    if workers is None:
        workers = min(_cpus(), MAX_WORKERS) if size >= PARALLEL_MIN else 1
    step = max(TILE_WIDTH, min(SPAN, -(-size // (workers * 4 * TILE_WIDTH)) * TILE_WIDTH))
    jobs = [(tid, slug, lo, min(lo + step, size), sizes) for lo in range(0, size, step)]
    upper = CompactRange()  # the tree over complete 256-leaf blocks: its "leaves" are level-8 roots

    def check_block(root: bytes) -> None:
        for up, idx, h in upper.append(root):
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

    def check_checkpoint(cp_size: int, partial: bytes) -> None:
        root = _root(upper, partial)
        if root != roots[cp_size]:
            prior = max((s for s in roots if s < cp_size), default=0)
            raise _fail(
                slug,
                labels[cp_size],
                f"root recomputed from the events differs: events in seqs {prior}..{cp_size - 1} "
                "were changed, reordered or replaced",
                roots[cp_size],
                root,
            )

    def merge(spans: Iterable[_Span]) -> None:
        """Check the spans' blocks and the checkpoints in log order, then the first bad event, if any."""
        pending = list(sizes)
        for span, (_, _, lo, hi, _) in zip(spans, jobs, strict=False):
            end = hi if span.error is None else span.error[0]
            block_ends = [lo + (i + 1) * TILE_WIDTH for i in range(len(span.blocks))]
            for block_end, root in zip(block_ends, span.blocks, strict=True):
                while pending and pending[0] < block_end:
                    c = pending.pop(0)
                    check_checkpoint(c, span.partial.get(c, b""))  # none on a block boundary
                check_block(root)
            while pending and pending[0] <= end:
                c = pending.pop(0)
                check_checkpoint(c, span.partial.get(c, b""))
            if span.error is not None:
                seq, what, exp, found = span.error
                raise _fail(slug, f"seq {seq}", what, exp, found)
            if progress is not None:
                progress(hi - lo)

    if database and workers > 1 and len(jobs) > 1:
        pool = _pool(database, min(workers, len(jobs)))
        try:
            merge(_gather(pool, store, jobs))
        finally:
            pool.shutdown(cancel_futures=True)
    else:
        merge(_check_span(store, *job) for job in jobs)
    leftover = sorted(k for k in nodes if k[0] % TILE_HEIGHT == 0)
    if leftover:
        # Tree data read after the size may cover events appended since; only data the log never reached is
        # evidence of removed events.
        now = store.tree_size(tid)
        leftover = [(lv, i) for lv, i in leftover if not size < (i + 1) << lv <= now]
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
    stored = {cp.size for cp in cps}
    for anchor in anchors:
        if anchor.checkpoint.size not in stored:
            missing = anchor.checkpoint.size
            newest = f"size {cps[-1].size}" if cps else "none"
            raise _fail(
                slug,
                f"checkpoint at size {missing} in {anchor.source}",
                f"is not in the database (newest stored: {newest}): checkpoints were deleted",
            )
    return TenantReport(slug, size, len(cps), time.perf_counter() - started, len(anchors))
