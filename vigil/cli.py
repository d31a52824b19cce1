"""The ``vigil`` command line. Thin: every command parses its options and calls the store or the app."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

import vigil
from vigil.errors import VigilError
from vigil.settings import BY_NAME, Settings
from vigil.store import Store, open_store

F = TypeVar("F", bound=Callable[..., Any])

DEMO_TENANTS: tuple[tuple[str, str, int], ...] = (
    ("acme", "Acme Corp", 50_000),
    ("globex", "Globex Corporation", 30_000),
    ("initech", "Initech", 20_000),
)


def setting_options(*names: str) -> Callable[[F], F]:
    """Click options generated from the settings table (flag, help, default shown; env var named)."""

    def decorate(fn: F) -> F:
        for name in reversed(names):
            s = BY_NAME[name]
            kwargs: dict[str, Any] = {
                "default": None,
                "help": f"{s.help} [env: {s.env}; default: {s.default}]",
            }
            if s.choices:
                kwargs["type"] = click.Choice(s.choices, case_sensitive=False)
            fn = click.option(s.flag, s.name, **kwargs)(fn)
        return fn

    return decorate


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


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

    Every command takes --database (a SQLite path; env VIGIL_DATABASE; default ./vigil.db).
    Start with `vigil demo` then `vigil serve`.
    """


@main.command()
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
)
def serve(**opts: Any) -> None:
    """Run the HTTP API (ingest, search, OpenAPI at /schema)."""
    import logging

    import uvicorn

    from vigil.web import create_app

    settings = _settings(**opts)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    store = _open(settings, exclusive=True)  # one server per SQLite file: a second one is refused here
    click.echo(
        f"vigil {vigil.__version__}: serving {safe_url(settings.database)} on http://{settings.host}:{settings.port}"
        f" (OpenAPI: /schema/openapi.json)",
        err=True,
    )
    # The app closes the store on shutdown: uvicorn re-raises SIGTERM after its graceful shutdown, so code
    # after run() would never see it.
    app = create_app(settings, store, own_store=True)
    # Intake (event loop) and the writer thread share the GIL; a shorter switch interval stops the loop from
    # waiting milliseconds for the writer between small system calls (measured: bench/ingest.py).
    sys.setswitchinterval(0.0005)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
        )
    finally:
        store.close()


@main.command()
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


@main.group()
def tenants() -> None:
    """Create and list tenants (one log per tenant)."""


@tenants.command("create")
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


@tenants.command("list")
@setting_options("database")
@json_option
def tenants_list(database: str | None, as_json: bool) -> None:
    """List tenants with the size of their logs."""
    store = _open_existing(_settings(database=database))
    try:
        rows = [
            {"slug": t.slug, "name": t.name, "created_at": t.created_at, "events": store.tree_size(t.id)}
            for t in store.list_tenants()
        ]
    finally:
        store.close()
    text = "\n".join(f"{r['slug']:<24} {r['events']:>10} events  {r['name']}" for r in rows) or "no tenants"
    _emit(as_json, rows, text)


@main.command()
@click.option(
    "--events",
    "total",
    type=click.IntRange(min=100),
    default=100_000,
    show_default=True,
    help="How many events in all, shared by acme, globex and initech.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=30,
    show_default=True,
    help="How many days of history, ending now.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same data).")
