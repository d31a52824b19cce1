"""Vigil's proofs and checkpoints, checked by code written in this file from the specifications alone.

The checks below follow RFC 9162 section 2.1 (Merkle Tree Hash, inclusion and consistency verification), C2SP
signed-note (note text, signature lines, Ed25519 key IDs and verifier keys) and C2SP tlog-checkpoint (origin,
size, root hash). They deliberately import nothing from ``vigil.verifier`` or ``vigil.ledger``, so a mistake
shared by Vigil's prover and Vigil's verifier cannot hide here. They are then run against the real app.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.auth import create_key
from vigil.store import Store

Client = TestClient[Any]

# --- RFC 9162 section 2.1 -----------------------------------------------------------------------------------


class Rejected(Exception):
    """The independent checks refuse what they were given."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))  (section 2.1.1)."""
    return sha256(b"\x00" + entry)


def interior(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  (section 2.1.1)."""
    return sha256(b"\x01" + left + right)


def mth(leaves: list[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes, by the recursive definition of section 2.1.1."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:  # k is the largest power of two smaller than n
        k *= 2
    return interior(mth(leaves[:k]), mth(leaves[k:]))


def check_inclusion(leaf_index: int, tree_size: int, leaf: bytes, path: list[bytes], root: bytes) -> None:
    """Section 2.1.3.2, step by step."""
    if leaf_index >= tree_size:  # 1
        raise Rejected("leaf index is not in the tree")
    fn, sn = leaf_index, tree_size - 1  # 2
    r = leaf  # 3
    for p in path:  # 4
        if sn == 0:  # 4a
            raise Rejected("path is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:  # 4b
            r = interior(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            r = interior(r, p)
        fn //= 2  # 4c
        sn //= 2
    if sn != 0 or r != root:  # 5
        raise Rejected("inclusion path does not lead to the root")


def check_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> None:
    """Section 2.1.4.2, step by step (for first < second; equal trees have an empty proof and equal roots)."""
    if not 0 < first <= second:
        raise Rejected("sizes out of order")
    if first == second:
        if path or first_hash != second_hash:
            raise Rejected("equal sizes need an empty proof and equal roots")
        return
    if not path:  # 1
        raise Rejected("empty consistency path")
    if first & (first - 1) == 0:  # 2: first is an exact power of two
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1  # 3
    while fn % 2 == 1:  # 4
        fn //= 2
        sn //= 2
    fr = sr = path[0]  # 5
    for c in path[1:]:  # 6
        if sn == 0:  # 6a
            raise Rejected("path is too long")
        if fn % 2 == 1 or fn == sn:  # 6b
            fr = interior(c, fr)
            sr = interior(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            sr = interior(sr, c)
        fn //= 2  # 6c
        sn //= 2
    if fr != first_hash or sr != second_hash or sn != 0:  # 7
        raise Rejected("consistency path does not lead to both roots")


# --- C2SP signed-note and tlog-checkpoint -------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


@dataclass(frozen=True)
class TreeHead:
    origin: str
    size: int
    root: bytes


def b64(text: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded, nothing else."""
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text) or len(text) % 4:
        raise Rejected(f"not standard base64: {text!r}")
    return base64.b64decode(text)


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || 32-byte public key), first four bytes."""
    return sha256(name.encode() + b"\n" + b"\x01" + public_key)[:4]


def parse_vkey(text: str) -> VerifierKey:
    """``<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>``."""
    name, key_id_hex, key_b64 = text.split("+", 2)  # the base64 key may itself hold "+"
    raw = b64(key_b64)
    if not name or re.search(r"\s", name) or raw[:1] != b"\x01" or len(raw) != 33:
        raise Rejected("not an Ed25519 verifier key")
    key_id = bytes.fromhex(key_id_hex)
    if len(key_id) != 4 or key_id != ed25519_key_id(name, raw[1:]):
        raise Rejected("key ID does not belong to this name and key")
    return VerifierKey(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))


def open_note(note: str, key: VerifierKey) -> str:
    """Return the text of a signed note that carries a valid signature by ``key``."""
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note) or not note.endswith("\n"):
        raise Rejected("control characters, or no final newline")
    cut = note.rfind("\n\n")  # the text ends at the last blank line
    if cut < 0:
        raise Rejected("no blank line before the signatures")
    text, signatures = note[: cut + 1], note[cut + 2 :]
    good = False
    for line in signatures.removesuffix("\n").split("\n"):
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if m is None:
            raise Rejected(f"malformed signature line {line!r}")
        blob = b64(m.group(2))
        if m.group(1) != key.name or blob[:4] != key.key_id:
            continue  # someone else's signature: ignored, as the spec requires
        try:
            key.public_key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise Rejected("bad signature by the trusted key") from None
        good = True
    if not good:
        raise Rejected("no signature by the trusted key")
    return text


def parse_checkpoint(text: str) -> TreeHead:
    """Origin line, decimal tree size, base64 root hash, then optional extension lines."""
    lines = text.removesuffix("\n").split("\n")
    if len(lines) < 3 or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise Rejected("not a checkpoint")
    root = b64(lines[2])
    if len(root) != 32:
        raise Rejected("root hash is not 32 bytes")
    return TreeHead(lines[0], int(lines[1]), root)


# --- the independent checks refuse what they must refuse ----------------------------------------------------


def test_independent_checks_refuse_altered_proofs() -> None:
    """Sanity: the code above rejects a proof with one bit flipped, a wrong index and a wrong size."""
    leaves = [leaf_hash(b"%d" % i) for i in range(11)]
    root = mth(leaves)
    path = [mth(leaves[5:6]), mth(leaves[6:8]), mth(leaves[0:4]), mth(leaves[8:11])]
    check_inclusion(4, 11, leaves[4], path, root)
    flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
    for index, size, proof in ((5, 11, path), (4, 17, path), (4, 11, flipped), (4, 11, path[:-1])):
        with pytest.raises(Rejected):
            check_inclusion(index, size, leaves[4], proof, root)
    check_consistency(4, 11, mth(leaves[:4]), root, [mth(leaves[4:8]), mth(leaves[8:11])])
    with pytest.raises(Rejected):
        check_consistency(4, 11, mth(leaves[:4]), root, [mth(leaves[8:11]), mth(leaves[4:8])])


# --- against the real app -----------------------------------------------------------------------------------


def ingest(client: Client, key: str, count: int, start: int) -> list[str]:
    r = client.post(
        "/v1/events",
        json=[event(f"document.v{(start + i) % 5}", message=f"event {start + i}") for i in range(count)],
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()["results"]]


@pytest.mark.settings(search_rate_limit="0")  # two hundred proofs at once: over the per-key read limit
def test_app_proofs_and_checkpoints_verify_independently(client: Client, store: Store, keys: Keys) -> None:
    """Signed checkpoints, the verifier key, an inclusion proof for every event at two tree sizes and consistency
    proofs from every smaller size all check out with code written from RFC 9162 and C2SP alone."""
    admin = create_key(store, store.get_tenant("acme"), frozenset({"admin", "read", "ingest"}))[1]
    ids = ingest(client, admin, 37, 0)
    first_note = client.post("/v1/checkpoints", headers=auth(admin))
    assert first_note.status_code == 201
    ids += ingest(client, admin, 64, 37)
    second_note = client.post("/v1/checkpoints", headers=auth(admin))
    assert second_note.status_code == 201

    key_text = client.get("/v1/checkpoints/key").text
    assert key_text.endswith("\n")
    key = parse_vkey(key_text.strip())
    latest = client.get("/v1/checkpoints/latest", headers=auth(keys.read)).text
    assert latest == second_note.text
    at_37 = client.get("/v1/checkpoints?size=37", headers=auth(keys.read)).text
    assert at_37 == first_note.text
    heads = {h.size: h for h in (parse_checkpoint(open_note(n, key)) for n in (at_37, latest))}
    assert sorted(heads) == [37, 101]
    assert {h.origin for h in heads.values()} == {"vigil/acme"}

    export = client.get("/v1/export?format=ndjson", headers=auth(keys.read))
    assert export.status_code == 200
    # each line is the event with its seq and leaf_hash; the leaf is the rest, canonicalised (RFC 8785)
    lines = [json.loads(line) for line in export.content.split(b"\n")[:-1]]
    leaves = [
        leaf_hash(rfc8785.dumps({k: v for k, v in e.items() if k not in ("seq", "leaf_hash")})) for e in lines
    ]
    assert [bytes.fromhex(e["leaf_hash"]) for e in lines] == leaves
    assert len(leaves) == 101
    assert mth(leaves[:37]) == heads[37].root and mth(leaves) == heads[101].root

    for seq, event_id in enumerate(ids):
        for size in (101, 37) if seq < 37 else (101,):
            query = "" if size == 101 else f"?tree_size={size}"
            r = client.get(f"/v1/events/{event_id}/proof{query}", headers=auth(keys.read))
            assert r.status_code == 200, r.text
            p = r.json()
            assert (p["leaf_index"], p["tree_size"]) == (seq, size)
            assert bytes.fromhex(p["leaf_hash"]) == leaves[seq]
            check_inclusion(
                seq, size, leaves[seq], [bytes.fromhex(h) for h in p["audit_path"]], heads[size].root
            )
            assert parse_checkpoint(open_note(p["checkpoint"], key)) == heads[size]

    for first in range(1, 102):
        r = client.get(f"/v1/checkpoints/consistency?first={first}&second=101", headers=auth(keys.read))
        assert r.status_code == 200, r.text
        c = r.json()
        first_root = heads[first].root if first in heads else mth(leaves[:first])
        assert bytes.fromhex(c["first_root"]) == first_root
        check_consistency(first, 101, first_root, heads[101].root, [bytes.fromhex(h) for h in c["proof"]])


def test_app_checkpoint_signatures_are_refused_when_altered(client: Client, store: Store, keys: Keys) -> None:
    """The independent note check refuses a served checkpoint with its size changed, or checked with another key."""
    admin = create_key(store, store.get_tenant("acme"), frozenset({"admin", "ingest"}))[1]
    ingest(client, admin, 5, 0)
    note = client.post("/v1/checkpoints", headers=auth(admin)).text
    key = parse_vkey(client.get("/v1/checkpoints/key").text.strip())
    assert parse_checkpoint(open_note(note, key)).size == 5
    with pytest.raises(Rejected, match="bad signature"):
        open_note(note.replace("\n5\n", "\n6\n", 1), key)
    other = VerifierKey(key.name, key.key_id, Ed25519PublicKey.from_public_bytes(b"\x01" * 32))
    with pytest.raises(Rejected, match="bad signature"):
        open_note(note, other)
    stranger = VerifierKey("someone-else", b"\x00\x00\x00\x00", key.public_key)
    with pytest.raises(Rejected, match="no signature by the trusted key"):
        open_note(note, stranger)
