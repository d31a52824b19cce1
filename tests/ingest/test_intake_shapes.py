"""Intake of events as users already have them: their own ids, WorkOS's shapes, nested metadata named by its key,
and a bound on how far in the future an event may claim to have happened."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest

from vigil.ids import derived_id, event_id
from vigil.ingest.decode import decode_request
from vigil.ingest.intake import (
    Prepared,
    Rejected,
    prepare_batch,
    prepare_request,
    request_fingerprint,
    rfc3339,
)

NOW = 1_780_000_000_000_000  # 2026-05-28, microseconds
MINUTE = 60_000_000


def _one(ev: dict[str, Any], **options: Any) -> Prepared | Rejected:
    batch = prepare_request(json.dumps([ev]).encode(), "application/json", "acme", NOW, **options)
    return (batch.good or batch.bad)[0]


def _ev(**extra: Any) -> dict[str, Any]:
    return {"action": "user.login", "actor": {"id": "usr_1"}, **extra}


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11", "9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11"),  # UUIDv4
        (
            "9B2E4A44-8A8C-4B5E-9A7F-0D4C1F0E3A11",
            "9b2e4a44-8a8c-4b5e-9a7f-0d4c1f0e3a11",
        ),  # a UUID ignores case
        ("00000000-0000-1000-8000-000000000000", "00000000-0000-1000-8000-000000000000"),  # UUIDv1
        ("evt_123", "evt_123"),
        ("Evt_123", "Evt_123"),  # an opaque id keeps its case
        ("audit_event_01GBNJC3MX9ZZJW1FSTF4C5938", "audit_event_01GBNJC3MX9ZZJW1FSTF4C5938"),
        ("order:42:paid.v2-b", "order:42:paid.v2-b"),
        (
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef",
        ),  # hex without dashes: opaque
        ("x" * 128, "x" * 128),
    ],
)
def test_a_client_keeps_its_own_id(sent: str, kept: str) -> None:
    """Any UUID (lower-cased) and any opaque id of safe characters (kept exactly) is the event's id."""
    p = _one(_ev(id=sent))
    assert isinstance(p, Prepared), p
    assert p.id == p.event.id == kept
    assert f'"id":"{kept}"'.encode() in p.body


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "-x", "_x", "evt 1", "evt/1", "evt_1\n", "é", "x" * 129, "évt", "a{b}"]
)
def test_an_id_outside_the_rule_is_rejected_in_words(bad: str) -> None:
    """A bad id names the field and says the rule in words, never a regular expression."""
    r = _one(_ev(id=bad))
    assert isinstance(r, Rejected)
    (err,) = r.errors
    assert err["field"] == "id"
    assert "must be a UUID" in err["message"] and "letters, digits" in err["message"]
    assert "^" not in err["message"] and "\\Z" not in err["message"]
    assert event_id(bad) is None


def test_an_id_that_holds_a_credential_is_rejected_and_not_echoed() -> None:
    """An id is never rewritten, so a credential-shaped one (a Stripe key) is refused, and the answer does not
    repeat it."""
    secret = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    r = _one(_ev(id=secret))
    assert isinstance(r, Rejected) and r.errors[0]["field"] == "id"
    assert "credential" in r.errors[0]["message"] and r.id is None


def test_nested_metadata_names_its_key() -> None:
    """A nested value in metadata (or an actor's or target's metadata) is refused at metadata.<key>."""
    r = _one(
        _ev(
            metadata={"plan": {"tier": "gold"}, "ok": 1, "tags": ["a"]},
            actor={"id": "u", "metadata": {"role": {"name": "admin"}}},
            targets=[{"type": "doc", "id": "d1", "metadata": {"owner": ["x"]}}],
        )
    )
    assert isinstance(r, Rejected)
    by_field = {e["field"]: e["message"] for e in r.errors}
    assert set(by_field) == {
        "metadata.plan",
        "metadata.tags",
        "actor.metadata.role",
        "targets[0].metadata.owner",
    }
    assert "not an object" in by_field["metadata.plan"] and '"plan.tier"' in by_field["metadata.plan"]
    assert "not an array" in by_field["metadata.tags"]
    assert not any("[...]" in e["field"] for e in r.errors)


def test_a_future_occurred_at_is_rejected_beyond_the_skew_and_the_past_is_open() -> None:
    """occurred_at may be ahead of the server by the skew, not more; there is no lower bound (backfills)."""
    skew = 5 * MINUTE
    soon = _one(_ev(occurred_at=rfc3339(NOW + 4 * MINUTE)), max_skew_us=skew)
    assert isinstance(soon, Prepared)
    future = _one(_ev(occurred_at="2099-01-01T00:00:00Z"), max_skew_us=skew)
    assert isinstance(future, Rejected)
    (err,) = future.errors
    assert err["field"] == "occurred_at"
    assert "2099-01-01T00:00:00.000000Z" in err["message"] and "max_clock_skew" in err["message"]
    assert "5 minutes" in err["message"]
    old = _one(_ev(occurred_at="1901-03-04T05:06:07Z"), max_skew_us=skew)
    assert isinstance(old, Prepared) and old.event.received_at == rfc3339(NOW)
    assert isinstance(_one(_ev(occurred_at="2099-01-01T00:00:00Z")), Prepared)  # no bound asked for


