"""Key commands of the ``vigil`` CLI: ``keys create``, ``list``, ``revoke`` and ``rotate``.

Each change goes through :mod:`vigil.keys`, which records it in the platform log. A running server sees a
revocation made here on its next request after at most a second.
"""

from __future__ import annotations

from typing import Any

import click

from vigil import keys as lifecycle
from vigil.cli import _emit, _open, _open_existing, _settings, json_option, main, setting_options


@main.group()
def keys() -> None:
    """Create, list, rotate and revoke API keys (only a hash of each secret is stored)."""


def _secret_text(change: lifecycle.KeyChange, what: str) -> str:
    k = change.key
    return (
        f"{what} {k.key_id} for {k.tenant} ({', '.join(sorted(k.scopes))}):\n\n    {change.secret}\n\n"
        "Store it now: Vigil keeps only a hash and cannot show it again."
    )


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
    from vigil.auth import parse_scopes

    store = _open(_settings(database=database))
    try:
        change = lifecycle.create(
            store, store.get_tenant(tenant), parse_scopes(scopes), name, lifecycle.operator()
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


@keys.command("list")
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
    if not rows:
        return "no keys"

    def when(text: str | None) -> str:
        return text[:16].replace("T", " ") if text else "-"

    lines = [f"{'KEY ID':<16}  {'TENANT':<12} {'SCOPES':<18} {'CREATED':<16}  {'LAST USED':<16}  STATUS"]
    for r in rows:
        if r["revoked_at"]:
            status = f"revoked {when(r['revoked_at'])}"
        elif r["previous_secret_until"]:
            status = f"rotated; old secret until {when(r['previous_secret_until'])}"
        else:
            status = "active"
        lines.append(
            f"{r['key_id']:<16}  {r['tenant']:<12} {','.join(r['scopes']):<18} {when(r['created_at']):<16}  "
            f"{when(r['last_used_at']):<16}  {status}  {r['name']}"
        )
    return "\n".join(lines)


@keys.command("revoke")
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


@keys.command("rotate")
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
