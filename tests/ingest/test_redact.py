"""Secret redaction: every secret-named key is replaced, nothing else is touched."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.redact import REDACTED, is_secret_key, redact_changes, redact_metadata


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "new_password",
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
    ],
)
def test_secret_keys(key: str) -> None:
    """Common spellings of secret fields are recognised."""
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["plan", "user_id", "email", "ip", "record_count", "region"])
def test_plain_keys(key: str) -> None:
    """Ordinary fields are kept."""
    assert not is_secret_key(key)


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@given(st.dictionaries(st.text(max_size=12), scalars, max_size=10))
def test_redaction_is_exact_and_idempotent(meta: dict[str, Any]) -> None:
    """Secret keys become [REDACTED], other values are unchanged, and redacting twice changes nothing."""
    out = redact_metadata(meta)
    assert out.keys() == meta.keys()
    for k, v in meta.items():
        if is_secret_key(k):
            assert out[k] == REDACTED
        elif out[k] != v:
            assert out[k] == REDACTED and isinstance(v, str)  # a credential-looking value
    assert redact_metadata(out) == out


def test_credential_values_are_redacted_whatever_the_key() -> None:
    """Bearer headers and JWTs are caught by their shape."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    out = redact_metadata({"header": "Bearer abc.def", "note": jwt, "plain": "hello"})
    assert out == {"header": REDACTED, "note": REDACTED, "plain": "hello"}


def test_changes_of_secret_fields_are_redacted() -> None:
    """Both sides of a secret field's change are replaced; a null stays null."""
    out = redact_changes({"password_hash": [None, "x"], "name": ["a", "b"]})
    assert out == {"password_hash": [None, REDACTED], "name": ["a", "b"]}
