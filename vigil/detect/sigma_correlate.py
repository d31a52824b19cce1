"""Sigma correlation rules evaluated as events stream in: ``event_count``, ``value_count``, ``temporal`` and
``temporal_ordered``, with ``group-by``, ``aliases`` and chains of correlations.

The windows are the ones the pySigma SQLite backend computes in SQL, so the two can be compared: each
occurrence (an event matching a referenced rule, or a hit of a referenced correlation) anchors the window
``[us - timespan, us]`` of its group, and the correlation fires on that occurrence when the window's measure
meets the condition. A burst therefore fires on the occurrence that crosses the threshold and on each one after
it while the window still holds enough; the alert engine folds those into one alert (``suppress_us``).

State is keyed by tenant first and then by the group-by values (strings compared without case, as Sigma does),
so one tenant's events never count towards another's group. An occurrence that lacks a group-by field is not
counted, as in the SQL backend. An occurrence older than its group's newest by more than the timespan (a very
late event) is dropped rather than resurrecting a burst that is over.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from vigil.detect.rules import Ev, RuleInfo
from vigil.detect.sigma_fields import FieldPath, text, values_of
from vigil.text import noun, plural

MAX_EVIDENCE = 50
KINDS = ("event_count", "value_count", "temporal", "temporal_ordered")
OPS: dict[str, Callable[[int, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}


@dataclass(slots=True)
class Occurrence:
    """Something a correlation counts: a matching event, or a hit of a correlation it refers to."""

    us: int
    doc: dict[str, Any]  # the event that made it (for a correlation hit: the one that made it fire)
    fields: dict[str, Any] | None  # a correlation hit's group-by values, which win over the event's own
    evidence: tuple[Ev, ...]
    key: tuple[Any, ...]  # identity: one event reaching a correlation through two rules is counted once


@dataclass(slots=True)
class Firing:
    """A correlation met its condition on an occurrence."""

    occurrence: Occurrence  # what it hands on to the correlations that refer to it
    group: tuple[tuple[str, str], ...]
    metric: int


Getter = Callable[[Occurrence], Any]


def getter(name: str, path: FieldPath | None) -> Getter:
    """Reads a field of an occurrence: a chained correlation's group-by value first, then the event's
    (``path`` is None for a name that only a chained correlation's group-by provides)."""
    values = values_of(path) if path is not None else None

    def get(occ: Occurrence) -> Any:
        if occ.fields is not None and name in occ.fields:
            return occ.fields[name]
        if values is None:
            return None
        for v in values(occ.doc):  # through a list (targets.id) the first element decides
            if v is not None:
                return v
        return None

    return get


@dataclass(frozen=True)
class Slot:
    """One rule a correlation refers to: which node it is and how its occurrences are read."""

    node: int
    group: tuple[Getter, ...]  # one per group-by field, aliases applied
    value: Getter | None  # value_count's field, aliases applied


def _norm(v: Any) -> Any:
    if type(v) is str:
        return v.lower()
    return v if type(v) in (int, float, bool) else text(v)


def _shown(v: Any) -> str:
    s = text(v)
    return str(v) if s is None else s


_US = itemgetter(0)
_Entry = tuple[int, int, Any, Occurrence]  # (us, slot mask, value_count value, occurrence)


class _Group:
    __slots__ = ("display", "entries")

    def __init__(self, display: tuple[tuple[str, str], ...]) -> None:
        self.entries: list[_Entry] = []  # ordered by us
        self.display = display  # the group-by values as first seen: stable for alert dedup


class Correlation:
    """One correlation rule and its windows."""

    def __init__(
        self,
        info: RuleInfo,
        *,
        node: int,
        kind: str,
        span_us: int,
        group_by: Sequence[str],
        slots: Sequence[Slot],
        condition: Sequence[tuple[str, float]],
        field: str | None = None,
    ) -> None:
        self.info = info
        self.node = node
        self.kind = kind
        self.span_us = span_us
        self.group_by = tuple(group_by)
        self.slots = tuple(slots)
        self.condition = tuple((OPS[op], op, count) for op, count in condition)
        self.field = field
        self._groups: dict[str, dict[tuple[Any, ...], _Group]] = {}
        self._fired = 0

    def fresh(self) -> Correlation:
        """The same rule with empty windows."""
        return Correlation(
            self.info,
            node=self.node,
            kind=self.kind,
            span_us=self.span_us,
            group_by=self.group_by,
            slots=self.slots,
            condition=[(op, count) for _, op, count in self.condition],
            field=self.field,
        )

    def feed(self, tenant: str, inputs: Sequence[tuple[int, Occurrence]]) -> list[Firing]:
        """Count the occurrences of one event (``(slot, occurrence)`` pairs) and return what fired."""
        merged: dict[tuple[Any, ...], list[Any]] = {}
        for index, occ in inputs:
            slot = self.slots[index]
            raw = [get(occ) for get in slot.group]
            if any(v is None for v in raw):
                continue
            gkey = tuple(_norm(v) for v in raw)
            value = None
            if slot.value is not None:
                value = slot.value(occ)
                value = None if value is None else _norm(value)
            k = (occ.key, gkey)
            seen = merged.get(k)
            if seen is None:
                merged[k] = [occ, 1 << index, value, gkey, raw]
            else:
                seen[1] |= 1 << index
                if seen[2] is None:
                    seen[2] = value
        if not merged:
            return []
        groups = self._groups.get(tenant)
        if groups is None:
            groups = self._groups[tenant] = {}
        span = self.span_us
        fired: list[Firing] = []
        for occ, mask, value, gkey, raw in merged.values():
            group = groups.get(gkey)
            if group is None:
                group = groups[gkey] = _Group(tuple(zip(self.group_by, map(_shown, raw), strict=True)))
            entries = group.entries
            newest = entries[-1][0] if entries else occ.us
            if occ.us < newest - span:
                continue
            bisect.insort_right(entries, (occ.us, mask, value, occ), key=_US)
            newest = entries[-1][0]
            cut = bisect.bisect_left(entries, newest - span, key=_US)
            if cut:
                del entries[:cut]
            lo = bisect.bisect_left(entries, occ.us - span, key=_US)
            hi = bisect.bisect_right(entries, occ.us, key=_US)
            metric, chosen = self._measure(entries, lo, hi)
            if all(test(metric, count) for test, _, count in self.condition):
                if chosen is None:
                    chosen = entries[max(lo, hi - MAX_EVIDENCE) : hi]
                fired.append(self._fire(occ, group, metric, chosen))
        return fired

    def _measure(self, entries: list[_Entry], lo: int, hi: int) -> tuple[int, Sequence[_Entry] | None]:
        """The window's measure, and the entries that are its evidence (None: the whole window)."""
        kind = self.kind
        if kind == "event_count":
            return hi - lo, None  # no copy of the window unless it fires
        window = entries[lo:hi]
        if kind == "value_count":
            return len({e[2] for e in window if e[2] is not None}), window
        if kind == "temporal":
            mask = 0
            for e in window:
                mask |= e[1]
            return mask.bit_count(), window
        return _ordered(window, len(self.slots))

    def _fire(self, occ: Occurrence, group: _Group, metric: int, chosen: Sequence[_Entry]) -> Firing:
        seen: dict[tuple[str, int], Ev] = {}
        for e in chosen:
            for ev in e[3].evidence:
                seen[(ev.tenant, ev.seq)] = ev
        evidence = sorted(seen.values(), key=lambda ev: (ev.us, ev.seq))[-MAX_EVIDENCE:]
        self._fired += 1
        fields = dict(occ.fields or {})
        fields.update((f, v) for f, v in group.display)
        onward = Occurrence(occ.us, occ.doc, fields, tuple(evidence), ("c", self.node, self._fired))
        return Firing(onward, group.display, metric)

    def summary(self, firing: Firing) -> str:
        """One sentence for the alert list."""
        span = _span_text(self.span_us)
        scope = ", ".join(f"{f}={v}" for f, v in firing.group)
        scope = f" for {scope}" if scope else ""
        n = firing.metric
        if self.kind == "event_count":
            what = f"{n} matching {noun(n, 'event')}"
        elif self.kind == "value_count":
            what = f"{n} distinct {noun(n, 'value')} of {self.field}"
        else:
            what = f"{n} of {plural(len(self.slots), 'rule')}{' in order' if self.kind == 'temporal_ordered' else ''}"
        return f"{self.info.title}: {what} within {span}{scope}"

    def sweep(self, tenant: str, now_us: int) -> None:
        """Forget the groups of ``tenant`` with nothing newer than one timespan before ``now_us``."""
        groups = self._groups.get(tenant)
        if not groups:
            return
        horizon = now_us - self.span_us
        stale = [k for k, g in groups.items() if not g.entries or g.entries[-1][0] < horizon]
        for k in stale:
            del groups[k]
        if not groups:
            del self._groups[tenant]

    def groups(self, tenant: str) -> int:
        """How many groups of ``tenant`` have state (for tests and metrics)."""
        return len(self._groups.get(tenant, ()))


def _ordered(window: list[_Entry], slots: int) -> tuple[int, list[_Entry]]:
    """The longest run of the referenced rules, in their listed order, at strictly increasing times.

    ``best[n]`` is the chain of length ``n`` (over the slots seen so far) that ends earliest; extending the
    earliest-ending chain with the first later occurrence of the next slot is always optimal.
    """
    best: dict[int, list[_Entry]] = {0: []}
    for slot in range(slots):
        bit = 1 << slot
        mine = [e for e in window if e[1] & bit]
        if not mine:
            continue
        times = [e[0] for e in mine]
        grown = dict(best)
        for n, chain in best.items():
            after = chain[-1][0] if chain else None
            i = 0 if after is None else bisect.bisect_right(times, after)
            if i < len(mine):
                candidate = [*chain, mine[i]]
                if n + 1 not in grown or grown[n + 1][-1][0] > mine[i][0]:
                    grown[n + 1] = candidate
        best = grown
    longest = max(best)
    return longest, best[longest]


def _span_text(us: int) -> str:
    seconds = us // 1_000_000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
