"""SDK commands of the ``vigil`` CLI: ``vigil sdk replay-dead-letters SPOOL_DIR``.

The work is :func:`vigil.sdk.replay.replay`; this module parses the options and prints.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click

from vigil.cli import json_option, main


@main.group(short_help="Replay what the Python SDK dead-lettered.")
def sdk() -> None:
    """Work with the Python SDK's spool directories (events it could not deliver)."""


def _reason(item: dict[str, Any]) -> str:
    # a batch's refusal reads "HTTP 400: ..."; an event's own is its result ("rejected") and its errors
    text = str(item.get("error"))
    errors = item.get("errors") or []
    if errors:
        text += ": " + "; ".join(f"{e.get('field', '?')}: {e.get('message', '')}" for e in errors)
    return text


@sdk.command("replay-dead-letters", short_help="Send dead-lettered events again, once fixed.")
@click.argument("spool_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--url", envvar="VIGIL_URL", metavar="URL", help="The Vigil server's base URL [env: VIGIL_URL]."
)
@click.option(
    "--key",
    envvar="VIGIL_API_KEY",
    metavar="KEY",
    help="A key with the ingest scope, of the tenant the events belong to [env: VIGIL_API_KEY, which "
    "keeps the key out of the process list].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Events per request.",
)
@click.option("--dry-run", is_flag=True, help="List the dead-lettered events; send nothing, change nothing.")
@json_option
def replay_dead_letters(
    spool_dir: str, url: str | None, key: str | None, batch_size: int, dry_run: bool, as_json: bool
) -> None:
    """Send the events an SDK client dead-lettered (dead-letter.ndjson in SPOOL_DIR) again, after their
    cause is fixed.

    Each event keeps its id, so one the server has already is answered as a duplicate, never stored twice.
    What the server accepts leaves the dead-letter file; what it refuses again stays there, with the new
    reason, printed here. Safe while the app's client runs on the same directory. Exits 1 when any event
    was kept.
    """
    from vigil.sdk.replay import list_letters, replay

    if dry_run:
        letters, unreadable = list_letters(spool_dir)
        if as_json:
            click.echo(json.dumps({"events": letters, "unreadable": unreadable}, indent=2))
            return
        click.echo(f"{len(letters)} dead-lettered event(s) in {spool_dir}" + (":" if letters else ""))
        for item in letters:
            click.echo(f"  {item['dead_lettered_at']}  {item['id']}  {item['action']}  {_reason(item)}")
        if unreadable:
            click.echo(f"{unreadable} line(s) that are not dead letters (kept as they are)")
        return
    if not url or not key:
        raise click.UsageError("give --url and --key (or VIGIL_URL and VIGIL_API_KEY), or --dry-run")
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"--url must start with http:// or https://; got {url!r}")
    bar: Any = None
    with contextlib.ExitStack() as stack:

        def start(total: int) -> None:
            nonlocal bar
            if not as_json and total:  # no progress line in --json mode
                bar = stack.enter_context(
                    click.progressbar(length=total, label="replaying", file=sys.stderr, show_pos=True)
                )

        def progress(n: int) -> None:
            if bar is not None:
                bar.update(n)

        try:
            report = replay(spool_dir, url, key, batch_size=batch_size, progress=progress, on_start=start)
        except ImportError as exc:  # httpx, from the sdk extra
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for r in report.refused:
            click.echo(f"refused again: {r.id} ({r.action}): {_reason(r.__dict__)}")
        click.echo(
            f"{report.accepted + report.duplicates} of {report.total} event(s) accepted "
            f"({report.duplicates} the server had already); {len(report.refused)} refused again"
            + (f", {report.unsent} not sent" if report.unsent else "")
            + (f", {report.unreadable} unreadable line(s)" if report.unreadable else "")
            + (f"; {report.kept} kept in dead-letter.ndjson" if report.kept else "")
        )
        if report.stopped:
            click.echo(f"stopped: {report.stopped}", err=True)
    if report.kept:
        sys.exit(1)
