"""No secret reaches storage through POST /v1/events: not the stored body, not the full-text index, not the logs.

Secrets of every kind go into every text field of an event (nested ``changes`` included); the stored event is
read back, the secret searched for through the API, and the server's log records checked.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from secret_shapes import embedded
from support import Keys, auth, event

from vigil.model import FIELD_LIMITS
from vigil.settings import Settings
from vigil.store import Store
from vigil.web import create_app

Client = TestClient[Any]

FIELDS = [
    "message",
    "reason",
    "actor.id",
    "actor.name",
    "actor.email",
    "actor.session_id",
    "targets.id",
    "targets.name",
    "context.user_agent",
    "context.route",
    "context.request_id",
    "context.trace_id",
    "context.location",
    "metadata.note",
    "changes.config",
]


def _place(field: str, text: str, probe: str) -> dict[str, Any]:
    """A valid event with ``text`` in ``field`` and a unique ``probe`` word the index must find."""
    ev = event(metadata={"probe": probe})
    ev["targets"] = [{"type": "doc", "id": "d1"}]
    if field in ("message", "reason"):
        ev[field] = text
    elif field == "metadata.note":
        ev["metadata"]["note"] = text
    elif field == "changes.config":
        ev["changes"] = {"config": [{"db": {"url": "x"}}, {"db": {"url": text}, "list": [text]}]}
    else:
        part, name = field.split(".")
        if part == "targets":
            ev["targets"][0][name] = text
        else:
            ev[part] = {**ev.get(part, {}), name: text}
            if part == "actor":
                ev["actor"].setdefault("id", "usr_1")
    return ev


def _words(core: str) -> list[str]:
    """The words free-text search would index the secret by (runs of letters and digits)."""
    return sorted(set(re.findall(r"[^\W_]{4,}", core)), key=len, reverse=True)[:2]


def _check_stored_nowhere(client: Client, keys: Keys, field: str, text: str, core: str) -> None:
    probe = "probe" + uuid.uuid4().hex[:12]
    r = client.post("/v1/events", json=[_place(field, text, probe)], headers=auth(keys.both))
    if r.status_code == 422 and field in ("actor.id", "targets.id"):
        # identifiers are visible ASCII: a secret with spaces in one is refused outright, stored nowhere
        assert core not in r.text or "must be visible ASCII" in r.text
        found = client.get("/v1/events", params={"q": probe}, headers=auth(keys.both)).json()["data"]
        assert found == []
        return
    assert r.status_code == 200, r.text
    eid = r.json()["results"][0]["id"]
    stored = client.get(f"/v1/events/{eid}", headers=auth(keys.both))
    assert stored.status_code == 200
    assert core not in stored.text
    assert "[REDACTED:" in stored.text
    found = client.get("/v1/events", params={"q": probe}, headers=auth(keys.both)).json()["data"]
    assert [e["id"] for e in found] == [eid]  # the index works for this event
    for word in _words(core):
        hits = client.get("/v1/events", params={"q": word}, headers=auth(keys.both)).json()["data"]
        assert eid not in [e["id"] for e in hits], f"{word!r} of the secret is in the full-text index"


@pytest.mark.settings(search_rate_limit="0")  # hypothesis reads back hundreds of events at once
@hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=embedded(), field=st.sampled_from(FIELDS))
def test_no_secret_survives_into_storage_the_index_or_the_logs(
    client: Client, keys: Keys, caplog: pytest.LogCaptureFixture, case: tuple[str, str, str], field: str
) -> None:
    """Every kind of secret, in every text field, is redacted before the event is stored, indexed or logged."""
    _, text, core = case
    limit = FIELD_LIMITS.get(field.replace("metadata.note", "metadata"), 500)
    if len(text) > limit:
        text = text[-limit:] if core in text[-limit:] else core
    caplog.set_level(logging.DEBUG)
    _check_stored_nowhere(client, keys, field, text, core)
    server_lines = [
        r.getMessage() for r in caplog.records if not r.name.startswith("httpx")
    ]  # not the test's
    assert server_lines == [] or all(core not in line for line in server_lines)


@pytest.mark.parametrize(
    ("field", "text", "core"),
    [
        ("message", "deploy with AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (
            "reason",
            "rotated ghp_R2d2C3poBb8aLuKeSkYwAlKeR0123456789x",
            "R2d2C3poBb8aLuKeSkYwAlKeR0123456789x",
        ),
        (
            "context.user_agent",
            "curl/8.0 Authorization: Token 9944b09199c62bcf9418ad846dd0e4bb",
            "9944b09199c6",
        ),
        ("context.route", "/hooks?token=abc123def456ghi", "abc123def456ghi"),
        ("context.request_id", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("actor.name", "ops https://admin:Pa55word99@db.example", "Pa55word99"),
        ("targets.name", "card 4111 1111 1111 1111", "4111 1111 1111 1111"),
        ("changes.config", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOp"),
    ],
)
def test_secrets_in_the_fields_the_attack_used_are_not_stored(
    client: Client, keys: Keys, field: str, text: str, core: str
) -> None:
    """message, reason, user agent, route, request id, actor name, target name, nested changes: all redacted
    (on SQLite and PostgreSQL)."""
    _check_stored_nowhere(client, keys, field, text, core)


@pytest.mark.parametrize(
    "key", ["pwd", "pass", "pin", "auth", "otp", "ssn", "PassWord", "pаssword", "pass\u200bword", "pass_word"]
)
def test_secret_key_names_found_stored_in_clear_are_redacted(client: Client, keys: Keys, key: str) -> None:
    """Key names the attack got past the old rules: short words, case, homoglyph, zero-width, separators."""
    r = client.post("/v1/events", json=[event(metadata={key: "hunter2-xyz"})], headers=auth(keys.both))
    eid = r.json()["results"][0]["id"]
    stored = client.get(f"/v1/events/{eid}", headers=auth(keys.both)).json()
    assert stored["metadata"] == {key: "[REDACTED:secret]"}
    hits = client.get("/v1/events", params={"q": "hunter2"}, headers=auth(keys.both)).json()["data"]
    assert hits == []


def test_an_action_that_is_a_credential_is_refused(client: Client, keys: Keys) -> None:
    """An identifier is never rewritten (searches and rules match it exactly): such an event is rejected."""
    r = client.post("/v1/events", json=[event("sk_live_abcdefghijklmnop1234")], headers=auth(keys.both))
    assert r.status_code == 422
    err = r.json()["error"]["details"][0]["errors"][0]
    assert err["field"] == "action" and "stripe_key" in err["message"]
    assert "abcdefghijklmnop1234" not in r.text


def test_identifiers_that_are_not_credentials_stay(client: Client, keys: Keys) -> None:
    """A session id, a request id and a UUID are stored as sent."""
    ev = event(
        actor={"id": "usr_1", "session_id": "ses_0893840663898bc9"},
        context={"request_id": "req_abc123", "trace_id": "0b6f7a0e-8d2f-4c7e-9c5b-1a2b3c4d5e6f"},
    )
    eid = client.post("/v1/events", json=[ev], headers=auth(keys.both)).json()["results"][0]["id"]
    stored = client.get(f"/v1/events/{eid}", headers=auth(keys.both)).json()
    assert stored["actor"]["session_id"] == "ses_0893840663898bc9"
    assert stored["context"] == {
        "request_id": "req_abc123",
        "trace_id": "0b6f7a0e-8d2f-4c7e-9c5b-1a2b3c4d5e6f",
    }


def test_a_redaction_grown_field_is_cut_to_its_limit(client: Client, keys: Keys) -> None:
    """A short secret becomes a longer marker; the stored field still fits its limit, so it reads back."""
    name = "x" * 240 + " pin=1234"
    eid = client.post("/v1/events", json=[event(actor={"id": "u", "name": name})], headers=auth(keys.both))
    stored = client.get(f"/v1/events/{eid.json()['results'][0]['id']}", headers=auth(keys.both))
    assert stored.status_code == 200
    assert len(stored.json()["actor"]["name"]) == 256 and "1234" not in stored.text


def test_tenant_rules_from_the_settings_file(
    settings: Settings, store: Store, keys: Keys, tmp_path: Path
) -> None:
    """redaction_rules: acme's own pattern and key word apply to acme, its allowed field is kept, globex is
    untouched by acme's rules."""
    rules = tmp_path / "redaction.json"
    rules.write_text(
        json.dumps(
            {
                "acme": {
                    "keys": ["badge"],
                    "patterns": {"acme_ticket": "TCK-[0-9]{6}"},
                    "allow": ["metadata.token_count"],
                }
            }
        )
    )
    tuned = Settings.load({**settings.values, "redaction_rules": str(rules)}, environ={})
    with TestClient(app=create_app(tuned, store)) as client:
        meta = {"badge_no": "B-7", "token_count": 1500, "note": "see TCK-123456"}
        for key in (keys.both, keys.other_tenant):
            r = client.post("/v1/events", json=[event(metadata=meta)], headers=auth(key))
            eid = r.json()["results"][0]["id"]
            got = client.get(f"/v1/events/{eid}", headers=auth(key)).json()["metadata"]
            if key == keys.both:
                assert got == {
                    "badge_no": "[REDACTED:secret]",
                    "token_count": 1500,
                    "note": "see [REDACTED:acme_ticket]",
                }
            else:
                assert got == {
                    "badge_no": "B-7",
                    "token_count": "[REDACTED:secret]",
                    "note": "see TCK-123456",
                }
