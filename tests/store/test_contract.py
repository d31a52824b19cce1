"""The Store contract, run on SQLite and PostgreSQL alike: contiguous seqs, a tree that matches its leaves,
dedup, serialized appends, failure isolation."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import msgspec
import pytest
from support import mth as _mth
from support import prepared_events as _prepared

from vigil.errors import Conflict, InvalidRequest, StorageError
from vigil.ledger.merkle import CompactRange, inclusion_proof, root_at
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.verifier import verify_inclusion


def test_seqs_are_contiguous_per_tenant(store: Store) -> None:
    """Each tenant's log counts from 0 on its own."""
    a = store.create_tenant("acme")
    b = store.create_tenant("globex")
    assert [x.seq for x in store.append(a.id, _prepared(3))] == [0, 1, 2]
    assert [x.seq for x in store.append(b.id, _prepared(2, "globex"))] == [0, 1]
    assert [x.seq for x in store.append(a.id, _prepared(2))] == [3, 4]


@pytest.mark.parametrize("batches", [[1], [255, 1], [256], [300, 700, 1, 2047], [5] * 60])
def test_stored_tree_matches_leaves_across_reopen(settings: Settings, batches: list[int]) -> None:
    """The root read through stored tree data equals the root over all leaves, at every size, after reopen."""
    store = open_store(settings.database, settings)
    t = store.create_tenant("acme")
    leaves: list[bytes] = []
    for i, n in enumerate(batches):
        if i % 2:  # reopen half-way so the frontier is rebuilt from disk
            store.close()
            store = open_store(settings.database, settings)
        leaves += [a.leaf for a in store.append(t.id, _prepared(n))]
    size = store.tree_size(t.id)
    assert size == len(leaves)
    reader = store.subtree_reader(t.id)
    for k in sorted({1, 2, 3, 255, 256, 257, size // 2, size - 1, size} & set(range(1, size + 1))):
        assert root_at(k, reader) == _mth(leaves[:k])
    assert [leaf for _, leaf, _ in store.read_range(t.id, 0, size)] == leaves
    idx = size // 3
    verify_inclusion(leaves[idx], idx, size, inclusion_proof(idx, size, reader), _mth(leaves))
    store.close()


def test_read_packed_is_read_range_packed(store: Store) -> None:
    """read_packed hands back what read_range does, in seq order, as vigil verify's fast path expects: the count,
    the leaf hashes concatenated, the bodies joined by newlines (canonical bodies hold none of their own)."""
    t = store.create_tenant("acme")
    other = store.create_tenant("globex")
    store.append(other.id, _prepared(7, "globex"))
    store.append(t.id, _prepared(600))
    store.append(other.id, _prepared(7, "globex"))
    for lo, hi in [(0, 600), (0, 1), (255, 513), (599, 600)]:
        rows = store.read_range(t.id, lo, hi)
        assert all(b"\n" not in body for _, _, body in rows)
        packed = (len(rows), b"".join(leaf for _, leaf, _ in rows), b"\n".join(body for _, _, body in rows))
        assert store.read_packed(t.id, lo, hi) == packed
    assert store.read_packed(t.id, 590, 700)[0] == 10  # past the end: only what is there
    assert store.read_packed(t.id, 600, 700) == (0, b"", b"")


def test_leaf_hash_is_sha256_of_0x00_and_canonical_body(store: Store) -> None:
    """RFC 9162 leaf hashing over the stored canonical bytes."""
    t = store.create_tenant("acme")
    store.append(t.id, _prepared(1))
    ((_, leaf, body),) = store.read_range(t.id, 0, 1)
    assert leaf == hashlib.sha256(b"\x00" + body).digest()
    import rfc8785

    assert body == rfc8785.dumps(msgspec.json.decode(body))


def test_tenant_slugs_are_validated_and_unique(store: Store) -> None:
    """Bad slugs and duplicates are clear errors."""
    store.create_tenant("acme")
    with pytest.raises(Conflict):
        store.create_tenant("acme")
    for bad in ("", "A", "has space", "-x", "x" * 64):
        with pytest.raises(InvalidRequest):
            store.create_tenant(bad)


def test_concurrent_appenders_are_serialized(store: Store) -> None:
    """Threads appending at once to one tenant get disjoint seqs and one consistent tree."""
    t = store.create_tenant("acme")
    got: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            seqs = [a.seq for a in store.append(t.id, _prepared(17))]
            with lock:
                got.extend(seqs)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(got) == list(range(6 * 10 * 17))
    leaves = [leaf for _, leaf, _ in store.read_range(t.id, 0, len(got))]
    cr = CompactRange()
    cr.extend(leaves)
    assert root_at(len(got), store.subtree_reader(t.id)) == cr.root() == _mth(leaves)


def test_a_failing_job_does_not_fail_the_others_in_its_group(store: Store) -> None:
    """Group commit retries jobs alone when one of them fails, so only the guilty caller sees the error."""
    t = store.create_tenant("acme")

    def boom(conn: sqlite3.Connection) -> None:
        raise StorageError("boom")

    results: list[object] = []
    ths = [
        threading.Thread(target=lambda: results.append(store.append(t.id, _prepared(5)))) for _ in range(4)
    ]
    for th in ths:
        th.start()
    with pytest.raises(StorageError, match="boom"):
        store.write(boom)
    for th in ths:
        th.join()
    assert len(results) == 4
    assert store.tree_size(t.id) == 20
    store.append(t.id, _prepared(1))
    leaves = [leaf for _, leaf, _ in store.read_range(t.id, 0, 21)]
    assert root_at(21, store.subtree_reader(t.id)) == _mth(leaves)
