"""Build the detection rule set and engine from settings: built-ins, the operator's Sigma rules directory and
GeoIP database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.detect.builtin import BUILTIN_RULES, builtin_evaluators
from vigil.detect.engine import Engine, TenantRules
from vigil.detect.geo import GeoIP, configured_geoip, parse_networks
from vigil.detect.rules import Evaluator, RuleInfo
from vigil.errors import ConfigError

if TYPE_CHECKING:
    from vigil.settings import Settings
    from vigil.store.base import Store

log = logging.getLogger("vigil.detect")

NO_GEO = (
    "no GeoIP database (setting geoip_database): the geo detections (impossible travel, new country) are "
    "disabled"
)


@dataclass
class RuleSet:
    """The evaluators to run, every rule known (loaded or not) and why some are off."""

    evaluators: list[Evaluator]
    disabled: dict[str, str] = field(default_factory=dict)  # rule id -> why it is not running
    warnings: list[str] = field(default_factory=list)

    @property
    def rules(self) -> list[RuleInfo]:
        running = [r for e in self.evaluators for r in e.rules]
        ids = {r.id for r in running}
        return running + [r for r in BUILTIN_RULES if r.id not in ids]


def load_rules(settings: Settings, tenant_rules: TenantRules | None = None) -> RuleSet:
    """Built-ins (geo ones only with a GeoIP database) plus the Sigma rules of the ``rules`` directory.

    A Sigma rule that cannot be loaded stops the start with its reason (fail closed): a rule set that silently
    lacks a rule someone wrote is worse than a server that says so.
    """
    tenant_rules = tenant_rules or TenantRules()
    trusted = [str(n) for n in parse_networks(getattr(settings, "trusted_networks", "") or "")]

    def params(tenant: str, rule: RuleInfo) -> dict[str, Any]:
        p = tenant_rules.params(tenant, rule)
        if trusted and "trusted_networks" in p and not p["trusted_networks"]:
            p = {**p, "trusted_networks": trusted}
        return p

    geo, geo_note = _geo(settings)
    out = RuleSet(list(builtin_evaluators(geo, params)))
    if geo_note:
        out.warnings.append(geo_note)
    if geo is None:
        out.warnings.append(NO_GEO)
        for r in BUILTIN_RULES:
            if "geo" in r.requires:
                out.disabled[r.id] = (
                    "needs a GeoIP database (setting geoip_database: --geoip-database FILE or VIGIL_GEOIP_DATABASE)"
                )
    rules_dir = getattr(settings, "rules", "") or ""
    if rules_dir:
        out.evaluators.append(load_sigma_dir(Path(rules_dir)))
    return out


def _geo(settings: Settings) -> tuple[GeoIP | None, str]:
    """The GeoIP database and a note about it. The operator's own file must open (fail closed); the demo's map,
    used only when none is configured, is a convenience: one that cannot be read leaves the geo rules off."""
    path, demo = configured_geoip(settings)
    if not path:
        return None, ""
    if not demo:
        return GeoIP(path), ""
    try:
        geo = GeoIP(path)
    except ConfigError as exc:
        return None, f"the demo's GeoIP map is not used: {exc.message}"
    return geo, (
        f"the geo detections use the demo's own GeoIP map {path}, which knows only the demo's addresses; "
        "give a real one with --geoip-database (or VIGIL_GEOIP_DATABASE)"
    )


def load_sigma_dir(path: Path) -> Evaluator:
    if not path.exists():
        raise ConfigError(f"rules directory {str(path)!r} does not exist")
    try:
        from vigil.detect.sigma import load_sigma
    except ImportError as exc:  # pragma: no cover - the [sigma] extra brings pySigma
        raise ConfigError(f"Sigma rules need pySigma: pip install 'vigil-audit[sigma]' ({exc})") from None
    return load_sigma([path])


def build_engine(store: Store, settings: Settings, only: list[str] | None = None) -> tuple[Engine, RuleSet]:
    """The engine for ``store`` with every rule the settings ask for (or only the ``only`` ones); warnings are
    logged once here. A rule of ``only`` that is known but disabled (a geo rule without a GeoIP database) is a
    ConfigError saying why."""
    tenant_rules = TenantRules(only)
    rules = load_rules(settings, tenant_rules)
    off = [r for r in only or () if r in rules.disabled]
    if off:  # a rule that exists but cannot run here: say why, never "no rule"
        raise ConfigError("; ".join(f"rule {r} is disabled: it {rules.disabled[r]}" for r in off))
    for w in rules.warnings:
        log.warning(w)
    return Engine(store, rules.evaluators, tenant_rules=tenant_rules), rules
