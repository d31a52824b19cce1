"""The detection engine: follows each tenant's committed events by cursor, feeds every rule, and commits the
alerts together with the cursor.

- Only committed events are read (``read_range`` below the tree size), so nothing downstream ever sees an
  event that was not stored.
- Alerts and the cursor move in one transaction: a crash loses no alert and raises none twice.
- At start the rules' windows are rebuilt by replaying the last window of committed events before the cursor
  with alerts switched off, so an attack that straddles a restart still fires exactly once.
- Every alert's dedup key starts with the rule and the tenant; a hit joins an alert with the same key whose
  time span it touches (within the rule's ``suppress_us``), so replays and hunts never raise duplicates.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from vigil.detect.rules import Ev, Evaluator, Hit, RuleInfo
from vigil.errors import Conflict, NotFound, StorageFault
from vigil.store.base import PLATFORM_TENANT, Store, Tenant
from vigil.store.detection import Alert, NewAlert, RuleSetting

log = logging.getLogger("vigil.detect")

_decode = msgspec.json.Decoder(dict[str, Any]).decode


@functools.lru_cache(maxsize=4096)
def _day_us(date: str) -> int:
    return (datetime.fromisoformat(date + "T00:00:00+00:00") - _EPOCH) // timedelta(microseconds=1)


def occurred_us(text: str) -> int:
    """Microseconds since the epoch of a stored ``occurred_at``: RFC 3339 in UTC, as Vigil stores it
    (``2026-01-01T08:00:00.000000Z``), or any ISO 8601 form with an offset."""
    if len(text) == 27 and text[10] == "T" and text[26] == "Z":  # the stored form: fast path
        return (
            _day_us(text[:10])
            + (int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])) * 1_000_000
            + int(text[20:26])
        )
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ev_of(tenant: str, seq: int, body: bytes) -> Ev:
    doc = _decode(body)
    return Ev(tenant, seq, occurred_us(doc["occurred_at"]), doc)


class Dispatch:
    """Feeds an event only to the evaluators that look at its action (built-ins say which they do)."""

    def __init__(self, evaluators: Sequence[Evaluator]) -> None:
        self.evaluators = list(evaluators)
        self._always: list[Evaluator] = []
        self._by_action: dict[str, list[Evaluator]] = {}
        for e in self.evaluators:
            actions = getattr(e, "actions", None)
            if actions is None:
                self._always.append(e)
            else:
                for a in actions:
                    self._by_action.setdefault(a, []).append(e)
        self._plan: dict[str, list[Evaluator]] = {}

    def targets(self, action: str) -> list[Evaluator]:
        plan = self._plan.get(action)
        if plan is None:
            wanted = {id(e) for e in self._always} | {id(e) for e in self._by_action.get(action, ())}
            plan = self._plan[action] = [e for e in self.evaluators if id(e) in wanted]
        return plan

    def feed(self, ev: Ev) -> list[Hit]:
        out: list[Hit] = []
        for e in self.targets(str(ev.doc.get("action", ""))):
            out.extend(e.feed(ev))
        return out


@dataclass
class Stats:
    events: int = 0
    hits: int = 0
    alerts: int = 0
    replayed: int = 0
    tenants: set[str] = field(default_factory=set)


class _CursorMoved(Exception):
    """Another engine committed past this engine's cursor of a tenant."""


class TenantRules:
    """Per-tenant rule settings from the store: which rules are off, and threshold overrides."""

    def __init__(self, only: Iterable[str] | None = None) -> None:
        self.only = None if only is None else set(only)
        self._by_key: dict[tuple[str, str], RuleSetting] = {}
        self.loaded_at = 0.0

    def load(self, store: Store) -> None:
        by_id = {t.id: t.slug for t in store.list_tenants()}
        self._by_key = {
            (by_id[s.tenant_id], s.rule_id): s for s in store.rule_settings() if s.tenant_id in by_id
        }
        self.loaded_at = time.monotonic()

    def params(self, tenant: str, rule: RuleInfo) -> dict[str, Any]:
        """The rule's thresholds for ``tenant``: its defaults with the tenant's overrides on top."""
        s = self._by_key.get((tenant, rule.id))
        return {**rule.params, **s.params} if s is not None and s.params else rule.params

    def enabled(self, tenant: str, rule: RuleInfo) -> bool:
        if self.only is not None and rule.id not in self.only:
            return False
        s = self._by_key.get((tenant, rule.id))
        return s is None or s.enabled is not False