# The body of WorkOS's documented Create Event request (their API reference, "Create Event", curl example).
WORKOS_BODY = {
    "organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
    "event": {
        "action": "user.signed_in",
        "occurred_at": "2022-09-02T16:35:39.317Z",
        "version": 1,
        "actor": {"type": "user", "id": "user_TF4C5938", "metadata": {"role": "admin"}},
        "targets": [
            {"type": "user", "id": "user_98432YHF", "name": "Jon Smith"},
            {"type": "team", "id": "team_J8YASKA2", "metadata": {"owner": "user_01GBTCQ2"}},
        ],
        "context": {"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"},
        "metadata": {"extra": "data"},
    },
}


def test_workos_create_event_body_is_one_event_kept_as_sent() -> None:
    """WorkOS's envelope is a batch of one; version, actor and target metadata are kept, and its location (the
    IP address) is also the event's context.ip."""
    batch = prepare_request(json.dumps(WORKOS_BODY).encode(), "application/json", "acme", NOW)
    assert batch.organization == "org_01EHWNCE74X7JSDV0X3SZ3KJNY" and not batch.bad
    (p,) = batch.good
    stored = msgspec.json.decode(p.body)
    assert stored["version"] == 1
    assert stored["actor"] == {"id": "user_TF4C5938", "type": "user", "metadata": {"role": "admin"}}
    assert stored["targets"][1]["metadata"] == {"owner": "user_01GBTCQ2"}
    assert stored["context"] == {
        "ip": "123.123.123.123",
        "location": "123.123.123.123",
        "user_agent": "Chrome/104.0.0.0",
    }
    assert stored["occurred_at"] == "2022-09-02T16:35:39.317000Z"


def test_a_single_object_is_a_batch_of_one_and_other_json_is_refused() -> None:
    """A bare event object is one event; a string or number body is still a 400 that says what it takes."""
    from vigil.errors import InvalidRequest

    items, organization = decode_request(json.dumps(_ev()).encode(), "application/json")
    assert items == [_ev()] and organization is None
    for body in (b'"user.login"', b"42", b"null"):
        with pytest.raises(InvalidRequest, match="one event as an object"):
            decode_request(body, "application/json")


def test_a_location_that_is_not_an_address_stays_only_a_location() -> None:
    """Only an IP address is copied to context.ip; a place name is not, and an ip the client gave wins."""
    p = _one(_ev(context={"location": "Berlin, DE"}))
    assert isinstance(p, Prepared) and p.event.context is not None and p.event.context.ip is None
    q = _one(_ev(context={"location": "198.51.100.1", "ip": "203.0.113.9"}))
    assert isinstance(q, Prepared) and q.event.context is not None and q.event.context.ip == "203.0.113.9"


def test_version_absent_leaves_the_canonical_bytes_as_they_were() -> None:
    """An event without version has no version key, so the bytes of every earlier event are unchanged."""
    (p,), _ = prepare_batch(json.dumps([_ev()]).encode(), "application/json", "acme", NOW)
    assert b"version" not in p.body
    for wrong in (0, 1.5, "1"):
        bad = _one(_ev(version=wrong))
        assert isinstance(bad, Rejected) and bad.errors[0]["field"] == "version", wrong
    two = _one(_ev(version=2.0))  # JSON Schema's integer admits 2.0: stored as 2
    assert isinstance(two, Prepared) and b'"version":2}' in two.body


def test_secrets_in_actor_and_target_metadata_are_redacted() -> None:
    """The new metadata maps get the same redaction as the event's own."""
    p = _one(
        _ev(
            actor={"id": "u", "metadata": {"api_token": "abc", "note": "key AKIAIOSFODNN7EXAMPLE"}},
            targets=[{"type": "doc", "id": "d", "metadata": {"password": "hunter2"}}],
        )
    )
    assert isinstance(p, Prepared)
    assert b"hunter2" not in p.body and b"AKIAIOSFODNN7EXAMPLE" not in p.body and b'"abc"' not in p.body


def test_ids_made_from_an_idempotency_key_repeat_for_the_same_body_only() -> None:
    """Events without an id in a keyed request get UUIDv5s from key, body and position: the same request (spaced
    or ordered otherwise) gets the same ids; another body or key, other ones; a client's own id stays."""

    def ids(body: bytes, key: str) -> list[str]:
        return [
            p.id for p in prepare_request(body, "application/json", "acme", NOW, idempotency_key=key).good
        ]

    events = [_ev(), _ev(action="user.logout"), _ev(id="evt_7")]
    body = json.dumps(events).encode()
    respaced = json.dumps(events, indent=2, sort_keys=True).encode()
    first = ids(body, "k1")
    assert first == ids(respaced, "k1") == ids(body, "k1")
    assert first[2] == "evt_7" and uuid.UUID(first[0]).version == 5 and first[0] != first[1]
    assert ids(body, "k2")[:2] != first[:2]
    other = json.dumps([_ev(message="other"), *events[1:]]).encode()
    assert ids(other, "k1")[0] != first[0]
    items = json.loads(body)
    assert first[0] == derived_id("k1", request_fingerprint(items, body), 0)
