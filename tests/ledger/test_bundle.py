"""Export bundles: any slice of a log verifies offline, and any change to a bundle is refused."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.cli import main
from vigil.ledger.bundle import write_bundle
from vigil.ledger.checkpoints import Signer
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import Tenant
from vigil.store.sqlite import SQLiteStore
from vigil.verifier import VerificationError, verify_bundle

Fill = Callable[..., Tenant]
SIZE = 600
CHECKPOINTS = (100, 300, SIZE)


@pytest.fixture
def acme(fill: Fill) -> Tenant:
    return fill("acme", CHECKPOINTS)


def bundle(store: SQLiteStore, signer: Signer, tenant: Tenant, first: int, end: int) -> bytes:
    out = io.BytesIO()
    write_bundle(store, signer, tenant, out, first, end)
    return out.getvalue()


def files_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """The bundle with file ``name`` replaced by ``change(its bytes)``."""
    files = files_of(data)
    files[name] = change(files[name])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, content in files.items():
            zf.writestr(n, content)
    return out.getvalue()


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def apply(raw: bytes) -> bytes:
        manifest = json.loads(raw)
        change(manifest)
        return json.dumps(manifest).encode()

    return apply


def edit_line(index: int, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def apply(raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        lines[index] = change(lines[index])
        return b"\n".join(lines)

    return apply


def flip_hex(h: str) -> str:
    return ("0" if h[0] != "0" else "1") + h[1:]


@pytest.mark.parametrize(
    ("first", "end"),
    [(0, 10), (100, 200), (590, SIZE), (7, 8), (0, SIZE), (255, 257), (256, 512), (SIZE - 1, SIZE), (0, 1)],
    ids=["start", "middle", "end", "single", "whole", "across-a-tile", "one-tile", "last", "first"],
)
def test_bundles_of_any_range_verify(
    store: SQLiteStore, signer: Signer, acme: Tenant, first: int, end: int
) -> None:
    """A bundle of a range at the start, middle or end, of one event or of the whole log verifies with the key."""
    report = verify_bundle(bundle(store, signer, acme, first, end), signer.vkey)
    assert (report.tenant, report.first_seq, report.end_seq) == ("acme", first, end)
    assert (report.tree_size, report.first_checkpoint_size, report.key_from_bundle) == (SIZE, 100, False)


def test_bundle_events_are_the_stored_canonical_bytes(
    store: SQLiteStore, signer: Signer, acme: Tenant
) -> None:
    """events.ndjson holds the stored bodies of the range, one per line; vkey.txt is the signer's key."""
    files = files_of(bundle(store, signer, acme, 40, 60))
    assert files["events.ndjson"] == b"".join(
        body + b"\n" for _, _, body in store.read_range(acme.id, 40, 60)
    )
    assert files["vkey.txt"].decode().strip() == signer.vkey
    assert files["checkpoint.txt"].decode() == store.checkpoints(acme.id)[-1].note
    assert files["first-checkpoint.txt"].decode() == store.checkpoints(acme.id)[0].note


def test_bundle_past_the_newest_checkpoint_signs_one(store: SQLiteStore, signer: Signer, fill: Fill) -> None:
    """A range beyond the newest checkpoint gets a fresh checkpoint covering it, and verifies."""
    globex = fill("globex", (50,), total=70)
    report = verify_bundle(bundle(store, signer, globex, 60, 70), signer.vkey)
    assert (report.tree_size, report.first_checkpoint_size) == (70, 50)
    assert [cp.size for cp in store.checkpoints(globex.id)] == [50, 70]


def _other_key_checkpoint(signer: Signer) -> Callable[[bytes], bytes]:
    impostor = Signer(Ed25519PrivateKey.generate(), signer.name)

    def apply(raw: bytes) -> bytes:
        lines = raw.decode().split("\n")
        return impostor.sign(lines[0], int(lines[1]), bytes(32)).encode()

    return apply


ALTERATIONS: list[tuple[str, str, Callable[..., Callable[[bytes], bytes]]]] = [
    (
        "event-byte",
        "events.ndjson",
        lambda s: edit_line(5, lambda b: b.replace(b'"action":"', b'"action":"x', 1)),
    ),
    ("event-first", "events.ndjson", lambda s: edit_line(0, lambda b: b[:-2] + b" }")),
    ("event-last", "events.ndjson", lambda s: edit_line(-2, lambda b: b.replace(b"acme", b"acmf"))),
    ("event-not-object", "events.ndjson", lambda s: edit_line(3, lambda b: b"[]")),
    ("event-not-json", "events.ndjson", lambda s: edit_line(3, lambda b: b"\xff\xfe")),
    ("event-dropped", "events.ndjson", lambda s: lambda raw: raw.split(b"\n", 1)[1]),
    ("events-swapped", "events.ndjson", lambda s: lambda raw: b"\n".join(_swap(raw.split(b"\n"), 0, 1))),
    (
        "left-hash",
        "manifest.json",
        lambda s: edit_manifest(lambda m: m["left"].__setitem__(0, flip_hex(m["left"][0]))),
    ),
    (
        "right-hash",
        "manifest.json",
        lambda s: edit_manifest(lambda m: m["right"].__setitem__(-1, flip_hex(m["right"][-1]))),
    ),
    ("left-dropped", "manifest.json", lambda s: edit_manifest(lambda m: m["left"].pop())),
    (
        "range-shifted",
        "manifest.json",
        lambda s: edit_manifest(lambda m: m.update(first_seq=101, end_seq=201)),
    ),
    ("range-end", "manifest.json", lambda s: edit_manifest(lambda m: m.update(end_seq=199))),
    ("tenant", "manifest.json", lambda s: edit_manifest(lambda m: m.update(tenant="globex"))),
    ("tree-size", "manifest.json", lambda s: edit_manifest(lambda m: m.update(tree_size=300))),
    ("consistency", "manifest.json", lambda s: edit_manifest(lambda m: m["consistency"].pop())),
    (
        "checkpoint-root",
        "checkpoint.txt",
        lambda s: lambda raw: raw.replace(raw.split(b"\n")[2], b"A" * 43 + b"=", 1),
    ),
    ("checkpoint-size", "checkpoint.txt", lambda s: lambda raw: raw.replace(b"\n600\n", b"\n601\n", 1)),
    ("checkpoint-other-key", "checkpoint.txt", _other_key_checkpoint),
    ("checkpoint-not-utf8", "checkpoint.txt", lambda s: lambda raw: b"\xff" + raw),
    ("first-checkpoint", "first-checkpoint.txt", lambda s: lambda raw: raw.replace(b"\n100\n", b"\n99\n", 1)),
]


