"""What a detection rule is to the engine: its description (:class:`RuleInfo`), the committed event it is fed
(:class:`Ev`) and what it answers (:class:`Hit`).

An :class:`Evaluator` holds one or more rules (a built-in, or a whole compiled Sigma rule set) and is fed every
committed event of every tenant, in ``seq`` order within each tenant. Stateful evaluators keep their windows
keyed by tenant first, so one tenant's events never count towards another's group. The engine turns hits into
alerts, dedups them and commits them with its cursor; rules never write anything themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["P0", "P1", "P2", "P3"]
SEVERITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3")

SIGMA_LEVELS: dict[str, Severity] = {
    "critical": "P0",
    "high": "P1",
    "medium": "P2",
    "low": "P3",
    "informational": "P3",
}
"""Sigma ``level`` to alert severity (DESIGN.md: P0-P3 mapped from Sigma levels)."""

REVOKED_TECHNIQUES: dict[str, str] = {
    # ATT&CK v19 moved "Disable or Modify Cloud Logs" to T1685.002; older tools still send the revoked id.
    "T1562.008": "T1685.002",
}
"""Revoked ATT&CK ids and the v19 id that replaced them."""

Example = list[dict[str, Any]]
"""A sequence of (partial) events, fed in order to a fresh evaluator by ``vigil rules test``."""


@dataclass(frozen=True)
class Examples:
    """Event sequences a rule must fire on (at least once each) and must stay quiet on."""

    fire: tuple[Example, ...] = ()
    quiet: tuple[Example, ...] = ()


@dataclass(frozen=True)
class RuleInfo:
    """A rule as people see it in ``vigil rules list`` and on its alerts."""

    id: str  # stable: "vigil.brute_force" for built-ins, the Sigma rule's ``id`` (or name) otherwise
    title: str
    severity: Severity
    techniques: tuple[str, ...] = ()  # ATT&CK ids, current ones first
    description: str = ""
    source: str = "builtin"  # "builtin", or the rule file's path
    window_us: int = 0  # committed history replayed at start to rebuild its state; 0 for stateless rules
    suppress_us: int = 3_600_000_000  # a hit within this long of an open alert with the same key joins it
    runbook: str = ""
    requires: tuple[str, ...] = ()  # "geo": disabled, with a warning, without a GeoIP database
    params: dict[str, Any] = field(default_factory=dict)  # default thresholds; tenants may override them
    examples: Examples | None = None
    generates: bool = True  # False for Sigma base rules that only feed a correlation


@dataclass(slots=True)
class Ev:
    """A committed event as rules see it: its place in the tenant's log and its decoded stored body."""

    tenant: str
    seq: int
    us: int  # occurred_at, microseconds since the Unix epoch
    doc: dict[str, Any]  # the stored event (the canonical JSON body decoded), without seq and leaf_hash

    @property
    def id(self) -> str:
        return str(self.doc["id"])


@dataclass(frozen=True)
class Hit:
    """A rule fired. ``group`` names what the alert is about (e.g. the account); the tenant is always part of
    the alert's dedup key on top of it, so two tenants never share an alert."""

    rule: RuleInfo
    tenant: str
    group: tuple[tuple[str, str], ...]
    evidence: tuple[Ev, ...]  # the events that made the rule fire, oldest first
    summary: str  # one sentence for the alert list


class Evaluator(Protocol):
    """One or more rules fed every committed event."""

    @property
    def rules(self) -> Sequence[RuleInfo]: ...

    def feed(self, ev: Ev) -> Sequence[Hit]:
        """Hits caused by ``ev``; called once per committed event, in seq order within each tenant."""
