"""Tests for vigil.ledger.merkle against a reference written straight from RFC 9162 §2.1."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import verifier
from vigil.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    decompose,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_at,
)

# --- Reference implementation: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1, verbatim recursions ---


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return d[0]
    k = _k(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n])."""
    return ref_subproof(m, d, True)


# --- Helpers -------------------------------------------------------------------------------


def leaves_of(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


class Reader:
    """A SubtreeReader over an explicit leaf list that counts calls and refuses incomplete subtrees."""

    def __init__(self, leaves: Sequence[bytes], size: int | None = None) -> None:
        self.leaves = leaves
        self.size = len(leaves) if size is None else size
        self.calls = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.calls += 1
        lo, hi = index << level, (index + 1) << level
        if hi > self.size:
            raise AssertionError(f"incomplete subtree ({level}, {index}) requested at size {self.size}")
        return ref_mth(self.leaves[lo:hi])


@st.composite
def trees(draw: st.DrawFn, max_size: int = 300) -> list[bytes]:
    n = draw(st.integers(min_value=1, max_value=max_size))
    salt = draw(st.binary(max_size=8))
    return leaves_of(n, salt)


# --- Hashing primitives ----------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    """MTH of the empty tree is SHA-256 of the empty string."""
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_at(0, Reader([])) == EMPTY_ROOT


def test_single_empty_leaf_root_is_sha256_of_zero_byte() -> None:
    """The tree of the single leaf b"" has root SHA-256(0x00)."""
    cr = CompactRange()
    cr.append(leaf_hash(b""))
    assert cr.root() == hashlib.sha256(b"\x00").digest()
    assert len(cr.root()) == HASH_SIZE


def test_node_hash_is_domain_separated() -> None:
    """Interior nodes hash 0x01 || left || right."""
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)


# --- decompose and CompactRange ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [(0, []), (1, [(0, 0)]), (2, [(1, 0)]), (6, [(2, 0), (1, 2)]), (7, [(2, 0), (1, 2), (0, 6)])],
)
def test_decompose_follows_binary_expansion(size: int, expected: list[tuple[int, int]]) -> None:
    """decompose(size) lists the perfect subtrees of [0, size), leftmost first."""
    assert decompose(size) == expected


@given(st.integers(min_value=0, max_value=2**40))
def test_decompose_covers_range_exactly(size: int) -> None:
    """The decomposition's subtrees are contiguous, aligned and cover [0, size)."""
    pos = 0
    for level, index in decompose(size):
        assert index << level == pos
        pos += 1 << level
    assert pos == size


@settings(deadline=None)
@given(trees())
def test_compact_range_root_matches_reference_at_every_size(leaves: list[bytes]) -> None:
    """CompactRange.root() equals the RFC 9162 MTH after every append, and reports the right subtrees."""
    cr = CompactRange()
    for i, leaf in enumerate(leaves):
        completed = cr.append(leaf)
        assert completed[0] == (0, i, leaf)
        for level, index, h in completed:
            assert h == ref_mth(leaves[index << level : (index + 1) << level])
        # The completed subtrees are exactly those ending at leaf i.
        assert len(completed) == 1 + ((i + 1) & -(i + 1)).bit_length() - 1
        assert cr.size == i + 1
        assert cr.root() == ref_mth(leaves[: i + 1])
        assert len(cr.hashes) == (i + 1).bit_count()


@given(trees(max_size=100), st.data())
def test_compact_range_resumes_from_its_frontier(leaves: list[bytes], data: st.DataObject) -> None:
    """A CompactRange rebuilt from (size, hashes) continues exactly like the uninterrupted one."""
    cut = data.draw(st.integers(min_value=0, max_value=len(leaves)))
    uninterrupted = CompactRange()
    per_leaf = [uninterrupted.append(leaf) for leaf in leaves]
    first = CompactRange()
    first.extend(leaves[:cut])
    resumed = CompactRange(first.size, first.hashes)
    assert resumed.extend(leaves[cut:]) == [entry for entries in per_leaf[cut:] for entry in entries]
    assert resumed.root() == uninterrupted.root() == ref_mth(leaves)


def test_compact_range_extend_concatenates_appends() -> None:
    """extend() returns every (level, index, hash) that the equivalent appends return."""
    leaves = leaves_of(11)
    one = CompactRange()
    expected = [entry for leaf in leaves for entry in one.append(leaf)]
    assert CompactRange().extend(leaves) == expected


def test_compact_range_rejects_bad_state() -> None:
    """A frontier with the wrong number or size of hashes, or a bad leaf, is refused."""
    with pytest.raises(ValueError, match="frontier hashes"):
        CompactRange(3, [EMPTY_ROOT])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError, match="non-negative"):
        CompactRange(-1)
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"x")


def test_compact_range_default_hashes_are_not_shared() -> None:
    """Two default CompactRanges do not share frontier state."""
    a, b = CompactRange(), CompactRange()
    a.append(leaf_hash(b"x"))
    assert b.size == 0 and b.hashes == []


# --- Proofs against the reference ---------------------------------------------------------------


