"""The Store contract for client ids, run on SQLite and PostgreSQL alike: any UUID or opaque id is an event's id
for lookup and dedup; the same id with the same event is a duplicate, with another event a conflict (carrying
the stored event's seq), in the log and within one batch; idempotency answers are kept per tenant and expire."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.store import Store

T0 = time.time_ns() // 1000  # now: the PostgreSQL log keeps partitions from the present on


def _p(received_us: int = T0, **fields: Any) -> Prepared:
    raw = {"action": "user.login", "actor": {"id": "usr_1"}, **fields}
    p = prepare_event(msgspec.convert(raw, EventIn), "acme", received_us)
    assert isinstance(p, Prepared), p
    return p


def test_uuids_of_any_version_and_opaque_ids_are_stored_and_found(store: Store) -> None:
    """A UUIDv4 (found in either case), opaque ids (found exactly), and a 32-hex opaque id that spells a stored
    UUID's bytes stay distinct events."""
    t = store.create_tenant("acme")
    v4 = "9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11"
    ids = [v4, "evt_123", "EVT_123", v4.replace("-", ""), "order:42:paid.v2", "x" * 128]
    results = store.append(t.id, [_p(id=i, message=f"m{n}") for n, i in enumerate(ids)])
    assert [r.seq for r in results] == list(range(len(ids)))
    assert not any(r.duplicate or r.conflict for r in results)
    for n, eid in enumerate(ids):
        found = store.get_event(t.id, eid)
        assert found is not None and found[0] == n, eid
        assert msgspec.json.decode(found[2])["id"] == eid
    upper = store.get_event(t.id, v4.upper())
    assert upper is not None and upper[0] == 0
    assert store.get_event(t.id, "evt_124") is None
    assert store.get_event(t.id, "not an id") is None
    other = store.create_tenant("globex")
    assert store.get_event(other.id, "evt_123") is None


def test_the_same_event_again_is_a_duplicate_even_a_day_later(store: Store) -> None:
    """A retry (same content, later receive time, no occurred_at so the server fills it) is a duplicate with
    the original seq and leaf; nothing is appended."""
    t = store.create_tenant("acme")
    (first,) = store.append(t.id, [_p(id="evt_1", message="hello")])
    store.append(t.id, [_p(message="between")])
    (again,) = store.append(t.id, [_p(T0 + 86_400_000_000, id="evt_1", message="hello")])
    assert again.duplicate and not again.conflict
    assert (again.seq, again.leaf) == (first.seq, first.leaf)
    assert store.tree_size(t.id) == 2


def test_another_event_under_a_taken_id_is_a_conflict_with_the_stored_seq(store: Store) -> None:
    """A different body under an id the log holds is a conflict: the stored event's seq and leaf, the new
    content not stored, the stored event unchanged; occurred_at counts as content."""
    t = store.create_tenant("acme")
    (first,) = store.append(t.id, [_p(id="evt_1", message="hello", occurred_at="2026-01-01T00:00:00Z")])
    out = store.append(
        t.id,
        [
            _p(id="evt_1", message="hello!", occurred_at="2026-01-01T00:00:00Z"),
            _p(id="evt_1", message="hello", occurred_at="2026-01-01T00:00:01Z"),
            _p(id="evt_1", message="hello", occurred_at="2026-01-01T00:00:00Z"),
        ],
    )
    assert [(a.conflict, a.duplicate) for a in out] == [(True, False), (True, False), (False, True)]
    assert {(a.seq, a.leaf) for a in out} == {(first.seq, first.leaf)}
    assert store.tree_size(t.id) == 1
    stored = store.get_event(t.id, "evt_1")
    assert stored is not None and msgspec.json.decode(stored[2])["message"] == "hello"


def test_within_one_batch_a_second_body_under_one_id_is_a_conflict(store: Store) -> None:
    """The same id twice in one batch: the first is stored; the second is a duplicate when it is the same event,
    a conflict (with the first's seq) when it is not."""
    t = store.create_tenant("acme")
    out = store.append(
        t.id,
        [
            _p(id="evt_1", message="a"),
            _p(id="evt_1", message="a"),
            _p(id="evt_1", message="b"),
            _p(id="9B2E4A44-8A8C-4B5E-9A7F-0D4C1F0E3A11", message="c"),
            _p(id="9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11", message="d"),
        ],
    )
    assert [(a.seq, a.duplicate, a.conflict) for a in out] == [
        (0, False, False),
        (0, True, False),
        (0, False, True),
        (1, False, False),
        (1, False, True),
    ]
    assert store.tree_size(t.id) == 2


def test_idempotency_answers_are_per_tenant_and_expire(store: Store) -> None:
    """An answer kept under a key hash is found by its tenant only, within its window; the first one kept stays;
    keeping a new one drops those past their window."""
    a, b = store.create_tenant("acme"), store.create_tenant("globex")
    now = time.time_ns() // 1000
    store.remember_answer(a.id, b"k" * 32, b"f" * 32, b'{"accepted":1}', now, now - 10)
    store.remember_answer(a.id, b"k" * 32, b"g" * 32, b'{"accepted":2}', now, now - 10)  # a race: first stays
    assert store.idempotent_answer(a.id, b"k" * 32, now - 10) == (b"f" * 32, b'{"accepted":1}')
    assert store.idempotent_answer(b.id, b"k" * 32, now - 10) is None
    assert store.idempotent_answer(a.id, b"k" * 32, now + 1) is None  # past its window
    store.remember_answer(b.id, b"j" * 32, b"h" * 32, b"{}", now + 5, now + 1)  # expires a's row
    assert store.idempotent_answer(a.id, b"k" * 32, 0) is None
    assert store.idempotent_answer(b.id, b"j" * 32, now) == (b"h" * 32, b"{}")
