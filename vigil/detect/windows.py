"""Sliding windows over event time, keyed by (tenant, group): what the stateful built-ins count in."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Windows(Generic[T]):
    """Per-key deques of ``(us, item)`` holding only the last ``span_us`` of event time.

    Events arrive in commit order, which is nearly but not exactly event-time order; an item older than the
    window's newest by more than the span is dropped, so a late event never resurrects an old burst.
    """

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self._by_key: dict[Hashable, deque[tuple[int, T]]] = {}

    def add(self, key: Hashable, us: int, item: T) -> deque[tuple[int, T]]:
        """Add ``item`` at ``us`` under ``key``; returns the key's window, oldest first."""
        window = self._by_key.get(key)
        if window is None:
            window = self._by_key[key] = deque()
        window.append((us, item))
        newest = max(us, window[-2][0]) if len(window) > 1 else us
        if us < newest - self.span_us:
            window.pop()  # far older than what the window already holds
        while window and window[0][0] < newest - self.span_us:
            window.popleft()
        return window

    def get(self, key: Hashable) -> deque[tuple[int, T]] | None:
        return self._by_key.get(key)

    def clear(self, key: Hashable) -> None:
        self._by_key.pop(key, None)

    def sweep(self, now_us: int) -> int:
        """Forget keys whose newest item is older than the span before ``now_us``; returns how many."""
        stale = [k for k, w in self._by_key.items() if not w or w[-1][0] < now_us - self.span_us]
        for k in stale:
            del self._by_key[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._by_key)
