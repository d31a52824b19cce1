"""Realistic demo audit trails with known attacks planted in them, for ``vigil demo`` and for tests.

`generate` returns events in the shape clients POST to ``/v1/events`` plus the `AttackPattern` records naming
the events of each planted attack, so a demo or a test can check that every built-in detection fires on its
pattern and nowhere else. Benign traffic stays clear of every detection: each user keeps one home city and
their own addresses, typos stop at two failed sign-ins in a row, exports stay small, admins hand out only
ordinary roles and only to others, and nobody disables MFA or audit logging. Standard library only; the output
depends only on the arguments.
"""

from __future__ import annotations

import gc
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.demo.attacks import AttackPattern, _Attacks
from vigil.demo.tables import _DAY, _EPOCH, DEMO_GEO, DEMO_TENANTS, TECHNIQUES
from vigil.demo.trail import Event, uuid7, uuid7_at

__all__ = ["DEMO_GEO", "DEMO_TENANTS", "TECHNIQUES", "AttackPattern", "generate", "uuid7", "uuid7_at"]


def generate(
    tenant: str, count: int, *, days: int = 30, end: datetime | None = None, seed: int | None = None
) -> tuple[list[dict[str, Any]], list[AttackPattern]]:
    """About ``count`` events of ``tenant`` over the ``days`` days before ``end`` (now), oldest first, and the
    attacks planted in them. The same ``seed`` and ``end`` give the same output."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    end = datetime.now(UTC) if end is None else end if end.tzinfo else end.replace(tzinfo=UTC)
    end_us = (end - _EPOCH) // timedelta(microseconds=1)
    rng = random.Random(f"vigil-demo:{seed}:{tenant}") if seed is not None else random.Random()
    # A burst of ~100k small dicts with no cycles among them: the cyclic collector would only rescan them over
    # and over (with it on, generating 50,000 events takes about 30% longer), so it waits until the trail is
    # built. Process-wide, hence switched back on in `finally`, and only if it was on.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Tenant(tenant, rng, end_us - days * _DAY, end_us).run(count)
    finally:
        if was_enabled:
            gc.enable()


class _Tenant(_Attacks):
    """One tenant's whole trail: the planted attacks first, then benign sessions around them."""

    def run(self, count: int) -> tuple[list[Event], list[AttackPattern]]:
        events: list[Event] = []
        patterns = []
        for i, name in enumerate(self.profile.patterns):
            at = self._attack_time(i, len(self.profile.patterns), name)
            planted, ids, description = getattr(self, f"_plant_{name}")(at)
            events.extend(planted)
            patterns.append(AttackPattern(self.tenant, name, TECHNIQUES[name], description, ids))
        for plan in self._plans(count - len(events)):
            made = self._session(plan) if plan.who >= 0 else self._machine_run(plan)
            events.extend(made[: plan.length])
        events.sort(key=lambda e: e["occurred_at"])
        return events, patterns
