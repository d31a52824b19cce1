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
        return self.add_dropping(key, us, item)[0]

    def add_dropping(self, key: Hashable, us: int, item: T) -> tuple[deque[tuple[int, T]], list[T]]:
        """:meth:`add`, also returning the items that left the window (``item`` itself if it came too late),
        so a rule can keep running totals instead of recounting the window on every event."""
        window = self._by_key.get(key)
        if window is None:
            window = self._by_key[key] = deque()
        window.append((us, item))
        newest = max(us, window[-2][0]) if len(window) > 1 else us
        dropped = []
        if us < newest - self.span_us:
            dropped.append(window.pop()[1])  # far older than what the window already holds
        while window and window[0][0] < newest - self.span_us:
            dropped.append(window.popleft()[1])
        return window, dropped

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


class Latest(Generic[T]):
    """Per key, only the ``limit`` newest ``(us, item)``: enough to tell whether ``limit`` items fall within
    ``span_us`` of the newest, in memory bounded by the limit however long the span and however many arrive.

    Exact, not an estimate: at least ``limit`` items lie within the span of the newest exactly when the
    ``limit``-th newest does. The limit is given on each call, so a tenant's changed threshold applies at once.
    """

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self._by_key: dict[Hashable, deque[tuple[int, T]]] = {}

    def add(self, key: Hashable, us: int, item: T, limit: int) -> list[tuple[int, T]] | None:
        """Add ``item`` at ``us``; the ``limit`` newest items, oldest first, when they all lie within the span
        of the newest, else None."""
        window = self._by_key.get(key)
        if window is None:
            window = self._by_key[key] = deque()
        if not window or us >= window[-1][0]:
            window.append((us, item))
        else:  # commit order is nearly event-time order: a late item goes in its place
            at = len(window) - 1
            while at > 0 and window[at - 1][0] > us:
                at -= 1
            window.insert(at, (us, item))
        horizon = window[-1][0] - self.span_us
        while len(window) > max(limit, 1) or (window and window[0][0] < horizon):
            window.popleft()
        return list(window) if len(window) >= limit else None

    def items(self, key: Hashable, since_us: int) -> list[tuple[int, T]]:
        """The items kept under ``key`` at or after ``since_us``, oldest first."""
        return [(us, item) for us, item in self._by_key.get(key, ()) if us >= since_us]

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


class LatestDistinct(Generic[T]):
    """Per key, the newest ``(us, item)`` of each distinct value, for at most ``limit`` values: enough to tell
    whether ``limit`` distinct values were seen within ``span_us`` of the newest, in memory bounded by the
    limit (a count-distinct over a day keeps one entry per value, never one per event).

    Exact for the same reason as :class:`Latest`: the values seen last are the ones kept.
    """

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self._by_key: dict[Hashable, dict[Hashable, tuple[int, T]]] = {}
        self._newest: dict[Hashable, int] = {}

    def add(self, key: Hashable, value: Hashable, us: int, item: T, limit: int) -> list[tuple[int, T]] | None:
        """Note ``value`` seen at ``us``; the newest item of each of ``limit`` values, oldest first, when
        ``limit`` distinct values lie within the span of the newest, else None."""
        seen = self._by_key.get(key)
        if seen is None:
            seen = self._by_key[key] = {}
        before = seen.get(value)
        if before is None or us >= before[0]:
            seen[value] = (us, item)
        newest = self._newest[key] = max(us, self._newest.get(key, us))
        if len(seen) < limit:
            return None
        horizon = newest - self.span_us
        for v in [v for v, (t, _) in seen.items() if t < horizon]:
            del seen[v]
        if len(seen) > max(limit, 1):
            for v, _ in sorted(seen.items(), key=lambda kv: kv[1][0])[: len(seen) - max(limit, 1)]:
                del seen[v]
        return sorted(seen.values(), key=lambda p: p[0]) if len(seen) >= limit else None

    def discard(self, key: Hashable, value: Hashable, since_us: int) -> None:
        """Forget ``value`` under ``key`` if it was last seen at or after ``since_us``."""
        seen = self._by_key.get(key)
        if seen is not None and value in seen and seen[value][0] >= since_us:
            del seen[value]

    def clear(self, key: Hashable) -> None:
        self._by_key.pop(key, None)
        self._newest.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._by_key

    def sweep(self, now_us: int) -> int:
        """Forget keys seen last longer than the span before ``now_us``; returns how many."""
        stale = [k for k, us in self._newest.items() if us < now_us - self.span_us]
        for k in stale:
            self.clear(k)
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_key)


class Tally:
    """Per key, running sums in buckets of ``bucket_us`` over the last ``span_us``: a total over a long window
    in memory bounded by ``span_us / bucket_us + 1`` buckets, however many events arrive.

    The total covers every bucket that overlaps the span before the newest amount: at least the whole span and
    at most one bucket more (24 to 25 hours for a day in hourly buckets), so it never undercounts the span.
    """

    def __init__(self, span_us: int, bucket_us: int) -> None:
        if bucket_us <= 0 or span_us % bucket_us:
            raise ValueError(f"span {span_us} is not a whole number of buckets of {bucket_us}")
        self.span_us, self.bucket_us = span_us, bucket_us
        self._buckets = span_us // bucket_us
        self._by_key: dict[Hashable, tuple[deque[list[int]], list[int]]] = {}

    def add(self, key: Hashable, us: int, amount: int) -> int:
        """Add ``amount`` at ``us`` under ``key``; returns the key's total over the window."""
        entry = self._by_key.get(key)
        if entry is None:
            entry = self._by_key[key] = (deque(), [0])
        buckets, total = entry
        b = us // self.bucket_us
        if not buckets or b > buckets[-1][0]:
            buckets.append([b, amount])
        elif b < buckets[-1][0] - self._buckets:
            return total[0]  # far older than the window already holds
        else:
            at = len(buckets) - 1
            while at > 0 and buckets[at][0] > b:
                at -= 1
            if buckets[at][0] == b:
                buckets[at][1] += amount
            else:
                buckets.insert(at + (buckets[at][0] < b), [b, amount])
        total[0] += amount
        oldest = buckets[-1][0] - self._buckets
        while buckets[0][0] < oldest:
            total[0] -= buckets.popleft()[1]
        return total[0]

    def total(self, key: Hashable) -> int:
        entry = self._by_key.get(key)
        return entry[1][0] if entry is not None else 0

    def clear(self, key: Hashable) -> None:
        self._by_key.pop(key, None)

    def sweep(self, now_us: int) -> int:
        """Forget keys whose newest bucket ended longer than the span before ``now_us``; returns how many."""
        last = now_us // self.bucket_us - self._buckets
        stale = [k for k, (b, _) in self._by_key.items() if not b or b[-1][0] < last]
        for k in stale:
            del self._by_key[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_key)
