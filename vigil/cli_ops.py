"""Operations commands of the ``vigil`` CLI: ``backup``.

A backup is three things, because the log's proof lives partly outside the database (``docs/verify.md``,
"Trusted state"): the database, the server's trusted state (the last checkpoint it signed per tenant) and the
signing key. They are written side by side under the names ``vigil serve`` and ``vigil verify`` look for by
default, so ``--database DEST`` alone uses the copy as it is:

    DEST                        the database (SQLite; a pg_dump archive for PostgreSQL)
    DEST.signing-key            the Ed25519 signing key, mode 0600 (left out with --no-signing-key)
    DEST.signing-key.state/     the trusted state

The trusted state is copied before the database: it names only checkpoints already committed, so the database
copy, taken later, holds every checkpoint the state copy names, and the restored server starts clean.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import click

from vigil.cli import _emit, _settings, json_option, main, safe_url, setting_options
from vigil.errors import StorageError

_PG = ("postgresql://", "postgres://")


def sqlite_backup(
    source: Path, target: Path, step_pages: int = 1024, progress: Callable[[int, int], None] | None = None
) -> int:
    """Copy the SQLite database ``source`` to ``target`` with SQLite's online backup API; returns its pages.

    Safe while a server writes: one read transaction is held for the whole copy, so every step reads the same
    snapshot (in WAL mode writers go on meanwhile) and the backup never restarts because of them, however busy
    the server is. The copy is checked (``PRAGMA quick_check``) and only then renamed to ``target``.
    ``progress(done, total)`` is told after each step of ``step_pages`` pages."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    tmp.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open SQLite database {source}: {exc}") from exc
    try:
        src.execute("PRAGMA busy_timeout=10000")
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot every step copies from
        total = int(src.execute("PRAGMA page_count").fetchone()[0])
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(
                dst,
                pages=step_pages,
                progress=(lambda _status, left, pages: progress(pages - left, pages)) if progress else None,
            )
            dst.execute(
                "PRAGMA journal_mode=DELETE"
            )  # one self-contained file; the server turns WAL on again
            found = dst.execute("PRAGMA quick_check").fetchone()[0]
            if found != "ok":
                raise StorageError(f"the copy of {source} failed SQLite's check: {found}")
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"backup of {source} failed: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    _fsync(tmp)
    os.replace(tmp, target)
    _fsync(target.parent)
    return total


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pg_backup(url: str, target: Path) -> None:
    """``pg_dump --format=custom`` of the database at ``url`` into ``target`` (the password goes to pg_dump in
    its environment, never on its command line, where other users of the machine could read it)."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise click.ClickException(
            "pg_dump is not on PATH (Debian: apt-get install postgresql-client). Back up the database with\n"
            f"  pg_dump --format=custom --file {target} '{safe_url(url)}'\n"
            "and rerun this command with --no-database for the signing key and trusted state"
        )
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    done = subprocess.run(  # noqa: S603 - a fixed program and arguments, no shell
        [pg_dump, "--format=custom", f"--file={tmp}", f"--dbname={url}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"pg_dump failed: {done.stderr.strip()}")
    _fsync(tmp)
    os.replace(tmp, target)


def copy_state(source: Path, target: Path) -> int:
    """Copy the trusted state directory (its signed checkpoint files); returns how many tenants it holds.

    Each file is replaced atomically by the server, so each copy is a whole checkpoint, old or new."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    count = 0
    for item in sorted(source.glob("*.checkpoint")):
        if item.is_file() and not item.name.startswith("."):
            _copy_private(item, tmp / item.name)
            count += 1
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return count


