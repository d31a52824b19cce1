"""``vigil verify``'s index check and ``vigil reindex``: the search indexes against the ledger they derive from."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click

from vigil.cli import _open_existing, _settings, main
from vigil.cli_options import json_option, progress, setting_options
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT, Tenant
from vigil.store.indexcheck import IndexStore, check_indexes, reindex
from vigil.text import plural

SHOW = 50


def _indexed(store: Store) -> IndexStore:
    if not hasattr(store, "index_source"):
        raise click.ClickException("this store cannot check its indexes")
    return store  # type: ignore[return-value]


def verify_indexes(store: Store, tenants: Sequence[Tenant], every: bool, as_json: bool) -> dict[str, Any]:
    """Check every derived row of ``tenants`` against the ledger; print what differs and exit 1 if anything does.
    Returns what ``verify --json`` adds to its answer."""
    total = sum(store.tree_size(t.id) for t in tenants)
    with progress(total, f"{'indexes':<12}", as_json) as bar:
        report = check_indexes(_indexed(store), tenants, every=every, progress=bar.update, show=SHOW)
    if not report.ok:
        error = (
            f"index verification FAILED: {plural(report.problems, 'derived row')} differ from the ledger; "
            "`vigil reindex` rebuilds them from it"
        )
        if as_json:
            problems = [{"tenant": f.tenant, "seq": f.key, "message": f.message} for f in report.shown]
            click.echo(json.dumps({"ok": False, "error": error, "index_problems": problems}, indent=2))
        else:
            for f in report.shown:
                click.echo(f"  {f}", err=True)
            if report.problems > len(report.shown):
                click.echo(f"  … and {report.problems - len(report.shown)} more", err=True)
        raise click.ClickException(error)
    rate = report.events / report.seconds if report.seconds else 0.0
    if not as_json:
        click.echo(
            f"ok  indexes: {plural(report.events, 'event')} of {plural(report.tenants, 'tenant')} match the ledger "
            f"(columns, targets, full-text, time blocks; {rate:,.0f} events/s)"
        )
    return {"indexes": {"ok": True, "events": report.events, "seconds": report.seconds}}


@main.command("reindex", short_help="Rebuild the search indexes from the ledger.")
@click.option("--tenant", help="Only this tenant (default: every tenant, and rows filed under none).")
@setting_options("database")
@json_option
def reindex_cmd(tenant: str | None, database: str | None, as_json: bool) -> None:
    """Rebuild the search indexes from the ledger: row columns, target rows, full-text index, time blocks.

    Every derived row that differs from what the event's canonical bytes say is rewritten; rows that agree are
    left alone. Run `vigil verify` first: the ledger is what the indexes are rebuilt from. The rebuild is
    recorded in the platform log.
    """
    store = _open_existing(_settings(database=database))
    try:
        tenants = [store.get_tenant(tenant)] if tenant else store.list_tenants()
        total = sum(store.tree_size(t.id) for t in tenants)
        with progress(total, "reindexing", as_json) as bar:
            report = reindex(_indexed(store), tenants, every=tenant is None, progress=bar.update)
        _record(store, tenants, report.repaired, report.events, len(report.unrepairable))
    finally:
        store.close()
    left = [str(f) for f in report.unrepairable]
    if as_json:
        out = {
            "tenants": report.tenants,
            "events": report.events,
            "repaired": report.repaired,
            "unrepairable": left,
            "seconds": report.seconds,
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(
            f"reindexed {plural(report.events, 'event')} of {plural(report.tenants, 'tenant')}: "
            f"{plural(report.repaired, 'derived row')} rewritten"
        )
    if left:
        for line in left[:SHOW]:
            click.echo(f"  {line}", err=True)
        raise click.ClickException(
            f"{plural(len(left), 'problem')} an index rebuild cannot mend: the ledger itself is damaged (vigil verify)"
        )


def _record(store: Store, tenants: Sequence[Tenant], repaired: int, events: int, unrepairable: int) -> None:
    """Record the rebuild in the platform log, like every admin action on the logs."""
    from vigil.ingest.intake import Prepared, prepare_event
    from vigil.model import Actor, EventIn, Target

    ev = EventIn(
        action="audit_log.reindexed",
        category="system",
        outcome="success" if not unrepairable else "failure",
        actor=Actor(id="vigil-cli", type="system", name="vigil reindex"),
        targets=[Target(type="tenant", id=t.slug) for t in tenants[:20]],
        message=f"search indexes of {len(tenants)} tenant(s) rebuilt from the ledger",
        metadata={
            "tenants": len(tenants),
            "events": events,
            "repaired": repaired,
            "unrepairable": unrepairable,
        },
    )
    platform = store.get_tenant(PLATFORM_TENANT)
    prepared = prepare_event(ev, PLATFORM_TENANT, time.time_ns() // 1000)
    if not isinstance(prepared, Prepared):  # our own event: a rejection is a bug, never silent
        raise click.ClickException(f"could not record the rebuild in the platform log: {prepared.errors}")
    store.append(platform.id, [prepared])
