"""Offline verifier for Vigil audit-log proofs and checkpoints.

This file is meant to be copied out of Vigil and read in one sitting by an
auditor. It depends only on the Python standard library, plus the
`cryptography` package for Ed25519 inside `verify_checkpoint` (and
`verify_note`). It imports nothing from Vigil.

What it checks:

* `verify_inclusion`: a leaf is in a tree of a given size and root
  (RFC 9162, section 2.1.3.2).
* `verify_consistency`: a tree is an append-only extension of an older one
  (RFC 9162, section 2.1.4.2).
* `verify_checkpoint`: a tree head (https://c2sp.org/tlog-checkpoint) was
  signed by the log's Ed25519 key (https://c2sp.org/signed-note).

Every check returns None on success and raises `VerificationError` on any
failure; there is no "False" result to forget to test. All hashes are
SHA-256, 32 bytes. A leaf hash is ``SHA-256(0x00 || leaf data)`` and an
interior node is ``SHA-256(0x01 || left || right)``.

A typical audit: verify a checkpoint with the log's published verifier key,
then verify an event's inclusion proof against the checkpoint's root, and a
consistency proof from the previous checkpoint you trusted to this one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HASH_SIZE",
    "Checkpoint",
    "VerificationError",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]

HASH_SIZE = 32
_ED25519_ALGORITHM = 0x01
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
# signed-note: verifiers SHOULD cap the number of signatures, MUST accept 16.
_MAX_SIGNATURES = 100
_EM_DASH = "\u2014"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


class VerificationError(Exception):
    """A proof, signature or checkpoint did not verify; says what was expected and what was found."""

    def __init__(self, message: str, *, expected: object = None, found: object = None) -> None:
        """Build the error; ``expected`` and ``found`` are kept as attributes and shown in the message."""
        self.expected = expected
        self.found = found
        details = []
        if expected is not None:
            details.append(f"expected {_show(expected)}")
        if found is not None:
            details.append(f"found {_show(found)}")
        super().__init__(f"{message} ({', '.join(details)})" if details else message)


def _show(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


# --- Merkle tree hashing (RFC 9162, section 2.1.1) ---------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash (MTH) of a list of leaf hashes, straight from RFC 9162's definition."""
    for i, h in enumerate(leaf_hashes):
        _check_hash(f"leaf hash {i}", h)
    return _mth(leaf_hashes)


def _mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(
            f"{what} has the wrong length", expected=f"{HASH_SIZE} bytes", found=f"{len(value)} bytes"
        )


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(f"proof hash {i}", h)


def _steps_left(fn: int, sn: int) -> int:
    """Count the proof hashes the RFC 9162 loop would still consume from this (fn, sn) state."""
    steps = 0
    while sn != 0:
        if fn & 1 or fn == sn:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
        steps += 1
    return steps


# --- Inclusion proofs (RFC 9162, section 2.1.3.2) ----------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf number ``index`` of the tree of ``tree_size`` leaves with ``root``."""
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof_hashes(proof)
    if index < 0 or tree_size <= index:
        raise VerificationError(
            "leaf index is outside the tree", expected=f"0 <= index < {tree_size}", found=index
        )
    # fn walks up from the leaf, sn from the last leaf; the tree is complete
    # once they meet at the root (sn == 0).
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for used, p in enumerate(proof):
        if sn == 0:
            raise VerificationError(
                "inclusion proof is too long", expected=f"{used} hashes", found=f"{len(proof)} hashes"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A node that is last on its level and a left child has no
            # sibling there; it is promoted unchanged, with no proof hash.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            "inclusion proof is too short",
            expected=f"{len(proof) + _steps_left(fn, sn)} hashes",
            found=f"{len(proof)} hashes",
        )
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root", expected=root, found=r)


