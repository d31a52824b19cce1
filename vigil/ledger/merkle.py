"""RFC 9162 (Certificate Transparency v2, section 2.1) Merkle tree algorithms.

Everything here is pure: no storage, no I/O. The ledger keeps the hashes of
complete perfect subtrees somewhere and hands this module a `SubtreeReader`
to look them up; proofs are then built from O(log n) lookups instead of a
walk over every leaf.

Vocabulary used throughout:

* A *perfect subtree* ``(level, index)`` covers the ``2**level`` leaves
  ``[index * 2**level, (index + 1) * 2**level)``. Level 0 is a single leaf.
* ``MTH(D[lo:hi])`` is RFC 9162's Merkle Tree Hash of the leaves in
  ``[lo, hi)``. Whenever RFC 9162's recursion asks for a range that is not a
  perfect subtree, the range ends at the tree size (it lies on the right
  edge of the tree), so it splits into the perfect subtrees of the binary
  expansion of its length, combined right to left.

The functions take and return *leaf hashes* (``leaf_hash(data)``), never the
raw leaf data, except `leaf_hash` itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "SubtreeReader",
    "consistency_proof",
    "decompose",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_at",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT = _sha256(b"").digest()
"""MTH({}) of the empty tree: SHA-256 of the empty string."""

SubtreeReader = Callable[[int, int], bytes]
"""``get(level, index)``: hash of the complete perfect subtree ``(level, index)``."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"".join((_NODE_PREFIX, left, right))).digest()


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_non_negative(what: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{what} must be non-negative, got {value}")


def _split(n: int) -> int:
    """Return RFC 9162's k: the largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _decompose_range(lo: int, hi: int) -> list[tuple[int, int]]:
    """Return the perfect subtrees covering ``[lo, hi)``, leftmost (largest) first.

    ``lo`` must be a multiple of the largest of them, which holds for every
    range RFC 9162's recursion produces.
    """
    out: list[tuple[int, int]] = []
    pos = lo
    width = hi - lo
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def decompose(size: int) -> list[tuple[int, int]]:
    """Return ``(level, index)`` of the perfect subtrees covering ``[0, size)``, leftmost first."""
    _check_non_negative("size", size)
    return _decompose_range(0, size)


class CompactRange:
    """The frontier of a growing tree: roots of the perfect subtrees covering ``[0, size)``.

    Appending a leaf touches only this frontier, so the ledger can keep the
    tree head current in O(1) amortised hashing per leaf and persist each
    subtree it completes for later proofs.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Resume a frontier from its size and the hashes of `decompose(size)`, largest first."""
        _check_non_negative("size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a range of size {size} has {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash(f"frontier hash {i}", h)
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """A copy of the frontier hashes, largest (leftmost) subtree first."""
        return list(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return every perfect subtree it completes as ``(level, index, hash)``.

        The first entry is always ``(0, old_size, leaf)``; each further entry
        is the parent of the previous one, one level up.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        hashes = self._hashes
        index = self._size
        completed = [(0, index, leaf)]
        h = leaf
        level = 0
        # Each set low bit of the old size is a left sibling waiting on the
        # frontier for exactly the subtree we just finished.
        while index & 1:
            h = _sha256(b"".join((_NODE_PREFIX, hashes.pop(), h))).digest()
            index >>= 1
            level += 1
            completed.append((level, index, h))
        hashes.append(h)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append several leaf hashes in order; return the concatenated `append` results."""
        completed: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        """Return MTH of the leaves ``[0, size)``; `EMPTY_ROOT` when empty."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold_right(self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the subtree hashes of a right-edge range into its MTH, right to left."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _read(get: SubtreeReader, level: int, index: int) -> bytes:
    h = get(level, index)
    if len(h) != HASH_SIZE:
        raise ValueError(f"subtree reader returned {len(h)} bytes for ({level}, {index})")
    return h


def range_hash(lo: int, hi: int, get: SubtreeReader) -> bytes:
    """Return MTH of the leaves ``[lo, hi)`` using one `get` call per perfect subtree.

    ``lo`` must be aligned the way RFC 9162's recursion aligns it: a multiple
    of the largest power of two not exceeding ``hi - lo``.
    """
    _check_non_negative("lo", lo)
    if hi <= lo:
        raise ValueError(f"empty or inverted range [{lo}, {hi})")
    top = 1 << ((hi - lo).bit_length() - 1)
    if lo % top:
        raise ValueError(f"range [{lo}, {hi}) is not aligned to a {top}-leaf subtree")
    return _fold_right([_read(get, level, index) for level, index in _decompose_range(lo, hi)])


def root_at(size: int, get: SubtreeReader) -> bytes:
    """Return MTH of the first ``size`` leaves; `EMPTY_ROOT` when ``size`` is 0."""
    _check_non_negative("size", size)
    if size == 0:
        return EMPTY_ROOT
    return range_hash(0, size, get)


def inclusion_proof(index: int, size: int, get: SubtreeReader) -> list[bytes]:
    """Return RFC 9162 PATH(index, D[0:size]), the audit path of leaf ``index``.

    Ordered from the leaf's sibling up to the child of the root, as
    §2.1.3.2 verification consumes it.
    """
    _check_non_negative("index", index)
    _check_non_negative("size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    # Walk RFC 9162's recursion top-down in absolute leaf positions; the
    # range [lo, hi) always contains the leaf. Nodes are found root-first,
    # hence the final reversal.
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(range_hash(mid, hi, get))
            hi = mid
        else:
            path.append(range_hash(lo, mid, get))
            lo = mid
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, get: SubtreeReader) -> list[bytes]:
    """Return RFC 9162 PROOF(size1, D[0:size2]); empty when the sizes are equal.

    RFC 9162 defines no proof from the empty tree, so ``size1`` must be at
    least 1.
    """
    _check_non_negative("size1", size1)
    _check_non_negative("size2", size2)
    if size1 == 0:
        raise ValueError("no consistency proof exists from the empty tree (size1 == 0)")
    if size1 > size2:
        raise ValueError(f"size1 ({size1}) is larger than size2 ({size2})")
    # SUBPROOF(m, D[lo:hi], b) unrolled: m counts the old tree's leaves inside
    # [lo, hi); b stays true while [lo, lo + m) is still the whole old tree,
    # whose hash the verifier already holds.
    proof: list[bytes] = []
    lo, hi, m, whole_old_tree = 0, size2, size1, True
    while m != hi - lo:
        mid = lo + _split(hi - lo)
        if m <= mid - lo:
            proof.append(range_hash(mid, hi, get))
            hi = mid
        else:
            proof.append(range_hash(lo, mid, get))
            m -= mid - lo
            lo = mid
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(range_hash(lo, hi, get))
    proof.reverse()
    return proof


def aligned_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The fewest aligned perfect subtrees covering ``[lo, hi)`` for any ``lo``, left to right.

    These are the hashes that, appended to the compact range of ``[0, lo)``, complete the tree of size ``hi``:
    what an export bundle carries so that a contiguous slice of events can be checked against a checkpoint.
    """
    _check_non_negative("lo", lo)
    out: list[tuple[int, int]] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else hi.bit_length() - 1
        while lo + (1 << level) > hi:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out
