"""The one reader of times a person types: the API's ``since``/``until`` and the CLI's ``--since``/``--until``.

Three forms, the same everywhere:

- an RFC 3339 time with a zone: ``2026-12-01T08:30:00Z``, ``2026-12-01T09:30:00+01:00`` (fractions allowed);
- a bare date, meaning midnight UTC at its start: ``2026-12-01``;
- a duration meaning "that long ago": a whole number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``
  (``90s``, ``15m``, ``12h``, ``30d``, ``2w``).

A time without a zone is refused rather than guessed.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from vigil.errors import InvalidRequest

_DURATION = re.compile(r"^(\d{1,9})([smhdw])\Z")
_UNIT_US = {
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 7 * 86_400_000_000,
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_YEAR_ONE_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US

FORMS = "an RFC 3339 time with a zone (2026-12-01T08:00:00Z), a date (2026-12-01) or a duration ago (30d, 12h, 15m)"


def parse_time(text: str, *, now_us: int | None = None, name: str = "time") -> int:
    """Microseconds since the Unix epoch of ``text`` in one of the three forms; ``now_us`` is the clock a
    duration counts back from (default: now). A clear :class:`InvalidRequest` naming ``name`` otherwise."""
    value = text.strip()
    m = _DURATION.match(value)
    if m:
        now = time.time_ns() // 1000 if now_us is None else now_us
        at = now - int(m.group(1)) * _UNIT_US[m.group(2)]
        if at < _YEAR_ONE_US:
            raise InvalidRequest(f"{name} {text[:60]!r} reaches back before the year 1")
        return at
    try:
        if _DATE.match(value):
            dt = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        elif _RFC3339.match(value):
            # fromisoformat takes at most 6 fraction digits: a finer fraction is cut to microseconds
            head, sep, frac_zone = value.partition(".")
            if sep:
                digits = re.match(r"\d+", frac_zone)
                frac = digits.group(0) if digits else ""
                value = f"{head}.{frac[:6].ljust(6, '0')}{frac_zone[len(frac) :]}"
            value = value[:10] + "T" + value[11:]  # RFC 3339 allows "t" and " " there
            dt = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        else:
            raise ValueError(value)
    except (ValueError, OverflowError):
        shown = text[:60]
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\Z", text.strip()):
            raise InvalidRequest(
                f"{name} {shown!r} has no zone; add one (Z for UTC, or +01:00), or give {FORMS}"
            ) from None
        raise InvalidRequest(f"{name} {shown!r} is not a time: give {FORMS}") from None
    try:
        return (dt - _EPOCH) // _ONE_US
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise InvalidRequest(f"{name} {text[:60]!r} is outside the years 1 to 9999 in UTC") from None


def time_range(
    since: str | None, until: str | None, *, now_us: int | None = None
) -> tuple[int | None, int | None]:
    """(since, until) in microseconds, each optional; refused when ``since`` is not before ``until``."""
    now = time.time_ns() // 1000 if now_us is None else now_us
    lo = None if since is None else parse_time(since, now_us=now, name="since")
    hi = None if until is None else parse_time(until, now_us=now, name="until")
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidRequest(f"since ({since}) must be before until ({until})")
    return lo, hi
