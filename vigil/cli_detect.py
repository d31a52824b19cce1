"""Detection commands of the ``vigil`` CLI: ``detect`` and ``rules`` (``alerts`` is in :mod:`vigil.cli_alerts`)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from vigil.cli import _emit, _open, _open_existing, _settings, main
from vigil.cli_options import json_option, setting_options
from vigil.detect.rules import RuleInfo
from vigil.errors import RuleError, VigilError
from vigil.text import plural


def parse_since(text: str) -> int:
    """``--since`` as microseconds since the epoch, read as everywhere else (:func:`vigil.times.parse_time`)."""
    from vigil.times import parse_time

    try:
        return parse_time(text, name="--since")
    except VigilError as exc:
        raise click.BadParameter(exc.message) from None


@main.command(short_help="Run the detection rules over committed events.")
@click.option(
    "--until-idle", is_flag=True, help="Process what is committed now, then exit (default: follow)."
)
@click.option(
    "--since",
    help="Hunt: run the rules over history since this time: a duration ago (30d, 12h, 15m), a date "
    "(2026-12-01, UTC midnight) or an RFC 3339 time.",
)
@click.option(
    "--rule", "only", multiple=True, help="Only this rule id (repeatable); with --since, hunt with it."
)
@click.option("--tenant", help="With --since: only this tenant (default: every tenant).")
@setting_options("database", "rules", "geoip_database", "trusted_networks", "log_level", "log_format")
@json_option
def detect(
    until_idle: bool,
    since: str | None,
    only: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
    **opts: Any,
) -> None:
    """Run detection over committed events: follow the logs (like `vigil serve` does), process what is there
    and exit (--until-idle), or hunt through history with a rule (--since 30d --rule R).

    Hunting never moves the engine's cursor and never raises a duplicate: a hit on events an alert already
    holds joins that alert.
    """
    from vigil.detect.loader import build_engine
    from vigil.logs import configure

    settings = _settings(**opts)
    configure(settings.log_level, settings.log_format)  # the same lines as the server's (vigil.logs)
    if tenant and not since:
        raise click.UsageError("--tenant goes with --since (the follower covers every tenant)")
    since_us = None if since is None else parse_since(since)  # a bad time is refused before any work
    store = _open_existing(settings)
    try:
        # build_engine logs the rule set's warnings (no GeoIP database, …): once, in the log's format
        engine, _ = build_engine(store, settings, list(only) or None)
        started = time.perf_counter()
        result: dict[str, Any]
        if since_us is not None:
            engine.tenant_rules.load(store)
            tenants = (
                [store.get_tenant(tenant)]
                if tenant
                else [t for t in store.list_tenants() if t.slug != "vigil"]
            )
            new = 0
            for t in tenants:
                for r in engine.running if only else []:  # the rules asked for by name: say why one is quiet
                    if r.generates and not engine.tenant_rules.enabled(t.slug, r):
                        click.echo(
                            f"note: {r.id} is disabled for {t.slug}: its hits raise no alert there "
                            f"(vigil rules enable {r.id} --tenant {t.slug})",
                            err=True,
                        )
                stored = engine.hunt(t, since_us)
                new += sum(1 for a in stored if a.new)
            result = {"mode": "hunt", "events": engine.stats.events, "alerts": new}
        elif until_idle:
            engine.start()
            engine.run_until_idle()
            result = {"mode": "until-idle", "events": engine.stats.events, "alerts": engine.stats.alerts}
        else:
            engine.start()
            click.echo(
                f"following {store.__class__.__name__} with {plural(len(engine.running), 'rule')}; Ctrl-C stops",
                err=True,
            )
            stop = threading.Event()
            try:
                engine.follow(stop)
            except KeyboardInterrupt:
                stop.set()
            result = {"mode": "follow", "events": engine.stats.events, "alerts": engine.stats.alerts}
    finally:
        store.close()
    seconds = time.perf_counter() - started
    result["rules"] = len(engine.running)
    result["seconds"] = round(seconds, 3)
    _emit(
        as_json,
        result,
        f"{plural(result['events'], 'event')} through {plural(result['rules'], 'rule')} in {seconds:.1f} s: "
        f"{plural(result['alerts'], 'new alert')}",
    )


@main.group(short_help="List, test, lint and tune the detection rules.")
def rules() -> None:
    """Detection rules: list them, run their examples, lint Sigma rules, set them per tenant."""


@rules.command("list", short_help="List every rule and whether it runs.")
@click.option(
    "--tenant",
    help="Show the rules as they run for this tenant: the ones it turned off and its thresholds (read from "
    "--database).",
)
@setting_options("database", "rules", "geoip_database", "trusted_networks")
@json_option
def rules_list(tenant: str | None, database: str | None, as_json: bool, **opts: Any) -> None:
    """Every rule: built-in and from the rules directory, with its severity, ATT&CK ids and state.

    With --tenant (or --database) the per-tenant settings in the database are shown too: which tenants turned a
    rule off (`vigil rules disable`) and which thresholds they changed (`vigil rules set`).
    """
    from vigil.detect.loader import load_rules

    settings = _settings(database=database, **opts)
    loaded = load_rules(settings)
    per_rule = _tenant_settings(settings, tenant) if tenant or database is not None else {}
    rows: list[dict[str, Any]] = []
    for r in loaded.rules:
        state = (
            "disabled: " + loaded.disabled[r.id]
            if r.id in loaded.disabled
            else "enabled"
            if r.generates
            else "enabled (feeds a correlation; raises no alert of its own)"
        )
        tenants = per_rule.get(r.id, {})
        params = r.params
        if tenant and tenant in tenants:
            mine = tenants[tenant]
            params = {**r.params, **mine["params"]}
            if mine["enabled"] is False and r.id not in loaded.disabled:
                state = f"disabled for {tenant}"
        rows.append(
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity,
                "techniques": list(r.techniques),
                "source": r.source,
                "state": state,
                "params": params,
                "tenants": tenants,
            }
        )
    if as_json:
        out: dict[str, Any] = {"rules": rows, "warnings": loaded.warnings}
        if tenant:
            out["tenant"] = tenant
        click.echo(json.dumps(out, indent=2))
        return
    for w in loaded.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"SEV {'RULE':<34} {'ATT&CK':<22} TITLE")
    for row in rows:
        notes = [] if row["state"] == "enabled" else [row["state"]]
        off = sorted(t for t, s in row["tenants"].items() if s["enabled"] is False)
        if off and not tenant:
            notes.append("off for " + ", ".join(off))
        for t, s in sorted(row["tenants"].items()):
            if s["params"]:
                notes.append(f"{t}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in s["params"].items()))
        click.echo(
            f"{row['severity']}  {row['id']:<34} {','.join(row['techniques']):<22} {row['title']}"
            + "".join(f"  [{n}]" for n in notes)
        )


def _tenant_settings(settings: Any, tenant: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """rule id -> tenant slug -> {"enabled", "params"}: what tenants changed (all tenants, or one)."""
    store = _open_existing(settings)
    try:
        slugs = {t.id: t.slug for t in store.list_tenants()}
        only = store.get_tenant(tenant).id if tenant else None
        found = [s for s in store.rule_settings() if only is None or s.tenant_id == only]
    finally:
        store.close()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s in found:
        if s.tenant_id in slugs and (s.enabled is not None or s.params):
            out.setdefault(s.rule_id, {})[slugs[s.tenant_id]] = {"enabled": s.enabled, "params": s.params}
    return out


@rules.command("test", short_help="Run the examples the rules carry.")
@click.argument("path", required=False, type=click.Path(exists=True))
@json_option
def rules_test(path: str | None, as_json: bool) -> None:
    """Run the examples rules carry (events that must fire, events that must stay quiet).

    Without PATH: the built-in rules (geo rules on the examples' own map of documentation addresses). With
    PATH: the Sigma rules in that file or directory. Exits 1 when any example fails.
    """
    from vigil.detect.builtin import builtin_evaluators
    from vigil.detect.geo import example_geo
    from vigil.detect.loader import load_sigma_dir
    from vigil.detect.ruletest import run_examples

    try:
        evaluators = [load_sigma_dir(Path(path))] if path else list(builtin_evaluators(example_geo()))
    except RuleError as exc:
        raise click.ClickException(exc.message) from None
    outcomes = run_examples(evaluators)
    failed = [o for o in outcomes if not o.ok]
    untested = [r.id for e in evaluators for r in e.rules if r.examples is None and r.generates]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "passed": len(outcomes) - len(failed),
                    "failed": [
                        {"rule": o.rule.id, "kind": o.kind, "index": o.index, "detail": o.detail}
                        for o in failed
                    ],
                    "without_examples": untested,
                },
                indent=2,
            )
        )
    else:
        for o in outcomes:
            mark = "ok  " if o.ok else "FAIL"
            click.echo(f"{mark} {o.rule.id:<34} {o.kind:<5} #{o.index}  {o.detail}")
        for rule_id in untested:
            click.echo(f"note {rule_id}: carries no examples", err=True)
        click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed", err=True)
    if failed:
        sys.exit(1)


@rules.command("lint", short_help="Check Sigma rule files and say why any is refused.")
@click.argument("path", type=click.Path(exists=True))
@json_option
def rules_lint(path: str, as_json: bool) -> None:
    """Load every Sigma rule file under PATH and report, per rule, loaded or refused and why.

    Exits 1 when any rule is refused; never stops at the first bad file.
    """
    from vigil.detect.sigma import lint_sigma

    results = lint_sigma(Path(path))
    refused = [r for r in results if r.status != "loaded"]
    if as_json:
        click.echo(json.dumps([r.__dict__ | {"path": str(r.path)} for r in results], indent=2))
    else:
        for r in results:
            name = f" ({r.rule})" if getattr(r, "rule", None) else ""
            reason = f": {r.reason}" if r.reason else ""
            click.echo(f"{r.status:<8} {r.path}{name}{reason}")
        click.echo(f"{len(results) - len(refused)} loaded, {len(refused)} refused", err=True)
    if refused:
        sys.exit(1)


def _known_rule(rule_id: str, rules_dir: str | None) -> RuleInfo:
    """The rule named ``rule_id``: a built-in, or a Sigma rule of ``rules_dir``; an unknown id is an error."""
    from vigil.detect.loader import load_rules

    known = {r.id: r for r in load_rules(_settings(rules=rules_dir)).rules}
    if rule_id not in known:
        hint = "" if rules_dir else " (a Sigma rule needs --rules DIR)"
        raise click.BadParameter(f"no rule {rule_id!r}; see vigil rules list{hint}")
    return known[rule_id]


def _rule_setting(store: Any, tenant: str, rule_id: str) -> Any:
    from vigil.store.detection import RuleSetting

    t = store.get_tenant(tenant)
    current = next((s for s in store.rule_settings() if s.tenant_id == t.id and s.rule_id == rule_id), None)
    return current or RuleSetting(t.id, rule_id)


def _setting_out(setting: Any, tenant: str) -> dict[str, Any]:
    return {
        "rule": setting.rule_id,
        "tenant": tenant,
        "enabled": setting.enabled is not False,
        "params": setting.params,
    }


def _toggle(
    rule_id: str, tenant: str, database: str | None, rules_dir: str | None, enabled: bool, as_json: bool
) -> None:
    from dataclasses import replace

    _known_rule(rule_id, rules_dir)
    store = _open(_settings(database=database))
    try:
        setting = replace(_rule_setting(store, tenant, rule_id), enabled=enabled)
        store.set_rule_setting(setting)
    finally:
        store.close()
    _emit(
        as_json,
        _setting_out(setting, tenant),
        f"{rule_id} {'enabled' if enabled else 'disabled'} for {tenant}",
    )


@rules.command("enable", short_help="Turn a rule back on for a tenant.")
@click.argument("rule_id")
@click.option("--tenant", required=True, help="Tenant slug.")
@setting_options("database", "rules")
@json_option
def rules_enable(rule_id: str, tenant: str, database: str | None, rules: str | None, as_json: bool) -> None:
    """Turn rule RULE_ID back on for a tenant."""
    _toggle(rule_id, tenant, database, rules, True, as_json)


@rules.command("disable", short_help="Turn a rule off for a tenant.")
@click.argument("rule_id")
@click.option("--tenant", required=True, help="Tenant slug.")
@setting_options("database", "rules")
@json_option
def rules_disable(rule_id: str, tenant: str, database: str | None, rules: str | None, as_json: bool) -> None:
    """Turn rule RULE_ID off for a tenant (its hits raise no alerts for that tenant)."""
    _toggle(rule_id, tenant, database, rules, False, as_json)


@rules.command("set", short_help="Override a rule's thresholds for a tenant.")
@click.argument("rule_id")
@click.argument("values", nargs=-1, required=True)
@click.option("--tenant", required=True, help="Tenant slug.")
@setting_options("database")
@json_option
def rules_set(
    rule_id: str, values: tuple[str, ...], tenant: str, database: str | None, as_json: bool
) -> None:
    """Override a built-in rule's thresholds for a tenant: NAME=VALUE ... (values are JSON: 20, "x",
    ["10.0.0.0/8"]). A Sigma rule's thresholds are in its file."""
    from dataclasses import replace

    rule = _known_rule(rule_id, None)
    params: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE")
        if name not in rule.params:
            allowed = ", ".join(rule.params) or "none"
            raise click.BadParameter(f"{rule_id} has no threshold {name!r} (it has: {allowed})")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
        default = rule.params[name]
        if type(params[name]) is not type(default):
            raise click.BadParameter(f"{name} takes a {type(default).__name__}, like {json.dumps(default)}")
    store = _open(_settings(database=database))
    try:
        current = _rule_setting(store, tenant, rule_id)
        setting = replace(current, params={**current.params, **params})
        store.set_rule_setting(setting)
    except VigilError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    _emit(as_json, _setting_out(setting, tenant), f"{rule_id} for {tenant}: {json.dumps(params)}")
