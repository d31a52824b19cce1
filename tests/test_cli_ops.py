"""`vigil backup`: a consistent copy while the server writes, with its trusted state and signing key, that
`vigil verify` accepts as it is; PostgreSQL through pg_dump, restored with pg_restore."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pg import fresh_database
from support import prepared_events, unavailable

from vigil.cli import main
from vigil.cli_ops import sqlite_backup
from vigil.ledger.checkpoints import load_signer, make_checkpoint
from vigil.settings import Settings
from vigil.store import Store, open_store


def run(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    """A server's store with a signed log: acme's 5,000 events and a checkpoint (so a trusted state exists)."""
    settings = Settings.load(
        {"database": str(tmp_path / "live" / "vigil.db"), "sqlite_synchronous": "NORMAL"}, environ={}
    )
    store = open_store(settings.database, settings)
    acme = store.create_tenant("acme")
    for _ in range(10):
        store.append(acme.id, prepared_events(500))
    make_checkpoint(store, load_signer(settings), acme)
    yield settings, store
    store.close()


def test_a_backup_taken_while_the_server_writes_verifies(
    live: tuple[Settings, Store], tmp_path: Path
) -> None:
    """Appends and checkpoints go on during a page-by-page backup; the copy is one consistent moment, with the
    trusted state and key beside it, and `vigil verify --database COPY` passes with nothing else given."""
    settings, store = live
    acme = store.get_tenant("acme")
    signer = load_signer(settings)
    stop, written = threading.Event(), [0]

    def write() -> None:  # what the server does meanwhile: append, and sign a checkpoint now and then
        while not stop.is_set():
            store.append(acme.id, prepared_events(20))
            written[0] += 20
            if written[0] % 200 == 0:
                make_checkpoint(store, signer, acme)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written[0] < 100:  # the writes are under way before the copy starts
            stop.wait(0.01)
        before = written[0]
        dest = tmp_path / "backups" / "vigil.db"
        # one page per step: a backup that started over on every write would never finish
        result = run("backup", str(dest), "--database", settings.database, "--step-pages", "1")
        during = written[0] - before
    finally:
        stop.set()
        writer.join()
    assert during > 0, "no write happened during the backup"
    assert "checked" in result.stdout and "tenant checkpoint(s)" in result.stdout
    assert stat.S_IMODE(os.stat(str(dest) + ".signing-key").st_mode) == 0o600
    assert (Path(str(dest) + ".signing-key.state") / "acme.checkpoint").is_file()
    report = json.loads(run("verify", "--database", str(dest), "--json").stdout)
    (copied,) = [t for t in report["tenants"] if t["tenant"] == "acme"]
    assert 5000 <= copied["events"] <= store.tree_size(acme.id)
    assert copied["trusted"]  # held to the copied trusted state, not only to itself


def test_the_copy_is_the_moment_it_started_and_never_starts_over(
    live: tuple[Settings, Store], tmp_path: Path
) -> None:
    """A commit lands in the middle of the copy (the progress callback waits for it): the copy goes on from where
    it was, never from the start again, and holds the log exactly as it was when the copy began."""
    settings, store = live
    acme = store.get_tenant("acme")
    at_start = store.tree_size(acme.id)
    progress: list[int] = []

    def step(done: int, total: int) -> None:
        progress.append(done)
        if len(progress) == 3:  # mid-copy: the server commits more events, and the copy sees a changed file
            store.append(acme.id, prepared_events(50))

    dest = tmp_path / "moment.db"
    total = sqlite_backup(Path(settings.database), dest, step_pages=8, progress=step)
    assert len(progress) > 3 and progress == sorted(progress) and progress[-1] == total
    assert store.tree_size(acme.id) == at_start + 50
    copy = open_store(str(dest), settings)
    try:
        assert copy.tree_size(copy.get_tenant("acme").id) == at_start
    finally:
        copy.close()


def test_a_backup_is_never_overwritten_without_force(live: tuple[Settings, Store], tmp_path: Path) -> None:
    """A second backup to the same place is refused, and names what exists; --force replaces all three."""
    settings, _ = live
    dest = str(tmp_path / "b.db")
    run("backup", dest, "--database", settings.database)
    first = Path(dest).stat().st_mtime_ns
    again = run("backup", dest, "--database", settings.database, ok=False)
    assert again.exit_code != 0 and "already exist" in again.output and "--force" in again.output
    assert Path(dest).stat().st_mtime_ns == first
    run("backup", dest, "--database", settings.database, "--force")
    assert Path(dest).stat().st_mtime_ns != first
    itself = run("backup", settings.database, "--database", settings.database, "--force", ok=False)
    assert "DEST is the database itself" in itself.output


def test_a_backup_without_the_signing_key_says_so(live: tuple[Settings, Store], tmp_path: Path) -> None:
    """--no-signing-key leaves the key out and says where the restore must get it; the copy still verifies
    with the public key alone."""
    settings, _ = live
    dest = tmp_path / "nokey.db"
    out = run("backup", str(dest), "--database", settings.database, "--no-signing-key").stdout
    assert "signing key: NOT copied" in out
    assert not Path(str(dest) + ".signing-key").exists()
    vkey = load_signer(settings).vkey
    run("verify", "--database", str(dest), "--vkey", vkey)


def test_backup_json_prints_one_document_and_no_progress(
    live: tuple[Settings, Store], tmp_path: Path
) -> None:
    """--json: the report only, on standard output; no progress label anywhere."""
    settings, _ = live
    result = run("backup", str(tmp_path / "j.db"), "--database", settings.database, "--json")
    report = json.loads(result.stdout)
    assert report["kind"] == "sqlite" and report["pages"] > 0 and report["trusted_state"]["tenants"] == 1
    assert "backup" not in result.stderr


def test_backup_of_a_missing_database_fails(tmp_path: Path) -> None:
    """Nothing to back up is an error, not an empty copy."""
    result = run("backup", str(tmp_path / "b.db"), "--database", str(tmp_path / "none.db"), ok=False)
    assert result.exit_code != 0 and "no Vigil database" in result.output
    assert not (tmp_path / "b.db").exists()


@pytest.mark.service
def test_postgres_backup_with_pg_dump_restores_and_verifies(tmp_path: Path) -> None:
    """pg_dump of a live PostgreSQL log, restored with pg_restore into another database, verifies there after
    `vigil migrate` has granted the roles named after the new database."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        unavailable("pg_dump and pg_restore (postgresql-client)")
    key = str(tmp_path / "server" / "signing-key")
    source_gen, target_gen = fresh_database(), fresh_database()
    source, target = next(source_gen), next(target_gen)
    try:
        settings = Settings.load({"database": source, "signing_key": key}, environ={})
        store = open_store(source, settings)
        try:
            acme = store.create_tenant("acme")
            store.append(acme.id, prepared_events(300))
            make_checkpoint(store, load_signer(settings), acme)
        finally:
            store.close()
        dest = tmp_path / "pg.dump"
        out = run("backup", str(dest), "--database", source, "--signing-key", key).stdout
        assert "pg_dump" in out and dest.read_bytes()[:5] == b"PGDMP"
        assert (Path(str(dest) + ".signing-key.state") / "acme.checkpoint").is_file()
        restored = subprocess.run(  # the restore docs/deployment.md gives
            ["pg_restore", "--no-owner", "--no-privileges", f"--dbname={target}", str(dest)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        copy = ["--database", target, "--signing-key", str(dest) + ".signing-key"]
        run("migrate", "--database", target)
        report = json.loads(run("verify", *copy, "--json").stdout)
        assert [t["events"] for t in report["tenants"] if t["tenant"] == "acme"] == [300]
    finally:
        for gen in (source_gen, target_gen):
            gen.close()  # drops the database and its roles


def test_no_database_copies_only_the_key_and_trusted_state(
    live: tuple[Settings, Store], tmp_path: Path
) -> None:
    """--no-database (for a database dumped another way): the key and the trusted state land beside DEST, and
    DEST itself is left alone."""
    settings, _ = live
    dest = tmp_path / "dumped-elsewhere.dump"
    report = json.loads(
        run("backup", str(dest), "--database", settings.database, "--no-database", "--json").stdout
    )
    assert report["kind"] is None and not dest.exists()
    assert Path(str(dest) + ".signing-key").is_file()
    assert (Path(str(dest) + ".signing-key.state") / "acme.checkpoint").is_file()
