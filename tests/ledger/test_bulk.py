"""``vigil.ledger.bulk``: the C extension and its pure-Python twin give the same hashes as RFC 9162 computed leaf by
leaf with hashlib, reject the same malformed input, and the C one is what CI builds and uses."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ledger import bulk
from vigil.verifier import root_from_leaves

Joined = Callable[[bytes, int, bytes], "bytes | None"]
Roots = Callable[[bytes, int], bytes]

IMPLEMENTATIONS: list[tuple[str, Joined, Roots]] = [
    ("python", bulk.py_joined_leaf_hashes, bulk.py_subtree_roots)
]
if bulk._merkle is not None:
    IMPLEMENTATIONS.append(("c", bulk._merkle.joined_leaf_hashes, bulk._merkle.subtree_roots))
impl = pytest.mark.parametrize(
    ("joined", "roots"), [i[1:] for i in IMPLEMENTATIONS], ids=[i[0] for i in IMPLEMENTATIONS]
)

SUFFIX = b'"tenant":"acme"}'
bodies = st.lists(
    st.binary(max_size=300).filter(lambda b: b"\n" not in b).map(lambda b: b + SUFFIX),
    min_size=1,
    max_size=40,
)


def _leaf(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def test_ci_builds_and_uses_the_c_extension() -> None:
    """Without a compiler or OpenSSL's headers the install falls back to Python; CI must not, or the verify
    figures in docs/performance.md would not be what users get."""
    if not os.environ.get("CI"):
        pytest.skip("a developer's machine may lack a C compiler or OpenSSL's headers; CI has both")
    assert bulk.NATIVE, "vigil.ledger._merkle was not built: install gcc and OpenSSL's headers (libssl-dev)"


@impl
@settings(max_examples=150, deadline=None)
@given(parts=bodies)
def test_joined_leaf_hashes_are_each_parts_leaf_hash(
    joined: Joined, roots: Roots, parts: list[bytes]
) -> None:
    assert joined(b"\n".join(parts), len(parts), SUFFIX) == b"".join(map(_leaf, parts))


@impl
@settings(max_examples=100, deadline=None)
@given(parts=bodies, delta=st.sampled_from([-1, 1, 5]))
def test_a_wrong_count_gives_none(joined: Joined, roots: Roots, parts: list[bytes], delta: int) -> None:
    if len(parts) + delta < 1:
        return
    assert joined(b"\n".join(parts), len(parts) + delta, SUFFIX) is None


@impl
@settings(max_examples=100, deadline=None)
@given(parts=bodies, data=st.data())
def test_a_part_without_the_suffix_gives_none(
    joined: Joined, roots: Roots, parts: list[bytes], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(parts) - 1))
    parts[i] = parts[i][: -data.draw(st.integers(1, len(SUFFIX)))]  # cut into the suffix
    assert joined(b"\n".join(parts), len(parts), SUFFIX) is None


@impl
def test_edge_cases_of_the_joined_form(joined: Joined, roots: Roots) -> None:
    assert joined(b"", 1, b"") == _leaf(b"")  # one empty body
    assert joined(b"\n", 2, b"") == _leaf(b"") * 2
    assert joined(b"\n", 1, b"") is None
    assert joined(b"a\nb", 2, b"") == _leaf(b"a") + _leaf(b"b")
    assert joined(SUFFIX, 1, SUFFIX) == _leaf(SUFFIX)
    assert joined(SUFFIX[1:], 1, SUFFIX) is None  # shorter than the suffix
    assert joined(b"x", 1 << 60, b"") is None  # more parts than bytes
    with pytest.raises(ValueError, match="at least 1"):
        joined(b"x", 0, b"")


@impl
@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=64),
    width_log=st.integers(0, 6),
)
def test_subtree_roots_are_rfc9162_roots_of_each_run(
    joined: Joined, roots: Roots, leaves: list[bytes], width_log: int
) -> None:
    width = 1 << width_log
    leaves = leaves[: len(leaves) - len(leaves) % width]
    expected = b"".join(root_from_leaves(leaves[i : i + width]) for i in range(0, len(leaves), width))
    assert roots(b"".join(leaves), width) == expected


@impl
def test_subtree_roots_refuse_what_is_not_whole_runs(joined: Joined, roots: Roots) -> None:
    assert roots(b"", 256) == b""
    for width in (0, 3, -2):
        with pytest.raises(ValueError, match="power of two"):
            roots(b"\x00" * 96, width)
    with pytest.raises(ValueError, match="whole runs"):
        roots(b"\x00" * 96, 2)
    with pytest.raises(ValueError, match="whole runs"):
        roots(b"\x00" * 31, 1)
    with pytest.raises(ValueError, match="whole runs"):  # a width whose run would not fit in memory
        roots(b"\x00" * 64, 1 << 60)


@pytest.mark.skipif(bulk._merkle is None, reason="the C extension is not built here (CI builds it)")
def test_the_c_functions_refuse_wrong_types_and_arity() -> None:
    native = bulk._merkle
    assert native is not None
    with pytest.raises(TypeError):
        native.joined_leaf_hashes("text", 1, b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="suffix"):
        native.joined_leaf_hashes(b"x", 1, "}")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="three arguments"):
        native.joined_leaf_hashes(b"x", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="two arguments"):
        native.subtree_roots(b"")  # type: ignore[call-arg]
    # any buffer will do for the input, as for hashlib
    assert native.joined_leaf_hashes(memoryview(b"ab"), 1, b"b") == _leaf(b"ab")
    assert native.subtree_roots(bytearray(32), 1) == bytes(32)


@pytest.mark.skipif(bulk._merkle is None, reason="the C extension is not built here (CI builds it)")
def test_the_c_functions_hash_on_several_threads_at_once() -> None:
    """They release the GIL while hashing: threads running them at once must still each get their own answer."""
    native = bulk._merkle
    assert native is not None
    work = [[f"event {t}-{i}".encode() + SUFFIX for i in range(2000)] for t in range(4)]
    results: dict[int, bytes | None] = {}

    def run(t: int) -> None:
        for _ in range(5):
            results[t] = native.joined_leaf_hashes(b"\n".join(work[t]), len(work[t]), SUFFIX)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {t: b"".join(map(_leaf, work[t])) for t in range(4)}
