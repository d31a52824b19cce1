"""The ``vigil`` command line. Thin: every command parses its options and calls the store or the app."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import vigil
from vigil.cli_options import json_option, progress, setting_options
from vigil.errors import VigilError
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.text import noun, plural


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.load(overrides)
    except VigilError as exc:
        raise click.UsageError(exc.message) from None


def _open(settings: Settings, *, exclusive: bool = False) -> Store:
    try:
        return open_store(settings.database, settings, exclusive=exclusive)
    except VigilError as exc:
        raise click.ClickException(exc.message) from None


def _open_existing(settings: Settings) -> Store:
    """Open a database that must exist already: a read-only command never creates an empty one (and then
    reports it as verified)."""
    from vigil.store import database_exists

    try:
        exists = database_exists(settings.database)
    except VigilError as exc:
        raise click.ClickException(exc.message) from None
    if not exists:
        raise click.ClickException(
            f"no Vigil database at {safe_url(settings.database)}: check --database (or VIGIL_DATABASE); "
            "`vigil demo` or `vigil serve` creates one"
        )
    return _open(settings)


def safe_url(database: str) -> str:
    """A database URL fit for logs: any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database)
    if parts.password is None:
        return database
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigilError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(vigil.__version__, prog_name="vigil")
def main() -> None:
    """Vigil: tamper-evident, multi-tenant audit logs for SaaS.

    Every command that reads or writes a log takes --database: a SQLite file path (default ./vigil.db) or a
    PostgreSQL URL (postgresql://user:password@host/db); VIGIL_DATABASE sets it for every command. Start with
    `vigil demo`, then `vigil serve`. `vigil COMMAND --help` explains each command.
    """


@main.command(short_help="Run the server: HTTP API, detection and checkpoints.")
@setting_options(
    "database",
    "host",
    "port",
    "rate_limit",
    "rate_burst",
    "rate_limit_bytes",
    "rate_burst_bytes",
    "search_rate_limit",
    "search_rate_burst",
    "export_rate_limit",
    "commit_tenant_events",
    "tenant_queue_events",
    "body_timeout",
    "max_clock_skew",
    "idempotency_window",
    "read_audit_window",
    "auth_failure_limit",
    "auth_failure_window",
    "sqlite_synchronous",
    "commit_max_events",
    "sqlite_min_free_mb",
    "signing_key",
    "key_name",
    "state_dir",
    "checkpoint_interval",
    "detect",
    "rules",
    "geoip_database",
    "trusted_networks",
    "redaction_rules",
    "log_level",
    "log_format",
    "trusted_proxies",
    "metrics",
    "metrics_tenants",
)
def serve(**opts: Any) -> None:
    """Run the HTTP API (ingest, search, OpenAPI at /schema)."""
    import logging

    from vigil.logs import configure
    from vigil.web import create_app
    from vigil.web.server import bind, run, url_of

    settings = _settings(**opts)
    configure(settings.log_level, settings.log_format)  # one format for every line the server prints
    # bind first: a port in use is one clear line, before anything starts
    sock = bind(settings.host, settings.port)
    try:
        store = _open(settings, exclusive=True)  # one server per SQLite file: a second one is refused here
    except BaseException:
        sock.close()
        raise
    url = url_of(sock)

    def announce() -> None:
        logging.getLogger("vigil.serve").info(
            f"vigil {vigil.__version__}: serving {safe_url(settings.database)} on {url}"
            f" (OpenAPI: {url}/schema/openapi.json)"
        )

    # The app closes the store on shutdown: uvicorn re-raises SIGTERM after its graceful shutdown, so code
    # after run() would never see it.
    app = create_app(settings, store, own_store=True)
    # Intake (event loop) and the writer thread share the GIL; a shorter switch interval stops the loop from
    # waiting milliseconds for the writer between small system calls (measured: bench/ingest.py).
    sys.setswitchinterval(0.0005)
    try:
        run(
            app,
            sock,
            announce,
            log_level=settings.log_level,
            log_config=None,  # uvicorn's loggers print through vigil.logs, in the one format
            access_log=False,  # the app writes its own access log (vigil.web.access), with the tenant and key id
            proxy_headers=False,  # X-Forwarded-For is trusted only from `trusted_proxies`, by the app itself
        )
    finally:
        store.close()
        sock.close()


@main.command(short_help="Bring the database schema up to date.")
@setting_options("database")
@json_option
def migrate(database: str | None, as_json: bool) -> None:
    """Bring the database schema up to date (idempotent; every open does it too)."""
    store = _open(_settings(database=database))
    try:
        version = store.schema_version()  # type: ignore[attr-defined]
    finally:
        store.close()
    _emit(as_json, {"schema_version": version}, f"schema is at version {version}")


@main.group(short_help="Create and list tenants.")
def tenants() -> None:
    """Create and list tenants (one log per tenant)."""


