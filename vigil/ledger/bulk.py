"""Leaf hashes and subtree roots in bulk, for ``vigil verify``.

``vigil verify`` hashes every event twice over: its leaf, and (on average) one interior node above it. In Python
each hash is two hashlib calls whose overhead costs more than the SHA-256 itself, so when the C extension
``vigil.ledger._merkle`` was built (it needs a C compiler and OpenSSL's headers at install time) the hashing runs
there, with OpenSSL's SHA-256 and the GIL released. Without it the same results come from the Python below, more
slowly. ``NATIVE`` says which is in use; setting ``VIGIL_PURE_PYTHON`` in the environment forces the Python.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from types import ModuleType

__all__ = ["NATIVE", "joined_leaf_hashes", "subtree_roots"]

HASH_SIZE = 32


def py_joined_leaf_hashes(joined: bytes, count: int, suffix: bytes) -> bytes | None:
    """SHA-256(0x00 || part) of each newline-separated part of ``joined``, concatenated (32 bytes per part), or
    None unless ``joined`` has exactly ``count`` parts and each of them ends with ``suffix``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    parts = joined.split(b"\n")
    if len(parts) != count or not all(map(bytes.endswith, parts, itertools.repeat(suffix))):
        return None
    sha = hashlib.sha256
    return b"".join([sha(b"\x00" + part).digest() for part in parts])


def py_subtree_roots(hashes: bytes, width: int) -> bytes:
    """The RFC 9162 root of each run of ``width`` leaf hashes in ``hashes`` (32 bytes each), concatenated.
    ``width`` is a power of two and ``len(hashes)`` a multiple of ``32 * width``."""
    if width < 1 or width & (width - 1):
        raise ValueError(f"width must be a power of two, not {width}")
    run = HASH_SIZE * width
    if len(hashes) % run:
        raise ValueError(f"{len(hashes)} bytes of hashes do not make whole runs of {width} leaves")
    sha = hashlib.sha256
    roots = []
    for start in range(0, len(hashes), run):
        level = [hashes[i : i + HASH_SIZE] for i in range(start, start + run, HASH_SIZE)]
        while len(level) > 1:
            level = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
        roots.append(level[0])
    return b"".join(roots)


def _native() -> ModuleType | None:
    if os.environ.get("VIGIL_PURE_PYTHON"):
        return None
    try:
        from vigil.ledger import _merkle
    except ImportError:
        return None
    return _merkle


_merkle = _native()
NATIVE = _merkle is not None
"""True when the C extension does the hashing."""

joined_leaf_hashes: Callable[[bytes, int, bytes], bytes | None] = (
    _merkle.joined_leaf_hashes if _merkle is not None else py_joined_leaf_hashes
)
subtree_roots: Callable[[bytes, int], bytes] = (
    _merkle.subtree_roots if _merkle is not None else py_subtree_roots
)
