"""Hostile input through the real app: every case is a 4xx that says what is wrong, never a 5xx, and the good
events sent beside a bad one are kept (per line on NDJSON, per event in an array)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.ids import uuid7
from vigil.model import MAX_REQUEST_BYTES

Client = TestClient[Any]

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _post(client: Client, keys: Keys, body: bytes, kind: dict[str, str] = JSON, **headers: str) -> Any:
    return client.post("/v1/events", content=body, headers={**auth(keys.ingest), **kind, **headers})


def _ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines)


def _line(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev).encode()


def _error(r: Any, status: int = 400) -> str:
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert err["type"] and err["message"]
    return str(err["message"])


def _statuses(r: Any) -> list[str]:
    assert r.status_code == 200, r.text[:500]
    return [x["status"] for x in r.json()["results"]]


DEEP = b"[" * 1000 + b"]" * 1000


def test_json_nested_1000_deep_is_400_and_stores_nothing(client: Client, keys: Keys, store: Any) -> None:
    """A body nested past the parser's limit is a 400 saying so, not a 500 with a traceback."""
    body = b'[{"action":"a.b","actor":{"id":"u"},"changes":{"x":[' + DEEP + b",1]}}]"
    assert "nested too deeply" in _error(_post(client, keys, body))
    assert "nested too deeply" in _error(_post(client, keys, DEEP))
    assert store.tree_size(keys.tenant_id) == 0


def test_ndjson_keeps_the_good_lines_beside_a_1000_deep_one(client: Client, keys: Keys, store: Any) -> None:
    """On NDJSON the deep line alone is rejected (saying which line); the valid lines around it are stored."""
    r = _post(client, keys, _ndjson(_line(event()), DEEP, _line(event("user.logout"))), NDJSON)
    assert _statuses(r) == ["stored", "rejected", "stored"]
    assert "line 2" in r.json()["results"][1]["errors"][0]["message"]
    assert "nested too deeply" in r.json()["results"][1]["errors"][0]["message"]
    assert store.tree_size(keys.tenant_id) == 2


def test_changes_nested_past_the_limit_reject_that_event_only(client: Client, keys: Keys) -> None:
    """Nesting the parser can read but intake does not take (over 32 levels) is one rejected event."""
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    r = client.post("/v1/events", json=[event(changes={"x": [deep, 1]}), event()], headers=auth(keys.ingest))
    assert _statuses(r) == ["rejected", "stored"]
    assert "nest at most" in r.json()["results"][0]["errors"][0]["message"]


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 400 + b".0"])
def test_a_number_beyond_a_float_is_400_not_500(client: Client, keys: Keys, number: bytes) -> None:
    """1e400 has no 64-bit float: a 400 that names the number; on NDJSON that line alone."""
    bad = b'{"action":"a.b","actor":{"id":"u"},"metadata":{"x":' + number + b"}}"
    assert "range of a 64-bit float" in _error(_post(client, keys, b"[" + bad + b"]"))
    r = _post(client, keys, _ndjson(bad, _line(event())), NDJSON)
    assert _statuses(r) == ["rejected", "stored"]
    assert "range of a 64-bit float" in r.json()["results"][0]["errors"][0]["message"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_literals_are_400(client: Client, keys: Keys, literal: bytes) -> None:
    """NaN and Infinity are not JSON, whatever Python's own reader says."""
    body = b'[{"action":"a.b","actor":{"id":"u"},"metadata":{"x":' + literal + b"}}]"
    assert "is not JSON" in _error(_post(client, keys, body))


@pytest.mark.parametrize(
    "body",
    [b'{"x":1} y', b'{"x":1}{"y":2}', b'[{"action":"a.b","actor":{"id":"u"}}] y', b"[] []"],
)
def test_junk_after_the_document_is_400_even_when_it_is_not_an_array(
    client: Client, keys: Keys, body: bytes
) -> None:
    """Malformed JSON that would also fail field validation is still a 400 that points at the byte, not a 500."""
    message = _error(_post(client, keys, body))
    assert "malformed JSON" in message and "byte" in message


@pytest.mark.parametrize(
    "obj",
    [
        b'{"action":"user.login","action":"user.logout","actor":{"id":"u"}}',
        b'{"action":"user.login","\\u0061ction":"user.logout","actor":{"id":"u"}}',
        b'{"action":"user.login","actor":{"id":"u","id":"root"}}',
        b'{"action":"user.login","actor":{"id":"u"},"metadata":{"k":1,"k":2}}',
        b'{"action":"user.login","actor":{"id":"u"},"changes":{"f":[{"a":1,"a":2},1]}}',
    ],
)
def test_duplicate_keys_are_refused_anywhere(client: Client, keys: Keys, store: Any, obj: bytes) -> None:
    """A key twice in one object (also spelt with an escape) is refused: last-one-wins lets readers disagree.
    On NDJSON only that line is rejected."""
    assert "appears twice" in _error(_post(client, keys, b"[" + obj + b"]"))
    r = _post(client, keys, _ndjson(_line(event()), obj), NDJSON)
    assert _statuses(r) == ["stored", "rejected"]
    assert "appears twice" in r.json()["results"][1]["errors"][0]["message"]
    assert store.tree_size(keys.tenant_id) == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"message": "a\x00b"}, "message"),
        ({"metadata": {"k": "v\x00"}}, "metadata.k"),
        ({"metadata": {"k\x00": "v"}}, "metadata"),
        ({"changes": {"f": ["x", ["y\x00"]]}}, "changes.f[1][0]"),
        ({"actor": {"id": "u", "name": "\x00"}}, "actor.name"),
    ],
)
def test_nul_is_refused_in_every_string_with_its_field(
    client: Client, keys: Keys, extra: dict[str, Any], field: str
) -> None:
    """A NUL character in any key or value rejects that event, naming the field; the event beside it is stored."""
    r = client.post("/v1/events", json=[event(**extra), event()], headers=auth(keys.ingest))
    assert _statuses(r) == ["rejected", "stored"]
    err = r.json()["results"][0]["errors"][0]
    assert err["field"] == field and "NUL" in err["message"]


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: Client, keys: Keys) -> None:
    """The six characters \\u0000 (an escaped backslash, then u0000) are plain text, and are stored."""
    r = _post(client, keys, b'[{"action":"a.b","actor":{"id":"u"},"message":"path C:\\\\u0000"}]')
    assert _statuses(r) == ["stored"]


