"""The fast intake path (msgspec + the C repeated-key scan) gives exactly what the strict reader gives.

``decode_typed`` is trusted only because of these tests: the C scan answers like a reference written with the
standard library's hooks on any JSON text (and never says "unique" about a text with a repeated key), and a body
prepared through the fast path has the same canonical bytes, leaf hashes and rejections as through the strict
reader.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.ingest import decode, intake
from vigil.ingest.decode import FAST, decode_typed

pytestmark = pytest.mark.skipif(
    not FAST and not __import__("os").environ.get("CI"), reason="C scan not built"
)

PROPS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

_key = st.sampled_from(["a", "b", "id", "é", "a b", "", "}", "{", ":", '"', "\\", "x" * 40])
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _key


def _pairs(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(st.tuples(_key, inner), max_size=4).map(_Obj)


class _Obj(list[tuple[str, Any]]):
    """An object that may repeat keys (a dict cannot), for writing texts the scan must catch."""


def _dump(v: Any) -> str:
    if isinstance(v, _Obj):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_dump(x)}" for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_dump(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


_doc = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | _pairs(inner), max_leaves=16)


def _repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("repeated")
    return dict(pairs)


def _reference(text: str) -> bool:
    try:
        json.loads(text, object_pairs_hook=_repeats)
    except ValueError:
        return False
    return True


@PROPS
@given(_doc)
def test_the_scan_answers_like_the_standard_librarys_reader(doc: Any) -> None:
    """Unique keys are "unique", a repeated key anywhere is "repeated"; only escaped keys may be undecided."""
    text = _dump(doc)
    answer = decode._keys_unique(text.encode()) if decode._keys_unique else None
    if answer is None:
        assert "\\" in text  # a key holding an escape: the strict reader decides
    else:
        assert answer is _reference(text)


def test_the_scan_is_bounded_and_never_guesses() -> None:
    """Deep nesting, huge objects and broken text are "undecided" (the strict reader then says why)."""
    scan = decode._keys_unique
    assert scan is not None
    assert scan(b"[" * 200 + b"]" * 200) is None
    assert scan(b"{" + b",".join(b'"k%d":1' % i for i in range(300)) + b"}") is None
    assert scan(b'{"a":1') is None
    assert scan(b'{"a":"x') is None
    assert scan(b'{"a":{"b":1},"b":2,"c":[{"a":1},{"a":2}]}') is True
    assert scan(b'{"a":{"b":1,"b":2}}') is False


_events = st.lists(
    st.fixed_dictionaries(
        {
            "action": st.sampled_from(["user.login", "invoice.paid", "Bad Action"]),
            "actor": st.just({"id": "usr_1"}),
        },
        optional={
            "metadata": st.dictionaries(_key, _scalar, max_size=4),
            "outcome": st.sampled_from(["success", "failure", "maybe"]),
            "message": _key,
        },
    ),
    min_size=1,
    max_size=5,
)


@PROPS
@given(events=_events, kind=st.sampled_from(["application/json", "application/x-ndjson"]))
def test_the_fast_path_prepares_the_same_events_as_the_strict_reader(
    events: list[dict[str, Any]], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same canonical bytes, leaf hashes and rejections, whichever reader took the body."""
    for i, e in enumerate(events):
        e["id"] = f"0190f0a0-0000-7000-8000-{i:012x}"
    if kind == "application/json":
        body = json.dumps(events, ensure_ascii=False).encode()
    else:
        body = "\n".join(json.dumps(e, ensure_ascii=False) for e in events).encode()
    fast = intake.prepare_batch(body, kind, "acme", 1_700_000_000_000_000)
    with monkeypatch.context() as m:
        m.setattr(intake, "decode_typed", lambda *a: None)
        slow = intake.prepare_batch(body, kind, "acme", 1_700_000_000_000_000)
    assert [(p.index, p.body, p.leaf) for p in fast[0]] == [(p.index, p.body, p.leaf) for p in slow[0]]
    assert [(r.index, r.errors) for r in fast[1]] == [(r.index, r.errors) for r in slow[1]]


def test_a_repeated_key_never_takes_the_fast_path() -> None:
    """A body msgspec would read (last key wins) is left to the strict reader, which refuses it."""
    body = b'[{"action": "user.login", "actor": {"id": "usr_1", "id": "usr_2"}}]'
    assert decode_typed(body, "application/json", intake._ARRAY, intake._ITEM) is None
    ok = b'[{"action": "user.login", "actor": {"id": "usr_1"}}]'
    assert decode_typed(ok, "application/json", intake._ARRAY, intake._ITEM) is not None
