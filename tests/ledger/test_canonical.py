"""The fast canonical encoder gives exactly the bytes of the reference RFC 8785 implementation."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ledger.canonical import NotCanonicalizable, canonical, scan
from vigil.model import Actor, Context, Event, Target

safe_int = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
scalar = st.none() | st.booleans() | safe_int | st.floats(allow_nan=False, allow_infinity=False) | st.text()
keys = st.text(max_size=12)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400)
@given(json_value)
def test_plain_json_matches_reference(value: Any) -> None:
    """For any JSON value, the path chosen by scan() writes the reference bytes."""
    slow = scan(value)
    assert canonical(value, slow=slow) == rfc8785.dumps(value)


events = st.builds(
    Event,
    id=st.uuids().map(str),
    tenant=st.from_regex(r"[a-z]{2,8}", fullmatch=True),
    occurred_at=st.just("2026-11-01T00:00:00.000000Z"),
    received_at=st.just("2026-11-01T00:00:01.000000Z"),
    action=st.from_regex(r"[a-z]{1,6}(\.[a-z]{1,6}){0,2}", fullmatch=True),
    actor=st.builds(
        Actor,
        id=st.text(min_size=1, max_size=20),
        type=st.sampled_from(["user", "service"]),
        name=st.none() | st.text(max_size=20),
    ),
    category=st.sampled_from(["audit", "change"]),
    outcome=st.sampled_from(["success", "failure"]),
    targets=st.lists(
        st.builds(Target, type=st.text(min_size=1, max_size=8), id=st.text(min_size=1, max_size=8)),
        max_size=3,
    ),
    context=st.none()
    | st.builds(Context, ip=st.none() | st.ip_addresses().map(str), status=st.none() | st.integers(100, 599)),
    changes=st.none() | st.dictionaries(keys, st.lists(json_value, min_size=2, max_size=2), max_size=3),
    message=st.none() | st.text(max_size=40),
    metadata=st.none() | st.dictionaries(keys, scalar, max_size=6),
)


@settings(max_examples=400)
@given(events)
def test_event_struct_matches_reference(ev: Event) -> None:
    """A stored event's canonical bytes equal RFC 8785 of its JSON form, whichever path encodes it."""
    slow = scan(ev.metadata) | scan(ev.changes)
    assert canonical(ev, slow=slow) == rfc8785.dumps(msgspec.to_builtins(ev))


@pytest.mark.parametrize("bad", [2**53, -(2**53), float("nan"), float("inf"), {"x": [2**60]}])
def test_values_without_a_canonical_form_are_refused(bad: Any) -> None:
    """Integers beyond 2**53 and non-finite floats are errors, never silently rounded."""
    with pytest.raises(NotCanonicalizable):
        scan(bad)


def test_non_ascii_keys_take_the_reference_path() -> None:
    """Keys outside ASCII sort by UTF-16 in RFC 8785, so they go to the reference encoder."""
    value = {"\U0001f600": 1, "\ufb33": 2}
    assert scan(value) is True
    assert canonical(value, slow=True) == rfc8785.dumps(value)
    assert msgspec.json.encode(value, order="sorted") != rfc8785.dumps(value)