def test_lone_surrogates_are_refused_and_pairs_are_text(client: Client, keys: Keys) -> None:
    """ "\\ud800" is no Unicode text: that event is rejected; a surrogate pair (an emoji) is stored."""
    lone = b'{"action":"a.b","actor":{"id":"u"},"message":"x\\ud800"}'
    pair = b'{"action":"a.b","actor":{"id":"u"},"message":"\\ud83d\\ude00"}'
    r = _post(client, keys, b"[" + lone + b"," + pair + b"]")
    assert _statuses(r) == ["rejected", "stored"]
    assert "lone surrogate" in r.json()["results"][0]["errors"][0]["message"]


def test_bytes_that_are_not_utf8_are_400_or_one_rejected_line(client: Client, keys: Keys) -> None:
    """A body that is not UTF-8 says so; on NDJSON only the bad line is lost."""
    bad = b'{"action":"a.b","actor":{"id":"u\xff"}}'
    assert "UTF-8" in _error(_post(client, keys, b"[" + bad + b"]"))
    r = _post(client, keys, _ndjson(bad, _line(event())), NDJSON)
    assert _statuses(r) == ["rejected", "stored"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "user.login\n"),
        ("action", " user.login"),
        ("action", "user.login\u200b"),
        ("action", "user.lo\tgin"),
        ("id", str(uuid7()) + "\n"),
        ("actor", {"id": "usr_1\n"}),
        ("actor", {"id": "usr 1"}),
        ("actor", {"id": "usr_\u0131"}),
        ("targets", [{"type": "doc\n", "id": "d1"}]),
        ("targets", [{"type": "doc", "id": "d1\r"}]),
        ("outcome", "failure\n"),
        ("category", "audit\n"),
    ],
)
def test_identifiers_with_whitespace_or_control_characters_are_rejected(
    client: Client, keys: Keys, store: Any, field: str, value: Any
) -> None:
    """ "user.login\\n" would be stored and escape every action=user.login search (and the brute-force rule that
    counts user.login failures): identifiers match exactly, and the good event beside is kept."""
    r = client.post("/v1/events", json=[event(**{field: value}), event()], headers=auth(keys.ingest))
    assert _statuses(r) == ["rejected", "stored"]
    err = r.json()["results"][0]["errors"][0]
    assert err["field"].split(".")[0].split("[")[0] == field
    assert "regex" not in err["message"]  # said in words
    assert store.tree_size(keys.tenant_id) == 1


def _gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p) for p in parts)


def test_every_gzip_member_is_inflated(client: Client, keys: Keys, store: Any) -> None:
    """A body of two gzip members (``cat a.gz b.gz``) is both members, as gunzip reads it: no event dropped."""
    gz = {"Content-Encoding": "gzip"}
    text = json.dumps([event(), event("user.logout")]).encode()
    r = _post(client, keys, _gzip_members(text[:40], text[40:]), **gz)
    assert r.json()["accepted"] == 2
    r = _post(client, keys, _gzip_members(_line(event()) + b"\n", _line(event())), NDJSON, **gz)
    assert r.json()["accepted"] == 2
    assert store.tree_size(keys.tenant_id) == 4


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        (b"junk", "not another member"),
        (b"\x00" * 8, "not another member"),
        (gzip.compress(b"[]")[:12], "truncated"),
        (b"\x1f\x8bnot gzip at all", "corrupt"),
    ],
)
def test_anything_after_a_gzip_member_that_is_not_one_is_400(
    client: Client, keys: Keys, store: Any, tail: bytes, says: str
) -> None:
    """Junk, padding or a broken member after a valid member is refused, never ignored."""
    body = gzip.compress(json.dumps([event()]).encode()) + tail
    assert says in _error(_post(client, keys, body, **{"Content-Encoding": "gzip"}))
    assert store.tree_size(keys.tenant_id) == 0


