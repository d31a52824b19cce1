"""Signed checkpoints: the signing key file, the note format, and when a new checkpoint is made."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support import database_args

from vigil.cli import main
from vigil.errors import ConfigError
from vigil.ingest.intake import Prepared
from vigil.ledger.checkpoints import Signer, key_path, load_signer, make_checkpoint, origin_of
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import Tenant
from vigil.verifier import root_from_leaves, verify_checkpoint
from vigil.web import create_app

Fill = Callable[..., Tenant]
Events = Callable[..., list[Prepared]]


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: whatever mode the key file gets, it chose itself."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_with_mode_0600(settings: Settings, umask_zero: None) -> None:
    """The first load creates the key next to the SQLite file, or at the signing_key path a database URL needs,
    readable by its owner only, even under umask 0."""
    path = key_path(settings)
    if "://" in settings.database:
        assert path == Path(settings.signing_key)
    else:
        assert not settings.signing_key and path == Path(settings.database + ".signing-key")
    assert not path.exists()
    signer = load_signer(settings)
    assert mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert signer.vkey.startswith("vigil+")


def test_first_start_of_the_app_creates_the_key_file(
    settings: Settings, store: Store, umask_zero: None
) -> None:
    """The app's first start creates the key file, mode 0600, and serves its verifier key."""
    path = key_path(settings)
    assert not path.exists()
    with TestClient(app=create_app(settings, store)) as client:
        served = client.get("/v1/checkpoints/key").text.strip()
    assert mode(path) == 0o600
    assert served == load_signer(settings, create=False).vkey


def test_key_file_is_reused_on_restart(settings: Settings, store: Store) -> None:
    """Loading again, or restarting the app, keeps the same key: the served vkey does not change."""
    first = load_signer(settings).vkey
    assert load_signer(settings, create=False).vkey == first
    served = []
    for _ in range(2):
        with TestClient(app=create_app(settings, store)) as client:
            served.append(client.get("/v1/checkpoints/key").text.strip())
    assert served == [first, first]


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(settings: Settings, store: Store, bits: int) -> None:
    """A key file readable by group or others is refused by the signer, the CLI and the app's startup."""
    load_signer(settings)
    path = key_path(settings)
    path.chmod(bits)
    with pytest.raises(ConfigError, match="readable by others"):
        load_signer(settings)
    result = CliRunner().invoke(main, ["checkpoint", "--tenant", "vigil", *database_args(settings)])
    assert result.exit_code != 0 and "readable by others" in result.output
    with pytest.raises(BaseException) as startup, TestClient(app=create_app(settings, store)):
        pass
    assert isinstance(startup.value, ConfigError) or startup.group_contains(
        ConfigError, match="readable by others"
    )
    assert mode(path) == bits  # refused, not silently "fixed"


def test_missing_key_is_refused_where_it_must_exist(
    settings: Settings, store: Store, signer: Signer, fill: Fill
) -> None:
    """Without the key file, vigil verify refuses to pass a log that has checkpoints, and invents no key."""
    fill("acme", (10,))
    store.close()
    key_path(settings).unlink()
    with pytest.raises(ConfigError, match="no signing key"):
        load_signer(settings, create=False)
    result = CliRunner().invoke(main, ["verify", *database_args(settings)])
    assert result.exit_code != 0
    assert "no signing key" in result.output and "tenant acme's checkpoints" in result.output
    assert not key_path(settings).exists()


def test_a_file_that_is_not_an_ed25519_key_is_refused(settings: Settings) -> None:
    """A key file holding something else is a configuration error."""
    path = key_path(settings)
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load_signer(settings)


def test_signing_key_setting_names_the_file(settings: Settings, tmp_path: Path) -> None:
    """The signing_key setting puts the key where it says, and key_name names it in the vkey."""
    elsewhere = tmp_path / "keys" / "log.key"
    custom = Settings.load(
        {**settings.values, "signing_key": str(elsewhere), "key_name": "audit.example"}, environ={}
    )
    signer = load_signer(custom)
    assert elsewhere.exists() and mode(elsewhere) == 0o600 and not key_path(settings).exists()
    assert signer.vkey.startswith("audit.example+")


def test_checkpoint_note_format(store: Store, signer: Signer, fill: Fill) -> None:
    """The note is origin vigil/<tenant>, the decimal size, the base64 root of the leaves, the size of the
    checkpoint signed before it (0 for the first), a blank line and one Ed25519 signature line by the key name."""
    tenant = fill("acme", (), total=37)
    cp = make_checkpoint(store, signer, tenant)
    assert cp is not None
    leaves = [leaf for _, leaf, _ in store.read_range(tenant.id, 0, 37)]
    root = root_from_leaves(leaves)
    text, signatures = cp.note.split("\n\n")
    assert text == f"vigil/acme\n37\n{base64.b64encode(root).decode()}\nvigil-previous 0"
    assert origin_of("acme") == "vigil/acme"
    name, sig = signatures.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    assert name == "vigil" and len(base64.b64decode(sig)) == 4 + 64
    assert (cp.size, cp.root) == (37, root)
    assert verify_checkpoint(cp.note, signer.vkey, origin="vigil/acme").root == root


def test_make_checkpoint_returns_the_existing_one_when_the_log_did_not_grow(
    store: Store, signer: Signer, fill: Fill, events: Events
) -> None:
    """No growth, no new checkpoint: the newest is returned as it is; growth signs a new one."""
    tenant = fill("acme", (20,))
    first = make_checkpoint(store, signer, tenant)
    again = make_checkpoint(store, signer, tenant)
    assert first is not None and again == first
    assert [cp.size for cp in store.checkpoints(tenant.id)] == [20]
    store.append(tenant.id, events("acme", 25)[20:])
    grown = make_checkpoint(store, signer, tenant)
    assert grown is not None and grown.size == 25
    assert [cp.size for cp in store.checkpoints(tenant.id)] == [20, 25]


def test_empty_log_has_no_checkpoint(settings: Settings, store: Store, signer: Signer) -> None:
    """make_checkpoint on an empty log returns None and stores nothing; vigil checkpoint says so and exits 1."""
    tenant = store.create_tenant("acme")
    assert make_checkpoint(store, signer, tenant) is None
    assert store.checkpoints(tenant.id) == [] and store.checkpoint(tenant.id) is None
    store.close()
    result = CliRunner().invoke(main, ["checkpoint", "--tenant", "acme", *database_args(settings)])
    assert result.exit_code == 1 and "log is empty" in result.output


def test_cli_checkpoint_prints_the_note(settings: Settings, store: Store, signer: Signer, fill: Fill) -> None:
    """vigil checkpoint signs the log and prints the note; --json gives size, root and note."""
    fill("acme", (), total=12)
    store.close()
    runner = CliRunner()
    result = runner.invoke(main, ["checkpoint", "--tenant", "acme", *database_args(settings), "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["size"] == 12 and verify_checkpoint(out["note"], signer.vkey).root.hex() == out["root"]
