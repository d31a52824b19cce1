"""Sigma rules (specification v2.1) for Vigil: load them, lint them, and evaluate them in memory.

:func:`load_sigma` parses rule files with pySigma (:mod:`vigil.detect.sigma_load`), compiles every detection
into a Python predicate over the stored event (:mod:`vigil.detect.sigma_match`) and every correlation into
streaming windows (:mod:`vigil.detect.sigma_correlate`), and returns a :class:`SigmaRuleSet`, an
:class:`~vigil.detect.rules.Evaluator`. It fails closed: a rule that is malformed, that names a field Vigil's
events do not have, or that uses a feature the engine cannot evaluate exactly raises :class:`RuleError` naming
the file and the feature, so no rule is ever loaded and silently wrong. :func:`lint_sigma` reports the same
verdict for every rule in every file without raising.

Rules are indexed by the action their condition requires (``action: user.login``), so an event is only tested
against the rules that can match its action plus those that name no action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from vigil.detect.rules import Ev, Hit, RuleInfo
from vigil.detect.sigma_correlate import Correlation, Occurrence, Slot, getter
from vigil.detect.sigma_load import Entry, Resolved, Source, entries, slot_field
from vigil.detect.sigma_match import CompiledDetection
from vigil.errors import RuleError

__all__ = [
    "CompileResult",
    "LintResult",
    "SigmaRuleSet",
    "Source",
    "compile_rules",
    "lint_sigma",
    "load_sigma",
]

SWEEP_EVERY = 10_000  # events reaching correlations between two sweeps of idle groups


@dataclass(frozen=True)
class CompileResult:
    """The verdict on one rule document: its description when it loads, the refusal when it does not."""

    source: str
    rule: str | None  # its title (or id) for people; None when the document is not a rule at all
    info: RuleInfo | None
    error: RuleError | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LintResult:
    """One line of ``vigil rules lint``."""

    path: str
    rule: str | None
    status: Literal["loaded", "refused"]
    reason: str
    feature: str = ""


class _Base:
    """A compiled detection rule as the rule set runs it."""

    __slots__ = ("above", "actions", "generates", "info", "match", "node")

    def __init__(self, info: RuleInfo, detection: CompiledDetection, node: int) -> None:
        self.info = info
        self.match = detection.match
        self.actions = detection.actions
        self.generates = info.generates
        self.node = node
        self.above: tuple[int, ...] = ()  # correlations fed by it, directly or through others (topo order)

    def hit(self, ev: Ev) -> Hit:
        doc = ev.doc
        actor = doc.get("actor") or {}
        who = actor.get("email") or actor.get("name") or actor.get("id") or "?"
        summary = f"{self.info.title}: {doc.get('action', '?')} by {who}"
        return Hit(self.info, ev.tenant, (("event", ev.id),), (ev,), summary)


class SigmaRuleSet:
    """A loaded set of Sigma rules: an :class:`~vigil.detect.rules.Evaluator` fed every committed event."""

    def __init__(
        self, infos: Sequence[RuleInfo], bases: Sequence[_Base], correlations: Sequence[Correlation]
    ):
        self._infos = tuple(infos)
        self._bases = tuple(bases)
        self._corrs = tuple(correlations)  # children before parents
        self._always = tuple(b for b in bases if b.actions is None)
        plan: dict[str, list[_Base]] = {}
        for b in bases:
            for action in b.actions or ():
                plan.setdefault(action, []).append(b)
        order = {b.node: i for i, b in enumerate(bases)}
        self._plan = {
            a: tuple(sorted((*rs, *self._always), key=lambda b: order[b.node])) for a, rs in plan.items()
        }
        self._clock: dict[str, int] = {}
        self._since_sweep = 0

    @property
    def rules(self) -> Sequence[RuleInfo]:
        """Every rule, those that only feed a correlation included (``generates`` is False on them)."""
        return self._infos

    def feed(self, ev: Ev) -> Sequence[Hit]:
        """Hits caused by ``ev``: one per matching generating rule, plus correlations that fire on it."""
        doc = ev.doc
        action = doc.get("action")
        plan = self._plan.get(action.lower(), self._always) if type(action) is str else self._always
        hits: list[Hit] | None = None
        fed: list[_Base] | None = None
        for rule in plan:
            if rule.match(doc):
                if rule.generates:
                    if hits is None:
                        hits = []
                    hits.append(rule.hit(ev))
                if rule.above:
                    if fed is None:
                        fed = []
                    fed.append(rule)
        if fed is not None:
            return self._correlate(ev, fed, hits or [])
        return hits or ()

    def _correlate(self, ev: Ev, fed: list[_Base], hits: list[Hit]) -> list[Hit]:
        occurrence = Occurrence(ev.us, ev.doc, None, (ev,), ("e",))
        produced: dict[int, list[Occurrence]] = {b.node: [occurrence] for b in fed}
        todo = sorted({i for b in fed for i in b.above})
        for i in todo:
            corr = self._corrs[i]
            inputs = [(s, o) for s, slot in enumerate(corr.slots) for o in produced.get(slot.node, ())]
            if not inputs:
                continue
            fired = corr.feed(ev.tenant, inputs)
            if not fired:
                continue
            produced[corr.node] = [f.occurrence for f in fired]
            if corr.info.generates:
                hits.extend(
                    Hit(corr.info, ev.tenant, f.group, f.occurrence.evidence, corr.summary(f)) for f in fired
                )
        if ev.us > self._clock.get(ev.tenant, ev.us - 1):
            self._clock[ev.tenant] = ev.us
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._since_sweep = 0
            for tenant, now in self._clock.items():
                for corr in self._corrs:
                    corr.sweep(tenant, now)
        return hits

    def sweep(self, now_us: int) -> None:
        """Forget correlation windows of every tenant with nothing newer than one timespan before ``now_us``."""
        for tenant in list(self._clock):
            for corr in self._corrs:
                corr.sweep(tenant, now_us)

    def fresh(self) -> SigmaRuleSet:
        """The same rules with empty correlation windows (a replay, a benchmark run or a test starts from it)."""
        corrs = [c.fresh() for c in self._corrs]
        return SigmaRuleSet(self._infos, self._bases, corrs)


# -- loading, compiling and linting -----------------------------------------------------------------------


def load_sigma(sources: Iterable[Source]) -> SigmaRuleSet:
    """Every rule of ``sources`` compiled into one rule set; :class:`RuleError` when any rule is refused or
    when there is no rule at all (an empty rule set is a configuration error, not a quiet pass)."""
    sources = list(sources)
    results, ruleset = _build(sources)
    refused = [r.error for r in results if r.error is not None]
    if refused:
        first = refused[0]
        more = (
            f" ({len(refused) - 1} more refused: run `vigil rules lint` to list them)"
            if len(refused) > 1
            else ""
        )
        raise RuleError(_without_source(first) + more, source=first.source, feature=first.feature)
    if ruleset is None or not ruleset.rules:
        names = ", ".join(s[0] if isinstance(s, tuple) else str(s) for s in sources) or "no sources"
        raise RuleError(f"no Sigma rules found in {names}", feature="empty rule set")
    return ruleset


def compile_rules(sources: Iterable[Source]) -> list[CompileResult]:
    """The verdict on every rule document of ``sources``, in file order; never raises for a bad rule."""
    return _build(list(sources))[0]


def lint_sigma(path: Path) -> list[LintResult]:
    """One result per rule document of every ``.yml``/``.yaml`` file under ``path`` (and one per file that
    holds no rule, cannot be read or is not YAML); never raises for what the files contain."""
    out = []
    for r in compile_rules([path]):
        if r.error is not None:
            out.append(LintResult(r.source, r.rule, "refused", _without_source(r.error), r.error.feature))
        else:
            out.append(LintResult(r.source, r.rule, "loaded", "; ".join(r.notes)))
    return out


def _without_source(err: RuleError) -> str:
    prefix = f"{err.source}: "
    return err.message[len(prefix) :] if err.source and err.message.startswith(prefix) else err.message


def _build(sources: list[Source]) -> tuple[list[CompileResult], SigmaRuleSet | None]:
    found, order = entries(sources)
    results = [
        CompileResult(e.source, e.label, e.info if e.error is None else None, e.error, tuple(e.notes))
        for e in found
    ]
    if any(e.error is not None for e in found):
        return results, None
    return results, _ruleset(found, order)


def _ruleset(entries: list[Entry], order: list[Entry]) -> SigmaRuleSet:
    node = {id(e): i for i, e in enumerate(entries)}
    infos = [e.info for e in entries if e.info is not None]
    bases: list[_Base] = []
    base_of: dict[int, _Base] = {}
    for e in entries:
        if e.detection is not None and e.info is not None:
            b = _Base(e.info, e.detection, node[id(e)])
            bases.append(b)
            base_of[id(e)] = b
    corrs: list[Correlation] = []
    feeds: dict[int, set[int]] = {}  # entry -> topo indices of the correlations it feeds directly
    for t, e in enumerate(order):
        spec, info = cast(Resolved, e.correlation), cast(RuleInfo, e.info)  # set on every resolved entry
        slots = []
        for i, target in enumerate(spec.targets):
            group = tuple(getter(*slot_field(f, spec.aliases, i, target)) for f in spec.group_by)
            value = getter(*slot_field(spec.field, spec.aliases, i, target)) if spec.field else None
            slots.append(Slot(node[id(target)], group, value))
            feeds.setdefault(id(target), set()).add(t)
        corrs.append(
            Correlation(
                info,
                node=node[id(e)],
                kind=spec.kind,
                span_us=spec.span_us,
                group_by=spec.group_by,
                slots=slots,
                condition=spec.ops,
                field=spec.field,
            )
        )

    def above(e: Entry) -> set[int]:
        out: set[int] = set()
        for t in feeds.get(id(e), ()):
            out.add(t)
            out |= above(order[t])
        return out

    for e in entries:
        if id(e) in base_of:
            base_of[id(e)].above = tuple(sorted(above(e)))
    return SigmaRuleSet(infos, bases, corrs)
