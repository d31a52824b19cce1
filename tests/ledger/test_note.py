"""Tests for vigil.ledger.note: checkpoint formatting and signed-note signing."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ledger.note import format_checkpoint, key_hash, sign_note, vkey
from vigil.verifier import Checkpoint, VerificationError, verify_checkpoint, verify_note

# Known answer from Go's golang.org/x/mod/sumdb/note documentation.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "vigil.example/tenant-a"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def test_signing_reproduces_go_known_answer() -> None:
    """key_hash, vkey and sign_note reproduce Go's sumdb/note example byte for byte."""
    key = Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)
    assert key_hash("PeterNeumann", public(key)).hex() == "c74f20a3"
    assert vkey("PeterNeumann", public(key)) == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_NOTE


def test_key_hash_definition(key: Ed25519PrivateKey) -> None:
    """The key ID is SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public(key)).digest()[:4]
    assert key_hash(ORIGIN, public(key)) == expected


def test_format_checkpoint_matches_c2sp_example() -> None:
    """format_checkpoint writes the three lines of the tlog-checkpoint example."""
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert format_checkpoint("example.com/behind-the-sofa", 20852163, root) == (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_signed_checkpoint_round_trips_through_verifier(key: Ed25519PrivateKey) -> None:
    """A checkpoint signed here verifies with vigil.verifier and returns what was signed."""
    root = hashlib.sha256(b"root").digest()
    note = sign_note(format_checkpoint(ORIGIN, 7, root, ["ext"]), ORIGIN, key)
    assert verify_checkpoint(note, vkey(ORIGIN, public(key))) == Checkpoint(ORIGIN, 7, root, ("ext",))


@settings(deadline=None, max_examples=50)
@given(
    origin=st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_any_checkpoint_round_trips(origin: str, size: int, root: bytes) -> None:
    """Every valid origin, size and root survives format, sign and verify."""
    key = Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)
    note = sign_note(format_checkpoint(origin, size, root), "log.example", key)
    assert verify_checkpoint(note, vkey("log.example", public(key))) == Checkpoint(origin, size, root)


def test_modified_signed_note_fails(key: Ed25519PrivateKey) -> None:
    """Changing the signed text after signing is detected."""
    note = sign_note(format_checkpoint(ORIGIN, 7, bytes(32)), ORIGIN, key)
    with pytest.raises(VerificationError):
        verify_note(note.replace("\n7\n", "\n8\n"), vkey(ORIGIN, public(key)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1, bytes(32)), "origin must not be empty"),
        (("a\nb", 1, bytes(32)), "newlines"),
        (("log", -1, bytes(32)), "tree size"),
        (("log", 2**64, bytes(32)), "tree size"),
        (("log", 1, bytes(31)), "32 bytes"),
        (("log", 1, bytes(32), [""]), "extension line must not be empty"),
        (("log", 1, bytes(32), ["a\nb"]), "newlines"),
    ],
)
def test_format_checkpoint_rejects_invalid_fields(args: tuple[object, ...], message: str) -> None:
    """Fields that would produce a malformed checkpoint are refused."""
    with pytest.raises(ValueError, match=message):
        format_checkpoint(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0here"])
def test_invalid_key_names_are_refused(key: Ed25519PrivateKey, name: str) -> None:
    """Key names must be non-empty, without Unicode spaces or '+'."""
    with pytest.raises(ValueError, match="key name"):
        sign_note("text\n", name, key)
    with pytest.raises(ValueError, match="key name"):
        vkey(name, public(key))


def test_sign_note_requires_a_clean_final_newline(key: Ed25519PrivateKey) -> None:
    """Note text must end with a newline and contain no other control characters."""
    with pytest.raises(ValueError, match="end with a newline"):
        sign_note("text", ORIGIN, key)
    with pytest.raises(ValueError, match="control characters"):
        sign_note("te\x00xt\n", ORIGIN, key)


def test_key_hash_requires_a_32_byte_key() -> None:
    """Ed25519 public keys are 32 bytes."""
    with pytest.raises(ValueError, match="32 bytes"):
        key_hash(ORIGIN, bytes(31))
