"""One declarative table of settings.

Each :class:`Setting` becomes a CLI flag (``--rate-limit``), an environment variable (``VIGIL_RATE_LIMIT``) and a
row of ``docs/settings.md``; a test fails when the table and the docs disagree. Precedence: flag, then
environment, then default.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One setting: its name, how to parse it, its default and what it does."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    metavar: str = ""  # what --help shows for a text value (FILE, DIR, PATH|URL); numbers name their kind

    @property
    def env(self) -> str:
        return "VIGIL_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> str:
        """What the value is, from its default: BOOLEAN, INTEGER, FLOAT or TEXT (as ``--help`` names it)."""
        if isinstance(self.default, bool):  # before int: a bool is an int to Python
            return "BOOLEAN"
        if isinstance(self.default, int):
            return "INTEGER"
        if isinstance(self.default, float):
            return "FLOAT"
        return "TEXT"

    @property
    def shown_default(self) -> str:
        """The default as a user would type it (``true``, not ``True``); empty when there is none."""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"must be {what}") from None


def _positive_int(text: str) -> int:
    value = _integer(text, "a whole number, 0 or more")
    if value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _port(text: str) -> int:
    value = _integer(text, "a TCP port, 0 to 65535")
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port, 0 to 65535")
    return value


def _demo_events(text: str) -> int:
    value = int(text)
    if value < 100:
        raise ValueError("must be at least 100")
    return value


def _networks(text: str) -> str:
    """Comma-separated IP addresses or CIDR networks, checked and normalised (``10.0.0.1`` -> ``10.0.0.1/32``)."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if item:
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return ",".join(out)


