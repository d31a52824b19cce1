"""Realistic demo audit trails with known attacks planted in them, for ``vigil demo`` and for tests.

`generate` returns events in the shape clients POST to ``/v1/events`` plus the `AttackPattern` records naming
the events of each planted attack, so a demo or a test can check that every built-in detection fires on its
pattern and nowhere else. Benign traffic stays clear of every detection: each user keeps one home city and
their own addresses, typos stop at two failed sign-ins in a row, exports stay small, admins hand out only
ordinary roles and only to others, and nobody disables MFA or audit logging. Standard library only; the output
depends only on the arguments.
"""

from __future__ import annotations

import gc
import ipaddress
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["DEMO_GEO", "DEMO_TENANTS", "TECHNIQUES", "AttackPattern", "generate", "uuid7", "uuid7_at"]

Event = dict[str, Any]

DEMO_TENANTS = ("acme", "globex", "initech")

# network -> (city, country, latitude, longitude). Every address the generator uses lies in one of these, so a
# GeoIP test database built from this table locates every event. Users live in the documentation ranges.
DEMO_GEO: dict[str, tuple[str, str, float, float]] = {
    "192.0.2.0/26": ("Berlin", "DE", 52.5200, 13.4050),
    "192.0.2.64/26": ("Munich", "DE", 48.1351, 11.5820),
    "192.0.2.128/26": ("London", "GB", 51.5074, -0.1278),
    "192.0.2.192/26": ("Paris", "FR", 48.8566, 2.3522),
    "198.51.100.0/26": ("New York", "US", 40.7128, -74.0060),
    "198.51.100.64/26": ("San Francisco", "US", 37.7749, -122.4194),
    "198.51.100.128/26": ("Chicago", "US", 41.8781, -87.6298),
    "198.51.100.192/26": ("Austin", "US", 30.2672, -97.7431),
    "203.0.113.0/26": ("Sydney", "AU", -33.8688, 151.2093),
    "203.0.113.64/26": ("Tokyo", "JP", 35.6762, 139.6503),
    "203.0.113.128/26": ("Singapore", "SG", 1.3521, 103.8198),
    "203.0.113.192/26": ("Toronto", "CA", 43.6532, -79.3832),
    # the data centres the tenants' own services run in
    "34.224.0.0/20": ("Ashburn", "US", 39.0438, -77.4874),
    "3.120.0.0/20": ("Frankfurt", "DE", 50.1109, 8.6821),
    "13.228.0.0/20": ("Singapore", "SG", 1.3521, 103.8198),
    # networks only attackers and the SaaS vendor's support staff use
    "105.112.0.0/20": ("Lagos", "NG", 6.5244, 3.3792),
    "113.161.0.0/20": ("Ho Chi Minh City", "VN", 10.8231, 106.6297),
    "23.95.32.0/20": ("Dallas", "US", 32.7767, -96.7970),
    "45.146.164.0/22": ("Amsterdam", "NL", 52.3676, 4.9041),
    "187.189.0.0/20": ("Mexico City", "MX", 19.4326, -99.1332),
    "87.32.0.0/20": ("Dublin", "IE", 53.3498, -6.2603),
}
_CITY_NET = {
    geo[0]: net for net, geo in DEMO_GEO.items() if net.startswith(("192.0.2.", "198.51.", "203.0."))
}
_UTC_OFFSET = {  # standard time; good enough to put the working day in the right place
    "Berlin": 1, "Munich": 1, "London": 0, "Paris": 1, "New York": -5, "San Francisco": -8, "Chicago": -6,
    "Austin": -6, "Sydney": 10, "Tokyo": 9, "Singapore": 8, "Toronto": -5,
}  # fmt: skip

TECHNIQUES = {  # pattern -> MITRE ATT&CK technique
    "brute_force": "T1110.001",
    "password_spraying": "T1110.003",
    "success_after_failures": "T1110",
    "impossible_travel": "T1078.004",
    "self_role_grant": "T1098.003",
    "admin_role_granted": "T1098.003",
    "mfa_disabled": "T1556.006",
    "audit_log_disabled": "T1685.002",
    "api_key_new_network": "T1098.001",
    "bulk_export": "T1530",
    "operator_customer_data_access": "T1078",
    "new_country": "T1078",
}


class _Profile(NamedTuple):
    display: str
    cities: str  # "City=weight,City=weight"
    datacenter: str
    sso_share: float
    patterns: tuple[str, ...]


_PROFILES = {
    "acme": _Profile(
        "Acme Corp",
        "New York=.35,San Francisco=.3,Chicago=.15,Austin=.1,Toronto=.1",
        "34.224.0.0/20",
        0.2,
        ("brute_force", "success_after_failures", "api_key_new_network", "bulk_export"),
    ),
    "globex": _Profile(
        "Globex Corporation",
        "Berlin=.4,Munich=.2,London=.25,Paris=.15",
        "3.120.0.0/20",
        0.6,
        ("password_spraying", "impossible_travel", "admin_role_granted", "audit_log_disabled"),
    ),
    "initech": _Profile(
        "Initech",
        "Austin=.35,Sydney=.25,Singapore=.15,Tokyo=.1,London=.15",
        "13.228.0.0/20",
        0.3,
        ("self_role_grant", "mfa_disabled", "operator_customer_data_access", "new_country"),
    ),
}
# A tenant the demo does not know gets every pattern, so one trail exercises every detection.
_DEFAULT_CITIES = "New York=.3,Austin=.2,London=.2,Berlin=.2,Sydney=.1"

