"""Search plans are shortcuts, never different answers: each one is checked against a brute-force filter."""

from __future__ import annotations

import json
import random
import time

import msgspec
import pytest

from vigil.ingest.intake import Prepared, prepare_event, rfc3339
from vigil.model import EventIn
from vigil.store.base import SearchQuery
from vigil.store.sqlite import SQLiteStore

DAY = 86_400_000_000
WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]


def _fill(store: SQLiteStore, n: int, seed: int) -> tuple[int, list[dict[str, object]]]:
    """n events whose occurred_at mostly rises with seq but with late and early stragglers."""
    rng = random.Random(seed)
    t = store.create_tenant("acme")
    now = time.time_ns() // 1000
    start = now - 30 * DAY
    events, prepared = [], []
    for i in range(n):
        at = start + i * (30 * DAY // n)
        if rng.random() < 0.05:  # a straggler: spooled for days, or a clock far off
            at += rng.randint(-10 * DAY, 5 * DAY)
        raw = {
            "action": rng.choice(["user.login", "user.logout", "invoice.created", "invoice.paid"]),
            "actor": {"id": f"u{rng.randint(0, 9)}"},
            "outcome": rng.choice(["success", "failure"]),
            "category": rng.choice(["audit", "change"]),
            "occurred_at": rfc3339(at),
            "targets": [
                {"type": rng.choice(["doc", "user"]), "id": f"t{rng.randint(0, 5)}"}
                for _ in range(rng.randint(0, 2))
            ],
            "message": " ".join(rng.sample(WORDS, 2)),
        }
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        assert isinstance(p, Prepared)
        prepared.append(p)
        events.append({**raw, "seq": i, "occurred_us": p.occurred_us})
    for i in range(0, n, 300):
        store.append(t.id, prepared[i : i + 300])
    return t.id, events


def _expected(events: list[dict[str, object]], q: SearchQuery) -> list[int]:
    def ok(e: dict[str, object]) -> bool:
        targets = e["targets"]
        assert isinstance(targets, list)
        return (
            (q.actor_id is None or e["actor"] == {"id": q.actor_id})
            and (
                q.action is None
                or (
                    e["action"] == q.action
                    if not q.action.endswith(".*")
                    else str(e["action"]).startswith(q.action[:-1])
                )
            )
            and (q.outcome is None or e["outcome"] == q.outcome)
            and (q.category is None or e["category"] == q.category)
            and (q.since_us is None or int(str(e["occurred_us"])) >= q.since_us)
            and (q.until_us is None or int(str(e["occurred_us"])) < q.until_us)
            and (q.target_type is None or any(t["type"] == q.target_type for t in targets))
            and (
                q.target_id is None
                or any(t["id"] == q.target_id and (q.target_type in (None, t["type"])) for t in targets)
            )
            and (q.text is None or all(w in str(e["message"]).split() for w in q.text.split()))
        )

    seqs = [int(str(e["seq"])) for e in events if ok(e)]
    return sorted(seqs, reverse=q.order == "newest")


def _all_pages(store: SQLiteStore, tid: int, q: SearchQuery) -> list[int]:
    got: list[int] = []
    page = store.search(tid, q)
    while True:
        got += [seq for seq, _, _ in page.events]
        if page.next is None:
            return got
        page = store.search(tid, SearchQuery(**{**q.__dict__, "after": page.next, "snapshot": page.snapshot}))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_plan_agrees_with_brute_force(store: SQLiteStore, seed: int) -> None:
    """Random combined filters, paged to the end, return exactly the brute-force answer in order."""
    tid, events = _fill(store, 1500, seed)
    rng = random.Random(seed * 7)
    now = time.time_ns() // 1000
    for _ in range(60):
        since = rng.choice([None, now - rng.randint(1, 30) * DAY])
        q = SearchQuery(
            actor_id=rng.choice([None, None, f"u{rng.randint(0, 9)}"]),
            action=rng.choice([None, "user.login", "user.*", "invoice.*"]),
            outcome=rng.choice([None, "failure"]),
            category=rng.choice([None, None, "change"]),
            since_us=since,
            until_us=rng.choice([None, (since or now - 30 * DAY) + rng.randint(1, 6) * DAY]),
            target_type=rng.choice([None, None, "doc", "user"]),
            target_id=rng.choice([None, None, f"t{rng.randint(0, 5)}"]),
            text=rng.choice([None, None, "alpha", "bravo echo"]),
            order=rng.choice(["newest", "seq"]),
            limit=rng.choice([7, 50]),
        )
        assert _all_pages(store, tid, q) == _expected(events, q), q


def test_an_event_with_two_matching_targets_appears_once(store: SQLiteStore) -> None:
    """Filtering by target type alone or id alone never repeats an event."""
    t = store.create_tenant("acme")
    raw = {
        "action": "doc.merged",
        "actor": {"id": "u"},
        "targets": [{"type": "doc", "id": "a"}, {"type": "doc", "id": "b"}, {"type": "user", "id": "a"}],
    }
    p = prepare_event(msgspec.convert(raw, EventIn), "acme", time.time_ns() // 1000)
    assert isinstance(p, Prepared)
    store.append(t.id, [p])
    assert [s for s, _, _ in store.search(t.id, SearchQuery(target_type="doc")).events] == [0]
    assert [s for s, _, _ in store.search(t.id, SearchQuery(target_id="a")).events] == [0]
    body = json.loads(store.search(t.id, SearchQuery(target_id="a", target_type="user")).events[0][2])
    assert body["action"] == "doc.merged"
