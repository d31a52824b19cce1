"""Detection speed on one core: the built-in rules plus 100 SaaS-style Sigma rules evaluated in memory, against the
same Sigma rules converted to SQL by pySigma's SQLite backend and run over the same events in SQLite.

    python bench/detect.py [--events 200000] [--rules 100] [--seed 1] [--repeat 1] [--profile]

Events come from ``vigil.demo.generate("acme", N, seed=1)`` (ending on a fixed date), prepared by the real
intake (validation, redaction, canonical bytes) outside the timing. The 100 stateless Sigma rules are built
here in the shape of public SaaS audit rules (Okta, GitHub, Google Workspace): an ``action`` equal to one or two
values of Vigil's catalogue plus a condition or two on other fields, with varied modifiers (contains,
startswith, endswith, cidr, gt/gte, re, fieldref, ``not`` filters, lists); a few name no action at all, so every
event is tested against them.

Then, in the same run and process:

* decode only: ``msgspec.json.decode`` of every canonical body (what the engine pays before any rule);
* the built-ins (``builtin_evaluators()``, geo rules included) alone, and once more with their slow tiers
  replaced by ones that count nothing (the slow tiers' cost, as a ratio), the Sigma rule set alone, and both
  together, each including the decode and fed through the engine's action dispatch
  (``vigil.detect.engine.Dispatch``), in events/s;
* the baseline: the same Sigma rules converted by ``sigma.backends.sqlite``, the events flattened into an
  in-memory SQLite table (one column per dotted field, ``COLLATE NOCASE``, the first target only), and the
  100 queries run over it; the loading and the queries are timed separately and together.

It prints the rates, the hits each side found, the all-in rate against the goal (50,000 events/s), and the
ratios of the in-memory rates (Sigma rule set alone, and everything) to the SQLite ones. Figures are only as
steady as the machine is idle. With ``--profile`` the Sigma rule set is run once more under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.collection import SigmaCollection

from vigil import demo
from vigil.detect.rules import Ev, Evaluator, Hit
from vigil.detect.sigma import SigmaRuleSet, load_sigma
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn

TENANT = "acme"
END = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
GOAL = 50_000  # events/s on one core for built-ins + 100 Sigma rules, decode included


def _builtins() -> Callable[[], list[Evaluator]]:
    """All twelve built-ins; the geo ones place addresses with the demo's own map of networks (what a GeoIP
    file would say about them), cached per address as the real GeoIP reader is."""
    from vigil.demo import DEMO_GEO
    from vigil.detect.builtin import builtin_evaluators
    from vigil.detect.geo import StaticGeo

    return lambda: list(builtin_evaluators(StaticGeo(DEMO_GEO)))


class _NoTier:
    """A slow tier that counts nothing: the built-ins with it are the baseline the slow tiers' cost is measured
    against, in the same run."""

    def __getattr__(self, name: str) -> Callable[..., list[Hit]]:
        return lambda *args: []


def _without_slow_tiers(make: Callable[[], list[Evaluator]]) -> Callable[[], list[Evaluator]]:
    def fresh() -> list[Evaluator]:
        evaluators = make()
        for e in evaluators:
            if hasattr(e, "slow"):
                e.slow = _NoTier()
        return evaluators

    return fresh


ACTIONS = (
    "user.login",
    "user.logout",
    "user.mfa.challenge",
    "user.mfa.disabled",
    "user.mfa.reset",
    "user.session.revoked",
    "user.password.changed",
    "user.password.reset",
    "user.created",
    "user.invited",
    "user.deleted",
    "user.locked",
    "role.assigned",
    "role.revoked",
    "permission.changed",
    "api_key.created",
    "api_key.rotated",
    "api_key.revoked",
    "data.exported",
    "data.viewed",
    "report.exported",
    "settings.updated",
    "idp.connection.updated",
    "integration.connected",
    "audit_log.settings.updated",
    "customer_data.accessed",
    "document.shared",
    "document.deleted",
    "project.deleted",
    "invoice.deleted",
)

# (detection body, condition); {a} and {b} are actions. Each line is one shape seen in public SaaS rule packs.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("sel: {{action: {a}, outcome: failure}}", "sel"),
    ("sel: {{action: [{a}, {b}], actor.type: api_key}}", "sel"),
    ("sel: {{action: {a}, context.ip|cidr: [10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12]}}", "sel"),
    ("sel: {{action: {a}, metadata.record_count|gte: 500}}", "sel"),
    ("sel: {{action: {a}, context.user_agent|contains: [curl, python-requests, Go-http-client]}}", "sel"),
    ("sel: {{action: {a}, actor.email|endswith: ['@gmail.com', '@yahoo.com', '@proton.me']}}", "sel"),
    ("sel: {{action: {a}, targets.type: role}}\n  filter: {{actor.type: service}}", "sel and not filter"),
    ("sel: {{action: {a}, context.location|contains: [', RU', ', KP', ', IR']}}", "sel"),
    ("sel: {{action: {a}, context.route|startswith: /api/admin}}", "sel"),
    ("sel: {{action: {a}, context.status|gte: 400}}", "sel"),
    ("sel: {{action: {a}, actor.id|fieldref: targets.id}}", "sel"),
    ("sel: {{action: [{a}, {b}], metadata.format: [csv, xlsx], metadata.record_count|gt: 100}}", "sel"),
    (
        "sel: {{action: {a}, context.method: [DELETE, PATCH]}}\n  filter: {{actor.type: user}}",
        "sel and not filter",
    ),
    ("sel: {{action: {a}, context.user_agent|re: '(?i)(sqlmap|nikto|masscan|zgrab)'}}", "sel"),
    ("sel1: {{action: {a}, outcome: denied}}\n  sel2: {{action: {b}, outcome: error}}", "1 of sel*"),
)
ACTIONLESS: tuple[tuple[str, str], ...] = (
    ("sel: {{context.user_agent|contains: [sqlmap, nikto, nmap]}}", "sel"),
    ("sel: {{actor.type: anonymous, outcome: success}}", "sel"),
    ("sel: {{context.status: 500, context.method: DELETE}}", "sel"),
    ("sel: {{metadata.record_count|gte: 100000}}", "sel"),
    ("sel: {{message|contains: 'DROP TABLE'}}", "sel"),
)


def make_rules(n: int) -> list[str]:
    """``n`` Sigma rules as YAML text: one in twenty names no action, the rest follow TEMPLATES."""
    out = []
    for i in range(n):
        if i % 20 == 19:
            body, condition = ACTIONLESS[(i // 20) % len(ACTIONLESS)]
        else:
            body, condition = TEMPLATES[i % len(TEMPLATES)]
        a, b = ACTIONS[i % len(ACTIONS)], ACTIONS[(i * 7 + 3) % len(ACTIONS)]
        rid = uuid.uuid5(uuid.NAMESPACE_URL, f"vigil-bench-rule-{i}")
        detection = body.format(a=a, b=b)
        out.append(
            f"title: bench rule {i}\nid: {rid}\nlevel: medium\ntags: [attack.t1078]\n"
            f"logsource: {{product: vigil}}\ndetection:\n  {detection}\n  condition: {condition}\n"
        )
    return out


def make_events(n: int, seed: int) -> list[tuple[int, bytes]]:
    """(occurred_us, canonical body) of ``n`` demo events of tenant acme, through the real intake."""
    raw: list[dict[str, Any]] = []
    extra = 0
    while len(raw) < n:
        # a fixed end keeps the trail, and so the hits, the same from run to run
        more, _ = demo.generate(TENANT, n - len(raw) + 16, end=END, seed=seed + extra)
        raw.extend(more)
        extra += 1
    raw.sort(key=lambda e: e["occurred_at"])
    received = time.time_ns() // 1000
    out = []
    for item in raw[:n]:
        p = prepare_event(msgspec.convert(item, EventIn), TENANT, received)
        if not isinstance(p, Prepared):
            raise SystemExit(f"a demo event was rejected: {p.errors}")
        out.append((p.occurred_us, p.body))
    return out


def _feeder(evaluators: Sequence[Evaluator]) -> Callable[[Ev], Sequence[Hit]]:
    """What the engine calls per event: its action dispatch over the evaluators (built-ins only look at the
    actions they name), or, without the engine module, every evaluator in turn."""
    try:
        from vigil.detect.engine import Dispatch
    except ImportError:
        feeds = [e.feed for e in evaluators]
        return lambda ev: [h for feed in feeds for h in feed(ev)]
    return Dispatch(evaluators).feed


def run(bodies: Sequence[tuple[int, bytes]], evaluators: Sequence[Evaluator]) -> tuple[float, int]:
    """Seconds to decode every body and feed it to the evaluators as the engine does, and the hits."""
    decode = msgspec.json.decode
    feed = _feeder(evaluators)
    hits = 0
    t0 = time.perf_counter()
    for seq, (us, body) in enumerate(bodies):
        hits += len(feed(Ev(TENANT, seq, us, decode(body))))
    return time.perf_counter() - t0, hits


def flatten(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored event as one row: dotted column names, the first target only, a change as .before/.after."""
    row: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("actor", "context", "metadata"):
            row.update({f"{key}.{k}": v for k, v in value.items()})
        elif key == "targets":
            if value:
                row.update({f"targets.{k}": v for k, v in value[0].items()})
        elif key == "changes":
            for k, (before, after) in value.items():
                row[f"changes.{k}.before"], row[f"changes.{k}.after"] = before, after
        else:
            row[key] = value
    return {k: (v if not isinstance(v, list | dict) else str(v)) for k, v in row.items()}


