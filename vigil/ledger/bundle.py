"""Export bundles: a slice of a tenant's log with what proves it, checkable offline by ``vigil.verifier``."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from typing import BinaryIO

from vigil.errors import InvalidRequest, StorageError
from vigil.ledger.checkpoints import Signer, make_checkpoint
from vigil.ledger.merkle import aligned_subtrees, consistency_proof
from vigil.ledger.trust import origin_of
from vigil.store.base import Store, Tenant
from vigil.verifier import BUNDLE_FORMAT

CHUNK = 10_000


def write_bundle(
    store: Store,
    signer: Signer,
    tenant: Tenant,
    out: BinaryIO,
    first: int = 0,
    end: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Write a bundle holding events [first, end) (default: the whole log) of ``tenant`` to ``out``.

    Events are streamed in chunks, so a large log never sits in memory. Returns the manifest.

    The bundle is proved against the newest checkpoint; when no checkpoint covers ``end`` yet, one is signed
    first.
    """
    size = store.tree_size(tenant.id)
    end = size if end is None else end
    if not 0 <= first < end <= size:
        raise InvalidRequest(f"need 0 <= from_seq < to_seq <= {size} (the log's size); got {first}..{end}")
    cp = store.checkpoint(tenant.id)
    if cp is None or cp.size < end:
        cp = make_checkpoint(store, signer, tenant)
    cps = store.checkpoints(tenant.id)
    if cp is None or not cps:
        raise StorageError("no checkpoint could be made for the export")
    first_cp = cps[0]
    reader = store.subtree_reader(tenant.id)
    manifest: dict[str, object] = {
        "format": BUNDLE_FORMAT,
        "tenant": tenant.slug,
        "origin": origin_of(tenant.slug),
        "first_seq": first,
        "end_seq": end,
        "tree_size": cp.size,
        "left": [reader(level, idx).hex() for level, idx in aligned_subtrees(0, first)],
        "right": [reader(level, idx).hex() for level, idx in aligned_subtrees(end, cp.size)],
        "first_checkpoint_size": first_cp.size,
        "consistency": [h.hex() for h in consistency_proof(first_cp.size, cp.size, reader)]
        if first_cp.size < cp.size
        else [],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        with zf.open("events.ndjson", "w", force_zip64=True) as events:
            for start in range(first, end, CHUNK):
                rows = store.read_range(tenant.id, start, min(start + CHUNK, end))
                if len(rows) != min(start + CHUNK, end) - start:
                    raise StorageError(
                        f"events {start}..{min(start + CHUNK, end) - 1} are not all in the store; "
                        "run vigil verify"
                    )
                events.write(b"".join(body + b"\n" for _, _, body in rows))
                if progress is not None:
                    progress(len(rows))
        zf.writestr("checkpoint.txt", cp.note)
        zf.writestr("first-checkpoint.txt", first_cp.note)
        zf.writestr("vkey.txt", signer.vkey + "\n")
    return manifest