TRUE_WORDS = ("true", "on", "yes", "1")
FALSE_WORDS = ("false", "off", "no", "0")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError("must be true or false (on/off, yes/no and 1/0 work too)")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database",
        str,
        "./vigil.db",
        "Where the log lives: a SQLite file path or sqlite:///path (created on first use), or a PostgreSQL URL "
        "(postgresql://user:password@host:5432/db, an existing database: Vigil creates its schemas and roles).",
        metavar="PATH|URL",
    ),
    Setting("host", str, "127.0.0.1", "Address `vigil serve` listens on.", metavar="ADDRESS"),
    Setting("port", _port, 8000, "TCP port `vigil serve` listens on."),
    Setting(
        "rate_limit",
        _positive_int,
        20000,
        "Events per second each tenant may ingest (token bucket); 0 turns the limit off.",
    ),
    Setting(
        "rate_burst",
        _positive_int,
        40000,
        "Events a tenant may send at once above its rate before it gets 429.",
    ),
    Setting(
        "rate_limit_bytes",
        _positive_int,
        16 * 1024 * 1024,
        "Request body bytes per second each tenant may send to ingest, charged before the body is decoded; 0 "
        "turns the limit off.",
    ),
    Setting(
        "rate_burst_bytes",
        _positive_int,
        32 * 1024 * 1024,
        "Body bytes a tenant may send at once; a single request over it gets 413 (never 429: no wait would "
        "make it pass).",
    ),
    Setting(
        "search_rate_limit",
        _positive_int,
        50,
        "Reads per second each API key may make (searches, single events, entity histories, proofs); 0 turns "
        "the limit off.",
    ),
    Setting("search_rate_burst", _positive_int, 100, "Reads an API key may make at once above its rate."),
    Setting(
        "export_rate_limit",
        _positive_int,
        10,
        "Exports per minute each API key may start (and at most that many at once); 0 turns the limit off.",
    ),
    Setting(
        "commit_tenant_events",
        _positive_int,
        100,
        "Most events of one tenant in one group commit while other tenants are writing too: tenants take turns, "
        "and a larger batch is committed in parts (answered after the last), so no tenant waits behind "
        "another's big batch. A tenant writing alone fills whole commits.",
    ),
    Setting(
        "tenant_queue_events",
        _positive_int,
        20000,
        "Most events one tenant may have waiting for the writer; a request that would exceed it gets 429 with "
        "Retry-After. 0: no bound.",
    ),
    Setting(
        "body_timeout",
        _positive_int,
        30,
        "Seconds a client has to send a whole request body; a slower one gets 408 and its connection is "
        "closed. 0: no limit.",
    ),
    Setting(
        "max_clock_skew",
        _positive_int,
        300,
        "Seconds an event's `occurred_at` may be ahead of the server's clock; an event further in the future is "
        "rejected (the sender's clock is wrong). There is no lower bound: old events can be backfilled. 0 turns "
        "the check off.",
    ),
    Setting(
        "idempotency_window",
        _positive_int,
        86400,
        "Seconds an ingest request's `Idempotency-Key` is remembered: a retry with the same key and body gets "
        "the first answer again, the same key with another body is refused. 0: answers are not kept (retries "
        "still land on the events already stored).",
    ),
    Setting(
        "read_audit_window",
        _positive_int,
        10,
        "Seconds within which repeated identical reads by one key are recorded in the platform log as one "
        "entry with a count (the first is recorded at once). 0: one entry per read.",
    ),
    Setting(
        "auth_failure_limit",
        _positive_int,
        20,
        "Wrong keys (unknown, revoked, or a wrong secret) one source address may present per "
        "`auth_failure_window` before it gets 429 with `Retry-After`; 0 turns the limit off.",
    ),
    Setting(
        "auth_failure_window",
        _positive_int,
        60,
        "Seconds over which `auth_failure_limit` counts a source address's failed authentications.",
    ),
    Setting(
        "sqlite_synchronous",
        str,
        "FULL",
        "SQLite `synchronous` pragma for the log. FULL survives power loss; NORMAL survives only a process "
        "crash but commits faster.",
        choices=("FULL", "NORMAL"),
    ),
    Setting(
        "commit_max_events",
        _positive_int,
        5000,
        "Largest number of events the writer puts in one group commit.",
    ),
    Setting(
        "sqlite_min_free_mb",
        _positive_int,
        64,
        "Free disk space (MB) the SQLite file's directory must keep: below it writes are refused with 503 and "
        "`/readyz` fails, before the disk is full; 0 turns the check off.",
    ),
    Setting(
        "bundle_max_mb",
        _positive_int,
        16384,
        "Largest uncompressed member (MB) `vigil verify-bundle` reads from a bundle, checked from the zip "
        "header and again while reading; larger bundles are refused (export them in slices).",
    ),
    Setting(
        "bundle_max_depth",
        _positive_int,
        64,
        "Deepest JSON nesting `vigil verify-bundle` accepts in a bundle's events and manifest.",
    ),
    Setting(
        "demo_events",
        _demo_events,
        100000,
        "How many events `vigil demo` writes in all, shared by acme, globex and initech (at least 100; every "
        "planted attack is there at any size, so 2000 makes a quick demo). `--events` for short.",
    ),
    Setting(
        "signing_key",
        str,
        "",
        "File holding the Ed25519 key that signs checkpoints; created (mode 0600) on first start. Empty: next "
        "to the SQLite file, as <database>.signing-key (required with a PostgreSQL URL). It never leaves the "
        "server; only the verifier key is served.",
        metavar="FILE",
    ),
    Setting(
        "state_dir",
        str,
        "",
        "Directory of the server's trusted state: per tenant, the last checkpoint it signed, checked at start "
        "and before every signature so that a rewritten database is refused. Keep it outside the database, "
        "beside the signing key. Empty: <signing key>.state.",
        metavar="DIR",
    ),
    Setting(
        "key_name",
        str,
        "vigil",
        "Name of the signing key in checkpoint signatures and in the verifier key (the signed-note key name).",
        metavar="NAME",
    ),
    Setting(
        "checkpoint_interval",
        _positive_int,
        60,
        "Seconds between signed checkpoints of each log that grew; 0 turns the schedule off (POST "
        "/v1/checkpoints still makes one).",
    ),
    Setting(
        "detect",
        _bool,
        True,
        "Run the detection engine inside `vigil serve` (off: run `vigil detect` as its own process, or none).",
    ),
    Setting(
        "rules",
        str,
        "",
        "Directory of Sigma rules (YAML, product: vigil) run beside the built-in detections. A rule that cannot "
        "be loaded stops the start with its reason.",
        metavar="DIR",
    ),
    Setting(
        "geoip_database",
        str,
        "",
        "MaxMind-format GeoIP file (GeoLite2/GeoIP2 City) for the geo detections; empty: they are disabled, "
        "with a warning at start and in `vigil rules list`.",
        metavar="FILE",
    ),
    Setting(
        "trusted_networks",
        str,
        "",
        "Comma-separated CIDR networks (office, VPN egress) that the geo detections ignore, unless a tenant "
        "sets its own.",
        metavar="CIDRS",
    ),
    Setting(
        "redaction_rules",
        str,
        "",
        "JSON file of per-tenant redaction rules (more key words and patterns, allowed fields), keyed by tenant "
        'slug, "*" for all; read at start, an invalid file stops it. Empty: the built-in rules only.',
        metavar="FILE",
    ),
    Setting(
        "log_level", str, "info", "Log level of the server.", choices=("debug", "info", "warning", "error")
    ),
    Setting(
        "log_format",
        str,
        "text",
        "How the server prints every log line, its access log included: text for people, json (one object per "
        "line) for log shippers.",
        choices=("text", "json"),
    ),
    Setting(
        "trusted_proxies",
        _networks,
        "",
        "Comma-separated addresses or CIDR networks of the reverse proxies in front of the server: from them "
        "the client address is taken from X-Forwarded-For (and the scheme from X-Forwarded-Proto); from any "
        "other peer those headers are ignored. Empty: they are always ignored.",
    ),
    Setting(
        "metrics",
        str,
        "key",
        "Who may read GET /metrics (Prometheus): key needs a key of the platform tenant (vigil) with the "
        "metrics scope; open serves anyone who reaches the port; off removes the route.",
        choices=("off", "open", "key"),
    ),
    Setting(
        "metrics_tenants",
        _positive_int,
        100,
        "Most tenants that get their own series in each per-tenant family of /metrics (those with the largest "
        "values); every family also has an unlabelled series over all tenants.",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings, read-only."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Resolve every setting from overrides (CLI flags), then the environment, then defaults."""
        env = os.environ if environ is None else environ
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(given) - set(BY_NAME)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for s in SETTINGS:
            if s.name in given:
                raw, source = given[s.name], s.flag
            elif s.env in env:
                raw, source = env[s.env], s.env
            else:
                values[s.name] = s.default
                continue
            try:
                value = s.type(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise ConfigError(f"{source}: {raw!r} is not valid: {exc}") from None
            if s.choices:
                value = str(value)
                match = next((c for c in s.choices if c.lower() == value.lower()), None)
                if match is None:
                    raise ConfigError(f"{source}: {raw!r} is not one of {', '.join(s.choices)}")
                value = match
            values[s.name] = value
        return cls(values)


def markdown_table() -> str:
    """The settings table as Markdown, exactly as ``docs/settings.md`` holds it (a test keeps them equal)."""
    rows = ["| setting | flag | environment | default | what it does |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        help_text = s.help + (f" One of: {', '.join(s.choices)}." if s.choices else "")
        default = f"`{s.shown_default}`" if s.shown_default else "(empty)"
        rows.append(f"| `{s.name}` | `{s.flag}` | `{s.env}` | {default} | {help_text} |")
    return "\n".join(rows) + "\n"