def sqlite_baseline(rules: list[str], bodies: Sequence[tuple[int, bytes]]) -> tuple[float, float, int]:
    """Seconds to load the events into SQLite, seconds to run the converted rules, and the rows they matched."""
    converter = sqliteBackend()  # type: ignore[no-untyped-call]
    queries: list[str] = converter.convert(SigmaCollection.from_yaml("\n---\n".join(rules)))
    decode = msgspec.json.decode
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, lambda p, v: v is not None and re.search(p, str(v)) is not None)
    t0 = time.perf_counter()
    rows = [flatten(decode(body)) for _, body in bodies]
    columns = sorted({k for row in rows for k in row} | _fields(queries))
    names = ", ".join(f"`{c}` COLLATE NOCASE" for c in columns)
    db.execute(f"CREATE TABLE logs ({names})")
    marks = ", ".join("?" * len(columns))
    db.executemany(f"INSERT INTO logs VALUES ({marks})", ([row.get(c) for c in columns] for row in rows))
    db.commit()
    loading = time.perf_counter() - t0
    t0 = time.perf_counter()
    matched = sum(len(db.execute(q).fetchall()) for q in queries)
    querying = time.perf_counter() - t0
    db.close()
    return loading, querying, matched


def _fields(queries: list[str]) -> set[str]:
    """Columns the converted queries name, so a field no event has reads as NULL instead of failing."""
    return set(re.findall(r"`([^`]+)`", " ".join(queries)))


