"""vigil.times: the one reader of since/until for the API and the CLI."""

from __future__ import annotations

import pytest

from vigil.errors import InvalidRequest
from vigil.times import parse_time, time_range

NOW = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("2026-12-01", NOW),
        ("2026-12-01T00:00:00Z", NOW),
        ("2026-12-01t01:00:00+01:00", NOW),
        ("2026-12-01 00:00:00z", NOW),
        ("2026-12-01T00:00:00.123456789Z", NOW + 123_456),
        ("2026-12-01T00:00:00.5-00:30", NOW + 1_800_000_000 + 500_000),
        ("90s", NOW - 90_000_000),
        ("15m", NOW - 900_000_000),
        ("12h", NOW - 43_200_000_000),
        ("30d", NOW - 30 * 86_400_000_000),
        ("2w", NOW - 14 * 86_400_000_000),
        (" 30d ", NOW - 30 * 86_400_000_000),
    ],
)
def test_the_three_forms(text: str, us: int) -> None:
    """RFC 3339 with a zone, a bare date (UTC midnight) and a duration ago all read as microseconds."""
    assert parse_time(text, now_us=NOW) == us


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-01T08:00:00", "has no zone"),
        ("2026-12-01T08:00", "has no zone"),
        ("yesterday", "is not a time"),
        ("2026-02-31", "is not a time"),
        ("30 d", "is not a time"),
        ("-5d", "is not a time"),
        ("9999999w", "before the year 1"),
    ],
)
def test_what_is_refused_says_why(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        parse_time(text, now_us=NOW, name="since")


def test_a_range_must_run_forwards() -> None:
    assert time_range("2026-11-01", "2026-12-01") == (NOW - 30 * 86_400_000_000, NOW)
    assert time_range("1d", None, now_us=NOW) == (NOW - 86_400_000_000, None)
    with pytest.raises(InvalidRequest, match="must be before until"):
        time_range("2026-12-01", "2026-12-01")