class Engine:
    """Detection over a store. ``step`` processes what is committed; ``follow`` keeps doing it."""

    def __init__(
        self,
        store: Store,
        evaluators: Sequence[Evaluator],
        *,
        tenant_rules: TenantRules | None = None,
        batch: int = 2000,
    ) -> None:
        self.store = store
        self.evaluators = list(evaluators)
        self.dispatch = Dispatch(self.evaluators)
        self.rules: dict[str, RuleInfo] = {r.id: r for e in self.evaluators for r in e.rules}
        self.tenant_rules = tenant_rules or TenantRules()
        only = self.tenant_rules.only
        if only is not None and (unknown := only - set(self.rules)):
            raise NotFound(f"no rule {', '.join(sorted(unknown))}; see vigil rules list")
        self.batch = batch
        self.stats = Stats()
        self._cursors: dict[int, int] = {}
        self._tenants: dict[int, Tenant] = {}
        self._wake = threading.Event()
        self._fed = 0

    @property
    def running(self) -> list[RuleInfo]:
        """The rules this engine runs: every rule loaded, or only those it was told to (``--rule``)."""
        only = self.tenant_rules.only
        return [r for r in self.rules.values() if only is None or r.id in only]

    # -- following the log --------------------------------------------------------------------------------

    def _refresh_tenants(self) -> None:
        for t in self.store.list_tenants():
            if t.slug != PLATFORM_TENANT and t.id not in self._tenants:
                self._tenants[t.id] = t
                self._cursors[t.id] = cursor = self.store.detect_cursor(t.id)
                self._replay(t, cursor)

    def start(self) -> None:
        """Load settings and cursors, and rebuild every rule's window from the committed log."""
        self.tenant_rules.load(self.store)
        self._refresh_tenants()
        self.store.on_commit(self._committed)

    def _committed(self, tenant_ids: set[int]) -> None:
        self._wake.set()

    def _window_us(self) -> int:
        return max((r.window_us for r in self.rules.values()), default=0)

    def _replay(self, tenant: Tenant, cursor: int) -> None:
        """Feed the last window of events before ``cursor`` to the rules that need them, dropping their hits."""
        span = self._window_us()
        if cursor == 0 or span == 0:
            return
        last = self.store.read_range(tenant.id, cursor - 1, cursor)
        if not last:
            return
        until = ev_of(tenant.slug, *_seq_body(last[0])).us
        start = self._first_seq_after(tenant.id, cursor, until - span)
        needs = [(e, max((r.window_us for r in e.rules), default=0)) for e in self.evaluators]
        for lo in range(start, cursor, self.batch):
            for row in self.store.read_range(tenant.id, lo, min(lo + self.batch, cursor)):
                ev = ev_of(tenant.slug, *_seq_body(row))
                for e, window in needs:
                    if window and ev.us >= until - window:
                        e.feed(ev)
                self.stats.replayed += 1

    def _first_seq_after(self, tenant_id: int, cursor: int, since_us: int) -> int:
        """The first seq (about) from which events occurred at or after ``since_us``: a binary search, since
        the log is close to time order."""
        lo, hi = 0, cursor
        while lo < hi:
            mid = (lo + hi) // 2
            row = self.store.read_range(tenant_id, mid, mid + 1)
            if row and occurred_us(_decode(row[0][2])["occurred_at"]) < since_us:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def step(self) -> int:
        """Process every committed event not yet processed, for every tenant; returns how many."""
        if time.monotonic() - self.tenant_rules.loaded_at > 10:
            self.tenant_rules.load(self.store)
        self._refresh_tenants()
        done = 0
        try:
            for tenant in list(self._tenants.values()):
                done += self._catch_up(tenant)
        except _CursorMoved as moved:
            # Another engine moved this tenant's cursor. The rules' windows already hold the batch just dropped,
            # and they are shared by every tenant: start every rule afresh and rebuild every tenant from the
            # cursors as they are now.
            log.warning("detection cursor of %s moved under this engine; rebuilding", moved.args[0])
            self._reset()
            self._refresh_tenants()
            done = max(done, 1)  # not idle: look again
        return done

    def _catch_up(self, tenant: Tenant) -> int:
        done = 0
        size = self.store.tree_size(tenant.id)
        cursor = self._cursors[tenant.id]
        while cursor < size:
            end = min(cursor + self.batch, size)
            hits: list[Hit] = []
            for row in self.store.read_range(tenant.id, cursor, end):
                hits.extend(self._feed(ev_of(tenant.slug, *_seq_body(row))))
            try:
                stored = self.store.commit_detection(tenant.id, [alert_of(h) for h in hits], (cursor, end))
            except Conflict:
                self.stats.events += done
                raise _CursorMoved(tenant.slug) from None
            self.stats.alerts += sum(1 for a in stored if a.new)
            done += end - cursor
            cursor = self._cursors[tenant.id] = end
        self.stats.events += done
        return done

    def _reset(self) -> None:
        fresh = []
        for e in self.evaluators:
            make: Callable[[], Evaluator] | None = getattr(e, "fresh", None)
            if make is None:
                raise TypeError(f"{type(e).__name__} cannot be rebuilt (it has no fresh())")
            fresh.append(make())
        self.evaluators = fresh
        self.dispatch = Dispatch(fresh)
        self._tenants.clear()
        self._cursors.clear()

    def _feed(self, ev: Ev) -> list[Hit]:
        self._fed += 1
        if self._fed % 50_000 == 0:
            for e in self.evaluators:
                sweep: Callable[[int], None] | None = getattr(e, "sweep", None)
                if sweep is not None:
                    sweep(ev.us)
        hits = [
            h
            for h in self.dispatch.feed(ev)
            if h.rule.generates and self.tenant_rules.enabled(h.tenant, h.rule)
        ]
        self.stats.hits += len(hits)
        return hits

    def run_until_idle(self) -> Stats:
        """Process what is committed now, then return."""
        while self.step():
            pass
        return self.stats

    def follow(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Keep processing until ``stop`` is set: at once after a local commit, else every ``poll`` seconds."""
        while not stop.is_set():
            try:
                self.step()
            except StorageFault:  # the store logged it once when it found it; retried without a traceback
                stop.wait(poll)
            except Exception:  # a broken batch must not stop detection for good; it is retried
                log.exception("detection step failed; retrying")
                stop.wait(poll)
            self._wake.wait(poll)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    # -- hunting ------------------------------------------------------------------------------------------

    def hunt(self, tenant: Tenant, since_us: int) -> list[Alert]:
        """Run the rules over the tenant's history from ``since_us`` to now, without moving the cursor; hits
        on events an alert already holds join it instead of raising a duplicate."""
        size = self.store.tree_size(tenant.id)
        start = self._first_seq_after(tenant.id, size, since_us)
        stored: list[Alert] = []
        for lo in range(start, size, self.batch):
            hits: list[Hit] = []
            for row in self.store.read_range(tenant.id, lo, min(lo + self.batch, size)):
                hits.extend(self._feed(ev_of(tenant.slug, *_seq_body(row))))
                self.stats.events += 1
            if hits:
                stored += self.store.commit_detection(tenant.id, [alert_of(h) for h in hits])
        self.stats.alerts += sum(1 for a in stored if a.new)
        return stored


def _seq_body(row: tuple[int, bytes, bytes]) -> tuple[int, bytes]:
    return row[0], row[2]


def alert_of(hit: Hit) -> NewAlert:
    """The alert a hit asks for; its dedup key is the rule, the tenant and what the alert is about."""
    group = dict(hit.group)
    key = "|".join([hit.rule.id, hit.tenant, *(f"{k}={v}" for k, v in hit.group)])
    evidence = tuple(sorted({(e.seq, e.id) for e in hit.evidence}))
    return NewAlert(
        rule_id=hit.rule.id,
        title=hit.rule.title,
        severity=hit.rule.severity,
        techniques=hit.rule.techniques,
        summary=hit.summary,
        group=group,
        dedup_key=key,
        evidence=evidence,
        first_us=min(e.us for e in hit.evidence),
        last_us=max(e.us for e in hit.evidence),
        suppress_us=hit.rule.suppress_us,
    )
