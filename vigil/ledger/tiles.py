"""Subtree hashes from compactly stored tree data.

Stores keep the leaf hashes (level 0) and the roots of complete perfect subtrees at every eighth level
(8, 16, 24, ...). The hash of any complete subtree at level ``8a + b`` is then folded from at most 2**b stored
hashes at level ``8a``, all inside one "tile" of 256 consecutive stored hashes. A reader caches the tiles it
fetched, so an inclusion or consistency proof costs a couple of tile reads per eight levels: O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from vigil.errors import StorageError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

FetchTile = Callable[[int, int, int], list[bytes]]
"""``fetch(level, start, end)``: the stored hashes at ``level`` (a multiple of 8) for indices [start, end)."""


class TileReader:
    """``reader(level, index)``: the hash of a complete perfect subtree, read through cached tiles."""

    def __init__(self, fetch: FetchTile, size: int) -> None:
        self.fetch = fetch
        self.size = size
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def _tile(self, level: int, tile: int) -> list[bytes]:
        key = (level, tile)
        hashes = self._tiles.get(key)
        if hashes is None:
            start = tile * TILE_WIDTH
            # only as far as this tree size has complete subtrees at that level
            end = min(start + TILE_WIDTH, self.size >> level)
            hashes = self.fetch(level, start, end) if end > start else []
            self._tiles[key] = hashes
        return hashes

    def __call__(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0 or (index + 1) << level > self.size:
            raise StorageError(f"subtree ({level}, {index}) is not complete in a tree of size {self.size}")
        base = level - level % TILE_HEIGHT
        width = 1 << (level - base)
        first = index * width
        tile = self._tile(base, first // TILE_WIDTH)
        off = first % TILE_WIDTH
        hashes = tile[off : off + width]
        if len(hashes) != width:
            raise StorageError(
                f"tree data missing: level {base} holds {len(tile)} of the hashes that tile "
                f"{first // TILE_WIDTH} needs for subtree ({level}, {index})"
            )
        while len(hashes) > 1:
            hashes = [
                hashlib.sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest() for i in range(0, len(hashes), 2)
            ]
        return hashes[0]
