"""Planted attacks of a demo trail: one generator per pattern, each naming the events that make it up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.demo.benign import _Benign
from vigil.demo.tables import _ATTACK_HOUR, _BROWSERS, _CUSTOMERS, _DAY, _HOUR, _MIN, _SEC
from vigil.demo.trail import Event, _ids, _obj, _role, _Src, _User


@dataclass(frozen=True)
class AttackPattern:
    """One attack planted in a generated trail: where, what, and which events make it up."""

    tenant: str
    name: str
    technique: str
    description: str
    event_ids: tuple[str, ...]


_Planted = tuple[list[Event], tuple[str, ...], str]


class _Attacks(_Benign):
    """The planted attacks, on top of benign traffic: a pattern may use an everyday action (a stolen key)."""

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
