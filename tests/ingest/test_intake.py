"""Intake: ids, times, defaults and canonical bytes of prepared events."""

from __future__ import annotations

import hashlib
import time
import uuid

import msgspec

from vigil.ids import is_uuid7, uuid7
from vigil.ingest.intake import Prepared, Rejected, prepare_batch, rfc3339, to_us


def test_uuid7_layout_and_time() -> None:
    """Generated ids are version 7, RFC 9562 variant, and carry the current millisecond."""
    u = uuid7()
    assert is_uuid7(u)
    assert abs((u.int >> 80) - time.time_ns() // 1_000_000) < 5_000
    assert not is_uuid7(uuid.uuid4())


def test_missing_id_and_time_are_filled_in() -> None:
    """An event without id or occurred_at gets a UUIDv7 and the receive time."""
    good, bad = prepare_batch(
        b'[{"action":"user.login","actor":{"id":"u1"}}]', "application/json", "acme", 1_700_000_000_123_456
    )
    assert not bad
    p = good[0]
    assert is_uuid7(uuid.UUID(p.id)) and p.id == str(uuid.UUID(p.id))
    assert p.event.occurred_at == p.event.received_at == "2023-11-14T22:13:20.123456Z"
    assert p.event.actor.type == "user" and p.event.category == "activity" and p.event.outcome == "success"
    assert p.leaf == hashlib.sha256(b"\x00" + p.body).digest()


def test_occurred_at_is_normalised_to_utc() -> None:
    """Offsets are converted to UTC; a time without zone is rejected."""
    body = msgspec.json.encode(
        [
            {"action": "a.b", "actor": {"id": "u"}, "occurred_at": "2026-11-01T12:00:00+02:00"},
            {"action": "a.b", "actor": {"id": "u"}, "occurred_at": "2026-11-01T12:00:00"},
        ]
    )
    good, bad = prepare_batch(body, "application/json", "acme", 0)
    assert good[0].event.occurred_at == "2026-11-01T10:00:00.000000Z"
    assert bad[0].index == 1 and bad[0].errors[0]["field"] == "occurred_at"


def test_every_problem_of_an_event_is_listed_with_its_path() -> None:
    """Nested and list fields report their own paths."""
    body = msgspec.json.encode(
        [
            {
                "action": "",
                "actor": {"id": "", "email": 5},
                "targets": [{"type": "doc"}, {"id": "x", "type": "doc", "extra": 1}],
                "context": {"status": 99},
            }
        ]
    )
    good, bad = prepare_batch(body, "application/json", "acme", 0)
    assert not good
    fields = [e["field"] for e in bad[0].errors]
    assert fields == [
        "action",
        "actor.id",
        "actor.email",
        "targets[0].id",
        "targets[1].extra",
        "context.status",
    ]


def test_time_helpers_round_trip() -> None:
    """RFC 3339 text and microseconds agree."""
    from datetime import UTC, datetime

    dt = datetime(2026, 11, 22, 14, 0, 1, 250, tzinfo=UTC)
    assert rfc3339(to_us(dt)) == "2026-11-22T14:00:01.000250Z"


def test_prepared_and_rejected_are_distinct() -> None:
    """prepare_batch sorts events into prepared and rejected, keeping request indexes."""
    body = msgspec.json.encode([{"action": "a.b", "actor": {"id": "u"}}, 7])
    good, bad = prepare_batch(body, "application/json", "acme", 0)
    assert isinstance(good[0], Prepared) and good[0].index == 0
    assert isinstance(bad[0], Rejected) and bad[0].index == 1
    assert bad[0].errors == [{"field": "", "message": "expected an object, got number"}]


def test_times_that_leave_the_calendar_in_utc_are_rejected() -> None:
    """0001-01-01 at +01:00 is before year 1 in UTC: a clear rejection, never a server error."""
    body = msgspec.json.encode(
        [
            {"action": "a.b", "actor": {"id": "u"}, "occurred_at": "0001-01-01T00:00:00+01:00"},
            {"action": "a.b", "actor": {"id": "u"}, "occurred_at": "9999-12-31T23:59:59-01:00"},
        ]
    )
    good, bad = prepare_batch(body, "application/json", "acme", 0)
    assert not good and [b.errors[0]["field"] for b in bad] == ["occurred_at", "occurred_at"]


def test_an_integral_float_status_is_the_integer_json_schema_says_it_is() -> None:
    """JSON Schema's integer admits 100.0 (schemathesis sends it): stored as 100; 200.5 and 700.0 are refused."""
    events = [
        {"action": "a.b", "actor": {"id": "u"}, "context": {"status": status}}
        for status in (100.0, 200.5, 700.0)
    ]
    good, bad = prepare_batch(msgspec.json.encode(events), "application/json", "acme", 0)
    assert [g.index for g in good] == [0]
    assert b'"status":100}' in good[0].body
    assert [(b.index, b.errors[0]["field"]) for b in bad] == [(1, "context.status"), (2, "context.status")]
    assert "must be an integer" in bad[0].errors[0]["message"]
