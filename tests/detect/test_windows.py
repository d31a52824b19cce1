"""Window arithmetic of the long (slow-tier) windows, against naive models that keep every event: the bounded
structures answer the same, and keep no more than their limit however many events arrive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.detect.windows import Latest, LatestDistinct, Tally

SPAN = 100
times = st.integers(min_value=0, max_value=1_000)


@settings(max_examples=300)
@given(st.lists(times, max_size=80), st.integers(min_value=1, max_value=8))
def test_latest_fires_exactly_when_limit_items_lie_within_the_span(stream: list[int], limit: int) -> None:
    """`Latest` fires when, and only when, a model keeping every item since the last firing would, and hands
    back the `limit` newest of them; it never holds more than `limit` items."""
    real: Latest[int] = Latest(SPAN)
    kept: list[int] = []
    for i, us in enumerate(stream):
        kept.append(us)
        newest = max(kept)
        in_window = sorted(t for t in kept if t >= newest - SPAN)
        got = real.add("k", us, i, limit)
        assert len(real.items("k", 0)) <= limit
        if len(in_window) >= limit:
            assert got is not None and [t for t, _ in got] == in_window[-limit:]
            real.clear("k")
            kept = []
        else:
            assert got is None


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), times, st.booleans()),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=6),
)
def test_latest_distinct_counts_values_seen_within_the_span(
    stream: list[tuple[str, int, bool]], limit: int
) -> None:
    """`LatestDistinct` fires exactly when `limit` distinct values were last seen within the span of the newest
    sighting (a forgiven value no longer counts), keeping at most `limit` values per key."""
    real: LatestDistinct[int] = LatestDistinct(SPAN)
    seen: dict[str, int] = {}
    newest = -1
    for i, (value, us, forgive) in enumerate(stream):
        if forgive:  # e.g. the account then signed in: forget it if it was seen at or after us - 10
            real.discard("k", value, us - 10)
            if value in seen and seen[value] >= us - 10:
                del seen[value]
            continue
        seen[value] = max(us, seen.get(value, us))
        newest = max(newest, us)
        in_window = sorted(t for t in seen.values() if t >= newest - SPAN)
        got = real.add("k", value, us, i, limit)
        assert len(real._by_key.get("k", {})) <= limit
        if len(in_window) >= limit:
            assert got is not None and sorted(t for t, _ in got) == in_window[-limit:]
            real.clear("k")
            seen, newest = {}, -1
        else:
            assert got is None


@settings(max_examples=300)
@given(st.lists(st.tuples(times, st.integers(min_value=0, max_value=1_000)), max_size=120))
def test_tally_covers_the_span_and_at_most_one_bucket_more(stream: list[tuple[int, int]]) -> None:
    """The bucketed total is never less than the exact sum over the span before the newest event, never more
    than the exact sum over the span plus one bucket, and it keeps at most span / bucket + 1 buckets."""
    bucket = 10
    real = Tally(SPAN, bucket)
    kept: list[tuple[int, int]] = []
    for us, amount in stream:
        kept.append((us, amount))
        newest = max(t for t, _ in kept)
        total = real.add("k", us, amount)
        assert sum(a for t, a in kept if t >= newest - SPAN) <= total
        assert total <= sum(a for t, a in kept if t >= newest - SPAN - bucket)
        assert len(real._by_key["k"][0]) <= SPAN // bucket + 1


def test_sweep_forgets_keys_idle_for_longer_than_the_span() -> None:
    """A key nobody added to for a whole span is dropped: memory follows the active keys only."""
    latest: Latest[int] = Latest(SPAN)
    distinct: LatestDistinct[int] = LatestDistinct(SPAN)
    tally = Tally(SPAN, 10)
    for k in range(50):
        latest.add(k, k, k, 3)
        distinct.add(k, "v", k, k, 3)
        tally.add(k, k, 1)
    # at 130 the span reaches back to 30: keys last added to before it are gone (for the tally, keys whose
    # newest bucket, 20-29 for key 29, lies wholly before the window the next add would keep)
    assert latest.sweep(130) == 30 and len(latest) == 20
    assert distinct.sweep(130) == 30 and len(distinct) == 20
    assert tally.sweep(130) == 30 and len(tally) == 20
