"""The built-in detections over DESIGN.md's standard actions, as plain Python rules.

Each rule carries its ATT&CK ids, a default severity, thresholds that tenants may override (``vigil rules set``)
and example event sequences that must fire and must stay quiet (``vigil rules test`` runs them; CI too). State
is keyed by tenant first, so one tenant's events never count towards another's group.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from vigil.detect import builtin_examples as ex
from vigil.detect.builtin_base import DAY, HOUR, MIN, Builtin, Params, default_params
from vigil.detect.builtin_geo import ImpossibleTravel, NewCountry
from vigil.detect.builtin_slow import (
    SlowBruteForce,
    SlowBulkExport,
    SlowPasswordSpraying,
    SlowSuccessAfterFailures,
    SlowTier,
)
from vigil.detect.fields import actor as _actor
from vigil.detect.fields import ip as _ip
from vigil.detect.fields import login as _login
from vigil.detect.fields import records as _records
from vigil.detect.fields import who as _who
from vigil.detect.geo import Geo, network_of
from vigil.detect.rules import Ev, Hit, RuleInfo
from vigil.detect.windows import Windows
from vigil.text import noun


class _Windowed(Builtin):
    """A rule that counts events per (tenant, group) over its window of event time, with a slow tier (its own
    rule, see :mod:`vigil.detect.builtin_slow`) counting the same group over a day: when the fast rule fires
    on a group, the slow tier's count of it starts again."""

    tier: type[SlowTier]

    def __init__(self, params: Params = default_params) -> None:
        super().__init__(params)
        self.windows: Windows[Ev] = Windows(self.info.window_us)
        self.slow = self.tier(params)

    @classmethod
    def infos(cls) -> tuple[RuleInfo, ...]:
        return (cls.info, cls.tier.info)

    def sweep(self, now_us: int) -> None:
        self.windows.sweep(now_us)
        self.slow.sweep(now_us)


class BruteForce(_Windowed):
    info = RuleInfo(
        id="vigil.brute_force",
        title="Brute force on one account",
        severity="P2",
        techniques=("T1110.001",),
        description="Many failed sign-ins to one account within a few minutes.",
        window_us=5 * MIN,
        suppress_us=HOUR,
        runbook="Lock or challenge the account, check whether a sign-in succeeded afterwards, block the source.",
        params={"failures": 10},
        examples=ex.BRUTE_FORCE,
    )
    actions = frozenset({"user.login"})
    tier = SlowBruteForce
    slow: SlowBruteForce

    def hits(self, ev: Ev) -> list[Hit]:
        if not _login(ev, "failure"):
            return []
        account = str(_actor(ev).get("id", ""))
        key = (ev.tenant, account)
        window = self.windows.add(key, ev.us, ev)
        if len(window) < int(self.p(ev.tenant)["failures"]):
            return self.slow.failure(ev, key, account)
        evidence = [e for _, e in window]
        self.windows.clear(key)  # the next alert needs a fresh run of failures
        self.slow.clear(key)
        return [
            self.hit(
                ev,
                {"account": account},
                evidence,
                f"{len(evidence)} failed sign-ins to {_who(ev)} within 5 minutes",
            )
        ]


class PasswordSpraying(_Windowed):
    info = RuleInfo(
        id="vigil.password_spraying",
        title="Password spraying from one source",
        severity="P1",
        techniques=("T1110.003",),
        description="One source address fails to sign in to many different accounts within minutes.",
        window_us=10 * MIN,
        suppress_us=HOUR,
        runbook="Block the source address, force resets for any account that then signed in from it.",
        params={"accounts": 10},
        examples=ex.PASSWORD_SPRAYING,
    )
    actions = frozenset({"user.login"})
    tier = SlowPasswordSpraying
    slow: SlowPasswordSpraying

    def __init__(self, params: Params = default_params) -> None:
        super().__init__(params)
        self.accounts: dict[tuple[str, str], Counter[str]] = {}  # key -> failures per account in its window

    def sweep(self, now_us: int) -> None:
        super().sweep(now_us)
        self.accounts = {k: c for k, c in self.accounts.items() if self.windows.get(k) is not None}

    def hits(self, ev: Ev) -> list[Hit]:
        ip = _ip(ev)
        if not ip:
            return []
        key = (ev.tenant, ip)
        if not _login(ev, "failure"):
            if _login(ev, "success"):
                self.slow.success(ev, key)
            return []
        window, dropped = self.windows.add_dropping(key, ev.us, ev)
        # failures per account in the window, kept as it moves: one source failing all day on a few accounts
        # would otherwise make each event recount ten minutes of failures
        accounts = self.accounts.setdefault(key, Counter())
        accounts[str(_actor(ev).get("id", ""))] += 1
        for e in dropped:
            account = str(_actor(e).get("id", ""))
            accounts[account] -= 1
            if not accounts[account]:
                del accounts[account]
        if len(accounts) < int(self.p(ev.tenant)["accounts"]):
            return self.slow.failure(ev, key, ip)
        evidence = [e for _, e in window]
        self.windows.clear(key)
        self.accounts.pop(key, None)
        self.slow.clear(key)
        return [
            self.hit(
                ev,
                {"source_ip": ip},
                evidence,
                f"{ip} failed to sign in to {len(accounts)} different accounts within 10 minutes",
            )
        ]


