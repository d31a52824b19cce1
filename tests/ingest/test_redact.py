"""The redaction engine: every found case, key-name variants, what must stay, and its algebra (idempotent, total)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secret_shapes import SECRETS, embedded

from vigil.errors import ConfigError
from vigil.ingest.redact import (
    DEFAULT,
    SECRET,
    Redactor,
    is_secret_key,
    luhn_ok,
    marker,
    redact_changes,
    redact_metadata,
    triggered,
)
from vigil.ingest.redaction_rules import TenantRedaction

FOUND = [
    ("aws_access_key_id", "key AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key_id", "ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_secret_key", "secret is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.", "wJalrXUtnFEMI/K7MDENG"),
    ("github_token", "used ghp_R2d2C3poBb8aLuKeSkYwAlKeR0123456789x", "ghp_R2d2C3po"),
    ("github_token", "gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7e42F"),
    (
        "github_token",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",
        "11ABCDEFG",
    ),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKl"),
    ("stripe_key", "charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("stripe_key", "rk_live_51H8cE2KZvKYlo2C0aIiXyZ0123456789", "51H8cE2KZvKYlo2C"),
    (
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx1y2\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIB",
    ),
    ("private_key", "k=-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNzaC1r"),
    ("card_number", "paid with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
    ("card_number", "card=5555555555554444", "5555555555554444"),
    ("card_number", "amex 3782-822463-10005", "822463"),
    ("url_credentials", "clone https://deploy:Hunter2Pass@git.example.com/x.git", "Hunter2Pass"),
    ("url_credentials", "postgresql://app:s3cr3t@w0rd@db:5432/prod", "s3cr3t"),
    ("auth_header", "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b09199c6"),
    (
        "auth_header",
        'Digest username="Mufasa", realm="x", nonce="dcd98b7102dd2f0e", response="6629fae49393a053"',
        "6629fae49393a053",
    ),
    ("auth_header", "Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNz"),
    (
        "jwt",
        "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3",
    ),
    ("vigil_key", "leaked vk_0123456789abcdef_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE", "Zm9vYmFyYmF6"),
    ("secret", "login failed: password=hunter2", "hunter2"),
    ("secret", '{"client_secret": "shhh-123"}', "shhh-123"),
]


@pytest.mark.parametrize(
    ("kind", "text", "core"), FOUND, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(FOUND)]
)
def test_each_found_credential_shape_is_redacted_where_it_stands(kind: str, text: str, core: str) -> None:
    """Every shape the attack stored in clear is replaced by [REDACTED:<kind>], wherever in the string."""
    out = DEFAULT.text(text)
    assert core not in out
    assert marker(kind) in out


@pytest.mark.parametrize(
    "text",
    [
        "req_abc123",
        "req_6674331914327999",  # 16 digits inside an identifier, Luhn-valid: still a request id
        "ses_0893840663898bc9",
        "0b6f7a0e-8d2f-4c7e-9c5b-1a2b3c4d5e6f",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a git commit
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "/api/v1/projects/{id}/members",
        "Token expired for usr_1",
        "Basic plan upgraded",
        "export 2024-01-15 2024-02-15",
        "epoch 1712345678901",
        "4111 1111 1111 1112",  # fails Luhn
        "call +49 30 1234 5678",
        "https://user@example.com/no-password",
        "shipping: free",
        "[REDACTED:secret]",
    ],
)
def test_identifiers_and_ordinary_text_stay(text: str) -> None:
    """Session and request ids, UUIDs, hashes, user agents, routes and plain sentences are not credentials."""
    assert DEFAULT.text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "PASSWORD",
        "PassWord",
        "new_password",
        "pass-word",
        "p.a.s.s.w.o.r.d",
        "pass\u200bword",
        "pass\u00adword",
        "\ufeffpassword",
        "pаssword",
        "раsswоrd",
        "ΡΑSSWΟRD",
        "ｐａｓｓｗｏｒｄ",
        "pässwörd",
        "p4ssw0rd",
        "pwd",
        "PWD",
        "pass",
        "user_pass",
        "pin",
        "PIN",
        "userPIN",
        "pinCode",
        "auth",
        "Auth",
        "auth_header",
        "otp",
        "totp",
        "ssn",
        "SSN",
        "customer_ssn",
        "cvv",
        "secret",
        "client-secret",
        "token",
        "accessToken",
        "api_key",
        "API-Key",
        "apiKey",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "private_key",
        "aws_access_key_id",
        "credentials",
        "card_number",
        "creditCard",
    ],
)
def test_secret_key_names_in_every_spelling(key: str) -> None:
    """Case, separators, zero-width and format characters, homoglyphs, full width, accents and leet all match."""
    assert is_secret_key(key)
    assert redact_metadata({key: "hunter2"}) == {key: SECRET}


@pytest.mark.parametrize(
    "key",
    [
        "plan",
        "user_id",
        "email",
        "ip",
        "record_count",
        "region",
        "shipping",
        "author",
        "compass",
        "passenger",
        "classname",
        "opinion",
        "session_id",
        "request_id",
        "method",
    ],
)
def test_plain_keys(key: str) -> None:
    """Ordinary fields are kept, and so are words that merely contain a short secret word."""
    assert not is_secret_key(key)


def test_secrets_nested_inside_changes_values_are_redacted() -> None:
    """A change value that is a structure is walked: secret keys and credential strings inside it go."""
    changes = {
        "config": [
            {"db": {"password": "old-pw"}},
            {"db": {"password": "new-pw", "url": "redis://:Sup3rS3cret@r:6379"}},
        ],
        "webhooks": [[], ["https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"]],
        "name": ["a", "b"],
        "mfa_enabled": [False, True],
    }
    out = redact_changes(changes)
    dumped = json.dumps(out)
    for secret in ("old-pw", "new-pw", "Sup3rS3cret", "XXXXXXXXXXXXXXXX"):
        assert secret not in dumped
    assert out["name"] == ["a", "b"] and out["mfa_enabled"] == [False, True]
    assert out["config"][1]["db"]["password"] == SECRET


def test_changes_of_secret_fields_are_redacted() -> None:
    """Both sides of a secret field's change are replaced; a null stays null."""
    out = redact_changes({"password_hash": [None, "x"], "name": ["a", "b"]})
    assert out == {"password_hash": [None, SECRET], "name": ["a", "b"]}


