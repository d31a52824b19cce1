"""The ``vigil`` command line. Thin: every command parses its options and calls the store or the app."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
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


def _open(settings: Settings) -> Store:
    try:
        return open_store(settings.database, settings)
    except VigilError as exc:
        raise click.ClickException(exc.message) from None


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
    "sqlite_synchronous",
    "commit_max_events",
    "signing_key",
    "key_name",
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
    store = _open(settings)
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
    store = _open(_settings(database=database))
    try:
        rows = [
            {"slug": t.slug, "name": t.name, "created_at": t.created_at, "events": store.tree_size(t.id)}
            for t in store.list_tenants()
        ]
    finally:
        store.close()
    text = "\n".join(f"{r['slug']:<24} {r['events']:>10} events  {r['name']}" for r in rows) or "no tenants"
    _emit(as_json, rows, text)


@main.group()
def keys() -> None:
    """Create and list API keys (only a hash of each secret is stored)."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant slug the key belongs to.")
@click.option(
    "--scope",
    "scopes",
    default="ingest",
    show_default=True,
    help="Comma-separated scopes: ingest, read, admin, security, auditor.",
)
@click.option("--name", default="", help="A label to recognise the key by.")
@setting_options("database")
@json_option
def keys_create(tenant: str, scopes: str, name: str, database: str | None, as_json: bool) -> None:
    """Create an API key. The secret is printed once and cannot be shown again."""
    from vigil.auth import create_key, parse_scopes

    store = _open(_settings(database=database))
    try:
        key, secret = create_key(store, store.get_tenant(tenant), parse_scopes(scopes), name)
    finally:
        store.close()
    _emit(
        as_json,
        {
            "key_id": key.key_id,
            "tenant": tenant,
            "scopes": sorted(key.scopes),
            "name": key.name,
            "key": secret,
        },
        f"key {key.key_id} for {tenant} ({', '.join(sorted(key.scopes))}):\n\n    {secret}\n\n"
        "Store it now: Vigil keeps only a hash and cannot show it again.",
    )


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@setting_options("database")
@json_option
def keys_list(tenant: str | None, database: str | None, as_json: bool) -> None:
    """List API keys (never their secrets)."""
    store = _open(_settings(database=database))
    try:
        tid = store.get_tenant(tenant).id if tenant else None
        rows = [
            {
                "key_id": k.key_id,
                "tenant": k.tenant,
                "name": k.name,
                "scopes": sorted(k.scopes),
                "created_at": k.created_at,
                "revoked": k.revoked,
            }
            for k in store.list_keys(tid)
        ]
    finally:
        store.close()
    text = (
        "\n".join(
            f"{r['key_id']}  {r['tenant']:<16} {','.join(r['scopes']):<20} {r['name']}"  # type: ignore[arg-type]
            for r in rows
        )
        or "no keys"
    )
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
    from vigil.auth import create_key
    from vigil.errors import NotFound
    from vigil.ingest.intake import Prepared, prepare_event
    from vigil.model import EventIn

    settings = _settings(database=database, port=port)
    store = _open(settings)
    out: dict[str, Any] = {"database": safe_url(settings.database), "tenants": {}}
    whole = sum(n for _, _, n in DEMO_TENANTS)
    started = time.perf_counter()
    written = 0
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
            _, secret = create_key(store, tenant, frozenset({"ingest", "read"}), "demo")
            info["key"] = secret
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
@setting_options("database", "signing_key", "key_name")
@json_option
def verify(
    tenant: str | None, database: str | None, signing_key: str | None, key_name: str | None, as_json: bool
) -> None:
    """Check every log end to end: leaf hashes, seq gaps, tree data, checkpoint roots, signatures, consistency.

    Exits 1 at the first failure, naming the tenant, the seq or checkpoint, what was expected and what was found.
    """
    from vigil.ledger.checkpoints import load_signer
    from vigil.ledger.integrity import verify_tenant
    from vigil.verifier import VerificationError

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name)
    store = _open(settings)
    reports = []
    try:
        try:
            vkey: str | None = load_signer(settings, create=False).vkey
            key_problem = ""
        except VigilError as exc:  # no key yet: fine for logs that were never checkpointed
            vkey, key_problem = None, exc.message
        tenants = [store.get_tenant(tenant)] if tenant else store.list_tenants()
        for t in tenants:
            if vkey is None and store.checkpoints(t.id):
                raise click.ClickException(
                    f"{key_problem}: it is needed to check tenant {t.slug}'s checkpoints (pass --signing-key)"
                )
            size = store.tree_size(t.id)
            with click.progressbar(length=size, label=f"{t.slug:<12}", file=sys.stderr, show_pos=True) as bar:
                try:
                    reports.append(verify_tenant(store, t, vkey or "", bar.update))
                except VerificationError as exc:
                    if as_json:
                        click.echo(json.dumps({"ok": False, "error": str(exc)}))
                    raise click.ClickException(f"verification FAILED: {exc}") from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "tenants": [r.__dict__ for r in reports]}, indent=2))
        return
    for r in reports:
        rate = r.events / r.seconds if r.seconds else 0.0
        click.echo(
            f"ok  {r.tenant:<16} {r.events:>10,} events  {r.checkpoints:>5} checkpoints  "
            f"{rate:>10,.0f} events/s"
        )
    click.echo(f"verified {len(reports)} tenant log(s): complete and unaltered")


@main.command()
@click.option("--tenant", required=True, help="Tenant to checkpoint.")
@setting_options("database", "signing_key", "key_name")
@json_option
def checkpoint(
    tenant: str, database: str | None, signing_key: str | None, key_name: str | None, as_json: bool
) -> None:
    """Sign a checkpoint of a tenant's log now (the server also does it on a schedule)."""
    from vigil.ledger.checkpoints import load_signer, make_checkpoint

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name)
    store = _open(settings)
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
@setting_options("database", "signing_key", "key_name")
def export(
    tenant: str,
    fmt: str,
    from_seq: int,
    to_seq: int | None,
    output: str,
    database: str | None,
    signing_key: str | None,
    key_name: str | None,
) -> None:
    """Export a tenant's events, as a verifiable bundle or plain NDJSON."""
    import os

    from vigil.ledger.bundle import write_bundle
    from vigil.ledger.checkpoints import load_signer

    settings = _settings(database=database, signing_key=signing_key, key_name=key_name)
    store = _open(settings)
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
@json_option
def verify_bundle_cmd(bundle: str, vkey: str | None, as_json: bool) -> None:
    """Check an export bundle offline: no server, no database."""
    from vigil.verifier import VerificationError, verify_bundle

    try:
        report = verify_bundle(bundle, vkey)
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
from vigil import cli_detect  # noqa: E402

__all__ = ["cli_detect", "main"]

if __name__ == "__main__":
    main()