class SuccessAfterFailures(_Windowed):
    info = RuleInfo(
        id="vigil.success_after_failures",
        title="Sign-in succeeded after many failures",
        severity="P1",
        techniques=("T1110",),
        description="An account signs in successfully right after a run of failed attempts.",
        window_us=15 * MIN,
        suppress_us=HOUR,
        runbook="Treat the session as compromised: revoke it, reset the password and MFA, review what it did.",
        params={"failures": 5},
        examples=ex.SUCCESS_AFTER_FAILURES,
    )
    actions = frozenset({"user.login"})
    tier = SlowSuccessAfterFailures
    slow: SlowSuccessAfterFailures

    def hits(self, ev: Ev) -> list[Hit]:
        account = str(_actor(ev).get("id", ""))
        key = (ev.tenant, account)
        if _login(ev, "failure"):
            self.windows.add(key, ev.us, ev)
            self.slow.failure(ev, key)
            return []
        if not _login(ev, "success"):
            return []
        window = self.windows.get(key)
        failures = [e for us, e in window or () if us >= ev.us - self.info.window_us]
        if len(failures) < int(self.p(ev.tenant)["failures"]):
            return self.slow.success(ev, key, account)
        self.windows.clear(key)
        self.slow.clear((key, _ip(ev)))  # the slow tier counts per account and source
        return [
            self.hit(
                ev,
                {"account": account},
                [*failures, ev],
                f"{_who(ev)} signed in after {len(failures)} failed attempts",
            )
        ]


class _Stateless(Builtin):
    """A rule that looks at one event at a time; alerts about one actor within an hour become one alert."""

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        """The alert's summary when ``ev`` matches, else None."""
        raise NotImplementedError

    def hits(self, ev: Ev) -> list[Hit]:
        summary = self.test(ev, self.p(ev.tenant))
        if summary is None:
            return []
        return [self.hit(ev, {"actor": str(_actor(ev).get("id", ""))}, [ev], summary)]


def _role_targets(ev: Ev) -> list[dict[str, Any]]:
    return [t for t in ev.doc.get("targets") or () if t.get("type") == "role"]


class SelfRoleGrant(_Stateless):
    info = RuleInfo(
        id="vigil.self_role_grant",
        title="Role granted to oneself",
        severity="P1",
        techniques=("T1098.003",),
        description="Someone assigned a role to their own account.",
        runbook="Revert the grant, confirm with the person, and check how they had the right to grant roles.",
        examples=ex.SELF_ROLE_GRANT,
    )
    actions = frozenset({"role.assigned"})

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        if ev.doc.get("outcome") != "success":
            return None
        me = _actor(ev).get("id")
        if not any(t.get("type") == "user" and t.get("id") == me for t in ev.doc.get("targets") or ()):
            return None
        roles = ", ".join(str(t.get("name") or t.get("id")) for t in _role_targets(ev)) or "a role"
        return f"{_who(ev)} granted themselves {roles}"


class AdminRoleGranted(_Stateless):
    info = RuleInfo(
        id="vigil.admin_role_granted",
        title="Admin role granted",
        severity="P2",
        techniques=("T1098.003",),
        description="An administrative role was assigned to a user (grants to oneself raise their own alert).",
        runbook="Confirm the grant was requested and approved; revert it if not.",
        params={"admin_roles": ["admin", "owner", "super_admin", "administrator"]},
        examples=ex.ADMIN_ROLE_GRANTED,
    )
    actions = frozenset({"role.assigned"})

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        if ev.doc.get("outcome") != "success":
            return None
        admin = {str(r).lower() for r in p["admin_roles"]}
        names = {str((ev.doc.get("metadata") or {}).get("role", "")).lower()}
        for t in _role_targets(ev):
            names |= {str(t.get("id", "")).lower().removeprefix("role_"), str(t.get("name", "")).lower()}
        if not names & admin:
            return None
        me = _actor(ev).get("id")
        users = [t for t in ev.doc.get("targets") or () if t.get("type") == "user"]
        if not users or any(t.get("id") == me for t in users):
            return None  # a grant to oneself is SelfRoleGrant's (more severe) alert
        who = ", ".join(str(t.get("name") or t.get("id")) for t in users)
        return f"{_who(ev)} made {who} an administrator"