def test_gzip_limits_hold_across_members(client: Client, keys: Keys) -> None:
    """The inflated limit counts every member; thousands of empty members are refused."""
    gz = {"Content-Encoding": "gzip"}
    half = b" " * (MAX_REQUEST_BYTES // 2 + 10)
    r = _post(client, keys, _gzip_members(b"[" + half, half + b"]"), **gz)
    assert _error(r, 413)
    assert "at most 1000 members" in _error(_post(client, keys, _gzip_members(*[b""] * 1001), **gz))


def _cursor(tenant_id: int, seq: int, snapshot: int, order: str = "newest") -> str:
    raw = json.dumps({"t": tenant_id, "o": order, "s": seq, "n": snapshot}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("seq", "snapshot"),
    [
        (2**63, 2**63),
        (0, 2**63),
        (2**63 - 1, 2**63 - 1),
        (2**64, 1),
        (2**40, 2**40),
        (-1, 5),
        (-(2**63) - 1, 0),
        (5, 2),
    ],
)
def test_forged_cursors_are_400_on_every_store(client: Client, keys: Keys, seq: int, snapshot: int) -> None:
    """Cursor values beyond 64 bits, beyond a log's 2**40 events, negative, or past their own snapshot are a 400
    (on SQLite 2**63 used to overflow its integers into a 500)."""
    client.post("/v1/events", json=[event()] * 3, headers=auth(keys.both))
    for order in ("newest", "seq"):
        cur = _cursor(keys.tenant_id, seq, snapshot, order)
        r = client.get("/v1/events", params={"cursor": cur, "order": order}, headers=auth(keys.read))
        assert "cursor" in _error(r)
    r = client.get(
        "/v1/entities/doc/d1/history",
        params={"cursor": _cursor(keys.tenant_id, seq, snapshot)},
        headers=auth(keys.read),
    )
    assert "cursor" in _error(r)


def test_a_search_with_too_many_words_is_400_saying_the_limit(client: Client, keys: Keys) -> None:
    """Words after the 16th used to be dropped silently; now the search is refused and the limit named."""
    client.post("/v1/events", json=[event(message="w0 w1")], headers=auth(keys.ingest))
    words = " ".join(f"w{i}" for i in range(17))
    assert "at most 16 words" in _error(
        client.get("/v1/events", params={"q": words}, headers=auth(keys.read))
    )
    r = client.get("/v1/events", params={"q": " ".join(f"w{i}" for i in range(2))}, headers=auth(keys.read))
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = client.get("/v1/events", params={"q": " ".join(["w0"] * 16)}, headers=auth(keys.read))
    assert r.status_code == 200


def _operations(client: Client) -> list[tuple[str, str]]:
    doc = client.get("/schema/openapi.json").json()
    out = []
    for path, item in doc["paths"].items():
        for method in item:
            if method in ("get", "post"):
                concrete = path.replace("{event_id}", str(uuid7())).replace("{entity_type}", "doc")
                out.append((method.upper(), concrete.replace("{entity_id}", "d1")))
    return out


def test_every_route_refuses_an_unknown_query_parameter(client: Client, keys: Keys, store: Any) -> None:
    """Not only GET /v1/events: every operation of the document answers an undeclared parameter with a 400 that
    names it (a misspelt filter would otherwise widen a read, or be taken for one on a write)."""
    operations = _operations(client)
    assert ("POST", "/v1/events") in operations and len(operations) >= 10
    for method, path in operations:
        r = client.request(method, path, params={"bogus": "1"}, headers=auth(keys.both), json=[event()])
        assert "'bogus'" in _error(r), (method, path)
    assert store.tree_size(keys.tenant_id) == 0
    r = client.get("/v1/events", params={"acton": "user.login"}, headers=auth(keys.read))
    assert "'acton'" in _error(r) and "action" in _error(r)


def test_a_single_valued_parameter_given_twice_is_400(client: Client, keys: Keys) -> None:
    """?limit=1&limit=500 has no one meaning: refused, not decided by whichever the framework reads."""
    r = client.get("/v1/events?limit=1&limit=500", headers=auth(keys.read))
    assert "more than once" in _error(r)
    r = client.get("/v1/alerts?limit=1&limit=2", headers=auth(keys.read))
    assert "more than once" in _error(r)


def test_declared_parameters_still_work_everywhere(client: Client, keys: Keys) -> None:
    """The guard only refuses what a route does not declare."""
    client.post("/v1/events", json=[event()] * 3, headers=auth(keys.both))
    assert client.get("/v1/events?limit=2&order=seq", headers=auth(keys.read)).status_code == 200
    assert client.get("/v1/export?format=ndjson&from_seq=1", headers=auth(keys.read)).status_code == 200
    assert client.get("/healthz").status_code == 200