# --- Consistency proofs (RFC 9162, section 2.1.4.2) --------------------------


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the tree of ``size1`` with ``root1``."""
    _check_hash("first root", root1)
    _check_hash("second root", root2)
    _check_proof_hashes(proof)
    if size1 <= 0:
        # RFC 9162 defines no proof from the empty tree; accepting one would
        # let any tree pass as an extension of "nothing verified yet".
        raise VerificationError(
            "no consistency proof exists from an empty tree", expected="size1 >= 1", found=size1
        )
    if size1 > size2:
        raise VerificationError(
            "the first tree is larger than the second", expected=f"size1 <= {size2}", found=size1
        )
    if size1 == size2:
        if proof:
            raise VerificationError(
                "consistency proof between equal sizes must be empty",
                expected="0 hashes",
                found=f"{len(proof)} hashes",
            )
        if root1 != root2:
            raise VerificationError("trees of equal size have different roots", expected=root1, found=root2)
        return

    # 1. An empty proof can never prove growth.
    if not proof:
        raise VerificationError("consistency proof is empty", expected="at least 1 hash", found="0 hashes")
    # 2. When the old tree is a perfect subtree the proof omits its root,
    #    which the verifier already holds.
    prepended = size1 & (size1 - 1) == 0
    path = [root1, *proof] if prepended else list(proof)
    # 3.-4. Start from the old tree's rightmost node that is a full subtree.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr rebuilds the old root, sr the new one.
    fr = sr = path[0]
    # 6.
    for used, c in enumerate(path[1:], start=1):
        if sn == 0:
            raise VerificationError(
                "consistency proof is too long",
                expected=f"{used - int(prepended)} hashes",
                found=f"{len(proof)} hashes",
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise VerificationError(
            "consistency proof is too short",
            expected=f"{len(proof) + _steps_left(fn, sn)} hashes",
            found=f"{len(proof)} hashes",
        )
    if fr != root1:
        raise VerificationError("consistency proof does not lead to the first root", expected=root1, found=fr)
    if sr != root2:
        raise VerificationError(
            "consistency proof does not lead to the second root", expected=root2, found=sr
        )


# --- Signed notes (https://c2sp.org/signed-note) -----------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A verified tree head: the log's origin line, its size and root hash, and any extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def _b64decode(what: str, text: str) -> bytes:
    """Decode standard, padded base64, rejecting any other spelling of the same bytes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not valid base64", found=repr(text)) from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not canonical base64", found=repr(text))
    return raw


def _check_key_name(what: str, name: str) -> None:
    if not name or "+" in name or any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        raise VerificationError(
            f"{what} is not a valid key name (non-empty, no spaces, no '+')", found=repr(name)
        )