@tenants.command("create", short_help="Create a tenant.")
@click.argument("slug")
@click.option("--name", help="Display name (default: the slug).")
@setting_options("database")
@json_option
def tenants_create(slug: str, name: str | None, database: str | None, as_json: bool) -> None:
    """Create tenant SLUG."""
    store = _open(_settings(database=database))
    try:
        t = store.create_tenant(slug, name)
    finally:
        store.close()
    _emit(
        as_json,
        {"id": t.id, "slug": t.slug, "name": t.name, "created_at": t.created_at},
        f"created tenant {t.slug}",
    )


@tenants.command("list", short_help="List tenants and the size of their logs.")
@setting_options("database")
@json_option
def tenants_list(database: str | None, as_json: bool) -> None:
    """List tenants with the size of their logs."""
    store = _open_existing(_settings(database=database))
    try:
        rows: list[dict[str, Any]] = [
            {"slug": t.slug, "name": t.name, "created_at": t.created_at, "events": store.tree_size(t.id)}
            for t in store.list_tenants()
        ]
    finally:
        store.close()
    text = (
        "\n".join(
            f"{r['slug']:<24} {r['events']:>10,} {noun(r['events'], 'event'):<6}  {r['name']}" for r in rows
        )
        or "no tenants"
    )
    _emit(as_json, rows, text)


@main.command(short_help="Check that every log is complete and unaltered.")
@click.option("--tenant", help="Only this tenant (default: every tenant).")
@click.option(
    "--vkey",
    "vkey_opt",
    metavar="KEY|@FILE|URL",
    help="The log's public verifier key: the key itself, a file holding it, or the server's "
    "/v1/checkpoints/key URL. Enough on its own: the private signing key is never needed. "
    "Default: derived from the signing key, when this machine has it.",
)
@click.option(
    "--state",
    "memory_path",
    type=click.Path(dir_okay=False),
    help="This verifier's memory: the newest checkpoint it verified per log, which the next run requires the "
    "log to extend. Default: $XDG_STATE_HOME/vigil/verified-checkpoints.json (~/.local/state/...).",
)
@click.option(
    "--no-indexes", is_flag=True, help="Skip checking the search indexes against the ledger (vigil reindex)."
)
@setting_options("database", "signing_key", "key_name", "state_dir")
@json_option
def verify(
    tenant: str | None,
    vkey_opt: str | None,
    memory_path: str | None,
    database: str | None,
    signing_key: str | None,
    key_name: str | None,
    state_dir: str | None,
    as_json: bool,
    no_indexes: bool = False,
) -> None:
    """Check every log end to end: leaf hashes, seq gaps, tree data, checkpoint roots, signatures, consistency.

    Each log must also extend the checkpoints kept outside the database: the server's trusted state (when its
    directory is readable here) and this verifier's own memory of what it verified last time, so a log that
    was truncated or rewritten, or whose checkpoints were deleted, fails even when the database agrees with
    itself. Exits 1 at the first failure, naming the tenant, the seq or checkpoint range, what was expected
    and what was found.
    """
    from vigil.ledger.checkpoints import load_signer, state_path
    from vigil.ledger.integrity import Anchor, verify_tenant
    from vigil.ledger.trust import (
        TrustedState,
        VerifierMemory,
        default_memory_path,
        origin_of,
        resolve_vkey,
    )
    from vigil.verifier import VerificationError

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name, state_dir=state_dir)
    vkey: str | None
    if vkey_opt:
        vkey, key_problem = resolve_vkey(vkey_opt), ""
    else:
        try:
            vkey, key_problem = load_signer(settings, create=False).vkey, ""
        except VigilError as exc:  # no key yet: fine for logs that were never checkpointed
            vkey, key_problem = None, exc.message
    server: TrustedState | None = None
    if vkey is not None:
        try:
            directory = state_path(settings)
        except VigilError:
            directory = None  # a database URL without --signing-key: no default place to look
        if directory is not None and directory.is_dir():
            server = TrustedState(directory, vkey)
    memory = VerifierMemory(Path(memory_path).expanduser() if memory_path else default_memory_path())
    store = _open_existing(settings)
    reports = []
    try:
        tenants = [store.get_tenant(tenant)] if tenant else store.list_tenants()
        for t in tenants:
            if vkey is None and store.checkpoints(t.id):
                raise click.ClickException(
                    f"{key_problem}: it is needed to check tenant {t.slug}'s checkpoints (pass --vkey)"
                )
            anchors: list[Anchor] = []
            origin = origin_of(t.slug)
            try:
                if vkey is not None:
                    if server is not None and (cp := server.get(t.slug)) is not None:
                        anchors.append(Anchor(cp, f"the server's trusted state ({server.directory})"))
                    if (cp := memory.get(vkey, origin)) is not None:
                        anchors.append(Anchor(cp, f"this verifier's memory ({memory.path})"))
                size = store.tree_size(t.id)
                with progress(size, f"{t.slug:<12}", as_json) as bar:
                    reports.append(verify_tenant(store, t, vkey or "", bar.update, anchors=anchors))
            except (VerificationError, VigilError) as exc:
                text = exc.message if isinstance(exc, VigilError) else str(exc)
                if as_json:
                    click.echo(json.dumps({"ok": False, "error": text}))
                raise click.ClickException(f"verification FAILED: {text}") from None
            latest = store.checkpoint(t.id)
            if vkey is not None and latest is not None:
                memory.remember(vkey, origin, latest.note)
        indexes = {} if no_indexes else _verify_indexes(store, tenants, tenant is None, as_json)
    finally:
        store.close()
        memory.save()
    if as_json:
        click.echo(json.dumps({"ok": True, "tenants": [r.__dict__ for r in reports], **indexes}, indent=2))
        return
    for r in reports:
        rate = r.events / r.seconds if r.seconds else 0.0
        held = f"  held to {plural(r.trusted, 'outside checkpoint')}" if r.trusted else ""
        click.echo(
            f"ok  {r.tenant:<16} {r.events:>10,} {noun(r.events, 'event'):<6}  {r.checkpoints:>5} "
            f"{noun(r.checkpoints, 'checkpoint'):<11}  {rate:>10,.0f} events/s{held}"
        )
    click.echo(f"verified {plural(len(reports), 'tenant log')}: complete and unaltered")


