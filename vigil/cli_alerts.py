"""Alert commands of the ``vigil`` CLI: ``alerts list`` and ``alerts show``, read from the store."""

from __future__ import annotations

import json
from typing import Any

import click
import msgspec

from vigil.cli import _open_existing, _settings, main
from vigil.cli_options import json_option, setting_options
from vigil.detect.rules import RuleInfo
from vigil.store.detection import Alert


@main.group(short_help="List and show the alerts detection raised.")
def alerts() -> None:
    """Alerts raised by detection: `alerts list` finds them, `alerts show ID` shows one with its evidence."""


def _when(text: str) -> str:
    return text[:19].replace("T", " ")


def _table(rows: list[Any]) -> str:
    """The alerts as a table with a header; the full id, since that is what `alerts show` takes."""
    if not rows:
        return "no alerts"
    lines = [
        f"{'ID':<36}  SEV  {'STATUS':<12}  {'LAST SEEN (UTC)':<19}  {'HITS':>5}  {'TENANT':<12}  RULE / SUMMARY"
    ]
    for a in rows:
        lines.append(
            f"{a.id:<36}  {a.severity:<3}  {a.status:<12}  {_when(a.last_at):<19}  {a.hits:>5}  {a.tenant:<12}  "
            f"{a.rule}: {a.summary}"
        )
    return "\n".join(lines)


@alerts.command("list", short_help="List alerts, newest first.")
@click.option("--tenant", help="Only this tenant's alerts (default: every tenant's).")
@click.option("--rule", help="Only the alerts of this rule id.")
@click.option("--severity", type=click.Choice(["P0", "P1", "P2", "P3"]), help="Only this severity.")
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=100,
    show_default=True,
    help="Most alerts to list (the newest).",
)
@setting_options("database")
@json_option
def alerts_list(
    tenant: str | None,
    rule: str | None,
    severity: str | None,
    limit: int,
    database: str | None,
    as_json: bool,
) -> None:
    """Alerts, newest first, with the id `vigil alerts show` takes, severity, status, when last seen, hits,
    tenant, rule and summary."""
    from vigil.store.detection import AlertQuery
    from vigil.web.alert_routes import alert_out

    store = _open_existing(_settings(database=database))
    try:
        tenant_id = store.get_tenant(tenant).id if tenant else None
        found = store.list_alerts(
            AlertQuery(tenant_id=tenant_id, rule_id=rule, severity=severity, limit=limit)
        )
        slugs = {t.id: t.slug for t in store.list_tenants()}
    finally:
        store.close()
    out = [alert_out(a, slugs.get(a.tenant_id, "?")) for a in found]
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(out), indent=2).decode())
        return
    click.echo(_table(out))


def _rule_of(rule_id: str, rules_dir: str | None) -> RuleInfo | None:
    from vigil.detect.loader import load_rules

    return next((r for r in load_rules(_settings(rules=rules_dir)).rules if r.id == rule_id), None)


def _evidence(store: Any, alert: Alert) -> list[dict[str, Any]]:
    """The alert's evidence events as stored, each with its seq and leaf hash; a seq the store no longer
    holds (purged by retention) shows as missing, never silently dropped."""
    out: list[dict[str, Any]] = []
    for seq, event_id in alert.evidence:
        rows = store.read_range(alert.tenant_id, seq, seq + 1)
        if not rows:
            out.append(
                {"seq": seq, "id": event_id, "missing": "not in the store (purged or never committed)"}
            )
            continue
        _, leaf, body = rows[0]
        doc = json.loads(body)
        out.append({"seq": seq, "leaf_hash": leaf.hex(), **doc})
    return out


@alerts.command("show", short_help="Show one alert with its rule and evidence.")
@click.argument("alert_id")
@setting_options("database", "rules")
@json_option
def alerts_show(alert_id: str, database: str | None, rules: str | None, as_json: bool) -> None:
    """Show alert ALERT_ID (an id from `vigil alerts list`): what fired and when, the rule with its ATT&CK ids
    and runbook, and the evidence events as stored in the log."""
    from vigil.errors import NotFound
    from vigil.web.alert_routes import alert_out

    store = _open_existing(_settings(database=database))
    try:
        alert = store.get_alert(alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}; see vigil alerts list")
        slug = next((t.slug for t in store.list_tenants() if t.id == alert.tenant_id), "?")
        evidence = _evidence(store, alert)
    finally:
        store.close()
    out = msgspec.to_builtins(alert_out(alert, slug))
    rule = _rule_of(alert.rule_id, rules)
    about = None
    if rule is not None:
        about = {
            "id": rule.id,
            "title": rule.title,
            "severity": rule.severity,
            "techniques": list(rule.techniques),
            "description": rule.description,
            "runbook": rule.runbook,
            "source": rule.source,
        }
    if as_json:
        click.echo(json.dumps({"alert": out, "rule": about, "evidence": evidence}, indent=2))
        return
    click.echo(_show_text(out, about, evidence, rules))


def _show_text(
    alert: dict[str, Any], rule: dict[str, Any] | None, evidence: list[dict[str, Any]], rules: str | None
) -> str:
    group = ", ".join(f"{k}={v}" for k, v in alert["group"].items()) or "-"
    lines = [
        f"alert       {alert['id']}",
        f"status      {alert['status']}",
        f"severity    {alert['severity']}",
        f"tenant      {alert['tenant']}",
        f"rule        {alert['rule']}: {alert['title']}",
        f"ATT&CK      {', '.join(alert['techniques']) or '-'}",
        f"summary     {alert['summary']}",
        f"about       {group}",
        f"seen        {_when(alert['first_at'])} to {_when(alert['last_at'])} UTC, {alert['hits']} hit(s)",
        f"raised      {_when(alert['created_at'])} UTC, updated {_when(alert['updated_at'])} UTC",
    ]
    if rule is None:
        hint = "" if rules else " (a Sigma rule needs --rules DIR)"
        lines.append(f"\nrule {alert['rule']}: not among the rules known here{hint}")
    else:
        if rule["description"]:
            lines.append(f"\n{rule['description']}")
        if rule["runbook"]:
            lines.append(f"\nrunbook:\n{rule['runbook']}")
    lines.append(f"\nevidence ({len(evidence)} event(s)):")
    lines.append(
        f"{'SEQ':>8}  {'OCCURRED AT (UTC)':<19}  {'ACTION':<24} {'OUTCOME':<8} {'ACTOR':<20} {'IP':<16} MESSAGE"
    )
    for e in evidence:
        if "missing" in e:
            lines.append(f"{e['seq']:>8}  {e['id']}: {e['missing']}")
            continue
        actor = e.get("actor") or {}
        ip = (e.get("context") or {}).get("ip") or "-"
        lines.append(
            f"{e['seq']:>8}  {_when(str(e.get('occurred_at', ''))):<19}  {e.get('action', ''):<24} "
            f"{e.get('outcome', ''):<8} {actor.get('id', '-')!s:<20} {ip:<16} {e.get('message') or ''}"
        )
    return "\n".join(lines)
