"""Slow tiers of the counting built-ins: the same signal counted over a day, at a higher count and a lower
severity.

An attacker who knows a rule's window stays under it: a spray that tries one account every minute or two never
has ten accounts in the ten-minute window, however many it covers. Each counting rule therefore has a slow
tier, its own rule (``vigil.password_spraying.slow`` …) with its own thresholds, examples and runbook, so it can
be tuned or switched off per tenant like any other.

A tier lives in the evaluator of its fast rule, which feeds it the events it has already parsed: one dispatch,
one decode. When the fast rule fires on a group (an account, a source, an actor) the tier's count of that group
starts again, so a burst is one alert, not a fast one and then a slow one on the same events.

State is bounded however long the window: a tier keeps at most its threshold of events per group
(:class:`~vigil.detect.windows.Latest`, :class:`~vigil.detect.windows.LatestDistinct`) or one bucket per hour
(:class:`~vigil.detect.windows.Tally`), never every event of the day.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from typing import Any

from vigil.detect import builtin_examples as ex
from vigil.detect.builtin_base import DAY, HOUR, MIN, Params
from vigil.detect.fields import actor, ip, who
from vigil.detect.rules import Ev, Hit, RuleInfo
from vigil.detect.windows import Latest, LatestDistinct, Tally

EVIDENCE_READS = 20  # the largest reads kept as a bulk export's evidence, besides its exports

_order = itertools.count()


class SlowTier:
    """The day-long companion of one fast counting rule; ``info`` is its own rule."""

    info: RuleInfo

    def __init__(self, params: Params) -> None:
        self._params = params

    def p(self, tenant: str) -> dict[str, Any]:
        return self._params(tenant, self.info)

    def clear(self, key: Hashable) -> None:
        """The fast rule fired on ``key``: count it afresh."""
        raise NotImplementedError

    def sweep(self, now_us: int) -> None:
        raise NotImplementedError

    def hit(self, ev: Ev, group: dict[str, str], evidence: Iterable[Ev], summary: str) -> Hit:
        return Hit(self.info, ev.tenant, tuple(sorted(group.items())), tuple(evidence), summary)


class SlowBruteForce(SlowTier):
    info = RuleInfo(
        id="vigil.brute_force.slow",
        title="Slow brute force on one account",
        severity="P3",
        techniques=("T1110.001",),
        description="Many failed sign-ins to one account within a day, paced to stay under the 5-minute rule.",
        window_us=DAY,
        suppress_us=DAY,
        runbook="Check for a device retrying an old password; if none, challenge the account and block the "
        "sources.",
        params={"failures": 30},
        examples=ex.BRUTE_FORCE_SLOW,
    )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.failures: Latest[Ev] = Latest(DAY)

    def failure(self, ev: Ev, key: Hashable, account: str) -> list[Hit]:
        window = self.failures.add(key, ev.us, ev, int(self.p(ev.tenant)["failures"]))
        if window is None:
            return []
        self.failures.clear(key)
        text = f"{len(window)} failed sign-ins to {who(ev)} within 24 hours"
        return [self.hit(ev, {"account": account}, [e for _, e in window], text)]

    def clear(self, key: Hashable) -> None:
        self.failures.clear(key)

    def sweep(self, now_us: int) -> None:
        self.failures.sweep(now_us)


class SlowPasswordSpraying(SlowTier):
    info = RuleInfo(
        id="vigil.password_spraying.slow",
        title="Slow password spraying from one source",
        severity="P2",
        techniques=("T1110.003",),
        description="One source address fails to sign in to many accounts within a day, and those accounts do "
        "not then sign in from it (a mistyped password, put right within minutes, is not counted).",
        window_us=DAY,
        suppress_us=DAY,
        runbook="Block the source address, force resets for any account that then signed in from it.",
        params={"accounts": 30, "forgive_minutes": 30},
        examples=ex.PASSWORD_SPRAYING_SLOW,
    )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.accounts: LatestDistinct[Ev] = LatestDistinct(DAY)

    def failure(self, ev: Ev, key: Hashable, source: str) -> list[Hit]:
        account = str(actor(ev).get("id", ""))
        window = self.accounts.add(key, account, ev.us, ev, int(self.p(ev.tenant)["accounts"]))
        if window is None:
            return []
        self.accounts.clear(key)
        text = f"{source} failed to sign in to {len(window)} different accounts within 24 hours"
        return [self.hit(ev, {"source_ip": source}, [e for _, e in window], text)]

    def success(self, ev: Ev, key: Hashable) -> None:
        # An office behind one address sees dozens of mistyped passwords a day, each put right at once; a
        # sprayer's accounts do not sign in from its address afterwards.
        if key in self.accounts:  # most sign-ins come from addresses that never failed
            forgive = int(self.p(ev.tenant)["forgive_minutes"]) * MIN
            self.accounts.discard(key, str(actor(ev).get("id", "")), ev.us - forgive)

    def clear(self, key: Hashable) -> None:
        self.accounts.clear(key)

    def sweep(self, now_us: int) -> None:
        self.accounts.sweep(now_us)


class SlowSuccessAfterFailures(SlowTier):
    info = RuleInfo(
        id="vigil.success_after_failures.slow",
        title="Sign-in succeeded after many failures over a day",
        severity="P2",
        techniques=("T1110",),
        description="An account signs in successfully from an address that failed to sign in to it many times "
        "over the day before.",
        window_us=DAY,
        suppress_us=DAY,
        runbook="Ask the user whether the failures were theirs (an old password on a device); if not, revoke the "
        "session and reset the password and MFA.",
        params={"failures": 15},
        examples=ex.SUCCESS_AFTER_FAILURES_SLOW,
    )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.failures: Latest[Ev] = Latest(DAY)

    # Counted per source address: a guesser that gets in does so from where it guessed, while the account's
    # owner signing in from home after someone else's failures is not news (the failures are brute force's,
    # and failures spread over many addresses are the slow brute-force tier's).

    def failure(self, ev: Ev, key: Hashable) -> None:
        self.failures.add((key, ip(ev)), ev.us, ev, int(self.p(ev.tenant)["failures"]))

    def success(self, ev: Ev, key: Hashable, account: str) -> list[Hit]:
        failures = [e for _, e in self.failures.items((key, ip(ev)), ev.us - DAY)]
        if not failures or len(failures) < int(self.p(ev.tenant)["failures"]):
            return []
        self.failures.clear((key, ip(ev)))
        text = (
            f"{who(ev)} signed in from {ip(ev)} after {len(failures)} failed attempts from it within 24 hours"
        )
        return [self.hit(ev, {"account": account}, [*failures, ev], text)]

    def clear(self, key: Hashable) -> None:
        self.failures.clear(key)

    def sweep(self, now_us: int) -> None:
        self.failures.sweep(now_us)


class SlowBulkExport(SlowTier):
    info = RuleInfo(
        id="vigil.bulk_export.slow",
        title="Bulk data export over a day",
        severity="P3",
        techniques=("T1530",),
        description="One actor exported many times, or exported or read many records, within a day.",
        window_us=DAY,
        suppress_us=DAY,
        runbook="Check the exports were expected; revoke the actor's sessions or key if not, and scope the data.",
        params={"exports": 40, "records": 200_000},
        examples=ex.BULK_EXPORT_SLOW,
    )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.exports: Latest[Ev] = Latest(DAY)
        self.records = Tally(DAY, HOUR)
        self.reads: dict[Hashable, list[tuple[int, int, int, Ev]]] = {}  # the largest (records, us, n, ev)

    def event(self, ev: Ev, key: Hashable, actor_id: str, export: bool, records: int) -> list[Hit]:
        p = self.p(ev.tenant)
        many = export and self.exports.add(key, ev.us, ev, int(p["exports"])) is not None
        total = self.records.add(key, ev.us, records)
        if records:
            self._keep_read(key, ev, records)
        if not many and total < int(p["records"]):
            return []
        since = ev.us - DAY - HOUR  # what the tally may still be counting
        exports = [e for _, e in self.exports.items(key, since)]
        reads = [e for _, us, _, e in self.reads.get(key, ()) if us >= since]
        evidence = sorted({e.seq: e for e in [*exports, *reads]}.values(), key=lambda e: e.seq)
        self.clear(key)
        parts = [f"made {len(exports)} exports"] if len(exports) > 1 else []
        if total:
            parts.append(f"read or exported {total:,} records")
        text = f"{who(ev)} {' and '.join(parts)} within 24 hours"
        return [self.hit(ev, {"actor": actor_id}, evidence, text)]

    def _keep_read(self, key: Hashable, ev: Ev, records: int) -> None:
        """Keep the largest reads as evidence (a min-heap, so a small read costs one comparison); the many
        small ones only add to the tally."""
        kept = self.reads.setdefault(key, [])
        item = (records, ev.us, next(_order), ev)  # the counter: a hunt may feed one event twice
        if len(kept) < EVIDENCE_READS:
            heapq.heappush(kept, item)
        elif records > kept[0][0]:
            heapq.heapreplace(kept, item)

    def clear(self, key: Hashable) -> None:
        self.exports.clear(key)
        self.records.clear(key)
        self.reads.pop(key, None)

    def sweep(self, now_us: int) -> None:
        self.exports.sweep(now_us)
        self.records.sweep(now_us)
        # reads older than the window would keep their place in the heap for good: drop them here
        horizon = now_us - DAY - HOUR
        for key in list(self.reads):
            fresh = [r for r in self.reads[key] if r[1] >= horizon]
            if fresh:
                heapq.heapify(fresh)
                self.reads[key] = fresh
            else:
                del self.reads[key]