class MfaDisabled(_Stateless):
    info = RuleInfo(
        id="vigil.mfa_disabled",
        title="MFA disabled or reset",
        severity="P2",
        techniques=("T1556.006",),
        description="Multi-factor authentication was turned off or reset for an account.",
        runbook="Confirm with the account owner; re-enrol MFA and review the account's recent sessions.",
        examples=ex.MFA_DISABLED,
    )
    actions = frozenset({"user.mfa.disabled", "user.mfa.reset"})

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        if ev.doc.get("outcome") != "success":
            return None
        verb = "turned off" if ev.doc["action"] == "user.mfa.disabled" else "reset"
        targets = [
            str(t.get("name") or t.get("id")) for t in ev.doc.get("targets") or () if t.get("type") == "user"
        ]
        return f"{_who(ev)} {verb} MFA" + (f" for {', '.join(targets)}" if targets else "")


class AuditLogDisabled(_Stateless):
    info = RuleInfo(
        id="vigil.audit_log_disabled",
        title="Audit logging disabled or its retention shortened",
        severity="P1",
        techniques=("T1685.002", "T1562.008"),
        description="Audit logging was turned off, its stream deleted, or its retention cut.",
        runbook="Turn logging back on, restore retention, and find out who asked for the change and why.",
        examples=ex.AUDIT_LOG_DISABLED,
    )
    actions = frozenset({"audit_log.settings.updated", "audit_log.stream.deleted"})

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        if ev.doc.get("outcome") != "success":
            return None
        if ev.doc["action"] == "audit_log.stream.deleted":
            return f"{_who(ev)} deleted an audit log stream"
        changes = ev.doc.get("changes") or {}
        what = []
        for name in ("enabled", "streaming", "streaming_enabled"):
            pair = changes.get(name)
            if isinstance(pair, list) and len(pair) == 2 and pair[0] is not False and pair[1] is False:
                what.append("turned audit logging off" if name == "enabled" else "turned streaming off")
        pair = changes.get("retention_days")
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, int | float) for v in pair)
            and pair[1] < pair[0]
        ):
            what.append(f"cut retention from {pair[0]} to {pair[1]} {noun(int(pair[1]), 'day')}")
        return f"{_who(ev)} {' and '.join(what)}" if what else None


class BulkExport(_Windowed):
    info = RuleInfo(
        id="vigil.bulk_export",
        title="Bulk data export",
        severity="P2",
        techniques=("T1530",),
        description="One actor exported many times, or exported or read many records, within an hour.",
        window_us=HOUR,
        suppress_us=HOUR,
        runbook="Check the export was expected; revoke the actor's sessions or key if not, and scope the data.",
        params={"exports": 10, "records": 50_000},
        examples=ex.BULK_EXPORT,
    )
    actions = frozenset({"data.exported", "report.exported", "data.viewed"})
    tier = SlowBulkExport
    slow: SlowBulkExport

    def __init__(self, params: Params = default_params) -> None:
        super().__init__(params)
        self.totals: dict[tuple[str, str], list[int]] = {}  # key -> [exports, records] in its window

    def sweep(self, now_us: int) -> None:
        super().sweep(now_us)
        self.totals = {k: t for k, t in self.totals.items() if self.windows.get(k) is not None}

    def hits(self, ev: Ev) -> list[Hit]:
        if ev.doc.get("outcome") != "success":
            return []
        actor = str(_actor(ev).get("id", ""))
        key = (ev.tenant, actor)
        export, read = ev.doc["action"] != "data.viewed", _records(ev)
        if not export and not read:
            return []  # counts towards nothing
        window, dropped = self.windows.add_dropping(key, ev.us, ev)
        # running totals: a reader viewing a record a second would otherwise make every event recount an hour
        totals = self.totals.setdefault(key, [0, 0])
        totals[0] += export
        totals[1] += read
        for e in dropped:
            totals[0] -= e.doc["action"] != "data.viewed"
            totals[1] -= _records(e)
        p = self.p(ev.tenant)
        if totals[0] < int(p["exports"]) and totals[1] < int(p["records"]):
            return self.slow.event(ev, key, actor, export, read)
        exports, records = [e for _, e in window if e.doc["action"] != "data.viewed"], totals[1]
        self.windows.clear(key)
        self.totals.pop(key, None)
        self.slow.clear(key)
        return [
            self.hit(
                ev,
                {"actor": actor},
                [e for _, e in window if e.doc["action"] != "data.viewed" or _records(e)],
                f"{_who(ev)} {_export_text(len(exports), records)} within an hour",
            )
        ]


