"""``vigil rules test``: feed each rule the example event sequences it carries and check it fires on the ``fire``
ones and stays quiet on the ``quiet`` ones.

Examples go through the same intake as real events (validation, redaction, canonical bytes), then through the
same decoding the engine does, so an example that passes here behaves the same in production. Each example runs
as its own tenant: windows are keyed by tenant, so examples never see each other's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from vigil.detect.engine import Dispatch, ev_of
from vigil.detect.rules import Evaluator, Example, RuleInfo
from vigil.ingest.intake import Prepared, prepare_event, to_us
from vigil.model import EventIn

_START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_STEP_US = 10_000_000


@dataclass(frozen=True)
class Outcome:
    rule: RuleInfo
    kind: str  # "fire" or "quiet"
    index: int
    ok: bool
    detail: str


def _events(tenant: str, example: Example) -> list[tuple[int, bytes]]:
    """(seq, canonical body) of an example's events, with the defaults filled in."""
    out, at = [], to_us(_START)
    for seq, partial in enumerate(example):
        item: dict[str, Any] = {"actor": {"id": "usr_example", "type": "user"}, **partial}
        event = msgspec.convert(item, EventIn)
        if event.occurred_at is None:
            at += _STEP_US
            event = msgspec.structs.replace(event, occurred_at=datetime.fromtimestamp(at / 1e6, UTC))
        else:
            at = to_us(event.occurred_at)
        prepared = prepare_event(event, tenant, at)
        if not isinstance(prepared, Prepared):
            raise ValueError(f"example event {seq} is not a valid event: {prepared.errors}")
        out.append((seq, prepared.body))
    return out


def run_examples(evaluators: Sequence[Evaluator]) -> list[Outcome]:
    """Every example of every rule that carries some, each on a tenant of its own."""
    dispatch = Dispatch(evaluators)
    results: list[Outcome] = []
    for rule in (r for e in evaluators for r in e.rules):
        if rule.examples is None:
            continue
        for kind, examples in (("fire", rule.examples.fire), ("quiet", rule.examples.quiet)):
            for i, example in enumerate(examples):
                tenant = f"example-{len(results)}"
                try:
                    events = _events(tenant, example)
                except (ValueError, msgspec.ValidationError) as exc:
                    results.append(Outcome(rule, kind, i, False, f"bad example: {exc}"))
                    continue
                hits = [
                    h
                    for seq, body in events
                    for h in dispatch.feed(ev_of(tenant, seq, body))
                    if h.rule.id == rule.id
                ]
                if kind == "fire":
                    ok = bool(hits)
                    detail = hits[0].summary if hits else "did not fire"
                else:
                    ok = not hits
                    detail = "stayed quiet" if ok else f"fired: {hits[0].summary}"
                results.append(Outcome(rule, kind, i, ok, detail))
    return results
