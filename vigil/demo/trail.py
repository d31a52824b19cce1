"""The base of a demo trail: a tenant's people, machines and business objects, and how events are built."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from vigil.demo.tables import (
    _BROWSERS,
    _CITY_NET,
    _DAY,
    _DEFAULT_CITIES,
    _DOCS,
    _FIELDS,
    _FIRST,
    _INTEGRATIONS,
    _LAST,
    _PREFIX,
    _PROFILES,
    _PROJECTS,
    _ROLES,
    _SEC,
    _SETTINGS,
    _TOPICS,
    DEMO_GEO,
    TECHNIQUES,
    _Profile,
)

Event = dict[str, Any]


def uuid7_at(ms: int, rand: random.Random) -> str:
    """An RFC 9562 UUIDv7 string for Unix time ``ms`` (milliseconds), its random bits drawn from ``rand``."""
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"UUIDv7 time must be 0 <= ms < 2**48, got {ms}")
    bits = rand.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


uuid7 = uuid7_at


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


class _Trail:
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

    def _org(self) -> dict[str, Any]:
        return {"type": "organization", "id": f"org_{self.tenant}", "name": self.profile.display}


def _service(sid: str, name: str) -> dict[str, Any]:
    return {"id": sid, "type": "service", "name": name}


def _obj(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": obj["id"], "name": obj["name"]}


def _role(name: str) -> dict[str, Any]:
    return {"type": "role", "id": f"role_{name}", "name": name}


def _ids(events: list[Event]) -> tuple[str, ...]:
    return tuple(e["id"] for e in events)
