"""Helpers shared by the benchmarks: a real ``vigil serve`` process, tenants and keys through the CLI, and
realistic input events.

The benchmarks are scripts (``python bench/ingest.py``), so this module is imported as ``_common`` from the
``bench`` folder; it only needs the installed ``vigil`` package, ``httpx`` and ``msgspec``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from vigil.testing import HOST, ServerProcess, cli_json, free_port, tenant_with_key, vigil_command

# the benchmarks' names for the shared helpers
Server = ServerProcess
create_tenant_and_key = tenant_with_key
__all__ = [
    "HOST",
    "Server",
    "cli_json",
    "create_tenant_and_key",
    "encode_batches",
    "free_port",
    "make_events",
    "vigil_command",
]


# -- realistic events --------------------------------------------------------------------------------------


def make_events(
    tenant: str, count: int, *, days: int = 30, seed: int = 7, end: datetime | None = None
) -> tuple[list[dict[str, Any]], str]:
    """``count`` realistic input events of ``tenant`` over ``days`` days, oldest first, each with its own
    UUIDv7 id; and the name of the generator used.

    Uses :func:`vigil.demo.generate` when it is importable and works, else :func:`fallback_events`.
    """
    end = end or datetime.now(UTC)
    try:
        from vigil.demo import generate
    except Exception:  # the demo module is optional here: any failure to import it means "use ours"
        generate = None
    if generate is not None:
        try:
            events = _from_demo(generate, tenant, count, days, seed, end)
        except Exception as exc:
            print(
                f"vigil.demo.generate failed ({type(exc).__name__}: {exc}); using the bench's own events",
                file=sys.stderr,
            )
        else:
            return events, "vigil.demo.generate"
    return fallback_events(tenant, count, days=days, seed=seed, end=end), "bench fallback generator"


def _from_demo(
    generate: Any, tenant: str, count: int, days: int, seed: int, end: datetime
) -> list[dict[str, Any]]:
    # the demo gives "about" count events: top up with further seeds, then keep the count asked for
    events: list[dict[str, Any]] = []
    extra = 0
    while len(events) < count:
        more, _ = generate(tenant, count - len(events) + 16, days=days, end=end, seed=seed + extra)
        if not more:
            raise ValueError("generate returned no events")
        events.extend(more)
        extra += 1
    if extra > 1:
        events.sort(key=lambda e: e.get("occurred_at") or "")
    del events[count:]
    for e in events:
        if not e.get("id"):
            raise ValueError("generated events carry no id")
    return events


_FIRST = (
    "Ada",
    "Bruno",
    "Chen",
    "Dana",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Nikhil",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Samir",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yusuf",
)
_LAST = (
    "Nguyen",
    "Schmidt",
    "Garcia",
    "Okafor",
    "Tanaka",
    "Rossi",
    "Kowalski",
    "Silva",
    "Patel",
    "Dubois",
    "Kim",
    "Murphy",
    "Novak",
    "Haddad",
    "Larsen",
    "Moreau",
    "Fischer",
    "Costa",
    "Walker",
    "Khan",
)
_CITIES = (
    ("New York", "198.51.100."),
    ("Berlin", "192.0.2."),
    ("London", "192.0.2."),
    ("Austin", "198.51.100."),
    ("Sydney", "203.0.113."),
    ("Tokyo", "203.0.113."),
)
_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
)
_DOCS = (
    "proposal.docx",
    "notes.md",
    "checklist.pdf",
    "budget.xlsx",
    "slides.pptx",
    "summary.pdf",
    "roadmap.md",
)
_ROLES = ("viewer", "editor", "billing", "support", "developer")
_SETTINGS = ("session_timeout", "ip_allowlist", "default_locale", "webhook_url", "retention_days")
# (action, category, weight, target type or "")
_ACTIONS = (
    ("user.login", "audit", 18, ""),
    ("user.logout", "audit", 8, ""),
    ("user.mfa.challenge", "audit", 4, ""),
    ("document.viewed", "data_access", 22, "document"),
    ("document.updated", "change", 9, "document"),
    ("document.created", "change", 4, "document"),
    ("document.shared", "activity", 3, "document"),
    ("document.deleted", "change", 1, "document"),
    ("project.created", "change", 1, "project"),
    ("project.viewed", "data_access", 7, "project"),
    ("project.archived", "change", 0.3, "project"),
    ("invoice.sent", "activity", 2, "invoice"),
    ("invoice.paid", "activity", 1.5, "invoice"),
    ("report.exported", "data_access", 1.5, "report"),
    ("data.exported", "data_access", 0.4, "dataset"),
    ("settings.updated", "change", 0.8, "settings"),
    ("role.assigned", "change", 0.5, "user"),
    ("role.revoked", "change", 0.3, "user"),
    ("user.invited", "activity", 0.6, "user"),
    ("user.password.changed", "audit", 0.4, ""),
    ("api_key.rotated", "change", 0.1, "api_key"),
    ("integration.connected", "change", 0.1, "integration"),
    ("search.performed", "activity", 6, ""),
    ("comment.created", "activity", 5, "document"),
    ("webhook.delivered", "system", 4, "webhook"),
    ("job.completed", "system", 3, "job"),
)


def fallback_events(
    tenant: str, count: int, *, days: int = 30, seed: int = 7, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Realistic SaaS audit events without :mod:`vigil.demo`: a roster of users with home cities and
    browsers, documents and projects they touch, sign-ins that sometimes fail, changes with before/after
    values, free-text messages and metadata; times follow office hours over ``days`` days."""
    rng = random.Random(f"vigil-bench:{seed}:{tenant}")
    end = end or datetime.now(UTC)
    end_us = int(end.timestamp() * 1_000_000)
    span = days * 86_400_000_000
    start_us = end_us - span
    n_users = max(20, min(3000, count // 400))
    users = []
    for i in range(n_users):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, net = rng.choice(_CITIES)
        users.append(
            {
                "id": f"usr_{rng.getrandbits(40):010x}",
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{i}@{tenant}.example",
                "ip": f"{net}{rng.randrange(1, 255)}",
                "ua": rng.choice(_AGENTS),
                "city": city,
            }
        )
    services = [
        {"id": f"svc_{name}", "type": "service", "name": name}
        for name in ("billing-worker", "sync-daemon", "webhook-dispatcher")
    ]
    n_objects = max(50, count // 40)
    pools = {
        kind: [f"{kind[:3]}_{rng.getrandbits(36):09x}" for _ in range(max(10, n_objects // div))]
        for kind, div in (
            ("document", 1),
            ("project", 20),
            ("invoice", 4),
            ("report", 30),
            ("dataset", 60),
            ("webhook", 200),
            ("job", 10),
            ("api_key", 300),
            ("integration", 300),
            ("settings", 1000),
        )
    }
    actions = [a[0] for a in _ACTIONS]
    weights = [a[2] for a in _ACTIONS]
    info = {a[0]: a for a in _ACTIONS}
    # office-hours clock: accept a uniform instant with a probability that follows the hour of day
    hour_weight = [0.15] * 7 + [0.6, 0.9, 1, 1, 1, 0.8, 1, 1, 1, 0.9, 0.7, 0.4] + [0.25] * 5
    times: list[int] = []
    while len(times) < count:
        t = start_us + int(rng.random() * span)
        if rng.random() < hour_weight[(t // 3_600_000_000) % 24]:
            times.append(t)
    times.sort()
    events: list[dict[str, Any]] = []
    chosen = rng.choices(actions, weights, k=count)
    # a few people do much more than the rest (Zipf-like), as in every real tenant
    zipf = list(_cumulative(1 / (rank + 1) ** 0.7 for rank in range(n_users)))
    who = rng.choices(users, cum_weights=zipf, k=count)
    for t, action, person in zip(times, chosen, who, strict=True):
        _, category, _, ttype = info[action]
        ms = t // 1000
        ev: dict[str, Any] = {
            "id": _uuid7(ms, rng),
            "action": action,
            "category": category,
            "occurred_at": _iso(t),
        }
        if category == "system":
            svc = rng.choice(services)
            ev["actor"] = {"id": svc["id"], "type": "service", "name": svc["name"]}
            user = None
        else:
            user = person
            ev["actor"] = {"id": user["id"], "type": "user", "name": user["name"], "email": user["email"]}
            ev["context"] = {
                "ip": user["ip"],
                "user_agent": user["ua"],
                "request_id": f"req_{rng.getrandbits(48):012x}",
                "location": user["city"],
            }
        target_id = ""
        if ttype == "user":
            other = rng.choice(users)
            target_id = other["id"]
            ev["targets"] = [{"type": "user", "id": target_id, "name": other["name"]}]
        elif ttype:
            target_id = rng.choice(pools[ttype])
            tgt: dict[str, Any] = {"type": ttype, "id": target_id}
            if ttype == "document":
                tgt["name"] = rng.choice(_DOCS)
            ev["targets"] = [tgt]
            if ttype == "document" and rng.random() < 0.3:
                ev["targets"].append({"type": "project", "id": rng.choice(pools["project"])})
        name = user["name"] if user else ev["actor"]["name"]
        if action == "user.login":
            failed = rng.random() < 0.06
            ev["outcome"] = "failure" if failed else "success"
            method = rng.choice(("password", "sso", "passkey"))
            ev["message"] = (
                f"{name} failed to sign in: wrong password" if failed else f"{name} signed in with {method}"
            )
            ev["metadata"] = {"method": method, "mfa": not failed and rng.random() < 0.7}
        elif action == "document.updated":
            ev["changes"] = {"title": [rng.choice(_DOCS), rng.choice(_DOCS)]}
            ev["message"] = f"{name} edited {ev['targets'][0].get('name', 'a document')}"
            ev["metadata"] = {"revision": rng.randrange(1, 400), "words_changed": rng.randrange(1, 900)}
        elif action in ("role.assigned", "role.revoked"):
            role = rng.choice(_ROLES)
            ev["changes"] = {"role": [None, role] if action == "role.assigned" else [role, None]}
            ev["message"] = f"{name} {'granted' if action == 'role.assigned' else 'removed'} the {role} role"
        elif action == "settings.updated":
            key = rng.choice(_SETTINGS)
            ev["changes"] = {key: [rng.randrange(10, 99), rng.randrange(10, 99)]}
            ev["message"] = f"{name} changed {key.replace('_', ' ')}"
        elif action in ("report.exported", "data.exported"):
            ev["metadata"] = {"format": rng.choice(("csv", "xlsx", "pdf")), "rows": rng.randrange(10, 5000)}
            ev["message"] = f"{name} exported {ev['metadata']['rows']} rows"
        elif action == "search.performed":
            ev["metadata"] = {
                "query": rng.choice(
                    (
                        "budget",
                        "roadmap",
                        "contract renewal",
                        "q3 forecast",
                        "onboarding",
                        "security review",
                        "pricing",
                    )
                )
            }
        elif action == "job.completed":
            ev["metadata"] = {
                "job": rng.choice(("nightly-backup", "invoice-run", "search-reindex")),
                "duration_ms": rng.randrange(200, 90_000),
            }
            if rng.random() < 0.03:
                ev["outcome"] = "error"
                ev["message"] = f"job failed with ticket INC-{rng.randrange(10_000, 99_999)}"
        elif action == "document.viewed" and rng.random() < 0.1:
            ev["metadata"] = {"via": rng.choice(("share_link", "search", "email"))}
        if "outcome" not in ev and category != "system" and rng.random() < 0.01:
            ev["outcome"] = "denied"
            ev["reason"] = "missing permission"
        events.append(ev)
    return events


def _cumulative(weights: Iterator[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _uuid7(ms: int, rng: random.Random) -> str:
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64 | 0b10 << 62
    value |= rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _iso(us: int) -> str:
    secs, frac = divmod(us, 1_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:06d}Z"


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def encode_batches(events: Sequence[dict[str, Any]], size: int) -> list[bytes]:
    """The request bodies: JSON arrays of ``size`` events (the last one may be shorter)."""
    enc = msgspec.json.Encoder()
    return [enc.encode(list(chunk)) for chunk in batches(events, size)]


def day_start(days_ago: int, now: datetime | None = None) -> datetime:
    """Midnight UTC ``days_ago`` days before ``now``."""
    now = now or datetime.now(UTC)
    return (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