@setting_options("database", "port")
@json_option
def demo(total: int, days: int, seed: int, database: str | None, port: int | None, as_json: bool) -> None:
    """Create tenants acme, globex and initech with realistic events, including a few attacks.

    Tenants that already hold events are left as they are; fresh keys are printed either way.
    """
    from vigil import demo as demo_data
    from vigil import keys
    from vigil.errors import NotFound
    from vigil.ingest.intake import Prepared, prepare_event
    from vigil.model import EventIn

    settings = _settings(database=database, port=port)
    store = _open(settings)
    out: dict[str, Any] = {"database": safe_url(settings.database), "tenants": {}}
    whole = sum(n for _, _, n in DEMO_TENANTS)
    started = time.perf_counter()
    written = 0
    by, scopes = keys.operator(), frozenset({"ingest", "read"})
    try:
        for slug, name, share in DEMO_TENANTS:
            try:
                tenant = store.get_tenant(slug)
            except NotFound:
                tenant = store.create_tenant(slug, name)
            count = max(1, total * share // whole)
            info: dict[str, Any] = {"events": store.tree_size(tenant.id)}
            if info["events"] == 0:
                events, attacks = demo_data.generate(slug, count, days=days, seed=seed)
                received_us = time.time_ns() // 1000
                prepared: list[Prepared] = []
                with click.progressbar(
                    length=len(events), label=f"{slug:<8}", file=sys.stderr, show_pos=True
                ) as bar:
                    for i in range(0, len(events), 1000):
                        chunk = []
                        for raw in events[i : i + 1000]:
                            p = prepare_event(msgspec.convert(raw, EventIn), slug, received_us)
                            if not isinstance(p, Prepared):
                                raise click.ClickException(f"demo event rejected: {p.errors}")
                            chunk.append(p)
                        store.append(tenant.id, chunk)
                        prepared.extend(chunk)
                        bar.update(len(chunk))
                written += len(events)
                info["events"] = len(events)
                info["attacks"] = [
                    {"name": a.name, "technique": a.technique, "description": a.description} for a in attacks
                ]
            # a rerun retires the keys an earlier run printed: demo keys end up in shell histories and docs
            changes = [
                *keys.revoke_named(store, tenant, "demo", by),
                keys.create(store, tenant, scopes, "demo", by),
            ]
            keys.record(store, changes)
            info["key"], info["revoked_keys"] = changes[-1].secret, [c.key.key_id for c in changes[:-1]]
            out["tenants"][slug] = info
        store.optimize()  # type: ignore[attr-defined]
    finally:
        store.close()
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    port_ = settings.port
    click.echo(f"\nwrote {written:,} events in {seconds:.1f} s to {safe_url(settings.database)}\n")
    for slug, info in out["tenants"].items():
        click.echo(f"  {slug:<8} {info['events']:>7,} events   key (ingest, read): {info['key']}")
        for a in info.get("attacks", []):
            click.echo(f"           planted: {a['name']} ({a['technique']})")
    acme_key = out["tenants"]["acme"]["key"]
    click.echo(
        f"\nStart the server:   vigil serve --database {safe_url(settings.database)}\nThen try:\n"
        f"  curl -s -H 'Authorization: Bearer {acme_key}' "
        f"'http://127.0.0.1:{port_}/v1/events?action=user.login&outcome=failure&limit=5'"
    )


@main.command()
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
                with click.progressbar(
                    length=size, label=f"{t.slug:<12}", file=sys.stderr, show_pos=True
                ) as bar:
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
        held = f"  held to {r.trusted} outside checkpoint(s)" if r.trusted else ""
        click.echo(
            f"ok  {r.tenant:<16} {r.events:>10,} events  {r.checkpoints:>5} checkpoints  "
            f"{rate:>10,.0f} events/s{held}"
        )
    click.echo(f"verified {len(reports)} tenant log(s): complete and unaltered")


def _verify_indexes(store: Store, tenants: list[Any], every: bool, as_json: bool) -> dict[str, Any]:
    """verify's second half: the search indexes against the ledger (vigil/cli_index.py)."""
    from vigil.cli_index import verify_indexes

    return verify_indexes(store, tenants, every, as_json)


@main.command()
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


@main.command()
@click.option("--tenant", required=True, help="Tenant whose log to export.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["bundle", "ndjson"]),
    default="bundle",
    show_default=True,
    help="bundle: events + signed checkpoint + proofs + verifier key (a zip, checkable offline by "
    "`vigil verify-bundle`); ndjson: the events only.",
)
@click.option("--from-seq", type=click.IntRange(min=0), default=0, show_default=True, help="First seq.")
@click.option(
    "--to-seq", type=click.IntRange(min=1), help="Seq after the last one (default: the end of the log)."
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True), help="File to write."
)
@setting_options("database", "signing_key", "key_name", "state_dir")
def export(
    tenant: str,
    fmt: str,
    from_seq: int,
    to_seq: int | None,
    output: str,
    database: str | None,
    signing_key: str | None,
    key_name: str | None,
    state_dir: str | None,
) -> None:
    """Export a tenant's events, as a verifiable bundle or plain NDJSON."""
    import os

    from vigil.ledger.bundle import write_bundle
    from vigil.ledger.checkpoints import load_signer

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name, state_dir=state_dir)
    store = _open_existing(settings)
    tmp = output + ".partial"
    try:
        t = store.get_tenant(tenant)
        size = store.tree_size(t.id)
        end = to_seq if to_seq is not None else size
        if not from_seq < end <= size:
            raise click.UsageError(
                f"need --from-seq < --to-seq <= {size} (the log's size); got {from_seq}..{end}"
            )
        with (
            open(tmp, "wb") as fh,
            click.progressbar(
                length=max(end - from_seq, 0), label="exporting", file=sys.stderr, show_pos=True
            ) as bar,
        ):
            if fmt == "bundle":
                write_bundle(store, load_signer(settings), t, fh, from_seq, end, bar.update)
            else:
                for start in range(from_seq, end, 10_000):
                    rows = store.read_range(t.id, start, min(start + 10_000, end))
                    fh.write(b"".join(body + b"\n" for _, _, body in rows))
                    bar.update(len(rows))
        os.replace(tmp, output)  # never leave a half-written export under the real name
    finally:
        store.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    click.echo(f"wrote {fmt} of {tenant} seqs {from_seq}..{end - 1} to {output}")


@main.command("verify-bundle")
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


# The detection commands (detect, alerts, rules) live in their own module; importing it registers them.
from vigil import cli_detect, cli_index  # noqa: E402

__all__ = ["cli_detect", "cli_index", "main"]
from vigil import cli_keys  # noqa: E402, F401  (keys create, list, revoke, rotate)

if __name__ == "__main__":
    # Run as ``python -m vigil.cli`` this file is ``__main__``, and the command modules registered their
    # commands on ``vigil.cli.main``: run that one.
    from vigil.cli import main as registered

    registered()
