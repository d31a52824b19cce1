"""Hostile bundles: duplicate names, members over the bound (by their header or by what they inflate to), JSON
nested too deep, corrupt zips. Each is refused with a VerificationError, never a traceback or a big allocation."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.ledger.bundle import write_bundle
from vigil.ledger.checkpoints import Signer
from vigil.store import Store
from vigil.store.base import Tenant
from vigil.verifier import MAX_LINE_BYTES, MAX_MEMBERS, VerificationError, verify_bundle

MB = 1024 * 1024


@pytest.fixture
def database(db_path: Path) -> str:
    """SQLite only: the verifier reads a zip, whichever store wrote it."""
    return str(db_path)


@pytest.fixture
def good(store: Store, signer: Signer, fill: Callable[..., Tenant]) -> bytes:
    """A valid bundle of 40 events."""
    tenant = fill("acme", (20, 40))
    out = io.BytesIO()
    write_bundle(store, signer, tenant, out)
    data = out.getvalue()
    verify_bundle(data, signer.vkey)
    return data


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in files:
            zf.writestr(name, body)
    return out.getvalue()


def replaced(data: bytes, name: str, body: bytes) -> bytes:
    return zip_of([(n, body if n == name else b) for n, b in members(data)])


def refused(data: bytes, match: str, **limits: int) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as failed:
        verify_bundle(data, **limits)  # type: ignore[arg-type]
    return failed.value


def peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    with contextlib.suppress(VerificationError):
        fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_a_duplicate_member_name_is_refused(good: bytes) -> None:
    """Two manifests (the second one lying): which one a reader picks must not matter, so neither is read."""
    files = members(good)
    manifest = dict(files)["manifest.json"]
    forged = json.dumps({**json.loads(manifest), "first_seq": 1}).encode()
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_of([*files, ("manifest.json", forged)])
    refused(data, "two members named 'manifest.json'")


def test_a_member_over_the_bound_is_refused_from_its_header(good: bytes) -> None:
    """An events member whose header says it is over the bound is refused before a byte of it is inflated."""
    bomb = replaced(good, "events.ndjson", b"\n" * (3 * MB))
    assert len(bomb) < 64 * 1024
    err = refused(bomb, "events.ndjson in the bundle is too large", max_member_bytes=MB)
    assert err.expected == f"at most {MB} bytes" and err.found == 3 * MB
    assert peak_bytes(lambda: verify_bundle(bomb, max_member_bytes=MB)) < MB


def test_small_members_have_their_own_small_bound(good: bytes) -> None:
    """The manifest and the notes are read whole, so they are capped at 1 MB whatever the events bound."""
    refused(replaced(good, "checkpoint.txt", b"x" * (2 * MB)), "checkpoint.txt in the bundle is too large")


def _patch_sizes(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the uncompressed size of member ``name`` set to ``size`` in its local header and in the
    central directory: a header that lies."""
    buf = bytearray(data)
    raw = name.encode()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    struct.pack_into("<I", buf, local + 22, size)
    at = 0
    while (at := buf.find(b"PK\x01\x02", at)) >= 0:
        (length,) = struct.unpack_from("<H", buf, at + 28)
        if bytes(buf[at + 46 : at + 46 + length]) == raw:
            struct.pack_into("<I", buf, at + 24, size)
        at += 4
    return bytes(buf)


def test_a_member_whose_header_lies_about_its_size_is_refused_with_little_memory(good: bytes) -> None:
    """The header says 1 KB, the data inflates to 32 MB: the reader stops at the claimed size and the check
    of the contents fails; memory stays far below what the member would inflate to."""
    bomb = _patch_sizes(replaced(good, "events.ndjson", b"{}\n" * (11 * MB)), "events.ndjson", 1024)
    refused(bomb, "cannot read events.ndjson|wrong number of events|not a JSON object|another tenant")
    assert peak_bytes(lambda: verify_bundle(bomb)) < 4 * MB


def test_a_zero_bomb_under_the_bound_is_stopped_at_one_line(good: bytes) -> None:
    """64 MB of zeros without a newline, truthfully declared and under the bound: refused once one line is
    longer than an event can be, with memory bounded by that."""
    bomb = replaced(good, "events.ndjson", b"0" * (64 * MB))
    refused(bomb, "a line of events.ndjson is too long")
    assert peak_bytes(lambda: verify_bundle(bomb)) < 4 * MAX_LINE_BYTES + 2 * MB


