"""Benign traffic of a demo trail: sessions of people and machines, planned, then filled with actions."""

from __future__ import annotations

import random
from typing import Any

from vigil.demo.tables import (
    _ADMIN_MIX,
    _DAY,
    _FIELDS,
    _FIRST,
    _HOUR,
    _LAST,
    _MIN,
    _MIX,
    _MOBILE,
    _REPORTS,
    _ROLES,
    _SEC,
    _SETTINGS,
    _UTC_OFFSET,
    _VIEWER_MIX,
)
from vigil.demo.trail import Event, _obj, _Plan, _role, _Src, _Trail, _User


class _Benign(_Trail):
    """Everyday traffic: sessions of people in their working day and runs of machines, none of which trips a
    detection."""

    def __init__(self, tenant: str, rng: random.Random, start: int, end: int) -> None:
        super().__init__(tenant, rng, start, end)
        self.acts = {name: getattr(self, f"_{name}") for name in _ADMIN_MIX | _VIEWER_MIX}
        self.mixes: dict[str, tuple[list[str], list[float]]] = {}
        for role, mix in (("admin", _ADMIN_MIX), ("viewer", _VIEWER_MIX), ("other", _MIX)):
            weights = list(mix.values())
            self.mixes[role] = (list(mix), [sum(weights[: i + 1]) for i in range(len(weights))])

    # ---- planning: which sessions happen when -------------------------------------------------------------

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