def _copy_private(source: Path, target: Path) -> None:
    """Copy a file into a new one readable by its owner only (mode 0600), synced."""
    data = source.read_bytes()
    target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@main.command(short_help="Back up the database, key and trusted state.")
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace DEST and the copies beside it when they exist.")
@click.option(
    "--no-signing-key",
    "skip_key",
    is_flag=True,
    help="Leave the signing key out (when it is kept in a secrets store): the backup then restores only with it.",
)
@click.option(
    "--no-database",
    "skip_db",
    is_flag=True,
    help="Copy only the signing key and the trusted state (the database is backed up another way).",
)
@click.option(
    "--step-pages",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="SQLite pages copied per step of the online backup (how often the progress line moves).",
)
@setting_options("database", "signing_key", "state_dir")
@json_option
def backup(
    dest: str,
    force: bool,
    skip_key: bool,
    skip_db: bool,
    step_pages: int,
    as_json: bool,
    **opts: Any,
) -> None:
    """Back up the database, the server's trusted state and its signing key to DEST, while the server runs.

    SQLite: a consistent copy made with SQLite's online backup API while the server goes on writing, checked
    before it is renamed into place. PostgreSQL: pg_dump --format=custom (restore with pg_restore; see
    docs/deployment.md). Beside DEST go DEST.signing-key and DEST.signing-key.state/, where `vigil serve
    --database DEST` and `vigil verify --database DEST` look for them. Refuses to replace an existing backup
    without --force.
    """
    from vigil.ledger.checkpoints import key_path, state_path
    from vigil.store import database_exists

    settings = _settings(**opts)
    database = str(settings.database)
    db_dest = Path(dest).expanduser()
    key_dest = db_dest.with_name(db_dest.name + ".signing-key")
    state_dest = key_dest.with_name(key_dest.name + ".state")
    src_key, src_state = key_path(settings), state_path(settings)
    targets = [p for p, skip in ((db_dest, skip_db), (key_dest, skip_key), (state_dest, False)) if not skip]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} already exist(s): pass --force to replace")
    postgres = database.startswith(_PG)
    source = Path(database.removeprefix("sqlite:///")).expanduser()
    if not skip_db and not postgres:
        if source.resolve() == db_dest.resolve():
            raise click.ClickException("DEST is the database itself")
        if not database_exists(database):
            raise click.ClickException(f"no Vigil database at {safe_url(database)}: check --database")
    db_dest.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"database": safe_url(database), "backup": str(db_dest)}

    # 1. the trusted state, before the database (see the module docstring)
    if src_state.is_dir():
        report["trusted_state"] = {"path": str(state_dest), "tenants": copy_state(src_state, state_dest)}
    else:
        report["trusted_state"] = None
    # 2. the signing key
    if skip_key:
        report["signing_key"] = None
    elif src_key.is_file():
        tmp = key_dest.with_name(f".{key_dest.name}.{os.getpid()}.partial")
        _copy_private(src_key, tmp)
        os.replace(tmp, key_dest)
        report["signing_key"] = str(key_dest)
    else:
        report["signing_key"] = None
        report["no_signing_key_at"] = str(src_key)
    # 3. the database
    if skip_db:
        report["kind"] = None
    elif postgres:
        report["kind"] = "pg_dump"
        if not as_json:
            click.echo(f"running pg_dump of {safe_url(database)} …", err=True)
        pg_backup(database, db_dest)
        report["bytes"] = db_dest.stat().st_size
    else:
        report["kind"] = "sqlite"
        report["pages"] = _sqlite_with_progress(source, db_dest, step_pages, not as_json)
        report["bytes"] = db_dest.stat().st_size
    if as_json:
        _emit(True, report, "")
        return
    _emit(False, report, _text(report, src_key, skip_key))


def _sqlite_with_progress(source: Path, target: Path, step_pages: int, show: bool) -> int:
    if not show:
        return sqlite_backup(source, target, step_pages)
    with click.progressbar(length=0, label="backup", file=sys.stderr, show_pos=True) as bar:
        shown = 0

        def progress(done: int, total: int) -> None:
            nonlocal shown
            bar.length = total
            bar.update(done - shown)
            shown = done

        return sqlite_backup(source, target, step_pages, progress)


def _text(report: dict[str, Any], src_key: Path, skip_key: bool) -> str:
    lines = []
    if report["kind"] == "sqlite":
        lines.append(
            f"backed up {report['database']} to {report['backup']}: {report['bytes'] / 1e6:,.1f} MB, "
            f"{report['pages']:,} pages, checked"
        )
    elif report["kind"] == "pg_dump":
        lines.append(
            f"backed up {report['database']} with pg_dump to {report['backup']} ({report['bytes'] / 1e6:,.1f} MB); "
            "restore it with pg_restore (docs/deployment.md)"
        )
    state = report["trusted_state"]
    lines.append(
        f"trusted state: {state['tenants']} tenant checkpoint(s) to {state['path']}"
        if state
        else "trusted state: none yet (no checkpoint signed)"
    )
    if report["signing_key"]:
        lines.append(
            f"signing key: copied to {report['signing_key']} (mode 0600; it signs checkpoints: keep this backup "
            "as safe as the server)"
        )
    elif skip_key:
        lines.append(
            f"signing key: NOT copied (--no-signing-key): a restore needs the key at {src_key} from where you "
            "keep it"
        )
    else:
        lines.append(f"signing key: none at {src_key} (the server creates it at its first start)")
    return "\n".join(lines)
