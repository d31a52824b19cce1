"""Fuzzing the intake decoder: any bytes give events or a clean client error, never another exception.

The decoder is the first code that touches a stranger's bytes, so its whole contract is checked on arbitrary and
on nearly-valid input (valid events with bytes spliced in): ``prepare_batch`` either returns prepared and
rejected events, every one of them encodable in the response, or raises a :class:`ClientError`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.errors import ClientError
from vigil.ingest.decode import decode_content, parse
from vigil.ingest.intake import prepare_batch
from vigil.model import MAX_DEPTH

KINDS = ["application/json", "application/x-ndjson", ""]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["user.login", "usr_1", "\x00", "\ud800", "\n", "1e400", "success", "audit", "doc"]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)
_event = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["user.login", "a.b", "user.login\n"]),
        "actor": st.fixed_dictionaries({"id": _text}),
    },
    optional={
        "message": _text,
        "outcome": st.sampled_from(["success", "failure", "meh"]),
        "metadata": st.dictionaries(_text, _json, max_size=3),
        "changes": st.dictionaries(_text, st.lists(_json, min_size=2, max_size=2), max_size=2),
        "targets": st.lists(st.fixed_dictionaries({"type": _text, "id": _text}), max_size=2),
        "context": st.fixed_dictionaries({}, optional={"status": _json, "ip": _text}),
        "id": st.sampled_from(["01a24f92-f074-7953-bac1-273600edb063", "nope"]),
        "occurred_at": st.sampled_from(["2026-11-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "x"]),
    },
)


def _check(body: bytes, kind: str) -> None:
    """The decoder's whole contract for one body."""
    try:
        good, bad = prepare_batch(body, kind, "acme", 1_700_000_000_000_000)
    except ClientError as exc:
        msgspec.json.encode(exc.body())  # the error itself must reach the client
        return
    assert good or bad
    assert len({p.index for p in good} | {r.index for r in bad}) == len(good) + len(bad)
    msgspec.json.encode([r.errors for r in bad] + [r.id for r in bad])
    for p in good:
        # what is stored is strict JSON by our own reader: no NUL, no duplicate key, nothing lost
        assert parse(p.body) == msgspec.json.decode(p.body)
        assert b"\\u0000" not in p.body or "\x00" not in json.dumps(msgspec.json.decode(p.body))


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(KINDS))
def test_any_bytes_give_events_or_a_client_error(body: bytes, kind: str) -> None:
    """Arbitrary bytes, as JSON or NDJSON."""
    _check(body, kind)


def _splice(data: st.DataObject, text: bytes) -> bytes:
    junk = st.sampled_from(
        [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\x00", b"\xff", b"\\u0000", b"\\ud800", b"1e400"]
    )
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + data.draw(junk | st.binary(max_size=3)) + text[at + cut :]
    return text


@FUZZ
@given(st.data(), st.lists(_event, min_size=1, max_size=4), st.sampled_from(KINDS), st.booleans())
def test_nearly_valid_bodies_give_events_or_a_client_error(
    data: st.DataObject, events: list[dict[str, Any]], kind: str, ascii_only: bool
) -> None:
    """Event-shaped bodies with a few bytes spliced in: the cases a stranger would try first."""
    if kind == "application/x-ndjson":
        text = b"\n".join(
            json.dumps(e, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") for e in events
        )
    else:
        text = json.dumps(events, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    _check(_splice(data, text), kind)


@FUZZ
@given(st.lists(_event, min_size=1, max_size=4))
def test_json_and_ndjson_read_the_same_events(events: list[dict[str, Any]]) -> None:
    """One reader: an array and the same events one per line are accepted and refused alike."""
    ids = [{**e, "id": f"01a24f92-f074-7953-bac1-27360000000{i}"} for i, e in enumerate(events)]
    as_json = json.dumps(ids).encode()
    as_lines = b"\n".join(json.dumps(e).encode() for e in ids)
    try:
        a = prepare_batch(as_json, "application/json", "acme", 1)
    except ClientError:
        return  # a document-wide refusal (a duplicate key...) is per line on NDJSON; nothing to compare
    b = prepare_batch(as_lines, "application/x-ndjson", "acme", 1)
    assert [(p.index, p.body) for p in a[0]] == [(p.index, p.body) for p in b[0]]
    assert [r.index for r in a[1]] == [r.index for r in b[1]]


@FUZZ
@given(st.data(), _event)
def test_a_repeated_key_is_always_refused(data: st.DataObject, ev: dict[str, Any]) -> None:
    """Whatever the event, a key written twice in it (plainly or with an escape) is refused, never last-wins."""
    key = data.draw(st.sampled_from(sorted(ev)))
    text = json.dumps(ev)
    spelt = data.draw(st.sampled_from([json.dumps(key), f'"\\u{ord(key[0]):04x}' + json.dumps(key)[2:]]))
    twice = "{" + spelt + ": null, " + text[1:]
    with pytest.raises(ClientError, match="appears twice"):
        prepare_batch(("[" + twice + "]").encode(), "application/json", "acme", 1)
    good, bad = prepare_batch(twice.encode(), "application/x-ndjson", "acme", 1)
    assert not good and "appears twice" in bad[0].errors[0]["message"]


@FUZZ
@given(st.integers(1, 60))
def test_nesting_is_refused_past_the_limit_and_taken_below(depth: int) -> None:
    """``changes`` values nest up to the event's limit of 32 levels (the event and ``changes`` count), no further."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    ev = {"action": "a.b", "actor": {"id": "u"}, "changes": {"f": [value, 1]}}
    good, _ = prepare_batch(json.dumps([ev]).encode(), "application/json", "acme", 1)
    # the event is level 1, changes 2, the pair 3, then ``depth`` arrays
    assert bool(good) == (3 + depth <= MAX_DEPTH)


@FUZZ
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=5), st.binary(max_size=20))
def test_gzip_members_inflate_to_their_concatenation(parts: list[bytes], tail: bytes) -> None:
    """Every member is inflated; bytes after the last one are either another member or a 400."""
    body = b"".join(gzip.compress(p) for p in parts)
    assert decode_content(body, "gzip") == b"".join(parts)
    try:
        out = decode_content(body + tail, "gzip")
    except ClientError:
        return
    assert out.startswith(b"".join(parts)) and (not tail or tail[:2] == b"\x1f\x8b")


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_gzip_inflate_or_give_a_client_error(body: bytes) -> None:
    """Arbitrary bytes sent as gzip: inflated bytes or a clean error, never zlib's own exception."""
    for candidate in (body, b"\x1f\x8b\x08\x00" + body, gzip.compress(body)[:-4] + body[:4]):
        try:
            decode_content(candidate, "gzip")
        except ClientError:
            pass
        except zlib.error as exc:  # pragma: no cover - the failure this test exists to catch
            raise AssertionError(f"zlib error escaped: {exc}") from exc
