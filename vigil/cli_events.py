"""Event commands of the ``vigil`` CLI: ``search`` and ``export``, with the API's filters (:mod:`vigil.filters`).

Both read a tenant's log straight from the database and record the read in the platform log, as the API does
for its readers (the actor is the operator running the command).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import click

from vigil.cli import _emit, _open_existing, _settings, main
from vigil.cli_options import json_option, setting_options
from vigil.errors import VigilError
from vigil.filters import CATEGORIES, FILTERS, OUTCOMES, given, make_query
from vigil.store.base import PLATFORM_TENANT, Store

F = TypeVar("F", bound=Callable[..., Any])

_OPTION = {"q": "--text"}  # the API's q= is a word search; everything else keeps its name


def filter_options(fn: F) -> F:
    """``--actor-id``, ``--ip``, ``--since`` … : one option per search filter, named after it."""
    for name in reversed(list(FILTERS)):
        flag = _OPTION.get(name, "--" + name.replace("_", "-"))
        kwargs: dict[str, Any] = {"help": FILTERS[name], "default": None}
        if name == "outcome":
            kwargs["type"] = click.Choice(OUTCOMES)
        elif name == "category":
            kwargs["type"] = click.Choice(CATEGORIES)
        fn = click.option(flag, name, **kwargs)(fn)
    return fn


def _filters(opts: dict[str, Any]) -> dict[str, str | None]:
    return {name: opts.pop(name) for name in FILTERS}


def _record(store: Store, action: str, tenant: str, metadata: dict[str, Any]) -> None:
    """Record a read made with the CLI in the platform log, as the API records its readers'."""
    from vigil.ingest.intake import Prepared, prepare_event
    from vigil.keys import operator
    from vigil.model import MAX_METADATA_VALUE_LEN, EventIn, Target

    meta = {k: v[:MAX_METADATA_VALUE_LEN] if isinstance(v, str) else v for k, v in metadata.items()}
    ev = EventIn(
        action=action,
        category="data_access",
        actor=operator(),
        targets=[Target(type="tenant", id=tenant)],
        metadata={"via": "cli", **meta},
    )
    prepared = prepare_event(ev, PLATFORM_TENANT, time.time_ns() // 1000)
    if not isinstance(prepared, Prepared):  # our own fixed shape: a failure here is a bug
        raise click.ClickException(f"could not record {action}: {prepared.errors}")
    store.append(store.get_tenant(PLATFORM_TENANT).id, [prepared])


@main.command(short_help="Search a tenant's events.")
@click.option("--tenant", required=True, help="Tenant whose log to search.")
@filter_options
@click.option(
    "--order",
    type=click.Choice(["newest", "seq"]),
    default="newest",
    show_default=True,
    help="newest: by occurred_at, latest first (seq breaks ties); seq: log (arrival) order.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Events to show.")
@setting_options("database")
@json_option
def search(tenant: str, order: str, limit: int, database: str | None, as_json: bool, **opts: Any) -> None:
    """Search a tenant's log with the API's filters (GET /v1/events)."""
    from vigil.model import decode_stored

    values = _filters(opts)
    query = make_query(values, order="seq" if order == "seq" else "newest", limit=limit)
    store = _open_existing(_settings(database=database))
    try:
        t = store.get_tenant(tenant)
        page = store.search(t.id, query)
        _record(store, "audit_log.searched", tenant, {**given(values), "results": len(page.events)})
    finally:
        store.close()
    events = [decode_stored(*e) for e in page.events]
    if as_json:
        import msgspec

        data = [msgspec.to_builtins(e) for e in events]
        click.echo(json.dumps({"data": data, "more": page.next is not None}, indent=2))
        return
    lines = [f"{'seq':>8}  {'occurred_at':<27} {'outcome':<8} {'action':<28} actor"]
    for e in events:
        who = e.actor.email or e.actor.name or e.actor.id
        ip = f"  from {e.context.ip}" if e.context is not None and e.context.ip else ""
        lines.append(f"{e.seq:>8}  {e.occurred_at:<27} {e.outcome:<8} {e.action:<28} {who}{ip}")
    more = " (more: raise --limit or narrow the filters)" if page.next is not None else ""
    lines.append(f"{len(events)} event{'' if len(events) == 1 else 's'}{more}")
    click.echo("\n".join(lines))


@main.command(short_help="Export a tenant's events to a file.")
@click.option("--tenant", required=True, help="Tenant whose log to export.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["bundle", "csv", "json", "ndjson"]),
    default="bundle",
    show_default=True,
    help="bundle: events + signed checkpoint + proofs + verifier key (a zip, checkable offline by "
    "`vigil verify-bundle`; a contiguous slice, no filters); csv, json (one array) or ndjson: the events with "
    "their seq and leaf_hash.",
)
@click.option("--from-seq", type=click.IntRange(min=0), default=0, show_default=True, help="First seq.")
@click.option(
    "--to-seq", type=click.IntRange(min=1), help="Seq after the last one (default: the end of the log)."
)
@filter_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write, or - for standard output.",
)
@setting_options("database", "signing_key", "key_name", "state_dir")
@json_option
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
    as_json: bool,
    **opts: Any,
) -> None:
    """Export a tenant's events: a verifiable bundle, CSV, JSON or NDJSON, with the search's filters."""
    from vigil.export import encode, pages
    from vigil.ledger.bundle import write_bundle
    from vigil.ledger.checkpoints import load_signer

    values = _filters(opts)
    filters = given(values)
    if fmt == "bundle" and filters:
        raise click.UsageError(
            "a bundle is a contiguous slice of the log with its proofs: it takes --from-seq and --to-seq, "
            f"not filters ({', '.join(filters)}); export csv, json or ndjson to filter"
        )
    query = make_query(values, order="seq") if filters else None
    settings = _settings(database=database, signing_key=signing_key, key_name=key_name, state_dir=state_dir)
    store = _open_existing(settings)
    to_stdout = output == "-"
    tmp = output + ".partial"
    written = 0
    try:
        t = store.get_tenant(tenant)
        size = store.tree_size(t.id)
        end = to_seq if to_seq is not None else size
        if not from_seq < end <= size:
            raise click.UsageError(
                f"need --from-seq < --to-seq <= {size} (the log's size); got {from_seq}..{end}"
            )
        with _target(output, tmp) as fh, _progress(end - from_seq, quiet=as_json) as bar:
            if fmt == "bundle":
                write_bundle(store, load_signer(settings), t, fh, from_seq, end, bar)
                written = end - from_seq
            else:

                def counted() -> Iterator[list[Any]]:
                    nonlocal written
                    done = from_seq
                    for page in pages(store, t.id, query, from_seq, end):
                        written += len(page)
                        bar(page[-1][0] + 1 - done)
                        done = page[-1][0] + 1
                        yield page

                for chunk in encode(fmt, counted()):
                    fh.write(chunk)
        if not to_stdout:
            os.replace(tmp, output)  # never leave a half-written export under the real name
        _record(
            store,
            "audit_log.exported",
            tenant,
            {"format": fmt, "from_seq": from_seq, "to_seq": end, **filters},
        )
    except VigilError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
        if not to_stdout and os.path.exists(tmp):
            os.unlink(tmp)
    where = "standard output" if to_stdout else output
    summary = {"tenant": tenant, "format": fmt, "from_seq": from_seq, "to_seq": end, "events": written}
    text = f"wrote {fmt} of {tenant} seqs {from_seq}..{end - 1} to {where} ({written} events)"
    if to_stdout:  # the data owns standard output: the summary goes to standard error
        click.echo(json.dumps(summary) if as_json else text, err=True)
    else:
        _emit(as_json, {**summary, "output": output}, text)


@contextlib.contextmanager
def _target(output: str, tmp: str) -> Iterator[BinaryIO]:
    if output == "-":
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    with open(tmp, "wb") as fh:
        yield fh


@contextlib.contextmanager
def _progress(length: int, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error (never with --json, never when standard error is not a terminal)."""
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=max(length, 0), label="exporting", file=sys.stderr, show_pos=True) as bar:
        yield bar.update
