"""Key commands of the ``vigil`` CLI: ``keys create``, ``list``, ``revoke`` and ``rotate``.

Each change goes through :mod:`vigil.keys`, which records it in the platform log. A running server sees a
revocation made here on its next request after at most a second.
"""

from __future__ import annotations

from typing import Any

import click

from vigil import keys as lifecycle
from vigil.cli import _emit, _open, _open_existing, _settings, main
from vigil.cli_options import json_option, setting_options


@main.group(short_help="Create, list, rotate and revoke API keys.")
def keys() -> None:
    """Create, list, rotate and revoke API keys (only a hash of each secret is stored)."""


def _secret_text(change: lifecycle.KeyChange, what: str) -> str:
    k = change.key
    return (
        f"{what} {k.key_id} for {k.tenant} ({', '.join(sorted(k.scopes))}):\n\n    {change.secret}\n\n"
        "Store it now: Vigil keeps only a hash and cannot show it again."
    )


SCOPE_HELP: dict[str, str] = {
    "ingest": "Send events to its tenant's log (POST /v1/events).",
    "read": "Search and read its tenant's events, their proofs and checkpoints, and export them.",
    "admin": "Create, rotate and revoke its tenant's keys and sign a checkpoint on demand; an admin key of the "
    "platform tenant `vigil` manages every tenant's keys.",
    "security": "List the alerts detection raised for its tenant; a key of the platform tenant `vigil` sees "
    "every tenant's alerts.",
    "auditor": "Read-only: everything read and security may see (events, proofs, checkpoints, exports, "
    "alerts), and nothing that changes anything.",
    "metrics": "Read the Prometheus figures at /metrics (a key of the platform tenant `vigil`), and nothing else.",
}
"""What each scope lets a key do; ``keys create --help`` and docs/keys.md say the same (a test compares them)."""


class _WithScopes(click.Command):
    """A command whose --help ends with what each scope allows."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Scopes"):
            formatter.write_dl(list(SCOPE_HELP.items()))
        super().format_epilog(ctx, formatter)


@keys.command("create", cls=_WithScopes, short_help="Create an API key (its secret is shown once).")
@click.option("--tenant", required=True, help="Tenant slug the key belongs to.")
@click.option(
    "--scope",
    "scopes",
    default="ingest",
    show_default=True,
    help="Comma-separated scopes, some of: ingest, read, admin, security, auditor (see Scopes below).",
)
@click.option("--name", help="A label to recognise the key by (default: key-<first digits of its id>).")
@setting_options("database")
@json_option
def keys_create(tenant: str, scopes: str, name: str | None, database: str | None, as_json: bool) -> None:
    """Create an API key for a tenant, with the scopes it needs (see Scopes below). The secret is printed once
    and cannot be shown again: Vigil stores only its hash."""
    from vigil.auth import parse_scopes

    store = _open(_settings(database=database))
    try:
        change = lifecycle.create(
            store, store.get_tenant(tenant), parse_scopes(scopes), name or "", lifecycle.operator()
        )
        lifecycle.record(store, [change])
    finally:
        store.close()
    k = change.key
    _emit(
        as_json,
        {
            "key_id": k.key_id,
            "tenant": tenant,
            "scopes": sorted(k.scopes),
            "name": k.name,
            "key": change.secret,
        },
        _secret_text(change, "key"),
    )


@keys.command("list", short_help="List API keys, never their secrets.")
@click.option("--tenant", help="Only this tenant's keys.")
@setting_options("database")
@json_option
def keys_list(tenant: str | None, database: str | None, as_json: bool) -> None:
    """List API keys with when each was created, last used (to the minute) and revoked; never secrets."""
    store = _open_existing(_settings(database=database))
    try:
        tid = store.get_tenant(tenant).id if tenant else None
        rows = [lifecycle.describe(k) for k in store.list_keys(tid)]
    finally:
        store.close()
    _emit(as_json, rows, _table(rows))


def _table(rows: list[dict[str, Any]]) -> str:
    """The keys as a table with a header: the id every other key command takes, and what a person checks."""
    if not rows:
        return "no keys"

    def when(text: str | None) -> str:
        return text[:16].replace("T", " ") if text else "-"

    def status(r: dict[str, Any]) -> str:
        if r["revoked_at"]:
            return f"revoked {when(r['revoked_at'])}"
        if r["previous_secret_until"]:
            return f"rotated; old secret until {when(r['previous_secret_until'])}"
        return "active"

    statuses = [status(r) for r in rows]
    width = max(len("STATUS"), *(len(s) for s in statuses))
    lines = [
        f"{'KEY ID':<16}  {'TENANT':<12} {'SCOPES':<18} {'CREATED (UTC)':<16}  {'LAST USED':<16}  "
        f"{'STATUS':<{width}}  NAME"
    ]
    for r, st in zip(rows, statuses, strict=True):
        lines.append(
            f"{r['key_id']:<16}  {r['tenant']:<12} {','.join(r['scopes']):<18} {when(r['created_at']):<16}  "
            f"{when(r['last_used_at']):<16}  {st:<{width}}  {r['name']}"
        )
    return "\n".join(lines)


@keys.command("revoke", short_help="Revoke an API key.")
@click.argument("key_id")
@setting_options("database")
@json_option
def keys_revoke(key_id: str, database: str | None, as_json: bool) -> None:
    """Revoke key KEY_ID: every server refuses it within a second. Revoking twice is harmless."""
    store = _open_existing(_settings(database=database))
    try:
        change = lifecycle.revoke(store, key_id, lifecycle.operator())
        lifecycle.record(store, [change])
    finally:
        store.close()
    text = f"revoked key {key_id} ({change.key.name}, {change.key.tenant})"
    if change.event is None:
        text = f"key {key_id} was already revoked at {change.key.revoked_at}"
    _emit(as_json, lifecycle.describe(change.key), text)


@keys.command("rotate", short_help="Give an API key a new secret.")
@click.argument("key_id")
@click.option(
    "--overlap",
    default="24h",
    show_default=True,
    help="How long the current secret keeps working beside the new one (24h, 90m, 30s, 0; at most 30d).",
)
@setting_options("database")
@json_option
def keys_rotate(key_id: str, overlap: str, database: str | None, as_json: bool) -> None:
    """Give key KEY_ID a new secret, printed once. The key keeps its id, scopes and name; the old secret is
    refused once the overlap ends."""
    seconds = lifecycle.parse_overlap(overlap)
    store = _open_existing(_settings(database=database))
    try:
        change = lifecycle.rotate(store, key_id, seconds, lifecycle.operator())
        lifecycle.record(store, [change])
    finally:
        store.close()
    until = change.key.previous_until
    _emit(
        as_json,
        {**lifecycle.describe(change.key), "key": change.secret, "previous_until": until},
        _secret_text(change, "new secret of key") + f"\nThe old secret works until {until}.",
    )