_FIRST = [
    "Alice", "Bob", "Carmen", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Liam",
    "Maya", "Nikhil", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Aaron", "Bianca", "Chen", "Dmitri", "Emma", "Felix", "Gabriela", "Hannah", "Ivan",
    "Julia", "Kwame", "Lena", "Mateo", "Nora", "Oscar", "Priya", "Rafael", "Sofia", "Thomas", "Uma", "Victor",
]  # fmt: skip
_LAST = [
    "Nguyen", "Schmidt", "Garcia", "Okafor", "Tanaka", "Rossi", "Kowalski", "Silva", "Johansson", "Patel",
    "Dubois", "Kim", "Murphy", "Novak", "Haddad", "Larsen", "Moreau", "Fischer", "Costa", "Ivanova", "Walker",
    "Mendes", "Becker", "Sato", "Hughes", "Alvarez", "Weber", "Nakamura", "Brennan", "Khan",
]  # fmt: skip
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
_BROWSERS = (
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_WEBKIT}",
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 "
    "Safari/605.1.15",
    f"Mozilla/5.0 (X11; Linux x86_64) {_WEBKIT}",
)
_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Mobile/15E148 Safari/604.1"
)
# business object kind -> the fields an update may change, with their possible values
_FIELDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "invoice": {
        "status": ("draft", "sent", "paid", "overdue"),
        "amount": (450, 900, 1200, 2500, 4800, 7300, 12000),
        "payment_terms": ("net_15", "net_30", "net_60"),
        "currency": ("USD", "EUR", "GBP"),
    },
    "project": {
        "status": ("planned", "active", "on_hold", "done"),
        "priority": ("low", "medium", "high"),
        "budget": (5000, 12000, 25000, 40000, 80000),
    },
    "document": {
        "visibility": ("private", "team", "company"),
        "status": ("draft", "in_review", "final"),
        "folder": ("Contracts", "Engineering", "Finance", "Marketing", "People"),
    },
}
_PROJECTS = ["Falcon", "Atlas", "Horizon", "Nimbus", "Orion", "Beacon", "Keystone", "Summit", "Aurora"]
_TOPICS = ["Q3 pricing", "Onboarding", "Security review", "Vendor contract", "Roadmap", "Board update"]
_DOCS = ["proposal.docx", "notes.md", "checklist.pdf", "budget.xlsx", "slides.pptx", "summary.pdf"]
_REPORTS = ("Monthly revenue", "Open invoices", "Project status", "Team activity")
_SETTINGS: dict[str, tuple[Any, ...]] = {
    "session_timeout_minutes": (30, 60, 120, 240),
    "default_currency": ("USD", "EUR", "GBP"),
    "week_starts_on": ("monday", "sunday"),
    "allow_public_links": (False, True),
    "date_format": ("YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY"),
}
_INTEGRATIONS = ["Slack", "GitHub", "Jira", "Google Drive"]
_ROLES = ("editor", "member", "viewer", "billing")
# how often each benign action comes up in a session, by the user's role
_MIX = {"view": 40, "create": 7, "update": 14, "delete": 1.5, "share": 2.5, "report": 2.5, "export": 0.4}
_MIX |= {"password": 0.15, "denied_settings": 0.15}
_ADMIN_MIX = _MIX | {"denied_settings": 0, "settings": 0.8, "assign": 0.4, "revoke": 0.15, "invite": 0.3}
_ADMIN_MIX |= {"permission": 0.15, "end_session": 0.1, "rotate": 0.05, "integration": 0.05}
_VIEWER_MIX = {"view": 55, "report": 3, "export": 0.2, "password": 0.15, "denied_update": 1}

_SEC = 1_000_000
_MIN = 60 * _SEC
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AttackPattern:
    """One attack planted in a generated trail: where, what, and which events make it up."""

    tenant: str
    name: str
    technique: str
    description: str
    event_ids: tuple[str, ...]


def uuid7_at(ms: int, rand: random.Random) -> str:
    """An RFC 9562 UUIDv7 string for Unix time ``ms`` (milliseconds), its random bits drawn from ``rand``."""
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"UUIDv7 time must be 0 <= ms < 2**48, got {ms}")
    bits = rand.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


uuid7 = uuid7_at


def generate(
    tenant: str, count: int, *, days: int = 30, end: datetime | None = None, seed: int | None = None
) -> tuple[list[dict[str, Any]], list[AttackPattern]]:
    """About ``count`` events of ``tenant`` over the ``days`` days before ``end`` (now), oldest first, and the
    attacks planted in them. The same ``seed`` and ``end`` give the same output."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    end = datetime.now(UTC) if end is None else end if end.tzinfo else end.replace(tzinfo=UTC)
    end_us = (end - _EPOCH) // timedelta(microseconds=1)
    rng = random.Random(f"vigil-demo:{seed}:{tenant}") if seed is not None else random.Random()
    # A burst of ~100k small dicts with no cycles among them: the cyclic collector would only rescan them over
    # and over (40% of the run time), so it waits until the trail is built.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _Tenant(tenant, rng, end_us - days * _DAY, end_us).run(count)
    finally:
        if paused:
            gc.enable()


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def _iso(us: int) -> str:
    day, rem = divmod(us, _DAY)
    sec, frac = divmod(rem, _SEC)
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{_date(day)}T{h:02d}:{m:02d}:{s:02d}.{frac:06d}Z"


@lru_cache(maxsize=512)
def _spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Split "action [METHOD /route status]" into the action, its category and the HTTP context fields."""
    action, *http = spec.split()
    return (
        action,
        _category(action),
        {"method": http[0], "route": http[1], "status": int(http[2])} if http else {},
    )


def _category(action: str) -> str:
    if action.startswith(("user.", "role.", "permission.", "api_key.", "integration.", "audit_log.")):
        return "audit"
    if action.startswith(("data.", "report.", "customer_data.")):
        return "data_access"
    if action == "settings.updated" or action.endswith((".created", ".updated", ".deleted", ".archived")):
        return "change"
    return "system" if action.endswith(".indexed") else "activity"


def _weights(spec: str) -> tuple[list[str], list[float]]:
    pairs = [item.split("=") for item in spec.split(",")]
    return [city for city, _ in pairs], [float(w) for _, w in pairs]


