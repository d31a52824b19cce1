"""``vigil demo``: three tenants of realistic events with attacks planted in them, their keys, and the demo's own
GeoIP map so that the geo detections place the demo's addresses."""

from __future__ import annotations

import json
import time
from typing import Any

import click
import msgspec

from vigil.cli import _open, _settings, main, safe_url
from vigil.cli_options import json_option, progress, setting_options
from vigil.settings import BY_NAME, Settings
from vigil.text import noun, plural

DEMO_TENANTS: tuple[tuple[str, str, int], ...] = (
    ("acme", "Acme Corp", 50_000),
    ("globex", "Globex Corporation", 30_000),
    ("initech", "Initech", 20_000),
)
_EVENTS = BY_NAME["demo_events"]


@main.command(short_help="Fill three demo tenants with planted attacks.")
@click.option(
    "--demo-events",
    "--events",
    "demo_events",
    type=click.IntRange(min=100),
    default=None,
    help=f"{_EVENTS.help} [env: {_EVENTS.env}; default: {_EVENTS.default}]",
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
def demo(
    demo_events: int | None, days: int, seed: int, database: str | None, port: int | None, as_json: bool
) -> None:
    """Create tenants acme, globex and initech with realistic events, including a few attacks.

    Tenants that already hold events are left as they are; fresh keys are printed either way. Beside a SQLite
    database it also writes the demo's own GeoIP map (<database>.demo-geoip.mmdb), which `vigil serve` and
    `vigil detect` use when no --geoip-database is given, so the planted geo attacks fire.
    """
    settings = _settings(database=database, port=port, demo_events=demo_events)
    started = time.perf_counter()
    out: dict[str, Any] = {"database": safe_url(settings.database), **_fill(settings, days, seed, as_json)}
    out["geoip_database"], geo_note = _write_geoip(settings)
    written = sum(info.get("written", 0) for info in out["tenants"].values())
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"\nwrote {plural(written, 'event')} in {seconds:.1f} s to {safe_url(settings.database)}\n")
    for slug, info in out["tenants"].items():
        n = info["events"]
        click.echo(f"  {slug:<8} {n:>7,} {noun(n, 'event'):<6}   key (ingest, read): {info['key']}")
        for a in info.get("attacks", []):
            click.echo(f"           planted: {a['name']} ({a['technique']})")
    click.echo(f"\n{geo_note}")
    acme_key = out["tenants"]["acme"]["key"]
    click.echo(
        f"\nStart the server:   vigil serve --database {safe_url(settings.database)}\nThen try:\n"
        f"  curl -s -H 'Authorization: Bearer {acme_key}' "
        f"'http://127.0.0.1:{settings.port}/v1/events?action=user.login&outcome=failure&limit=5'"
    )


def _fill(settings: Settings, days: int, seed: int, quiet: bool = False) -> dict[str, Any]:
    """Each demo tenant: created if need be, filled if empty, and given a fresh key (earlier demo keys revoked)."""
    from vigil import demo as demo_data
    from vigil import keys
    from vigil.errors import NotFound
    from vigil.ingest.intake import Prepared, prepare_event
    from vigil.model import EventIn

    store = _open(settings)
    out: dict[str, Any] = {"tenants": {}}
    whole = sum(n for _, _, n in DEMO_TENANTS)
    by, scopes = keys.operator(), frozenset({"ingest", "read"})
    try:
        for slug, name, share in DEMO_TENANTS:
            try:
                tenant = store.get_tenant(slug)
            except NotFound:
                tenant = store.create_tenant(slug, name)
            count = max(1, settings.demo_events * share // whole)
            info: dict[str, Any] = {"events": store.tree_size(tenant.id)}
            if info["events"] == 0:
                events, attacks = demo_data.generate(slug, count, days=days, seed=seed)
                received_us = time.time_ns() // 1000
                with progress(len(events), f"{slug:<8}", quiet) as bar:
                    for i in range(0, len(events), 1000):
                        chunk = []
                        for raw in events[i : i + 1000]:
                            p = prepare_event(msgspec.convert(raw, EventIn), slug, received_us)
                            if not isinstance(p, Prepared):
                                raise click.ClickException(f"demo event rejected: {p.errors}")
                            chunk.append(p)
                        store.append(tenant.id, chunk)
                        bar.update(len(chunk))
                info["events"] = info["written"] = len(events)
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
    return out


def _write_geoip(settings: Settings) -> tuple[str | None, str]:
    """Write the demo's GeoIP map beside the database (rewritten each run, so it matches this version's demo).

    Returns its path (None when there is none) and a sentence for the user."""
    from vigil.demo.geoip import write_geoip
    from vigil.detect.geo import demo_geoip_path

    geo = "the geo attacks (impossible travel, new country) raise alerts"
    path = demo_geoip_path(settings.database)
    if path is None:
        return None, f"{geo} only with a GeoIP file: the demo's own map goes beside a SQLite database only"
    try:
        write_geoip(path)
    except ImportError as exc:
        return None, f"{geo} only with a GeoIP map: {exc}, then run vigil demo again"
    except OSError as exc:
        raise click.ClickException(f"cannot write the demo's GeoIP map {path}: {exc}") from None
    return str(path), (
        f"GeoIP: the demo's own map of its addresses, {path}: {geo} with it, and vigil serve uses it "
        "while no --geoip-database is given"
    )