def report(label: str, n: int, seconds: float, extra: str = "") -> float:
    rate = n / seconds
    print(f"{label:<44}{rate:>12,.0f} events/s  ({seconds:6.2f} s){extra}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="demo events (default 200,000)")
    parser.add_argument("--rules", type=int, default=100, help="Sigma rules (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo events (default 1)")
    parser.add_argument("--profile", action="store_true", help="profile the Sigma rule set")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each in-memory line N times, keep the best"
    )
    args = parser.parse_args()
    if args.events < 1 or args.rules < 1 or args.repeat < 1:
        parser.error("--events, --rules and --repeat must be at least 1")

    print(f"preparing {args.events:,} demo events and {args.rules} Sigma rules …", file=sys.stderr)
    bodies = make_events(args.events, args.seed)
    rules = make_rules(args.rules)
    n = len(bodies)
    size = sum(len(b) for _, b in bodies) / n
    sigma = load_sigma([(f"bench-{i}.yml", text) for i, text in enumerate(rules)])
    make_builtins = _builtins()
    builtins: list[Evaluator] = make_builtins()
    print(
        f"\n{n:,} events ({size:,.0f} bytes each), {len(sigma.rules)} Sigma rules, {len(builtins)} built-ins\n"
    )

    decode = msgspec.json.decode
    t0 = time.perf_counter()
    for _, body in bodies:
        decode(body)
    report("decode only (msgspec)", n, time.perf_counter() - t0)

    def fresh() -> list[Evaluator]:
        return make_builtins()

    lines: list[tuple[str, Callable[[], list[Evaluator]]]] = [
        ("decode + Sigma rule set", lambda: [sigma.fresh()]),
    ]
    if builtins:
        lines.insert(0, ("decode + built-ins", fresh))
        if any(hasattr(e, "slow") for e in builtins):
            lines.insert(0, ("decode + built-ins without slow tiers", _without_slow_tiers(fresh)))
        lines.append(("decode + built-ins + Sigma rule set", lambda: [*fresh(), sigma.fresh()]))
    rates: dict[str, float] = {}
    sigma_hits = 0
    for label, evaluators in lines:
        # best of --repeat: on a shared machine the slowest runs measure the neighbours, not the rules
        seconds, hits = min(run(bodies, evaluators()) for _ in range(args.repeat))
        rates[label] = report(label, n, seconds, f"  {hits:,} hits")
        if label == "decode + Sigma rule set":
            sigma_hits = hits
    ours = rates[lines[-1][0]]  # everything this run has: built-ins (when importable) and the Sigma rule set
    alone = rates["decode + Sigma rule set"]

    loading, querying, matched = sqlite_baseline(rules, bodies)
    print()
    report("baseline: SQLite load (flatten + insert)", n, loading)
    base_query = report("baseline: SQLite 100 converted queries", n, querying, f"  {matched:,} rows matched")
    base_all = report("baseline: SQLite load + queries", n, loading + querying)
    print(
        f"\n(Sigma hits in memory: {sigma_hits:,}; SQLite sees the first target only, so counts may differ)"
    )
    goal = "meets" if ours >= GOAL else "BELOW"
    print(
        f"rate / goal of {GOAL:,} events/s               {ours / GOAL:>12.2f}   ({goal} it: {lines[-1][0]})"
    )
    print(f"ratio Sigma rule set / SQLite queries       {alone / base_query:>12.2f}")
    print(f"ratio Sigma rule set / SQLite load + queries{alone / base_all:>12.2f}")
    if "decode + built-ins without slow tiers" in rates:
        ratio = rates["decode + built-ins"] / rates["decode + built-ins without slow tiers"]
        print(f"ratio built-ins with / without slow tiers   {ratio:>12.2f}")
    if len(lines) > 1:
        print(f"ratio everything / SQLite queries           {ours / base_query:>12.2f}")
        print(f"ratio everything / SQLite load + queries    {ours / base_all:>12.2f}")

    if args.profile:
        print("\nSigma rule set under cProfile (top 15 by own time):")
        profiler = cProfile.Profile()
        one: SigmaRuleSet = sigma.fresh()
        profiler.runcall(run, bodies, [one])
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