def test_events_nested_beyond_the_depth_are_refused(good: bytes) -> None:
    """100,000 nested arrays in one event: a clear error, not a RecursionError; at the bound it parses."""
    files = dict(members(good))
    lines = files["events.ndjson"].split(b"\n")

    def with_depth(depth: int) -> bytes:
        head = b'{"tenant":"acme","x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        return replaced(good, "events.ndjson", b"\n".join([head, *lines[1:]]))

    refused(with_depth(100_000), "event at seq 0 nests JSON too deeply")
    refused(with_depth(65), "nests JSON too deeply")
    refused(with_depth(64), "do not rebuild the checkpoint's root")  # parsed, then caught as an alteration
    refused(with_depth(8), "nests JSON too deeply", max_depth=4)


def test_brackets_inside_strings_do_not_count_as_depth(good: bytes) -> None:
    """A message full of brackets is text, not nesting: the event is parsed (and then fails as altered)."""
    files = dict(members(good))
    lines = files["events.ndjson"].split(b"\n")
    head = b'{"tenant":"acme","message":"' + b"[{" * 500 + b'\\"[[["}'
    refused(replaced(good, "events.ndjson", b"\n".join([head, *lines[1:]])), "do not rebuild")


def test_a_deeply_nested_manifest_is_refused(good: bytes) -> None:
    refused(replaced(good, "manifest.json", b"[" * 200_000 + b"]" * 200_000), "bundle manifest nests JSON")


def test_manifest_numbers_that_are_no_integers_are_refused(good: bytes) -> None:
    """`1e400` is infinity to the JSON parser; int() of it overflowed with a traceback."""
    manifest = dict(members(good))["manifest.json"].decode()
    bad = json.loads(manifest)
    text = json.dumps(bad).replace(f'"end_seq": {bad["end_seq"]}', '"end_seq": 1e400')
    refused(replaced(good, "manifest.json", text.encode()), "bundle manifest is malformed")


def test_more_events_than_the_manifest_says_are_refused_at_the_first_extra_one(good: bytes) -> None:
    events = dict(members(good))["events.ndjson"]
    refused(replaced(good, "events.ndjson", events + b"{}\n" * 100_000), "wrong number of events")


def test_too_many_members_are_refused(good: bytes) -> None:
    refused(zip_of([*members(good), *((f"x{i}", b"") for i in range(MAX_MEMBERS))]), "too many members")


def test_an_unsupported_compression_method_is_a_verification_error(good: bytes) -> None:
    """A member claiming compression method 99 makes zipfile raise NotImplementedError: reported, not raised."""
    buf = bytearray(good)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        local = zf.getinfo("manifest.json").header_offset
    struct.pack_into("<H", buf, local + 8, 99)
    at = buf.find(b"PK\x01\x02")
    struct.pack_into("<H", buf, at + 10, 99)
    refused(bytes(buf), "cannot read")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corruption_of_a_bundle_is_a_verification_error_or_harmless(
    good: bytes, data: st.DataObject
) -> None:
    """Flipped bytes, truncation, or junk appended: verification passes or raises VerificationError, nothing
    else (no zlib.error, EOFError, KeyError, RecursionError...)."""
    buf = bytearray(good)
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(buf)))
    blob = bytes(buf[:cut]) + data.draw(st.binary(max_size=64))
    with contextlib.suppress(VerificationError):
        verify_bundle(blob)


def test_cli_refuses_a_bomb_with_a_clear_message(good: bytes, tmp_path: Path) -> None:
    """`vigil verify-bundle --bundle-max-mb 1` on a 3 MB member: exit 1, one line saying why, no traceback."""
    path = tmp_path / "bomb.zip"
    path.write_bytes(replaced(good, "events.ndjson", b"\n" * (3 * MB)))
    result = CliRunner().invoke(main, ["verify-bundle", str(path), "--bundle-max-mb", "1"])
    assert result.exit_code == 1
    assert "bundle verification FAILED: events.ndjson in the bundle is too large" in result.output
    assert "Traceback" not in result.output
    deep = tmp_path / "deep.zip"
    files = dict(members(good))
    lines = files["events.ndjson"].split(b"\n")
    deep.write_bytes(replaced(good, "events.ndjson", b"\n".join([b"[" * 10 + b"]" * 10, *lines[1:]])))
    result = CliRunner().invoke(main, ["verify-bundle", str(deep), "--bundle-max-depth", "5"])
    assert result.exit_code == 1 and "nests JSON too deeply" in result.output