def _parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """Parse ``<name>+<hex key ID>+<base64(0x01 || Ed25519 public key)>`` into (name, key ID, public key)."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise VerificationError("verifier key must be <name>+<key id>+<key>", found=repr(vkey))
    name, key_id_hex, key_b64 = parts
    _check_key_name("verifier key name", name)
    if not _HEX_KEY_ID.fullmatch(key_id_hex):
        raise VerificationError("verifier key ID must be 8 hex digits", found=repr(key_id_hex))
    key = _b64decode("verifier key", key_b64)
    if len(key) != 1 + _ED25519_KEY_SIZE or key[0] != _ED25519_ALGORITHM:
        raise VerificationError(
            "verifier key is not an Ed25519 key",
            expected=f"0x01 followed by {_ED25519_KEY_SIZE} bytes",
            found=f"{len(key)} bytes starting with {key[:1].hex() or 'nothing'}",
        )
    key_id = hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()[:_KEY_ID_SIZE]
    if key_id != bytes.fromhex(key_id_hex):
        raise VerificationError(
            "verifier key ID does not match its name and key", expected=key_id.hex(), found=key_id_hex
        )
    return name, key_id, key[1:]


def verify_note(note_text: str, vkey: str) -> str:
    """Verify a signed note against one Ed25519 verifier key; return the signed text.

    The text is returned only when at least one signature line carries the
    key's name and key ID and every such line verifies. Signatures by other
    keys (witnesses, rotated keys) are ignored, as the spec requires.
    """
    # Imported here so that proof verification works without `cryptography`.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, key_id, public_key_bytes = _parse_vkey(vkey)
    try:
        public_key = Ed25519PublicKey.from_public_bytes(public_key_bytes)
    except ValueError:
        raise VerificationError("verifier key is not a valid Ed25519 public key") from None
    try:
        note_text.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError("note is not valid UTF-8") from None
    bad = next((ch for ch in note_text if ord(ch) < 0x20 and ch != "\n"), None)
    if bad is not None:
        raise VerificationError(
            "note contains a control character", expected="only newline", found=f"U+{ord(bad):04X}"
        )
    if not note_text.endswith("\n"):
        raise VerificationError("note must end with a newline", found=repr(note_text[-20:]))
    # The text ends at the last blank line: it may contain blank lines itself,
    # but signature lines never do.
    split = note_text.rfind("\n\n")
    if split < 0:
        raise VerificationError("note has no blank line between its text and its signatures")
    text, signature_block = note_text[: split + 1], note_text[split + 2 :]
    lines = signature_block.split("\n")[:-1]
    if not lines:
        raise VerificationError("note has no signature lines")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError(
            "note has too many signature lines", expected=f"at most {_MAX_SIGNATURES}", found=len(lines)
        )

    verified = 0
    for number, line in enumerate(lines, start=1):
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != _EM_DASH:
            raise VerificationError(
                f"signature line {number} is malformed",
                expected="'\u2014 <key name> <base64 signature>'",
                found=repr(line),
            )
        _, line_name, signature_b64 = fields
        _check_key_name(f"signature line {number} key name", line_name)
        blob = _b64decode(f"signature line {number}", signature_b64)
        if len(blob) <= _KEY_ID_SIZE:
            raise VerificationError(
                f"signature line {number} is too short to hold a key ID and signature",
                found=f"{len(blob)} bytes",
            )
        if line_name != name or blob[:_KEY_ID_SIZE] != key_id:
            continue
        signature = blob[_KEY_ID_SIZE:]
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            raise VerificationError(
                f"signature line {number} is not an Ed25519 signature",
                expected=f"{_ED25519_SIGNATURE_SIZE} bytes",
                found=f"{len(signature)} bytes",
            )
        try:
            public_key.verify(signature, text.encode("utf-8"))
        except InvalidSignature:
            # A known key's bad signature condemns the whole note, even if
            # another line by the same key would verify.
            raise VerificationError(f"signature line {number} by {name} does not verify") from None
        verified += 1
    if verified == 0:
        raise VerificationError(
            "note carries no signature by the trusted key",
            expected=f"a signature by {name} with key ID {key_id.hex()}",
            found=f"{len(lines)} signature line(s) by other keys",
        )
    return text


# --- Checkpoints (https://c2sp.org/tlog-checkpoint) --------------------------


def verify_checkpoint(note_text: str, vkey: str, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint against the log's verifier key and return the tree head it states.

    Pass ``origin`` to also require the checkpoint's origin line to name the
    log you expect; without it, check `Checkpoint.origin` yourself.
    """
    text = verify_note(note_text, vkey)
    # A note's text always ends with a newline, so the last split item is empty.
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationError(
            "checkpoint must have origin, size and root hash lines",
            expected="at least 3 lines",
            found=f"{len(lines)} lines",
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise VerificationError(f"checkpoint line {number} is empty")
    found_origin, size_text, root_text, *extensions = lines
    if origin is not None and found_origin != origin:
        raise VerificationError("checkpoint is for another log", expected=origin, found=found_origin)
    if not _DECIMAL.fullmatch(size_text):
        raise VerificationError(
            "checkpoint tree size is not a decimal number without leading zeros", found=repr(size_text)
        )
    size = int(size_text[:21])  # bounded: int() of a huge digit string is slow, and refused past 4300 digits
    if len(size_text) > 20 or size >= 1 << 64:
        raise VerificationError("checkpoint tree size does not fit in 64 bits", found=size_text[:40])
    root = _b64decode("checkpoint root hash", root_text)
    if len(root) != HASH_SIZE:
        raise VerificationError(
            "checkpoint root hash has the wrong length",
            expected=f"{HASH_SIZE} bytes",
            found=f"{len(root)} bytes",
        )
    return Checkpoint(origin=found_origin, size=size, root=root, extensions=tuple(extensions))


# --- Export bundles --------------------------------------------------------------------------------------
#
# A bundle is a zip file holding a contiguous slice of one tenant's log and what proves it:
#
#   manifest.json          tenant, origin, first_seq, end_seq, tree_size, left[], right[], consistency[]
#   events.ndjson          the events' canonical bytes (the Merkle leaves), one per line, seq first_seq upward
#   checkpoint.txt         the signed checkpoint of size tree_size (>= end_seq)
#   first-checkpoint.txt   the tenant's first checkpoint; consistency[] proves checkpoint.txt extends it
#   vkey.txt               the log's verifier key (compare it with the one the vendor published)
#
# left[] are the roots of the perfect subtrees covering [0, first_seq) and right[] those covering
# [end_seq, tree_size); with the leaves in between they rebuild the checkpoint's root.

BUNDLE_FORMAT = "vigil-bundle/1"


@dataclass(frozen=True)
class BundleReport:
    """What a verified bundle proves: events [first_seq, end_seq) of a tenant are in its signed tree."""

    tenant: str
    first_seq: int
    end_seq: int
    tree_size: int
    first_checkpoint_size: int
    key_from_bundle: bool


def aligned_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The fewest aligned perfect subtrees (level, index) covering leaves [lo, hi), left to right."""
    out = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else hi.bit_length() - 1
        while lo + (1 << level) > hi:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


class _RangeRoot:
    """Rebuilds a tree's root from the subtree roots left of a run of leaves, the leaves one at a time (so a
    bundle's events are never all in memory), and the subtree roots right of them."""

    def __init__(
        self, first: int, end: int, left: Sequence[bytes], right: Sequence[bytes], tree_size: int
    ) -> None:
        if not 0 <= first <= end <= tree_size or tree_size == 0:
            raise VerificationError(
                "bundle range does not fit in the tree",
                expected=f"0 <= {first} <= {end} <= size",
                found=tree_size,
            )
        left_nodes, self._right_nodes = aligned_subtrees(0, first), aligned_subtrees(end, tree_size)
        if len(left) != len(left_nodes) or len(right) != len(self._right_nodes):
            raise VerificationError(
                "wrong number of subtree hashes in the bundle",
                expected=f"{len(left_nodes)} left, {len(self._right_nodes)} right",
                found=f"{len(left)} left, {len(right)} right",
            )
        self._stack: list[tuple[int, int, bytes]] = []
        self._next, self._end, self._right = first, end, right
        for (level, index), h in zip(left_nodes, left, strict=True):
            self._push(level, index, h)

    def _push(self, level: int, index: int, h: bytes) -> None:
        _check_hash("subtree hash", h)
        stack = self._stack
        while stack and stack[-1][0] == level and index % 2 == 1 and stack[-1][1] == index - 1:
            h = node_hash(stack.pop()[2], h)
            level, index = level + 1, index // 2
        stack.append((level, index, h))

    def add(self, leaf: bytes) -> None:
        self._push(0, self._next, leaf)
        self._next += 1

    def root(self) -> bytes:
        if self._next != self._end:
            raise VerificationError("leaves are missing from the range", expected=self._end, found=self._next)
        for (level, index), h in zip(self._right_nodes, self._right, strict=True):
            self._push(level, index, h)
        root = self._stack[-1][2]
        for _, _, h in reversed(self._stack[:-1]):
            root = node_hash(h, root)
        return root


def root_from_range(
    first: int, leaves: Sequence[bytes], left: Sequence[bytes], right: Sequence[bytes], tree_size: int
) -> bytes:
    """The root of a tree of ``tree_size`` leaves from a contiguous run of its leaf hashes and the subtree
    roots to their left (covering [0, first)) and right (covering [first + len(leaves), tree_size))."""
    builder = _RangeRoot(first, first + len(leaves), left, right, tree_size)
    for h in leaves:
        builder.add(h)
    return builder.root()


# A bundle is untrusted input: a zip can claim any size, hold one name twice, inflate a thousandfold or nest
# JSON deeper than the parser's recursion. Every member is bounded from its header and again while it is read
# (headers lie), and every JSON text is depth-checked before it is parsed. Failures are VerificationErrors.
DEFAULT_MAX_MEMBER_BYTES = 16 * 1024**3  # events.ndjson, uncompressed; it is streamed, never held whole
DEFAULT_MAX_DEPTH = 64
MAX_SMALL_MEMBER = 1 << 20  # manifest, checkpoints and key: a few KB each, read whole
MAX_LINE_BYTES = 1 << 20  # one stored event; the server caps an event at 64 KB
MAX_MEMBERS = 64
_CHUNK = 1 << 20
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(rb"[][{}]")


def _read_errors() -> tuple[type[BaseException], ...]:
    import zipfile
    import zlib

    # what zipfile raises on a corrupt, truncated, encrypted or unsupported member
    return (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def _json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _json(what: str, data: bytes, max_depth: int) -> object:
    import json

    # counting brackets is a quick upper bound; only texts over it are scanned properly
    if data.count(b"[") + data.count(b"{") > max_depth and _json_depth(data) > max_depth:
        raise VerificationError(
            f"{what} nests JSON too deeply", expected=f"at most {max_depth}", found="more"
        )
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise VerificationError(f"{what} is not JSON") from None


def _members(zf: Any, max_member_bytes: int) -> dict[str, Any]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise VerificationError(
            "bundle has too many members", expected=f"at most {MAX_MEMBERS}", found=len(infos)
        )
    members: dict[str, Any] = {}
    for info in infos:
        if info.filename in members:
            raise VerificationError(
                f"bundle holds two members named {info.filename!r}: which one is the log?"
            )
        members[info.filename] = info
        limit = max_member_bytes if info.filename == "events.ndjson" else MAX_SMALL_MEMBER
        if info.file_size > limit:
            raise VerificationError(
                f"{info.filename} in the bundle is too large",
                expected=f"at most {limit} bytes",
                found=info.file_size,
            )
    return members


def _read_small(zf: Any, info: Any) -> bytes:
    try:
        with zf.open(info) as f:
            data: bytes = f.read(MAX_SMALL_MEMBER + 1)
    except _read_errors() as exc:
        raise VerificationError(f"cannot read {info.filename} in the bundle: {exc}") from None
    if len(data) > MAX_SMALL_MEMBER:
        raise VerificationError(f"{info.filename} in the bundle is larger than its header says")
    return data


def _lines(zf: Any, info: Any, max_bytes: int) -> Iterator[bytes]:
    """The lines of a member, read in chunks: never more than one chunk and one line in memory."""
    total, rest = 0, b""
    try:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise VerificationError(
                        f"{info.filename} in the bundle is larger than its header says and than the limit",
                        expected=f"at most {max_bytes} bytes",
                    )
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                if len(rest) > MAX_LINE_BYTES:
                    raise VerificationError(
                        f"a line of {info.filename} is too long", expected=f"at most {MAX_LINE_BYTES} bytes"
                    )
                yield from lines
    except _read_errors() as exc:
        raise VerificationError(f"cannot read {info.filename} in the bundle: {exc}") from None
    if rest:
        yield rest


def _text(files: dict[str, bytes], name: str) -> str:
    try:
        return files[name].decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError(f"{name} in the bundle is not UTF-8 text") from None


def verify_bundle(
    source: str | bytes,
    vkey: str | None = None,
    *,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> BundleReport:
    """Verify an export bundle (a path or the zip's bytes) with no server and no database.

    Pass the log's verifier key as published by the vendor; without it the key inside the bundle is used,
    which proves only that the bundle is self-consistent (``key_from_bundle`` says so). A hostile zip (a name
    twice, a member over ``max_member_bytes``, JSON nested beyond ``max_depth``) is refused the same way.
    """
    import io
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except _read_errors() as exc:
        raise VerificationError(f"cannot read the bundle: {exc}") from None
    with zf:
        return _verify_bundle(zf, vkey, max_member_bytes, max_depth)


def _verify_bundle(zf: Any, vkey: str | None, max_member_bytes: int, max_depth: int) -> BundleReport:
    members = _members(zf, max_member_bytes)
    needed = {"manifest.json", "events.ndjson", "checkpoint.txt", "first-checkpoint.txt", "vkey.txt"}
    if not needed <= members.keys():
        raise VerificationError("bundle is incomplete", expected=sorted(needed), found=sorted(members))
    files = {name: _read_small(zf, members[name]) for name in sorted(needed - {"events.ndjson"})}
    m: Any = _json("bundle manifest", files["manifest.json"], max_depth)
    try:
        tenant, origin = str(m["tenant"]), str(m["origin"])
        first, end, size = int(m["first_seq"]), int(m["end_seq"]), int(m["tree_size"])
        left = [bytes.fromhex(h) for h in m["left"]]
        right = [bytes.fromhex(h) for h in m["right"]]
        consistency = [bytes.fromhex(h) for h in m["consistency"]]
        fmt = m["format"]
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise VerificationError(f"bundle manifest is malformed: {exc}") from None
    if fmt != BUNDLE_FORMAT:
        raise VerificationError("unknown bundle format", expected=BUNDLE_FORMAT, found=fmt)
    key = vkey if vkey is not None else _text(files, "vkey.txt").strip()
    cp = verify_checkpoint(_text(files, "checkpoint.txt"), key, origin=origin)
    if cp.size != size:
        raise VerificationError("checkpoint size differs from the manifest", expected=size, found=cp.size)
    builder = _RangeRoot(first, end, left, right, size)
    count = 0
    for line in _lines(zf, members["events.ndjson"], max_member_bytes):
        seq = first + count
        if seq >= end:
            raise VerificationError(
                "wrong number of events in the bundle", expected=end - first, found="more"
            )
        event = _json(f"event at seq {seq}", line, max_depth)
        if not isinstance(event, dict):
            raise VerificationError(f"event at seq {seq} is not a JSON object", found=type(event).__name__)
        named = event.get("tenant")
        if named != tenant:
            raise VerificationError(
                f"event at seq {seq} belongs to another tenant", expected=tenant, found=named
            )
        builder.add(leaf_hash(line))
        count += 1
    if count != end - first:
        raise VerificationError("wrong number of events in the bundle", expected=end - first, found=count)
    root = builder.root()
    if root != cp.root:
        raise VerificationError(
            "the events do not rebuild the checkpoint's root: the bundle was altered",
            expected=cp.root,
            found=root,
        )
    first_cp = verify_checkpoint(_text(files, "first-checkpoint.txt"), key, origin=origin)
    if first_cp.size > size:
        raise VerificationError(
            "first checkpoint is larger than the bundle's", expected=f"<= {size}", found=first_cp.size
        )
    verify_consistency(first_cp.size, size, consistency, first_cp.root, cp.root)
    return BundleReport(tenant, first, end, size, first_cp.size, vkey is None)