def _swap(items: list[bytes], a: int, b: int) -> list[bytes]:
    items[a], items[b] = items[b], items[a]
    return items


@pytest.mark.parametrize(
    ("name", "change"), [(a[1], a[2]) for a in ALTERATIONS], ids=[a[0] for a in ALTERATIONS]
)
def test_altered_bundle_is_rejected(
    store: SQLiteStore, signer: Signer, acme: Tenant, name: str, change: Callable[..., Any]
) -> None:
    """Any altered event line, left or right hash, manifest range, checkpoint or consistency proof is refused with
    VerificationError, whichever key is trusted."""
    data = bundle(store, signer, acme, 100, 200)
    verify_bundle(data, signer.vkey)
    altered = rezip(data, name, change(signer))
    with pytest.raises(VerificationError):
        verify_bundle(altered, signer.vkey)
    with pytest.raises(VerificationError):
        verify_bundle(altered)  # nor with the key inside the bundle


def test_another_keys_vkey_is_rejected(store: SQLiteStore, signer: Signer, acme: Tenant) -> None:
    """A bundle checked with another key's vkey (same key name) is refused."""
    other = Signer(Ed25519PrivateKey.generate(), signer.name)
    data = bundle(store, signer, acme, 0, 10)
    with pytest.raises(VerificationError, match="no signature by the trusted key"):
        verify_bundle(data, other.vkey)
    swapped = rezip(data, "vkey.txt", lambda _: other.vkey.encode() + b"\n")
    with pytest.raises(VerificationError):
        verify_bundle(swapped)


def test_a_bundle_that_is_not_one_is_rejected() -> None:
    """Bytes that are not a zip, or a zip without the bundle's files, are refused with VerificationError."""
    with pytest.raises(VerificationError, match="cannot read the bundle"):
        verify_bundle(b"not a zip")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("manifest.json", "{}")
    with pytest.raises(VerificationError, match="bundle is incomplete"):
        verify_bundle(empty.getvalue())


def test_cli_export_and_verify_bundle_round_trip(
    store: Store, signer: Signer, acme: Tenant, settings: Settings, tmp_path: Path
) -> None:
    """vigil export writes a bundle that vigil verify-bundle accepts (exit 0); a tampered copy fails (exit 1)."""
    store.close()
    runner = CliRunner()
    out = tmp_path / "acme.zip"
    export = ["export", "--tenant", "acme", "--format", "bundle", "--from-seq", "120", "--to-seq", "480"]
    keyfile = ["--signing-key", settings.signing_key] if settings.signing_key else []
    result = runner.invoke(main, [*export, "-o", str(out), "--database", settings.database, *keyfile])
    assert result.exit_code == 0, result.output
    assert "wrote bundle of acme seqs 120..479" in result.output
    result = runner.invoke(main, ["verify-bundle", str(out), "--vkey", signer.vkey])
    assert result.exit_code == 0, result.output
    assert "ok  tenant acme: events 120..479 are in the signed tree of size 600" in result.output
    result = runner.invoke(main, ["verify-bundle", str(out)])
    assert result.exit_code == 0 and "pass --vkey with the published key" in result.stderr
    result = runner.invoke(main, ["verify-bundle", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["key_from_bundle"] is True

    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(
        rezip(
            out.read_bytes(),
            "events.ndjson",
            edit_line(7, lambda b: b.replace(b'"tenant":"acme"', b'"tenant":"acme" ')),
        )
    )
    result = runner.invoke(main, ["verify-bundle", str(tampered), "--vkey", signer.vkey])
    assert result.exit_code == 1
    assert "bundle verification FAILED" in result.output

    whole = tmp_path / "whole.zip"
    result = runner.invoke(
        main, ["export", "--tenant", "acme", "-o", str(whole), "--database", settings.database, *keyfile]
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["verify-bundle", str(whole), "--vkey", signer.vkey]).exit_code == 0
    other = Signer(Ed25519PrivateKey.generate(), signer.name)
    result = runner.invoke(main, ["verify-bundle", str(whole), "--vkey", other.vkey])
    assert result.exit_code == 1 and "bundle verification FAILED" in result.output