@settings(deadline=None)
@given(trees(), st.data())
def test_inclusion_proof_matches_reference_and_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    """inclusion_proof equals RFC 9162 PATH and passes vigil.verifier.verify_inclusion."""
    size = len(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    get = Reader(leaves)
    proof = inclusion_proof(index, size, get)
    assert proof == ref_path(index, leaves)
    root = root_at(size, get)
    assert root == ref_mth(leaves)
    verifier.verify_inclusion(leaves[index], index, size, proof, root)


@settings(deadline=None)
@given(trees(), st.data())
def test_consistency_proof_matches_reference_and_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    """consistency_proof equals RFC 9162 PROOF and passes vigil.verifier.verify_consistency."""
    size2 = len(leaves)
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    get = Reader(leaves)
    proof = consistency_proof(size1, size2, get)
    assert proof == ref_proof(size1, leaves)
    root1, root2 = ref_mth(leaves[:size1]), ref_mth(leaves)
    verifier.verify_consistency(size1, size2, proof, root1, root2)


@settings(deadline=None)
@given(trees(max_size=64), st.data())
def test_proofs_over_a_prefix_only_read_that_prefix(leaves: list[bytes], data: st.DataObject) -> None:
    """Proofs at an older size never ask the reader for subtrees beyond that size."""
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)))
    get = Reader(leaves, size=size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert inclusion_proof(index, size, get) == ref_path(index, leaves[:size])
    size1 = data.draw(st.integers(min_value=1, max_value=size))
    assert consistency_proof(size1, size, get) == ref_proof(size1, leaves[:size])
    assert root_at(size, get) == ref_mth(leaves[:size])


@given(trees(max_size=64), st.data())
def test_range_hash_matches_reference(leaves: list[bytes], data: st.DataObject) -> None:
    """range_hash equals MTH(D[lo:hi]) on the two kinds of range RFC 9162's recursion produces."""
    size = len(leaves)
    get = Reader(leaves)
    # Perfect subtrees anywhere in the tree.
    level = data.draw(st.integers(min_value=0, max_value=size.bit_length() - 1))
    index = data.draw(st.integers(min_value=0, max_value=(size >> level) - 1))
    lo, hi = index << level, (index + 1) << level
    assert range_hash(lo, hi, get) == ref_mth(leaves[lo:hi])
    # Right-edge ranges, which start where a subtree of the decomposition starts.
    for level, index in decompose(size):
        lo = index << level
        assert range_hash(lo, size, get) == ref_mth(leaves[lo:])


def test_range_hash_rejects_misaligned_and_empty_ranges() -> None:
    """range_hash refuses ranges that are empty or not aligned like RFC 9162's recursion."""
    get = Reader(leaves_of(8))
    with pytest.raises(ValueError, match="not aligned"):
        range_hash(1, 5, get)
    with pytest.raises(ValueError, match="empty"):
        range_hash(3, 3, get)
    with pytest.raises(ValueError, match="non-negative"):
        range_hash(-1, 3, get)


def test_reader_returning_a_bad_hash_is_an_error() -> None:
    """A reader that returns something other than a 32-byte hash fails the proof, not silently."""
    with pytest.raises(ValueError, match="subtree reader"):
        inclusion_proof(0, 4, lambda level, index: b"")


def test_consistency_between_equal_sizes_is_empty() -> None:
    """PROOF(n, D[n]) is the empty list."""
    assert consistency_proof(5, 5, Reader(leaves_of(5))) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda get: inclusion_proof(4, 4, get), "not in a tree of size 4"),
        (lambda get: inclusion_proof(-1, 4, get), "non-negative"),
        (lambda get: inclusion_proof(0, 0, get), "not in a tree of size 0"),
        (lambda get: consistency_proof(0, 4, get), "empty tree"),
        (lambda get: consistency_proof(5, 4, get), "larger than size2"),
        (lambda get: consistency_proof(-1, 4, get), "non-negative"),
        (lambda get: root_at(-1, get), "non-negative"),
        (lambda get: decompose(-3), "non-negative"),
    ],
)
def test_invalid_proof_arguments_raise_value_error(call: Callable[[Reader], object], message: str) -> None:
    """Out-of-range indexes and sizes are refused with a clear ValueError."""
    with pytest.raises(ValueError, match=message):
        call(Reader(leaves_of(4)))


# --- Cost: O(log n) reader calls -------------------------------------------------------------------


def uniform_tree_reader(calls: list[tuple[int, int]], size: int) -> Callable[[int, int], bytes]:
    """A consistent reader for a huge tree whose leaves are all equal, so level alone fixes a hash."""
    by_level = [leaf_hash(b"same")]
    for _ in range(size.bit_length()):
        by_level.append(node_hash(by_level[-1], by_level[-1]))

    def get(level: int, index: int) -> bytes:
        if (index + 1) << level > size:
            raise AssertionError(f"incomplete subtree ({level}, {index}) at size {size}")
        calls.append((level, index))
        return by_level[level]

    return get


@pytest.mark.parametrize("size", [1_000_000, 2**20, 2**20 + 1, 999_999_999_999])
def test_proofs_at_large_sizes_use_logarithmic_reader_calls(size: int) -> None:
    """Proofs in a tree of a million leaves and more cost at most about 3 * log2(n) reader calls."""
    bound = 3 * math.ceil(math.log2(size))
    for index in (0, 1, size // 3, size // 2, size - 2, size - 1):
        calls: list[tuple[int, int]] = []
        get = uniform_tree_reader(calls, size)
        proof = inclusion_proof(index, size, get)
        assert len(calls) <= bound
        root = root_at(size, uniform_tree_reader([], size))
        verifier.verify_inclusion(leaf_hash(b"same"), index, size, proof, root)
    for size1 in (1, 2, 3, 1000, size // 2 + 1, size - 1):
        calls = []
        proof = consistency_proof(size1, size, uniform_tree_reader(calls, size))
        assert len(calls) <= bound
        verifier.verify_consistency(
            size1,
            size,
            proof,
            root_at(size1, uniform_tree_reader([], size)),
            root_at(size, uniform_tree_reader([], size)),
        )