@dataclass(slots=True)
class _User:
    id: str
    name: str
    email: str
    role: str
    city: str
    country: str
    ips: tuple[str, ...]
    ua: str
    mfa: bool
    sso: bool
    weight: float
    start_hour: float
    mfa_off: int = 1 << 62  # when MFA stopped guarding the account (µs)

    def has_mfa(self, t: int) -> bool:
        return self.mfa and t < self.mfa_off

    @property
    def actor(self) -> dict[str, Any]:
        return {"id": self.id, "type": "user", "name": self.name, "email": self.email}

    @property
    def target(self) -> dict[str, Any]:
        return {"type": "user", "id": self.id, "name": self.name}


class _Src(NamedTuple):
    """Who acts and from where: actor dict, address, user agent, and the user behind it if any."""

    actor: dict[str, Any]
    ip: str
    ua: str
    user: _User | None = None


class _Plan(NamedTuple):
    """A session before its events exist: enough to count, place and drop it cheaply."""

    start: int
    who: int  # index into users, or -1 - index into machines
    fails: int
    actions: int
    end: int  # 0 nothing, 1 the user signs out, 2 the system expires the session
    length: int


_Planted = tuple[list[Event], tuple[str, ...], str]


class _Tenant:
    """One tenant's trail: its people and machines, its business objects with their state, the generators."""

    def __init__(self, tenant: str, rng: random.Random, start: int, end: int) -> None:
        self.tenant, self.rng, self.start, self.end = tenant, rng, start, end
        default = _Profile(tenant.title(), _DEFAULT_CITIES, "34.224.0.0/20", 0.3, tuple(TECHNIQUES))
        self.profile = _PROFILES.get(tenant, default)
        self.domain = f"{tenant}.example"
        self.where: dict[str, str] = {}  # ip -> "City, CC"
        self.taken: list[str] = []  # users already cast in an attack
        self.exclusions: dict[int, list[tuple[int, int]]] = {}
        self.serial = rng.randrange(1000, 5000)
        self.settings = {name: values[0] for name, values in _SETTINGS.items()}
        self.permissions: dict[str, bool] = {}
        self.integrations = list(_INTEGRATIONS)
        self.users = self._roster()
        self.by_id = {u.id: i for i, u in enumerate(self.users)}
        dc, slug = self.profile.datacenter, tenant.replace("-", "_")
        self.machines = [
            _Src(self._key("Billing sync"), self._host(dc), "billing-sync/3.2 python-httpx/0.27.0"),
            _Src(self._key("CRM integration"), self._host(dc), "crm-connector/1.8"),
            _Src(
                _service(f"svc_{slug}_invoice_worker", "invoice-worker"),
                self._host(dc),
                "invoice-worker/2026.11",
            ),
            _Src(
                _service(f"svc_{slug}_search_indexer", "search-indexer"), self._host(dc), "search-indexer/1.4"
            ),
        ]
        reaper = {"id": "sys_session_reaper", "type": "system", "name": "Session reaper"}
        self.reaper = _Src(reaper, self._host(dc), "")
        self.objects = {kind: [self._new_object(kind) for _ in range(25)] for kind in _FIELDS}
        self.acts = {name: getattr(self, f"_{name}") for name in _ADMIN_MIX | _VIEWER_MIX}
        self.mixes: dict[str, tuple[list[str], list[float]]] = {}
        for role, mix in (("admin", _ADMIN_MIX), ("viewer", _VIEWER_MIX), ("other", _MIX)):
            weights = list(mix.values())
            self.mixes[role] = (list(mix), [sum(weights[: i + 1]) for i in range(len(weights))])

    # ---- people, machines, objects ------------------------------------------------------------------------

    def _host(self, net: str) -> str:
        """A fresh address in ``net`` (unique in the tenant while the network has room)."""
        network = ipaddress.IPv4Network(net)
        for _ in range(64):
            ip = str(network.network_address + self.rng.randrange(1, network.num_addresses - 1))
            if ip not in self.where:
                break
        city, country, _, _ = DEMO_GEO[net]
        self.where[ip] = f"{city}, {country}"
        return ip

    def _key(self, name: str) -> dict[str, Any]:
        return {"id": f"key_{self.rng.getrandbits(64):016x}", "type": "api_key", "name": name}

    def _roster(self) -> list[_User]:
        rng = self.rng
        cities, weights = _weights(self.profile.cities)
        n = rng.randint(20, 60)
        names: list[tuple[str, str]] = []
        while len(names) < n:
            pair = (rng.choice(_FIRST), rng.choice(_LAST))
            if pair not in names:
                names.append(pair)
        admins, users = max(2, n // 15), []
        for i, (first, last) in enumerate(names):
            # right after the admins comes one user per city, so every city an attack needs has a non-admin
            k = i - admins
            city = cities[k] if 0 <= k < len(cities) else rng.choices(cities, weights)[0]
            role = "admin" if i < admins else rng.choices(_ROLES, (0.4, 0.3, 0.15, 0.15))[0]
            sso = role != "admin" and rng.random() < self.profile.sso_share
            mfa = not sso and (role == "admin" or rng.random() < 0.7)
            ips = tuple(self._host(_CITY_NET[city]) for _ in range(1 + (rng.random() < 0.3)))
            uid, email = f"usr_{rng.getrandbits(64):016x}", f"{first}.{last}@{self.domain}".lower()
            country, ua = DEMO_GEO[_CITY_NET[city]][1], rng.choice(_BROWSERS)
            activity, start_hour = rng.lognormvariate(0.0, 0.5), rng.uniform(7.5, 10.0)
            users.append(
                _User(
                    uid,
                    f"{first} {last}",
                    email,
                    role,
                    city,
                    country,
                    ips,
                    ua,
                    mfa,
                    sso,
                    activity,
                    start_hour,
                )
            )
        return users

    def _new_object(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        self.serial += 1
        if kind == "invoice":
            name = f"INV-{self.serial:05d}"
        elif kind == "project":
            name = f"{rng.choice(_PROJECTS)} {rng.choice(('migration', 'launch', 'redesign', 'rollout'))}"
        else:
            name = f"{rng.choice(_TOPICS)} {rng.choice(_DOCS)}"
        obj = {"id": f"{_PREFIX[kind]}_{rng.getrandbits(48):012x}", "name": name}
        return obj | {field: rng.choice(values) for field, values in _FIELDS[kind].items()}

    # ---- the whole trail ----------------------------------------------------------------------------------

    def run(self, count: int) -> tuple[list[Event], list[AttackPattern]]:
        events: list[Event] = []
        patterns = []
        for i, name in enumerate(self.profile.patterns):
            at = self._attack_time(i, len(self.profile.patterns), name)
            planted, ids, description = getattr(self, f"_plant_{name}")(at)
            events.extend(planted)
            patterns.append(AttackPattern(self.tenant, name, TECHNIQUES[name], description, ids))
        for plan in self._plans(count - len(events)):
            made = self._session(plan) if plan.who >= 0 else self._machine_run(plan)
            events.extend(made[: plan.length])
        events.sort(key=lambda e: e["occurred_at"])
        return events, patterns

    def _plans(self, target: int) -> list[_Plan]:
        """Plan more sessions than needed, then keep a random subset of exactly ``target`` events."""
        if target <= 0:
            return []
        factor, plans = 1.15, []
        for _ in range(6):
            users = self._user_plans(target * 0.88 * factor / 12)
            plans = [p for p in users if not self._excluded(p)] + self._machine_plans(
                target * 0.12 * factor / 2
            )
            if sum(p.length for p in plans) >= target:
                break
            factor *= 1.5
        self.rng.shuffle(plans)
        kept, total = [], 0
        for p in plans:
            if total >= target:
                break
            kept.append(p if total + p.length <= target else p._replace(length=target - total))
            total += kept[-1].length
        kept.sort()
        return kept

    def _excluded(self, p: _Plan) -> bool:
        stop = p.start + p.length * 5 * _MIN + 31 * _MIN
        return any(lo < stop and p.start < hi for lo, hi in self.exclusions.get(p.who, ()))

    def _user_plans(self, sessions: float) -> list[_Plan]:
        """Sessions in each user's local working day, few at weekends, never two of one user at once."""
        rng, first, last = self.rng, self.start // _DAY - 1, self.end // _DAY + 1
        busy = {d: rng.uniform(0.8, 1.2) for d in range(first, last + 1)}
        weekday = {d: (d + 3) % 7 < 5 for d in busy}  # day 0 of the epoch was a Thursday
        cells = [
            (i, d, u.weight * busy[d] * (1 if weekday[d] else 0.07))
            for i, u in enumerate(self.users)
            for d in busy
        ]
        scale = sessions / sum(w for _, _, w in cells)
        plans, free = [], [0] * len(self.users)
        for i, d, w in cells:
            u, lam = self.users[i], w * scale
            hour = u.start_hour if weekday[d] else rng.uniform(10, 17)
            t = d * _DAY - _UTC_OFFSET[u.city] * _HOUR + int(hour * _HOUR + rng.uniform(0, 90) * _MIN)
            for _ in range(int(lam) + (rng.random() < lam - int(lam))):
                fails = 0 if u.sso or rng.random() >= 0.05 else 1 if rng.random() < 0.8 else 2
                actions = min(30, 1 + int(rng.expovariate(1 / 8.5)))
                r = rng.random()
                end = 1 if r < 0.55 else 2 if r < 0.65 else 0
                length = fails + 1 + u.has_mfa(t) + actions + (end > 0)
                t = max(t, free[i])
                # a step takes at most 5 minutes, an idle session expires after 31, then 15 to spare
                free[i] = t + length * 5 * _MIN + 46 * _MIN
                if self.start <= t and free[i] - 15 * _MIN <= self.end:
                    plans.append(_Plan(t, i, fails, actions, end, length))
                t = free[i] + int(rng.uniform(0, 90) * _MIN)
        return plans

    def _machine_plans(self, runs: float) -> list[_Plan]:
        rng, span, plans = self.rng, self.end - self.start - _MIN, []
        per = max(1, round(runs / len(self.machines)))
        for m in range(len(self.machines)):
            for j in range(per):
                n = rng.randint(1, 3)
                plans.append(_Plan(self.start + int((j + rng.random()) * span / per), -1 - m, 0, n, 0, n))
        return plans

    # ---- benign sessions ----------------------------------------------------------------------------------

    def _session(self, p: _Plan) -> list[Event]:
        rng, u = self.rng, self.users[p.who]
        ip, ua = (u.ips[1], _MOBILE) if len(u.ips) > 1 and rng.random() < 0.3 else (u.ips[0], u.ua)
        t, out = p.start, []
        for _ in range(p.fails):
            out.append(self._login(t, u, _Src(u.actor, ip, ua, u), ok=False))
            t += rng.randint(8, 40) * _SEC
        src = self._session_src(u, ip, ua)
        out.append(self._login(t, u, src, ok=True))
        if u.has_mfa(p.start):
            t += rng.randint(8, 30) * _SEC
            out.append(self._mfa(t, u, src))
        names, weights = self.mixes[u.role if u.role in ("admin", "viewer") else "other"]
        for act in rng.choices(names, cum_weights=weights, k=p.actions):
            t += rng.randint(15, 300) * _SEC
            out.append(self.acts[act](t, src))
        if p.end == 1:
            t += rng.randint(15, 300) * _SEC
            out.append(
                self._ev(t, src, "user.logout POST /api/logout 204", f"{u.name} signed out", [u.target])
            )
        elif p.end == 2:
            t += 30 * _MIN + rng.randint(0, 60) * _SEC
            message = f"Session of {u.name} expired after 30 minutes idle"
            out.append(
                self._ev(t, self.reaper, "user.session.revoked", message, [u.target], category="system")
            )
        return out

    def _machine_run(self, p: _Plan) -> list[Event]:
        src, rng = self.machines[-1 - p.who], self.rng
        out, t = [], p.start
        for _ in range(p.actions):
            name = src.actor["name"]
            if name == "Billing sync":
                out.append(rng.choice((self._create, self._update, self._view))(t, src, "invoice"))
            elif name == "CRM integration":
                kind = rng.choice(("project", "document"))
                out.append(rng.choice((self._view, self._view, self._update))(t, src, kind))
            elif name == "invoice-worker":
                out.append(rng.choice((self._share, self._update))(t, src, "invoice"))
            else:
                doc = rng.choice(self.objects["document"])
                meta = {"index": "documents", "duration_ms": rng.randint(40, 900)}
                message = f"search-indexer indexed {doc['name']}"
                out.append(
                    self._ev(t, src, "document.indexed", message, [_obj("document", doc)], metadata=meta)
                )
            t += rng.randint(1, 6) * _SEC
        return out

    # ---- event building -----------------------------------------------------------------------------------

    def _ev(
        self,
        t: int,
        src: _Src,
        spec: str,
        message: str,
        targets: list[dict[str, Any]] | None = None,
        outcome: str = "success",
        *,
        category: str | None = None,
        metadata: dict[str, Any] | None = None,
        changes: dict[str, list[Any]] | None = None,
        reason: str | None = None,
    ) -> Event:
        """One event at ``t`` (µs). ``spec`` is "action METHOD /route status", or just the action for work
        that no HTTP request started."""
        rng = self.rng
        action, default_category, http = _spec(spec)
        ctx: dict[str, Any] = {"ip": src.ip}
        if src.ua:
            ctx["user_agent"] = src.ua
        ctx["request_id"] = f"req_{rng.getrandbits(64):016x}"
        if http:
            ctx |= http
        else:
            ctx["trace_id"] = f"{rng.getrandbits(128):032x}"
        ctx["location"] = self.where[src.ip]
        ev: Event = {
            "id": uuid7_at(t // 1000, rng),
            "occurred_at": _iso(t),
            "action": action,
            "category": category or default_category,
            "outcome": outcome,
            "actor": dict(src.actor),
        }
        if targets:
            ev["targets"] = targets
        ev["context"] = ctx
        ev["message"] = message
        for key, value in (("metadata", metadata), ("changes", changes), ("reason", reason)):
            if value:
                ev[key] = value
        return ev

    def _session_src(self, u: _User, ip: str | None = None, ua: str | None = None) -> _Src:
        actor = u.actor | {"session_id": f"ses_{self.rng.getrandbits(64):016x}"}
        return _Src(actor, ip or u.ips[0], ua or u.ua, u)

    def _login(self, t: int, u: _User, src: _Src, *, ok: bool) -> Event:
        meta: dict[str, Any] = {"login_method": "sso" if u.sso and ok else "password", "mfa": u.has_mfa(t)}
        if not ok:
            spec, message = "user.login POST /api/login 401", f"{u.name} failed to sign in"
            return self._ev(
                t, src, spec, message, [u.target], "failure", metadata=meta, reason="invalid password"
            )
        if u.sso:
            meta["idp"] = "okta"
        spec = "user.login GET /sso/callback 302" if u.sso else "user.login POST /api/login 200"
        return self._ev(t, src, spec, f"{u.name} signed in", [u.target], metadata=meta)

    def _mfa(self, t: int, u: _User, src: _Src) -> Event:
        spec, message = "user.mfa.challenge POST /api/mfa/verify 200", f"{u.name} completed an MFA challenge"
        return self._ev(t, src, spec, message, [u.target], metadata={"factor": "totp"})

    # ---- benign actions: (time, source[, object kind]) -> event -------------------------------------------

    def _kind(self, src: _Src) -> str:
        r = self.rng.random()
        if src.user is not None and src.user.role == "billing":
            return "invoice" if r < 0.8 else "project" if r < 0.9 else "document"
        return "invoice" if r < 0.3 else "project" if r < 0.6 else "document"

    def _view(self, t: int, src: _Src, kind: str | None = None) -> Event:
        kind = kind or self._kind(src)
        obj = self.rng.choice(self.objects[kind])
        spec = f"data.viewed GET /api/{kind}s/{{id}} 200"
        message = f"{src.actor['name']} viewed {kind} {obj['name']}"
        return self._ev(
            t, src, spec, message, [_obj(kind, obj)], metadata={"object_type": kind, "record_count": 1}
        )

    def _create(self, t: int, src: _Src, kind: str | None = None) -> Event:
        kind = kind or self._kind(src)
        obj = self._new_object(kind)
        self.objects[kind].append(obj)
        spec = f"{kind}.created POST /api/{kind}s 201"
        message = f"{src.actor['name']} created {kind} {obj['name']}"
        changes = {field: [None, obj[field]] for field in _FIELDS[kind]}
        return self._ev(t, src, spec, message, [_obj(kind, obj)], changes=changes)

    def _update(self, t: int, src: _Src, kind: str | None = None) -> Event:
        kind = kind or self._kind(src)
        obj = self.rng.choice(self.objects[kind])
        field = self.rng.choice(tuple(_FIELDS[kind]))
        after = self.rng.choice([v for v in _FIELDS[kind][field] if v != obj[field]])
        changes, obj[field] = {field: [obj[field], after]}, after
        spec = f"{kind}.updated PATCH /api/{kind}s/{{id}} 200"
        message = f"{src.actor['name']} updated {field.replace('_', ' ')} of {kind} {obj['name']}"
        return self._ev(t, src, spec, message, [_obj(kind, obj)], changes=changes)

    def _delete(self, t: int, src: _Src) -> Event:
        kind = self._kind(src)
        if len(self.objects[kind]) < 15:
            return self._create(t, src, kind)
        obj = self.objects[kind].pop(self.rng.randrange(len(self.objects[kind])))
        spec = f"{kind}.deleted DELETE /api/{kind}s/{{id}} 204"
        return self._ev(t, src, spec, f"{src.actor['name']} deleted {kind} {obj['name']}", [_obj(kind, obj)])

    def _share(self, t: int, src: _Src, kind: str | None = None) -> Event:
        kind = kind or self._kind(src)
        obj, who = self.rng.choice(self.objects[kind]), src.actor["name"]
        targets = [_obj(kind, obj)]
        if kind == "invoice":
            meta = {"channel": "email", "recipient_domain": "client.example"}
            spec = "invoice.sent POST /api/invoices/{id}/send 200"
            return self._ev(t, src, spec, f"{who} sent invoice {obj['name']}", targets, metadata=meta)
        if kind == "document":
            to = self.rng.choice(("team", "company"))
            spec = "document.shared POST /api/documents/{id}/share 200"
            message = f"{who} shared {obj['name']}"
            return self._ev(t, src, spec, f"{message} with the {to}", targets, metadata={"shared_with": to})
        if obj.get("archived"):
            return self._update(t, src, kind)
        changes = {"archived": [False, True]} | (
            {"status": [obj["status"], "done"]} if obj["status"] != "done" else {}
        )
        obj["status"], obj["archived"] = "done", True
        spec = "project.archived POST /api/projects/{id}/archive 200"
        return self._ev(t, src, spec, f"{who} archived project {obj['name']}", targets, changes=changes)

    def _report(self, t: int, src: _Src) -> Event:
        rng, title = self.rng, self.rng.choice(_REPORTS)
        meta: dict[str, Any] = {"report": title, "format": rng.choice(("csv", "pdf", "xlsx"))}
        target = [{"type": "report", "id": "rpt_" + title.lower().replace(" ", "_"), "name": title}]
        if rng.random() < 0.01:
            spec, message = "report.exported POST /api/reports/{id}/export 500", f"Export of {title} failed"
            return self._ev(
                t, src, spec, message, target, "error", metadata=meta, reason="report service timeout"
            )
        meta["record_count"] = rng.randint(5, 800)
        spec = "report.exported POST /api/reports/{id}/export 200"
        message = f"{src.actor['name']} exported {title}"
        return self._ev(t, src, spec, message, target, metadata=meta)

    def _export(self, t: int, src: _Src) -> Event:
        kind, n = self._kind(src), self.rng.randint(10, 900)
        dataset = {"type": "dataset", "id": f"{kind}s", "name": f"{kind.title()}s"}
        meta = {"dataset": f"{kind}s", "format": "csv", "record_count": n}
        message = f"{src.actor['name']} exported {n} {kind}s"
        return self._ev(t, src, "data.exported POST /api/exports 202", message, [dataset], metadata=meta)

    def _password(self, t: int, src: _Src) -> Event:
        me = {"type": "user", "id": src.actor["id"], "name": src.actor["name"]}
        spec, message = "user.password.changed POST /api/account/password 200", "changed their password"
        return self._ev(t, src, spec, f"{src.actor['name']} {message}", [me])

    def _denied_settings(self, t: int, src: _Src) -> Event:
        message = f"{src.actor['name']} was denied changing organization settings"
        spec, reason = "settings.updated PATCH /api/settings 403", "requires the admin role"
        return self._ev(t, src, spec, message, [self._org()], "denied", reason=reason)

    def _denied_update(self, t: int, src: _Src) -> Event:
        kind = self._kind(src)
        obj = self.rng.choice(self.objects[kind])
        spec = f"{kind}.updated PATCH /api/{kind}s/{{id}} 403"
        message = f"{src.actor['name']} was denied editing"
        return self._ev(t, src, spec, f"{message} {kind} {obj['name']}", [_obj(kind, obj)], "denied",
                        reason="viewers cannot edit")  # fmt: skip

    def _org(self) -> dict[str, Any]:
        return {"type": "organization", "id": f"org_{self.tenant}", "name": self.profile.display}

    def _settings(self, t: int, src: _Src) -> Event:
        name = self.rng.choice(tuple(_SETTINGS))
        after = self.rng.choice([v for v in _SETTINGS[name] if v != self.settings[name]])
        changes, self.settings[name] = {name: [self.settings[name], after]}, after
        spec, message = "settings.updated PATCH /api/settings 200", f"{src.actor['name']} changed {name}"
        return self._ev(t, src, spec, message, [self._org()], changes=changes)

    def _other(self, src: _Src) -> _User:
        """Someone other than the actor and never an admin: admins hand out ordinary roles to others only."""
        return self.rng.choice([u for u in self.users if u.role != "admin" and u.id != src.actor["id"]])

    def _assign(self, t: int, src: _Src) -> Event:
        v = self._other(src)
        v.role = role = self.rng.choice([r for r in _ROLES if r != v.role])
        spec = "role.assigned POST /api/users/{id}/roles 200"
        message = f"assigned the {role} role to {v.name}"
        targets = [v.target, _role(role)]
        return self._ev(t, src, spec, f"{src.actor['name']} {message}", targets, metadata={"role": role})

    def _revoke(self, t: int, src: _Src) -> Event:
        v = self._other(src)
        if v.role == "member":
            return self._assign(t, src)
        role, v.role = v.role, "member"
        spec = "role.revoked DELETE /api/users/{id}/roles/{role} 204"
        message = f"removed {v.name}'s {role} role"
        targets = [v.target, _role(role)]
        return self._ev(t, src, spec, f"{src.actor['name']} {message}", targets, metadata={"role": role})

    def _invite(self, t: int, src: _Src) -> Event:
        rng = self.rng
        email = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}@{self.domain}".lower()
        role = rng.choice(("member", "viewer", "editor"))
        invitee = {"type": "user", "id": f"usr_{rng.getrandbits(64):016x}", "name": email}
        spec = "user.invited POST /api/invitations 201"
        message = f"{src.actor['name']} invited {email} as {role}"
        return self._ev(t, src, spec, message, [invitee], metadata={"role": role})

    def _permission(self, t: int, src: _Src) -> Event:
        role = self.rng.choice(("editor", "member", "billing"))
        perm = self.rng.choice(
            ("comment_on_documents", "create_projects", "send_invoices", "share_documents")
        )
        before = self.permissions.get(f"{role}.{perm}", True)
        self.permissions[f"{role}.{perm}"] = not before
        spec = "permission.changed PUT /api/roles/{id}/permissions 200"
        message = f"{src.actor['name']} {'revoked' if before else 'granted'} {perm} for {role}s"
        return self._ev(t, src, spec, message, [_role(role)], changes={perm: [before, not before]})

    def _end_session(self, t: int, src: _Src) -> Event:
        v = self._other(src)
        spec, message = "user.session.revoked DELETE /api/users/{id}/sessions 204", f"signed {v.name} out"
        return self._ev(t, src, spec, f"{src.actor['name']} {message}", [v.target], reason="laptop replaced")

    def _rotate(self, t: int, src: _Src) -> Event:
        key = self.rng.choice([m.actor for m in self.machines if m.actor["type"] == "api_key"])
        target = {"type": "api_key", "id": key["id"], "name": key["name"]}
        spec, message = "api_key.rotated POST /api/api-keys/{id}/rotate 200", f"rotated API key {key['name']}"
        return self._ev(t, src, spec, f"{src.actor['name']} {message}", [target], reason="scheduled rotation")

    def _integration(self, t: int, src: _Src) -> Event:
        if not self.integrations:
            return self._settings(t, src)
        name = self.integrations.pop(self.rng.randrange(len(self.integrations)))
        target = {"type": "integration", "id": "int_" + name.lower().replace(" ", "_"), "name": name}
        message = f"{src.actor['name']} connected {name}"
        return self._ev(t, src, "integration.connected POST /api/integrations 201", message, [target])

    # ---- planted attacks: (time) -> (events, ids of the pattern's events, description) --------------------

    def _attack_time(self, i: int, n: int, name: str) -> int:
        """Spread the patterns over the window, each at its own hour of the day (UTC)."""
        frac = 0.15 + 0.75 * (i + 0.5) / n
        day = self.start // _DAY + int(frac * ((self.end - self.start) // _DAY))
        t = day * _DAY + _ATTACK_HOUR[name] * _HOUR + self.rng.randrange(_HOUR)
        if not self.start + _HOUR <= t <= self.end - 3 * _HOUR:
            t = self.start + int(frac * (self.end - self.start))
        return t

    def _victim(self, **want: Any) -> _User:
        """A non-admin in no other pattern, with the wanted attributes (forced on someone if need be)."""
        free = [u for u in self.users if u.role != "admin" and u.id not in self.taken]
        u = self.rng.choice([u for u in free if all(getattr(u, k) == v for k, v in want.items())] or free)
        for k, v in want.items():
            setattr(u, k, v)
        self.taken.append(u.id)
        return u

    def _admin(self) -> _User:
        return self.rng.choice([u for u in self.users if u.role == "admin"])

    def _exclude(self, u: _User, lo: int, hi: int) -> None:
        """Keep ``u``'s benign sessions out of ``[lo, hi]`` so the pattern stays exactly what it claims."""
        self.exclusions.setdefault(self.by_id[u.id], []).append((lo, hi))

    def _after_sign_in(self, at: int, u: _User, spec: str, message: str, **kw: Any) -> _Planted:
        """``u`` signs in from home as usual, then does the one thing that makes the pattern."""
        src = self._session_src(u)
        events = [self._login(at, u, src, ok=True)]
        if u.has_mfa(at):
            events.append(self._mfa(at + self.rng.randint(8, 30) * _SEC, u, src))
        act = self._ev(at + self.rng.randint(60, 300) * _SEC, src, spec, message, **kw)
        self._exclude(u, at - 2 * _HOUR, at + 2 * _HOUR)
        return [*events, act], (act["id"],), message

    def _plant_brute_force(self, at: int) -> _Planted:
        u, ip = self._victim(), self._host("105.112.0.0/20")
        src, events = _Src(u.actor, ip, "python-requests/2.31.0", u), []
        for _ in range(14):
            events.append(self._login(at, u, src, ok=False))
            at += self.rng.randint(12, 19) * _SEC
        self._exclude(u, at - 2 * _HOUR, at + 2 * _HOUR)
        return events, _ids(events), f"14 failed sign-ins to {u.email} from {ip} within 5 minutes"

    def _plant_password_spraying(self, at: int) -> _Planted:
        ip, events = self._host("113.161.0.0/20"), []
        for u in self.rng.sample(self.users, 18):
            events.append(self._login(at, u, _Src(u.actor, ip, "curl/8.5.0", u), ok=False))
            at += self.rng.randint(15, 25) * _SEC
        return events, _ids(events), f"{ip} failed to sign in to 18 different accounts within 8 minutes"

    def _plant_success_after_failures(self, at: int) -> _Planted:
        # a US address for a US user, so this is neither a new country nor impossible travel
        u, ip = self._victim(country="US", sso=False, mfa=False), self._host("23.95.32.0/20")
        src, events = _Src(u.actor, ip, _BROWSERS[1], u), []
        for _ in range(8):
            events.append(self._login(at, u, src, ok=False))
            at += self.rng.randint(10, 20) * _SEC
        at += self.rng.randint(20, 40) * _SEC
        events.append(self._login(at, u, self._session_src(u, ip, _BROWSERS[1]), ok=True))
        self._exclude(u, at - 12 * _HOUR, at + 12 * _HOUR)
        return events, _ids(events), f"8 failed sign-ins to {u.email} from {ip}, then a successful one"

    def _plant_impossible_travel(self, at: int) -> _Planted:
        u = self._victim(city="Berlin")
        home = self._login(at, u, self._session_src(u), ok=True)
        sydney = self._session_src(u, self._host("203.0.113.0/26"), _BROWSERS[2])
        away = self._login(at + 30 * _MIN, u, sydney, ok=True)
        # quiet for two days after, so the flight home is not a second impossible trip
        self._exclude(u, at - 12 * _HOUR, at + 48 * _HOUR)
        return (
            [home, away],
            _ids([home, away]),
            f"{u.name} signed in from Berlin, then Sydney 30 minutes later",
        )

    def _plant_self_role_grant(self, at: int) -> _Planted:
        u = self._victim()
        spec, message = "role.assigned POST /api/users/{id}/roles 200", f"{u.name} made themselves an admin"
        targets = [u.target, _role("admin")]
        return self._after_sign_in(at, u, spec, message, targets=targets, metadata={"role": "admin"})

    def _plant_admin_role_granted(self, at: int) -> _Planted:
        a, v = self._admin(), self._victim()
        spec, message = "role.assigned POST /api/users/{id}/roles 200", f"{a.name} made {v.name} an admin"
        targets = [v.target, _role("admin")]
        return self._after_sign_in(at, a, spec, message, targets=targets, metadata={"role": "admin"})

    def _plant_mfa_disabled(self, at: int) -> _Planted:
        u = self._victim(mfa=True, sso=False)
        spec, message = "user.mfa.disabled DELETE /api/account/mfa 204", f"{u.name} turned off MFA"
        planted = self._after_sign_in(at, u, spec, message, targets=[u.target], metadata={"factor": "totp"})
        u.mfa_off = at  # later sessions go without the challenge
        return planted

    def _plant_audit_log_disabled(self, at: int) -> _Planted:
        a = self._admin()
        spec = "audit_log.settings.updated PATCH /api/audit-log/settings 200"
        message = f"{a.name} turned audit logging off and cut its retention to 1 day"
        targets = [{"type": "audit_log", "id": f"audit_log_{self.tenant}", "name": "Audit log"}]
        changes = {"enabled": [True, False], "retention_days": [365, 1]}
        return self._after_sign_in(at, a, spec, message, targets=targets, changes=changes)

    def _plant_api_key_new_network(self, at: int) -> _Planted:
        a, key = self._admin(), self._key("reporting-export")
        spec, message = "api_key.created POST /api/api-keys 201", f"{a.name} created API key {key['name']}"
        targets = [{"type": "api_key", "id": key["id"], "name": key["name"]}]
        meta = {"scopes": "read export", "expires_in_days": 365}
        events, ids, _ = self._after_sign_in(at, a, spec, message, targets=targets, metadata=meta)
        ip = self._host("45.146.164.0/22")
        src, t = _Src(key, ip, "python-httpx/0.27.0"), at + self.rng.randint(20, 40) * _MIN
        meta = {"dataset": "customers", "format": "csv", "record_count": 900}
        export = (
            "data.exported POST /api/exports 202",
            f"{key['name']} exported 900 customers",
            [_CUSTOMERS],
        )
        used = [
            self._view(t, src, "invoice"),
            self._view(t + 9 * _SEC, src, "document"),
            self._ev(t + 30 * _SEC, src, *export, metadata=meta),
        ]
        return [*events, *used], ids + _ids(used), f"API key {key['name']} was created, then used from {ip}"

    def _plant_bulk_export(self, at: int) -> _Planted:
        u = self._victim()
        spec, message = "data.exported POST /api/exports 202", f"{u.name} exported 250000 customers"
        meta = {"dataset": "customers", "format": "csv", "record_count": 250000}
        return self._after_sign_in(at, u, spec, message, targets=[_CUSTOMERS], metadata=meta)

    def _plant_operator_customer_data_access(self, at: int) -> _Planted:
        actor = {"id": f"op_{self.rng.getrandbits(48):012x}", "type": "operator", "name": "Jordan Reyes"}
        actor["email"] = "jordan.reyes@support.vendor.example"
        op, events = _Src(actor, self._host("87.32.0.0/20"), _BROWSERS[0]), []
        spec = "customer_data.accessed GET /internal/tenants/{tenant}/records/{id} 200"
        for kind in ("invoice", "document", "invoice"):
            obj = self.rng.choice(self.objects[kind])
            message = f"Vendor support engineer Jordan Reyes opened {kind} {obj['name']}"
            meta = {"console": "support-admin", "record_type": kind}
            events.append(self._ev(at, op, spec, message, [self._org(), _obj(kind, obj)], metadata=meta))
            at += self.rng.randint(40, 200) * _SEC
        return (
            events,
            _ids(events),
            "a support engineer of the vendor opened 3 of the tenant's records, no ticket",
        )

    def _plant_new_country(self, at: int) -> _Planted:
        u, ip = self._victim(country="US"), self._host("187.189.0.0/20")
        login = self._login(at, u, self._session_src(u, ip), ok=True)
        # alone for a day either side, so it is a new country and never impossible travel; a few sign-ins from
        # home days before give the user a history even in a small trail
        self._exclude(u, at - 24 * _HOUR, at + 24 * _HOUR)
        before = [at - k * _DAY - self.rng.randint(60, 300) * _MIN for k in (2, 3, 5)]
        history = [self._login(t, u, self._session_src(u), ok=True) for t in before if t >= self.start]
        return (
            [*history, login],
            (login["id"],),
            f"{u.name} signed in from Mexico, never seen for them before",
        )


_ATTACK_HOUR = {  # UTC hour of day each pattern starts at
    "brute_force": 2, "password_spraying": 4, "success_after_failures": 3, "impossible_travel": 8,
    "self_role_grant": 14, "admin_role_granted": 16, "mfa_disabled": 21, "audit_log_disabled": 22,
    "api_key_new_network": 1, "bulk_export": 19, "operator_customer_data_access": 11, "new_country": 17,
}  # fmt: skip
_CUSTOMERS = {"type": "dataset", "id": "customers", "name": "Customers"}
_PREFIX = {"invoice": "inv", "project": "prj", "document": "doc"}


def _service(sid: str, name: str) -> dict[str, Any]:
    return {"id": sid, "type": "service", "name": name}


def _obj(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": obj["id"], "name": obj["name"]}


def _role(name: str) -> dict[str, Any]:
    return {"type": "role", "id": f"role_{name}", "name": name}


def _ids(events: list[Event]) -> tuple[str, ...]:
    return tuple(e["id"] for e in events)