def _verify_indexes(store: Store, tenants: list[Any], every: bool, as_json: bool) -> dict[str, Any]:
    """verify's second half: the search indexes against the ledger (vigil/cli_index.py)."""
    from vigil.cli_index import verify_indexes

    return verify_indexes(store, tenants, every, as_json)


@main.command(short_help="Sign a checkpoint of a tenant's log now.")
@click.option("--tenant", required=True, help="Tenant to checkpoint.")
@setting_options("database", "signing_key", "key_name", "state_dir")
@json_option
def checkpoint(
    tenant: str,
    database: str | None,
    signing_key: str | None,
    key_name: str | None,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Sign a checkpoint of a tenant's log now (the server also does it on a schedule)."""
    from vigil.ledger.checkpoints import load_signer, make_checkpoint

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name, state_dir=state_dir)
    store = _open_existing(settings)
    try:
        cp = make_checkpoint(store, load_signer(settings), store.get_tenant(tenant))
    finally:
        store.close()
    if cp is None:
        raise click.ClickException(f"tenant {tenant}'s log is empty: nothing to checkpoint")
    _emit(as_json, {"size": cp.size, "root": cp.root.hex(), "note": cp.note}, cp.note.rstrip("\n"))


@main.command("verify-bundle", short_help="Check an export bundle offline.")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--vkey",
    help="The log's verifier key as the vendor published it (recommended). Without it the "
    "key inside the bundle is used, which proves only that the bundle is self-consistent.",
)
@setting_options("bundle_max_mb", "bundle_max_depth")
@json_option
def verify_bundle_cmd(bundle: str, vkey: str | None, as_json: bool, **limits: Any) -> None:
    """Check an export bundle offline: no server, no database."""
    from vigil.verifier import VerificationError, verify_bundle

    settings = _settings(**limits)
    try:
        report = verify_bundle(
            bundle,
            vkey,
            max_member_bytes=settings.bundle_max_mb * 1024 * 1024,
            max_depth=settings.bundle_max_depth,
        )
    except VerificationError as exc:
        raise click.ClickException(f"bundle verification FAILED: {exc}") from None
    if as_json:
        click.echo(json.dumps({"ok": True, **report.__dict__}, indent=2))
        return
    click.echo(
        f"ok  tenant {report.tenant}: events {report.first_seq}..{report.end_seq - 1} are in the signed "
        f"tree of size {report.tree_size}, which extends the first checkpoint (size "
        f"{report.first_checkpoint_size})"
    )
    if report.key_from_bundle:
        click.echo(
            "note: checked with the key inside the bundle; pass --vkey with the published key to prove "
            "who signed it",
            err=True,
        )


# The detection commands (detect, rules, alerts) and the event commands (export, search) live in their own
# modules; importing them registers them.
from vigil import cli_alerts, cli_detect, cli_events, cli_index  # noqa: E402

# the option helpers stay importable from here, where command modules have always found them
__all__ = [
    "cli_alerts",
    "cli_detect",
    "cli_events",
    "cli_index",
    "json_option",
    "main",
    "progress",
    "setting_options",
]
from vigil import (  # noqa: E402
    cli_demo,  # noqa: F401  (demo)
    cli_keys,  # noqa: F401  (keys create, list, revoke, rotate)
    cli_ops,  # noqa: F401  (backup)
    cli_sdk,  # noqa: F401  (sdk replay-dead-letters)
)

if __name__ == "__main__":
    # Run as ``python -m vigil.cli`` this file is ``__main__``, and the command modules registered their
    # commands on ``vigil.cli.main``: run that one.
    from vigil.cli import main as registered

    registered()
