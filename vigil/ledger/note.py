"""Signing side of C2SP signed notes and tlog checkpoints.

The ledger publishes its tree heads as checkpoints (https://c2sp.org/tlog-checkpoint)
signed as notes (https://c2sp.org/signed-note) with an Ed25519 key, so that
`vigil.verifier.verify_checkpoint` and any other C2SP-aware tool (witnesses,
Go's ``golang.org/x/mod/sumdb/note``) can check them. Verification lives in
`vigil.verifier` alone, which keeps that file free of Vigil imports.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ED25519_ALGORITHM", "format_checkpoint", "key_hash", "sign_note", "vkey"]

ED25519_ALGORITHM = b"\x01"
"""signed-note signature type byte for Ed25519."""

_HASH_SIZE = 32
_ED25519_KEY_SIZE = 32
_EM_DASH = "\u2014"


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        raise ValueError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")


def _check_line(what: str, line: str) -> None:
    if not line:
        raise ValueError(f"{what} must not be empty")
    if any(ord(ch) < 0x20 for ch in line):
        raise ValueError(f"{what} must not contain newlines or control characters: {line!r}")


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """Return the tlog-checkpoint note text: origin, decimal size, base64 root, extension lines."""
    _check_line("checkpoint origin", origin)
    if not 0 <= size < 1 << 64:
        # Verifiers (ours and Go's) parse the size as an unsigned 64-bit integer.
        raise ValueError(f"tree size must be in [0, 2**64), got {size}")
    if len(root) != _HASH_SIZE:
        raise ValueError(f"root hash must be {_HASH_SIZE} bytes, got {len(root)}")
    for extension in extensions:
        _check_line("checkpoint extension line", extension)
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def key_hash(name: str, pubkey_bytes: bytes) -> bytes:
    """Return the 4-byte key ID ``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]`` of an Ed25519 key."""
    _check_key_name(name)
    if len(pubkey_bytes) != _ED25519_KEY_SIZE:
        raise ValueError(f"Ed25519 public key must be {_ED25519_KEY_SIZE} bytes, got {len(pubkey_bytes)}")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALGORITHM + pubkey_bytes).digest()[:4]


def vkey(name: str, public_key_bytes: bytes) -> str:
    """Return the verifier key ``<name>+<hex key ID>+<base64(0x01 || pubkey)>`` for an Ed25519 key."""
    key_id = key_hash(name, public_key_bytes)
    encoded = base64.b64encode(ED25519_ALGORITHM + public_key_bytes).decode("ascii")
    return f"{name}+{key_id.hex()}+{encoded}"


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return ``body`` signed as a note by ``private_key`` under the key name ``name``.

    ``body`` is the note text and must end with a newline.
    """
    _check_key_name(name)
    if not body.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in body):
        raise ValueError("note text must not contain control characters other than newline")
    message = body.encode("utf-8")
    public_key = private_key.public_key().public_bytes_raw()
    signature = key_hash(name, public_key) + private_key.sign(message)
    return f"{body}\n{_EM_DASH} {name} {base64.b64encode(signature).decode('ascii')}\n"
