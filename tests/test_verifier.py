"""Tests for the standalone offline verifier, vigil/verifier.py.

Proofs here come from a reference written straight from RFC 9162's recursive
definitions, not from vigil.ledger, so the verifier is checked on its own.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import verifier
from vigil.verifier import (
    Checkpoint,
    VerificationError,
    root_from_leaves,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_note,
)

# --- Reference: RFC 9162 §2.1 recursions over an explicit list of leaf hashes ---------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return _sha(b"")
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return _node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_accepts_inclusion(leaf: bytes, m: int, n: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Undo PATH's recursion: rebuild the root top-down, consuming the proof from its end."""
    if not 0 <= m < n:
        return False
    rest = list(proof)

    def walk(m: int, n: int) -> bytes:
        if n == 1:
            return leaf
        sibling = rest.pop()
        k = _k(n)
        if m < k:
            return _node(walk(m, k), sibling)
        return _node(sibling, walk(m - k, n - k))

    try:
        r = walk(m, n)
    except IndexError:
        return False
    return not rest and r == root


def ref_accepts_consistency(m: int, n: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> bool:
    """Undo SUBPROOF's recursion: rebuild (old root, new root), consuming the proof from its end."""
    if not 0 < m <= n:
        return False
    rest = list(proof)

    def walk(m: int, n: int, b: bool) -> tuple[bytes, bytes]:
        if m == n:
            h = root1 if b else rest.pop()
            return h, h
        k = _k(n)
        other = rest.pop()
        if m <= k:
            old, new = walk(m, k, b)
            return old, _node(new, other)
        old, new = walk(m - k, n - k, False)
        return _node(other, old), _node(other, new)

    try:
        old, new = walk(m, n, True)
    except IndexError:
        return False
    return not rest and old == root1 and new == root2


def accepts(check: Callable[[], None]) -> bool:
    try:
        check()
    except VerificationError:
        return False
    return True


def leaves_of(n: int, salt: bytes = b"") -> list[bytes]:
    return [_sha(b"\x00" + salt + i.to_bytes(4, "big")) for i in range(n)]


@st.composite
def trees(draw: st.DrawFn) -> list[bytes]:
    return leaves_of(draw(st.integers(min_value=1, max_value=300)), draw(st.binary(max_size=8)))


def flip(h: bytes, position: int) -> bytes:
    return h[:position] + bytes([h[position] ^ 0x01]) + h[position + 1 :]


# --- Inclusion ----------------------------------------------------------------------------------------


@settings(deadline=None)
@given(trees(), st.data())
def test_reference_inclusion_proofs_verify(leaves: list[bytes], data: st.DataObject) -> None:
    """Every RFC 9162 PATH verifies for its leaf, index, size and root."""
    n = len(leaves)
    m = data.draw(st.integers(0, n - 1))
    verify_inclusion(leaves[m], m, n, ref_path(m, leaves), ref_mth(leaves))


@settings(deadline=None)
@given(trees(), st.data())
def test_altered_inclusion_proofs_are_rejected(leaves: list[bytes], data: st.DataObject) -> None:
    """A flipped byte, dropped or extra hash, wrong index, leaf or root makes verification fail."""
    n = len(leaves)
    m = data.draw(st.integers(0, n - 1))
    proof, root, leaf = ref_path(m, leaves), ref_mth(leaves), leaves[m]
    altered: list[tuple[bytes, int, int, list[bytes], bytes]] = []
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        at = data.draw(st.integers(0, 31))
        altered.append((leaf, m, n, [*proof[:i], flip(proof[i], at), *proof[i + 1 :]], root))
        altered.append((leaf, m, n, proof[:i] + proof[i + 1 :], root))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    at = data.draw(st.integers(0, len(proof)))
    altered.append((leaf, m, n, [*proof[:at], extra, *proof[at:]], root))
    other = data.draw(st.integers(0, n).filter(lambda x: x != m))
    altered.append((leaf, other, n, proof, root))
    altered.append((flip(leaf, 0), m, n, proof, root))
    altered.append((leaf, m, n, proof, flip(root, 31)))
    for claim in altered:
        assert not ref_accepts_inclusion(*claim)
        with pytest.raises(VerificationError):
            verify_inclusion(*claim)


@settings(deadline=None)
@given(trees(), st.data())
def test_inclusion_with_another_size_agrees_with_rfc_recursion(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """A wrong tree size is accepted exactly when RFC 9162's recursion hashes the same path.

    Some sizes share a path shape (leaf 0 of 3 and of 4), so a size alone is
    not always refutable; the verifier must agree with the recursion there too.
    """
    n = len(leaves)
    m = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(1, 2 * n + 2).filter(lambda x: x != n))
    claim = (leaves[m], m, size, ref_path(m, leaves), ref_mth(leaves))
    assert accepts(lambda: verify_inclusion(*claim)) == ref_accepts_inclusion(*claim)


def test_size_is_only_as_trustworthy_as_the_root_it_came_with() -> None:
    """Proofs bind leaf and root, not the size: leaf 0 of 3 shares its path shape with leaf 0 of 4.

    This is why sizes and roots must come together from a verified checkpoint.
    """
    leaves = leaves_of(3)
    verify_inclusion(leaves[0], 0, 4, ref_path(0, leaves), ref_mth(leaves))
    verify_consistency(1, 4, ref_subproof(1, leaves, True), leaves[0], ref_mth(leaves))


def test_inclusion_in_a_single_leaf_tree_needs_an_empty_proof() -> None:
    """A one-leaf tree's root is the leaf, and any proof hash is one too many."""
    leaf = leaves_of(1)[0]
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(VerificationError, match="too long"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)


def test_inclusion_length_errors_say_expected_and_found() -> None:
    """Too long and too short proofs report how many hashes were expected and found."""
    leaves = leaves_of(13)
    proof, root = ref_path(5, leaves), ref_mth(leaves)
    with pytest.raises(VerificationError, match="too short") as short:
        verify_inclusion(leaves[5], 5, 13, proof[:-1], root)
    assert (short.value.expected, short.value.found) == (f"{len(proof)} hashes", f"{len(proof) - 1} hashes")
    with pytest.raises(VerificationError, match="too long") as long:
        verify_inclusion(leaves[5], 5, 13, [*proof, root], root)
    assert (long.value.expected, long.value.found) == (f"{len(proof)} hashes", f"{len(proof) + 1} hashes")


def test_inclusion_root_mismatch_reports_both_roots() -> None:
    """A wrong root is reported with the expected and the computed root."""
    leaves = leaves_of(6)
    wrong = _sha(b"not the root")
    with pytest.raises(VerificationError) as error:
        verify_inclusion(leaves[2], 2, 6, ref_path(2, leaves), wrong)
    assert error.value.expected == wrong
    assert error.value.found == ref_mth(leaves)
    assert wrong.hex() in str(error.value)


@pytest.mark.parametrize(
    ("index", "size"),
    [(4, 4), (5, 4), (-1, 4), (0, 0), (0, -1)],
    ids=["at-size", "past", "neg", "empty", "neg-size"],
)
def test_inclusion_index_outside_tree_is_rejected(index: int, size: int) -> None:
    """The leaf index must satisfy 0 <= index < tree_size."""
    leaves = leaves_of(4)
    with pytest.raises(VerificationError, match="outside the tree"):
        verify_inclusion(leaves[0], index, size, ref_path(0, leaves), ref_mth(leaves))


@pytest.mark.parametrize("length", [0, 31, 33])
def test_inclusion_hashes_must_be_32_bytes(length: int) -> None:
    """Leaf hash, root and every proof hash must be exactly 32 bytes."""
    leaves = leaves_of(4)
    proof, root, bad = ref_path(1, leaves), ref_mth(leaves), b"\x00" * length
    for claim in [
        (bad, 1, 4, proof, root),
        (leaves[1], 1, 4, proof, bad),
        (leaves[1], 1, 4, [proof[0], bad], root),
    ]:
        with pytest.raises(VerificationError, match="wrong length"):
            verify_inclusion(*claim)


# --- Consistency -------------------------------------------------------------------------------------


@settings(deadline=None)
@given(trees(), st.data())
def test_reference_consistency_proofs_verify(leaves: list[bytes], data: st.DataObject) -> None:
    """Every RFC 9162 PROOF verifies between its two tree heads."""
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    verify_consistency(m, n, ref_subproof(m, leaves, True), ref_mth(leaves[:m]), ref_mth(leaves))


@settings(deadline=None)
@given(trees(), st.data())
def test_altered_consistency_proofs_are_rejected(leaves: list[bytes], data: st.DataObject) -> None:
    """A flipped byte, dropped or extra hash, or wrong root makes verification fail."""
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    proof, root1, root2 = ref_subproof(m, leaves, True), ref_mth(leaves[:m]), ref_mth(leaves)
    altered: list[tuple[int, int, list[bytes], bytes, bytes]] = []
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        at = data.draw(st.integers(0, 31))
        altered.append((m, n, [*proof[:i], flip(proof[i], at), *proof[i + 1 :]], root1, root2))
        altered.append((m, n, proof[:i] + proof[i + 1 :], root1, root2))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    at = data.draw(st.integers(0, len(proof)))
    altered.append((m, n, [*proof[:at], extra, *proof[at:]], root1, root2))
    altered.append((m, n, proof, flip(root1, 0), root2))
    altered.append((m, n, proof, root1, flip(root2, 0)))
    for claim in altered:
        assert not ref_accepts_consistency(*claim)
        with pytest.raises(VerificationError):
            verify_consistency(*claim)


@settings(deadline=None)
@given(trees(), st.data())
def test_consistency_with_other_sizes_agrees_with_rfc_recursion(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """Wrong sizes are accepted exactly when RFC 9162's recursion hashes the same way."""
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    proof, root1, root2 = ref_subproof(m, leaves, True), ref_mth(leaves[:m]), ref_mth(leaves)
    size1 = data.draw(st.integers(1, 2 * n + 2))
    size2 = data.draw(st.integers(size1, 2 * n + 2))
    claim = (size1, size2, proof, root1, root2)
    assert accepts(lambda: verify_consistency(*claim)) == ref_accepts_consistency(*claim)


def test_consistency_from_the_empty_tree_is_rejected() -> None:
    """RFC 9162 has no consistency proof from size 0, so even an 'obvious' one fails."""
    leaves = leaves_of(5)
    with pytest.raises(VerificationError, match="empty tree") as error:
        verify_consistency(0, 5, [], _sha(b""), ref_mth(leaves))
    assert error.value.found == 0
    with pytest.raises(VerificationError, match="empty tree"):
        verify_consistency(0, 0, [], _sha(b""), _sha(b""))


def test_consistency_backwards_is_rejected() -> None:
    """size1 larger than size2 is refused."""
    leaves = leaves_of(5)
    with pytest.raises(VerificationError, match="larger"):
        verify_consistency(5, 3, [], ref_mth(leaves), ref_mth(leaves[:3]))


def test_consistency_between_equal_sizes() -> None:
    """Equal sizes need an empty proof and equal roots."""
    root = ref_mth(leaves_of(7))
    verify_consistency(7, 7, [], root, root)
    with pytest.raises(VerificationError, match="must be empty"):
        verify_consistency(7, 7, [root], root, root)
    with pytest.raises(VerificationError, match="different roots"):
        verify_consistency(7, 7, [], root, flip(root, 3))


def test_consistency_empty_proof_for_growth_is_rejected() -> None:
    """Growing a tree always needs at least one proof hash."""
    leaves = leaves_of(8)
    with pytest.raises(VerificationError, match="empty"):
        verify_consistency(4, 8, [], ref_mth(leaves[:4]), ref_mth(leaves))


def test_consistency_length_errors_say_expected_and_found() -> None:
    """Too long and too short proofs report how many hashes were expected and found."""
    leaves = leaves_of(21)
    for m in (4, 6):  # with and without the prepended first root
        proof, root1, root2 = ref_subproof(m, leaves, True), ref_mth(leaves[:m]), ref_mth(leaves)
        with pytest.raises(VerificationError, match="too short") as short:
            verify_consistency(m, 21, proof[:-1], root1, root2)
        assert (short.value.expected, short.value.found) == (
            f"{len(proof)} hashes",
            f"{len(proof) - 1} hashes",
        )
        with pytest.raises(VerificationError, match="too long") as long:
            verify_consistency(m, 21, [*proof, root2], root1, root2)
        assert (long.value.expected, long.value.found) == (f"{len(proof)} hashes", f"{len(proof) + 1} hashes")


@pytest.mark.parametrize("length", [0, 31, 33])
def test_consistency_hashes_must_be_32_bytes(length: int) -> None:
    """Both roots and every proof hash must be exactly 32 bytes."""
    leaves = leaves_of(6)
    proof, root1, root2, bad = (
        ref_subproof(3, leaves, True),
        ref_mth(leaves[:3]),
        ref_mth(leaves),
        b"\x01" * length,
    )
    for claim in [
        (3, 6, proof, bad, root2),
        (3, 6, proof, root1, bad),
        (3, 6, [*proof[:-1], bad], root1, root2),
    ]:
        with pytest.raises(VerificationError, match="wrong length"):
            verify_consistency(*claim)


# --- root_from_leaves -----------------------------------------------------------------------------------


def test_root_from_leaves_known_answers() -> None:
    """The empty tree hashes to SHA-256(b"") and the tree of leaf b"" to SHA-256(0x00)."""
    assert root_from_leaves([]) == hashlib.sha256(b"").digest()
    assert root_from_leaves([verifier.leaf_hash(b"")]) == hashlib.sha256(b"\x00").digest()
    a, b, c = (verifier.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root_from_leaves([a, b, c]) == verifier.node_hash(verifier.node_hash(a, b), c)


@given(trees())
def test_root_from_leaves_matches_reference(leaves: list[bytes]) -> None:
    """root_from_leaves equals the reference MTH."""
    assert root_from_leaves(leaves) == ref_mth(leaves)


def test_root_from_leaves_rejects_short_hashes() -> None:
    """Leaf hashes must be 32 bytes."""
    with pytest.raises(VerificationError, match="leaf hash 1"):
        root_from_leaves([bytes(32), b"abc"])


def test_verification_error_message_names_expected_and_found() -> None:
    """VerificationError keeps expected and found and shows both."""
    error = VerificationError("thing mismatch", expected=b"\x01\x02", found="x")
    assert (error.expected, error.found) == (b"\x01\x02", "x")
    assert str(error) == "thing mismatch (expected 0102, found x)"
    assert str(VerificationError("bare")) == "bare"


def test_verifier_depends_only_on_stdlib_and_lazy_cryptography() -> None:
    """verifier.py imports nothing from vigil, and only the stdlib at module level."""
    source = Path(verifier.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert not name.startswith("vigil")
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("__future__", "cryptography")
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert (module or "").split(".")[0] != "cryptography"


# --- Signed notes and checkpoints --------------------------------------------------------------------------

# Known answer from Go's golang.org/x/mod/sumdb/note documentation: an
# independent implementation's key and signed note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

NAME = "vigil.example/tenant-a"
ROOT = _sha(b"some root")


def key_id(name: str, public: bytes) -> bytes:
    return _sha(name.encode() + b"\n\x01" + public)[:4]


def make_vkey(name: str, key: Ed25519PrivateKey) -> str:
    public = key.public_key().public_bytes_raw()
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id(name, public).hex()}+{encoded}"


def signature_line(text: str, name: str, key: Ed25519PrivateKey, kid: bytes | None = None) -> str:
    public = key.public_key().public_bytes_raw()
    blob = (kid if kid is not None else key_id(name, public)) + key.sign(text.encode())
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def checkpoint_text(size: str = "42", root: str | None = None, extra: str = "") -> str:
    root = root if root is not None else base64.b64encode(ROOT).decode()
    return f"{NAME}\n{size}\n{root}\n{extra}"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def vkey(key: Ed25519PrivateKey) -> str:
    return make_vkey(NAME, key)


def test_go_signed_note_known_answer_verifies() -> None:
    """The signed note from Go's sumdb/note documentation verifies and yields its text."""
    assert verify_note(GO_NOTE, GO_VKEY) == GO_TEXT
    with pytest.raises(VerificationError, match="does not verify"):
        verify_note(GO_NOTE.replace("answer", "Answer"), GO_VKEY)


def test_signed_checkpoint_verifies(key: Ed25519PrivateKey, vkey: str) -> None:
    """A checkpoint signed with the trusted key returns its origin, size, root and extensions."""
    text = checkpoint_text(extra="ext one\next two\n")
    note = text + "\n" + signature_line(text, NAME, key)
    assert verify_checkpoint(note, vkey) == Checkpoint(NAME, 42, ROOT, ("ext one", "ext two"))
    assert verify_checkpoint(note, vkey, origin=NAME).size == 42


def test_unknown_signatures_are_ignored(key: Ed25519PrivateKey, vkey: str) -> None:
    """Signatures by other keys (witnesses) may precede or follow the trusted one."""
    text = checkpoint_text()
    witness = Ed25519PrivateKey.generate()
    note = text + "\n" + signature_line(text, "witness.example", witness) + signature_line(text, NAME, key)
    assert verify_checkpoint(note, vkey).root == ROOT
    # Same name, other key ID: not our key, so ignored rather than failed.
    impostor = signature_line(text, NAME, witness)
    assert verify_checkpoint(text + "\n" + impostor + signature_line(text, NAME, key), vkey).size == 42


def test_bad_signature_by_trusted_key_rejects_note(key: Ed25519PrivateKey, vkey: str) -> None:
    """A failing signature from the trusted key condemns the note even beside a good one."""
    text = checkpoint_text()
    bad = signature_line("other text\n", NAME, key)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(text + "\n" + signature_line(text, NAME, key) + bad, vkey)


def test_modified_body_is_rejected(key: Ed25519PrivateKey, vkey: str) -> None:
    """Changing any byte of the signed text breaks the signature."""
    text = checkpoint_text()
    note = text + "\n" + signature_line(text, NAME, key)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(note.replace("\n42\n", "\n43\n"), vkey)


@pytest.mark.parametrize(
    ("name", "kid"),
    [("vigil.example/tenant-b", None), (NAME, b"\x00\x00\x00\x00")],
    ids=["wrong-name", "wrong-key-id"],
)
def test_signature_by_another_key_identity_is_not_enough(
    key: Ed25519PrivateKey, vkey: str, name: str, kid: bytes | None
) -> None:
    """A valid signature under another key name or key ID does not count for the trusted key."""
    text = checkpoint_text()
    with pytest.raises(VerificationError, match="no signature by the trusted key") as error:
        verify_checkpoint(text + "\n" + signature_line(text, name, key, kid), vkey)
    assert NAME in str(error.value.expected)


def test_wrong_verifier_key_is_rejected(key: Ed25519PrivateKey) -> None:
    """A note signed by one key does not verify under another key of the same name."""
    text = checkpoint_text()
    note = text + "\n" + signature_line(text, NAME, key)
    with pytest.raises(VerificationError, match="no signature"):
        verify_checkpoint(note, make_vkey(NAME, Ed25519PrivateKey.generate()))


def test_origin_mismatch_is_rejected(key: Ed25519PrivateKey, vkey: str) -> None:
    """Asking for another origin fails even when the signature is good."""
    text = checkpoint_text()
    with pytest.raises(VerificationError, match="another log") as error:
        verify_checkpoint(text + "\n" + signature_line(text, NAME, key), vkey, origin="vigil.example/other")
    assert (error.value.expected, error.value.found) == ("vigil.example/other", NAME)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (checkpoint_text(size="4x2"), "not a decimal"),
        (checkpoint_text(size="042"), "leading zeros"),
        (checkpoint_text(size="-1"), "not a decimal"),
        (checkpoint_text(size="\u0664\u0662"), "not a decimal"),  # Arabic-Indic digits
        (checkpoint_text(size=str(2**64)), "64 bits"),
        (checkpoint_text(size="9" * 5000), "64 bits"),
        (checkpoint_text(root="not base64!"), "not valid base64"),
        (checkpoint_text(root=base64.b64encode(ROOT).decode()[:-2] + "=="), "base64"),
        (checkpoint_text(root=base64.b64encode(ROOT[:31]).decode()), "wrong length"),
        (f"{NAME}\n42\n", "at least 3 lines"),
        (checkpoint_text(extra="ok\n\t\n"), "control character"),
        (f"{NAME}\n\n42\n{base64.b64encode(ROOT).decode()}\n", "empty"),
    ],
    ids=[
        "non-decimal",
        "leading-zero",
        "negative",
        "unicode-digits",
        "2**64",
        "huge",
        "bad-base64",
        "non-canonical-base64",
        "short-root",
        "two-lines",
        "control-char",
        "empty-line",
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(
    key: Ed25519PrivateKey, vkey: str, text: str, message: str
) -> None:
    """Correctly signed notes whose body is not a valid checkpoint are rejected."""
    with pytest.raises(VerificationError, match=message):
        verify_checkpoint(text + "\n" + signature_line(text, NAME, key), vkey)


def test_empty_tree_checkpoint_is_accepted(key: Ed25519PrivateKey, vkey: str) -> None:
    """Size 0 is written "0" and is valid."""
    empty = base64.b64encode(_sha(b"")).decode()
    text = checkpoint_text(size="0", root=empty)
    assert verify_checkpoint(text + "\n" + signature_line(text, NAME, key), vkey).size == 0


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda note: note.replace("\n\n", "\n"), "no blank line"),
        (lambda note: note[:-1], "end with a newline"),
        (lambda note: note.replace("\u2014 ", "- "), "malformed"),
        (lambda note: note.replace("\u2014 ", "\u2014  "), "malformed"),
        (lambda note: note[:-5] + "!!!=\n", "base64"),
        (lambda note: note.split("\n\n")[0] + "\n\n", "no signature lines"),
        (lambda note: note + "\u2014 other.example AAAA\n", "too short"),
        (lambda note: note + "\u2014 bad+name " + note.rsplit(" ", 1)[1], "key name"),
        (lambda note: note.replace("42", "4\r2"), "control character"),
        (lambda note: note.replace("42", "4\ud8002"), "UTF-8"),
        (lambda note: note + note.rsplit("\n\n", 1)[1] * 100, "too many"),
    ],
    ids=[
        "no-blank-line",
        "no-final-newline",
        "hyphen",
        "double-space",
        "bad-base64",
        "no-signatures",
        "tiny-signature",
        "plus-in-name",
        "carriage-return",
        "surrogate",
        "too-many-signatures",
    ],
)
def test_malformed_notes_are_rejected(
    key: Ed25519PrivateKey, vkey: str, mangle: Callable[[str], str], message: str
) -> None:
    """Notes that break the signed-note grammar are rejected before their text is trusted."""
    text = checkpoint_text()
    note = text + "\n" + signature_line(text, NAME, key)
    with pytest.raises(VerificationError, match=message):
        verify_checkpoint(mangle(note), vkey)


def test_note_text_may_contain_blank_lines(key: Ed25519PrivateKey, vkey: str) -> None:
    """The note text ends at the last blank line; earlier blank lines belong to the text."""
    text = "first\n\nsecond\n"
    assert verify_note(text + "\n" + signature_line(text, NAME, key), vkey) == text


def test_verifier_key_id_may_be_upper_case() -> None:
    """The key ID is hex; its case does not matter."""
    assert verify_note(GO_NOTE, GO_VKEY.replace("c74f20a3", "C74F20A3")) == GO_TEXT


@pytest.mark.parametrize(
    ("vkey_text", "message"),
    [
        ("PeterNeumann+c74f20a3", "must be"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "hex"),
        ("PeterNeumann+c74f20a3+AhpcXXcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "not an Ed25519 key"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "not an Ed25519 key"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
    ],
    ids=[
        "two-parts",
        "wrong-id",
        "short-id",
        "wrong-algorithm",
        "short-key",
        "bad-base64",
        "space",
        "no-name",
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey_text: str, message: str) -> None:
    """Verifier keys must be well formed and their key ID must match name and key."""
    with pytest.raises(VerificationError, match=message):
        verify_note(GO_NOTE, vkey_text)
