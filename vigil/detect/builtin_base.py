"""What every built-in rule is: a :class:`Builtin` evaluator with its thresholds looked up per tenant."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vigil.detect.rules import Ev, Hit, RuleInfo

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR

Params = Callable[[str, RuleInfo], dict[str, Any]]
"""(tenant, rule) -> the rule's thresholds for that tenant: its defaults with the tenant's overrides on top."""


def default_params(tenant: str, rule: RuleInfo) -> dict[str, Any]:
    return rule.params


class Builtin:
    """One built-in rule: its description, its thresholds and its per-event logic (``hits``)."""

    info: RuleInfo
    actions: frozenset[str] | None = None  # the actions it looks at; None: every event

    def __init__(self, params: Params = default_params) -> None:
        self._params = params

    @classmethod
    def infos(cls) -> tuple[RuleInfo, ...]:
        """The rules this evaluator raises alerts for."""
        return (cls.info,)

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self.infos()

    def p(self, tenant: str) -> dict[str, Any]:
        return self._params(tenant, self.info)

    def feed(self, ev: Ev) -> Sequence[Hit]:
        # the engine's Dispatch already routes by action; callers feeding directly get the same answer
        if self.actions is not None and ev.doc.get("action") not in self.actions:
            return []
        return self.hits(ev)

    def hits(self, ev: Ev) -> list[Hit]:
        raise NotImplementedError

    def fresh(self) -> Builtin:
        """The same rule with empty state."""
        return type(self)(self._params)

    def sweep(self, now_us: int) -> None:
        """Forget state older than the rule's window."""

    def hit(self, ev: Ev, group: dict[str, str], evidence: Iterable[Ev], summary: str) -> Hit:
        return Hit(self.info, ev.tenant, tuple(sorted(group.items())), tuple(evidence), summary)