def test_a_card_number_sent_as_a_number_is_redacted() -> None:
    """Metadata values may be integers: 4111111111111111 is a card number whatever its JSON type."""
    assert redact_metadata({"note": 4111111111111111, "count": 4111111111111112}) == {
        "note": marker("card_number"),
        "count": 4111111111111112,
    }


def test_a_credential_used_as_a_key_is_renamed() -> None:
    """Keys are strings of the event too."""
    out = redact_metadata({"AKIAIOSFODNN7EXAMPLE": "x"})
    assert out == {marker("aws_access_key_id"): "x"}


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713") and not luhn_ok("4111111111111112")


@settings(max_examples=300)
@given(embedded())
def test_no_generated_secret_survives_in_any_text(case: tuple[str, str, str]) -> None:
    """Secrets of every kind, inside ordinary text, never survive; the marker names a kind."""
    _, text, core = case
    out = DEFAULT.text(text)
    assert core not in out
    assert "[REDACTED:" in out


@settings(max_examples=200)
@given(st.lists(st.one_of(embedded().map(lambda c: c[1]), st.text(max_size=40)), max_size=5).map(" ".join))
def test_redaction_is_idempotent(text: str) -> None:
    """Redacting twice changes nothing: the SDK redacts and the server redacts the same bytes again."""
    once = DEFAULT.text(text)
    assert DEFAULT.text(once) == once


@settings(max_examples=200)
@given(st.text(max_size=80), SECRETS, st.text(max_size=80))
def test_triggers_never_miss_a_detector_that_matches(
    before: str, secret: tuple[str, str, str], after: str
) -> None:
    """The cheap trigger scan is a superset: joining strings with newlines never hides a secret from it."""
    text = "\n".join([before, secret[1], after])
    assert any(d.kind == secret[0] for d in triggered(text)), triggered(text)


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@given(st.dictionaries(st.text(max_size=12), scalars, max_size=10))
def test_metadata_redaction_is_exact_and_idempotent(meta: dict[str, Any]) -> None:
    """Secret keys' values (not flags or nulls) become the marker; redacting twice changes nothing."""
    out = redact_metadata(meta)
    for k, v in meta.items():
        if k in out and is_secret_key(k) and v is not None and not isinstance(v, bool):
            assert out[k] == SECRET
    assert redact_metadata(out) == out


def test_tenant_rules_add_key_words_and_patterns_and_allow_fields(tmp_path: Path) -> None:
    """A tenant's own words and patterns apply to it alone; an allowed field is left as sent."""
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "*": {"keys": ["employee_number"]},
                "acme": {"patterns": {"acme_token": r"ACME-[0-9]{8}"}, "allow": ["metadata.api_key_name"]},
            }
        )
    )
    rules = TenantRedaction.load(str(path))
    acme, other = rules.for_tenant("acme"), rules.for_tenant("globex")
    assert acme.mapping({"Employee-Number": "E1"}) == {"Employee-Number": SECRET}
    assert other.mapping({"employeeNumber": "E1"}) == {"employeeNumber": SECRET}
    assert acme.text("ticket ACME-12345678") == "ticket [REDACTED:acme_token]"
    assert other.text("ticket ACME-12345678") == "ticket ACME-12345678"
    assert acme.mapping({"api_key_name": "ci"}, "metadata") == {"api_key_name": "ci"}
    assert other.mapping({"api_key_name": "ci"}, "metadata") == {"api_key_name": SECRET}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"acme": {"pattern": {}}}', "unknown fields"),
        ('{"acme": {"patterns": {"x": "("}}}', "pattern x"),
        ('{"acme": {"patterns": {"Bad Kind": "x"}}}', "kind"),
        ('{"acme": {"keys": "password"}}', "list of strings"),
    ],
)
def test_a_bad_rules_file_stops_the_start(tmp_path: Path, content: str, words: str) -> None:
    """Fail closed: a rules file that cannot be used is an error at start that says why."""
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        TenantRedaction.load(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        TenantRedaction.load(str(tmp_path / "missing.json"))


def test_a_redactor_refuses_an_empty_key_word() -> None:
    with pytest.raises(ValueError, match="letters or digits"):
        Redactor(keys=["--"])