def _export_text(exports: int, records: int) -> str:
    parts = [f"made {exports} exports"] if exports > 1 else []
    if records:
        parts.append(f"read or exported {records:,} records")
    return " and ".join(parts)


class OperatorDataAccess(_Stateless):
    info = RuleInfo(
        id="vigil.operator_data_access",
        title="Operator read customer data",
        severity="P2",
        techniques=("T1078",),
        description="A member of the SaaS vendor's own staff (actor type operator) read the tenant's data.",
        runbook="Match the access to a support ticket or break-glass approval; escalate if there is none.",
        examples=ex.OPERATOR_DATA_ACCESS,
    )

    def test(self, ev: Ev, p: dict[str, Any]) -> str | None:
        if _actor(ev).get("type") != "operator":
            return None
        action = str(ev.doc.get("action", ""))
        if action != "customer_data.accessed" and not action.startswith("data."):
            return None
        return f"operator {_who(ev)} read customer data ({action})"


class ApiKeyNewNetwork(Builtin):
    info = RuleInfo(
        id="vigil.api_key_new_network",
        title="New API key used from a network never seen",
        severity="P1",
        techniques=("T1098.001",),
        description="An API key created recently was used from a network this tenant's traffic never came from.",
        window_us=30 * DAY,
        suppress_us=DAY,
        runbook="Revoke the key, find who created it and from where, and review everything it did.",
        params={"key_age_days": 7, "ipv4_prefix": 16, "ipv6_prefix": 32},
        examples=ex.API_KEY_NEW_NETWORK,
    )

    def __init__(self, params: Params = default_params) -> None:
        super().__init__(params)
        self.seen: dict[tuple[str, str], int] = {}  # (tenant, network) -> last seen
        self.created: dict[tuple[str, str], Ev] = {}  # (tenant, key id) -> its api_key.created event
        self._net = functools.lru_cache(maxsize=65536)(network_of)

    def hits(self, ev: Ev) -> list[Hit]:
        tenant, out = ev.tenant, []
        if ev.doc.get("action") == "api_key.created" and ev.doc.get("outcome") == "success":
            for t in ev.doc.get("targets") or ():
                if t.get("type") == "api_key":
                    self.created[(tenant, str(t.get("id")))] = ev
        ip = _ip(ev)
        if not ip:
            return []
        p = self.p(tenant)
        net = self._net(ip, int(p["ipv4_prefix"]), int(p["ipv6_prefix"]))
        if net is None:
            return []
        actor = _actor(ev)
        if actor.get("type") == "api_key" and (tenant, net) not in self.seen:
            made = self.created.get((tenant, str(actor.get("id"))))
            if made is not None and ev.us - made.us <= int(p["key_age_days"]) * DAY:
                name = actor.get("name") or actor.get("id")
                out.append(
                    self.hit(
                        ev,
                        {"api_key": str(actor.get("id"))},
                        [made, ev],
                        f"API key {name}, created by {_who(made)}, was used from {net}, a network never seen "
                        "for this tenant",
                    )
                )
        self.seen[(tenant, net)] = ev.us
        return out

    def sweep(self, now_us: int) -> None:
        horizon = now_us - self.info.window_us
        self.seen = {k: us for k, us in self.seen.items() if us >= horizon}
        self.created = {k: e for k, e in self.created.items() if e.us >= now_us - 30 * DAY}


GEO_RULES = (ImpossibleTravel, NewCountry)
OTHER_RULES = (
    BruteForce,
    PasswordSpraying,
    SuccessAfterFailures,
    SelfRoleGrant,
    AdminRoleGranted,
    MfaDisabled,
    AuditLogDisabled,
    ApiKeyNewNetwork,
    BulkExport,
    OperatorDataAccess,
)
BUILTIN_RULES: tuple[RuleInfo, ...] = tuple(i for r in (*OTHER_RULES, *GEO_RULES) for i in r.infos())


def builtin_evaluators(geo: Geo | None = None, params: Params = default_params) -> list[Builtin]:
    """Every built-in rule; without ``geo`` the geo rules are left out (the caller warns about it)."""
    rules: list[Builtin] = [cls(params) for cls in OTHER_RULES]
    if geo is not None:
        rules += [cls(geo, params) for cls in GEO_RULES]
    return rules
