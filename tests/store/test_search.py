"""Search plans are shortcuts, never different answers: each one is checked against a brute-force filter."""

from __future__ import annotations

import ipaddress
import json
import random
import time

import msgspec
import pytest

from vigil.ingest.intake import Prepared, prepare_event, rfc3339
from vigil.model import EventIn
from vigil.store.base import SearchQuery, Store
from vigil.store.sqlite import SQLiteStore

DAY = 86_400_000_000
WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]
IPS = ["203.0.113.7", "203.0.113.200", "198.51.100.1", "2001:db8::1", "2001:db8:0:1::5", "::ffff:203.0.113.9"]
NAMES = ["Zoë Becker", "ZOË BECKER", "Anna Smith", "Straße Müller"]


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
            "actor": {
                "id": f"u{rng.randint(0, 9)}",
                **({"name": rng.choice(NAMES)} if rng.random() < 0.7 else {}),
                **(
                    {"email": rng.choice(["zoe@acme.example", "Zoe@ACME.example", "ann@acme.example"])}
                    if rng.random() < 0.6
                    else {}
                ),
            },
            **({"context": {"ip": rng.choice([*IPS, "not-an-ip"])}} if rng.random() < 0.8 else {}),
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
        actor = e["actor"]
        assert isinstance(targets, list) and isinstance(actor, dict)
        ip = (e.get("context") or {}).get("ip")  # type: ignore[attr-defined]
        return (
            (q.actor_id is None or actor["id"] == q.actor_id)
            and (q.actor_name is None or str(actor.get("name", "")).casefold() == q.actor_name.casefold())
            and (q.actor_email is None or str(actor.get("email", "")).casefold() == q.actor_email.casefold())
            and (q.ip is None or _in(ip, q.ip))
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

    hits = [e for e in events if ok(e)]
    if q.order == "newest":  # occurred time, latest first; seq breaks ties
        hits.sort(key=lambda e: (int(str(e["occurred_us"])), int(str(e["seq"]))), reverse=True)
    return [int(str(e["seq"])) for e in hits]


def _in(ip: object, query: str) -> bool:
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
        addr = addr.ipv4_mapped
    net = ipaddress.ip_network(query, strict=False)
    if net.version == 6 and addr.version == 4:
        return ipaddress.ip_address(f"::ffff:{addr}") in net
    return addr.version == net.version and addr in net


def _all_pages(store: Store, tid: int, q: SearchQuery) -> list[int]:
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
            ip=rng.choice([None, None, *IPS, "203.0.113.0/24", "2001:db8::/32", "0.0.0.0/0", "::/0"]),
            actor_name=rng.choice([None, None, None, "zoë becker", "STRASSE MÜLLER"]),
            actor_email=rng.choice([None, None, None, "ZOE@acme.example"]),
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


def _append_at(store: Store, tid: int, times: list[int], action: str = "user.login") -> None:
    now = time.time_ns() // 1000
    prepared = []
    for i, at in enumerate(times):
        raw = {"action": action, "actor": {"id": f"u{i % 3}"}, "occurred_at": rfc3339(at)}
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        assert isinstance(p, Prepared)
        prepared.append(p)
    for i in range(0, len(prepared), 500):
        store.append(tid, prepared[i : i + 500])


def test_newest_is_occurred_time_even_after_a_large_backfill(store: Store) -> None:
    """1,000 events of a month ago appended after 2,000 recent ones (whole blocks of them) sort below the
    recent ones; paging to the end gives every event once, latest occurred time first."""
    tid = store.create_tenant("acme").id
    now = time.time_ns() // 1000
    recent = [now - DAY + i * 1_000_000 for i in range(2000)]
    old = [now - 40 * DAY + i * 1_000_000 for i in range(1000)]
    _append_at(store, tid, recent)
    _append_at(store, tid, old, "user.imported")
    first = store.search(tid, SearchQuery(limit=10))
    assert [seq for seq, _, _ in first.events] == list(range(1999, 1989, -1))
    got = _all_pages(store, tid, SearchQuery(limit=97))
    times = recent + old
    assert got == sorted(range(3000), key=lambda s: (times[s], s), reverse=True)
    imported = store.search(tid, SearchQuery(action="user.imported", limit=3))
    assert [seq for seq, _, _ in imported.events] == [2999, 2998, 2997]


def test_equal_times_page_by_seq_across_blocks(store: Store) -> None:
    """Events sharing one occurred time (second-precision clocks) come latest seq first, and no page loses or
    repeats one, across block boundaries."""
    tid = store.create_tenant("acme").id
    now = time.time_ns() // 1_000_000_000 * 1_000_000
    times = [now - 3_000_000] * 300 + [now - 2_000_000] * 400 + [now - 5_000_000] * 100
    _append_at(store, tid, times)
    got = _all_pages(store, tid, SearchQuery(limit=37))
    assert got == sorted(range(800), key=lambda s: (times[s], s), reverse=True)
    assert got[:3] == [699, 698, 697] and got[-1] == 700


def test_identity_filters_fold_case_and_take_cidr_blocks(store: Store) -> None:
    """actor_name and actor_email match whatever the case; ip takes an address or a CIDR block, IPv4 and IPv6,
    and ::ffff:a.b.c.d is a.b.c.d; text that is not one address is never matched."""
    tid = store.create_tenant("acme").id
    now = time.time_ns() // 1000
    rows = [
        ({"id": "u1", "name": "Zoë Becker", "email": "Zoe.Becker@Acme.example"}, "203.0.113.7"),
        ({"id": "u2", "name": "zoë becker"}, "203.0.113.200"),
        ({"id": "u3", "email": "zoe.becker@acme.example"}, "2001:db8::1"),
        ({"id": "u4", "name": "Anna"}, "::ffff:198.51.100.4"),
        ({"id": "u5"}, "198.51.100.4, 10.0.0.1"),
    ]
    prepared = []
    for actor, ip in rows:
        raw = {"action": "user.login", "actor": actor, "context": {"ip": ip}}
        p = prepare_event(msgspec.convert(raw, EventIn), "acme", now)
        assert isinstance(p, Prepared)
        prepared.append(p)
    store.append(tid, prepared)

    def seqs(**q: str) -> list[int]:
        return sorted(seq for seq, _, _ in store.search(tid, SearchQuery(**q)).events)  # type: ignore[arg-type]

    assert seqs(actor_name="ZOË BECKER") == [0, 1]
    assert seqs(actor_email="zoe.becker@ACME.EXAMPLE") == [0, 2]
    assert seqs(actor_name="zoë") == []  # exact, not a prefix
    assert seqs(ip="203.0.113.7") == [0]
    assert seqs(ip="203.0.113.0/24") == [0, 1]
    assert seqs(ip="203.0.113.128/25") == [1]
    assert seqs(ip="2001:db8::/32") == [2]
    assert seqs(ip="198.51.100.4") == [3] and seqs(ip="::ffff:198.51.100.0/120") == [3]
    assert seqs(ip="0.0.0.0/0") == [0, 1, 3]
    assert seqs(ip="::/0") == [0, 1, 2, 3]
    assert seqs(ip="10.0.0.1") == []
