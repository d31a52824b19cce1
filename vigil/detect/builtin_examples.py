"""Example event sequences for each built-in rule: ones it must fire on and ones it must stay quiet on.

``vigil rules test`` feeds each sequence to a fresh copy of the rule (CI runs them). Events are partial: the
runner fills in an id, the tenant, ``occurred_at`` (10 seconds after the previous event unless given), a user
actor, category and a success outcome. Addresses are RFC 5737 documentation addresses, placed on the map by
:func:`vigil.detect.geo.example_geo` (Berlin, London, New York, Sydney …).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.detect.rules import Examples

ALICE = {"id": "usr_alice", "type": "user", "email": "alice@example.com"}
BOB = {"id": "usr_bob", "type": "user", "email": "bob@example.com"}
BERLIN, MUNICH, LONDON, PARIS = "192.0.2.10", "192.0.2.70", "192.0.2.130", "192.0.2.200"
NEW_YORK, SYDNEY = "198.51.100.10", "203.0.113.10"


def _login(outcome: str, actor: dict[str, Any] = ALICE, ip: str = "192.0.2.10", **kw: Any) -> dict[str, Any]:
    return {"action": "user.login", "outcome": outcome, "actor": actor, "context": {"ip": ip}, **kw}


def _users(n: int) -> list[dict[str, Any]]:
    return [{"id": f"usr_{i:03d}", "type": "user", "email": f"user{i}@example.com"} for i in range(n)]


def _at(seconds: float) -> str:
    """``occurred_at`` this many seconds after 2026-01-01T08:00Z: the slow tiers' examples span hours."""
    return (
        (datetime(2026, 1, 1, 8, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    )


def _every(seconds: float, events: list[dict[str, Any]], start: float = 0) -> list[dict[str, Any]]:
    """``events`` spaced ``seconds`` apart."""
    return [{**e, "occurred_at": _at(start + i * seconds)} for i, e in enumerate(events)]


BRUTE_FORCE = Examples(
    fire=([_login("failure", ip="198.51.100.99") for _ in range(10)],),
    quiet=(
        [_login("failure") for _ in range(9)],  # under the threshold
        # ten failures, but spread over more than five minutes
        [_login("failure", occurred_at=f"2026-01-01T00:{m:02d}:00Z") for m in range(0, 60, 6)],
        [_login("failure", actor=u) for u in _users(10)],  # ten accounts once each: spraying, not brute force
    ),
)

PASSWORD_SPRAYING = Examples(
    fire=([_login("failure", actor=u, ip="203.0.113.99") for u in _users(10)],),
    quiet=(
        [_login("failure", actor=u, ip="203.0.113.99") for u in _users(9)],
        [_login("failure", actor=u, ip=f"203.0.113.{i}") for i, u in enumerate(_users(10))],  # ten sources
        [_login("failure", ip="203.0.113.99") for _ in range(12)],  # one account
    ),
)

SUCCESS_AFTER_FAILURES = Examples(
    fire=([*[_login("failure") for _ in range(5)], _login("success")],),
    quiet=(
        [*[_login("failure") for _ in range(4)], _login("success")],
        [*[_login("failure") for _ in range(5)], _login("success", actor=BOB)],  # someone else signed in
        [  # the failures were long before
            *[_login("failure", occurred_at=f"2026-01-01T00:00:{s:02d}Z") for s in range(5)],
            _login("success", occurred_at="2026-01-01T01:00:00Z"),
        ],
    ),
)

_ADMIN_TO_BOB = {
    "action": "role.assigned",
    "targets": [{"type": "user", "id": "usr_bob"}, {"type": "role", "id": "role_admin", "name": "admin"}],
}

SELF_ROLE_GRANT = Examples(
    fire=(
        [{**_ADMIN_TO_BOB, "actor": BOB}],
        [{"action": "role.assigned", "actor": BOB, "targets": [{"type": "user", "id": "usr_bob"}]}],
    ),
    quiet=(
        [{**_ADMIN_TO_BOB, "actor": ALICE}],
        [{**_ADMIN_TO_BOB, "actor": BOB, "outcome": "denied"}],
        [{"action": "role.revoked", "actor": BOB, "targets": [{"type": "user", "id": "usr_bob"}]}],
    ),
)

ADMIN_ROLE_GRANTED = Examples(
    fire=(
        [{**_ADMIN_TO_BOB, "actor": ALICE}],
        [
            {
                "action": "role.assigned",
                "actor": ALICE,
                "targets": [{"type": "user", "id": "usr_bob"}],
                "metadata": {"role": "Owner"},
            }
        ],
    ),
    quiet=(
        [
            {
                "action": "role.assigned",
                "actor": ALICE,
                "targets": [{"type": "user", "id": "usr_bob"}, {"type": "role", "id": "role_viewer"}],
            }
        ],
        [{**_ADMIN_TO_BOB, "actor": BOB}],  # to oneself: the self-grant rule's alert
        [{**_ADMIN_TO_BOB, "actor": ALICE, "outcome": "failure"}],
    ),
)

MFA_DISABLED = Examples(
    fire=(
        [{"action": "user.mfa.disabled", "targets": [{"type": "user", "id": "usr_alice"}]}],
        [{"action": "user.mfa.reset", "actor": ALICE, "targets": [{"type": "user", "id": "usr_bob"}]}],
    ),
    quiet=([{"action": "user.mfa.enabled"}], [{"action": "user.mfa.disabled", "outcome": "denied"}]),
)

AUDIT_LOG_DISABLED = Examples(
    fire=(
        [{"action": "audit_log.settings.updated", "changes": {"enabled": [True, False]}}],
        [{"action": "audit_log.settings.updated", "changes": {"retention_days": [365, 7]}}],
        [{"action": "audit_log.stream.deleted"}],
    ),
    quiet=(
        [{"action": "audit_log.settings.updated", "changes": {"retention_days": [90, 365]}}],
        [{"action": "audit_log.settings.updated", "changes": {"enabled": [False, True]}}],
        [{"action": "settings.updated", "changes": {"enabled": [True, False]}}],
    ),
)

_KEY = {"id": "key_reporting", "type": "api_key", "name": "reporting"}
_CREATE_KEY = {
    "action": "api_key.created",
    "actor": ALICE,
    "context": {"ip": BERLIN},
    "targets": [{"type": "api_key", "id": "key_reporting"}],
}

API_KEY_NEW_NETWORK = Examples(
    fire=(
        [
            _login("success", ip=BERLIN),
            _CREATE_KEY,
            {"action": "data.exported", "actor": _KEY, "context": {"ip": "100.64.7.7"}},
        ],
    ),
    quiet=(
        [  # used from the network it was created from
            _CREATE_KEY,
            {"action": "data.exported", "actor": _KEY, "context": {"ip": "192.0.2.200"}},
        ],
        [  # an old key, not one created in the last week
            {**_CREATE_KEY, "occurred_at": "2026-01-01T00:00:00Z"},
            {
                "action": "data.exported",
                "actor": _KEY,
                "context": {"ip": "100.64.7.7"},
                "occurred_at": "2026-02-01T00:00:00Z",
            },
        ],
        [  # a new network, but not a new key
            _login("success", ip=BERLIN),
            {"action": "data.exported", "actor": {**_KEY, "id": "key_old"}, "context": {"ip": "100.64.7.7"}},
        ],
    ),
)

BULK_EXPORT = Examples(
    fire=(
        [{"action": "data.exported", "metadata": {"record_count": 250_000}}],
        [{"action": "report.exported"} for _ in range(10)],
        [{"action": "data.viewed", "metadata": {"record_count": 5_000}} for _ in range(10)],
    ),
    quiet=(
        [{"action": "data.exported", "metadata": {"record_count": 900}}],
        [{"action": "report.exported"} for _ in range(9)],
        [{"action": "report.exported", "actor": u} for u in _users(12)],  # twelve people, one export each
    ),
)

_OPERATOR = {"id": "op_jordan", "type": "operator", "name": "Jordan"}

OPERATOR_DATA_ACCESS = Examples(
    fire=(
        [{"action": "customer_data.accessed", "actor": _OPERATOR}],
        [{"action": "data.viewed", "actor": _OPERATOR}],
    ),
    quiet=(
        [{"action": "customer_data.accessed", "actor": ALICE}],
        [{"action": "settings.updated", "actor": _OPERATOR}],
    ),
)

IMPOSSIBLE_TRAVEL = Examples(
    fire=(
        [
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", ip=SYDNEY, occurred_at="2026-01-01T08:30:00Z"),
        ],
    ),
    quiet=(
        [  # London to Paris, 344 km: under the 500 km floor, however fast
            _login("success", ip=LONDON, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", ip=PARIS, occurred_at="2026-01-01T08:05:00Z"),
        ],
        [  # Berlin to New York in ten hours: a flight
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", ip=NEW_YORK, occurred_at="2026-01-01T18:00:00Z"),
        ],
        [  # two users
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", actor=BOB, ip=SYDNEY, occurred_at="2026-01-01T08:30:00Z"),
        ],
        [  # failed attempts are someone else's problem (brute force)
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("failure", ip=SYDNEY, occurred_at="2026-01-01T08:30:00Z"),
        ],
    ),
)

NEW_COUNTRY = Examples(
    fire=(
        [
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", ip=NEW_YORK, occurred_at="2026-01-03T08:00:00Z"),
        ],
    ),
    quiet=(
        [_login("success", ip=NEW_YORK)],  # no history yet: nothing to compare with
        [
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", ip=MUNICH, occurred_at="2026-01-03T08:00:00Z"),  # same country
        ],
        [
            _login("success", ip=BERLIN, occurred_at="2026-01-01T08:00:00Z"),
            _login("success", actor=BOB, ip=NEW_YORK, occurred_at="2026-01-03T08:00:00Z"),
        ],
    ),
)


# ---- slow tiers: attacks paced to stay under the fast rules' windows, and a normal day that must stay quiet ----

_OFFICE = "198.51.100.200"  # one NAT address for a whole office


def _office_day() -> list[dict[str, Any]]:
    """A 200-person office behind one address over a working day: 60 people mistype their password (a few of
    them twice) and sign in a minute later, 5 give up and use another device, everyone else signs in once."""
    out: list[dict[str, Any]] = []
    for i, u in enumerate(_users(200)):
        t = i * 160  # 9 hours of arrivals
        if i < 60:
            out.append(_login("failure", actor=u, ip=_OFFICE, occurred_at=_at(t)))
            if i % 7 == 0:
                out.append(_login("failure", actor=u, ip=_OFFICE, occurred_at=_at(t + 20)))
            out.append(_login("success", actor=u, ip=_OFFICE, occurred_at=_at(t + 60)))
        elif i < 65:
            out.append(_login("failure", actor=u, ip=_OFFICE, occurred_at=_at(t)))
        else:
            out.append(_login("success", actor=u, ip=_OFFICE, occurred_at=_at(t)))
    return sorted(out, key=lambda e: e["occurred_at"])


BRUTE_FORCE_SLOW = Examples(
    fire=(
        _every(8 * 60, [_login("failure", ip="198.51.100.99") for _ in range(38)]),  # one every 8 min for 5 h
        # from ten addresses in turn, one every 40 minutes through the day and night
        _every(40 * 60, [_login("failure", ip=f"198.51.100.{i % 10}") for i in range(36)]),
    ),
    quiet=(
        _every(40 * 60, [_login("failure") for _ in range(29)]),  # under the threshold
        _every(100 * 60, [_login("failure") for _ in range(30)]),  # thirty, but over two days
        _office_day(),
        [  # a burst the 5-minute rule alerts on restarts this count: 25 more over the day stay quiet here
            *[_login("failure", occurred_at=_at(i * 15)) for i in range(10)],
            *_every(40 * 60, [_login("failure") for _ in range(25)], start=3600),
        ],
    ),
)

PASSWORD_SPRAYING_SLOW = Examples(
    fire=(
        # one account every 90 seconds for 3 hours: never 10 in the fast rule's 10 minutes
        _every(90, [_login("failure", actor=u, ip="203.0.113.99") for u in _users(120)]),
        # one every 40 minutes, some accounts tried twice, one of them signing in hours later
        [
            *_every(40 * 60, [_login("failure", actor=u, ip="203.0.113.99") for u in _users(32)]),
            _login("success", actor=_users(1)[0], ip="203.0.113.99", occurred_at=_at(5 * 3600)),
        ],
    ),
    quiet=(
        _office_day(),
        _every(40 * 60, [_login("failure", actor=u, ip="203.0.113.99") for u in _users(29)]),
        _every(72 * 60, [_login("failure", actor=u, ip="203.0.113.99") for u in _users(40)]),  # over 2 days
        _every(90, [_login("failure", actor=u, ip=f"203.0.113.{i}") for i, u in enumerate(_users(120))]),
    ),
)

SUCCESS_AFTER_FAILURES_SLOW = Examples(
    fire=(
        [
            *_every(20 * 60, [_login("failure", ip="198.51.100.99") for _ in range(16)]),
            _login("success", ip="198.51.100.99", occurred_at=_at(6 * 3600)),
        ],
    ),
    quiet=(
        [
            *_every(20 * 60, [_login("failure") for _ in range(14)]),
            _login("success", occurred_at=_at(6 * 3600)),
        ],
        [  # sixteen failures, but over four days
            *_every(6 * 3600, [_login("failure") for _ in range(16)]),
            _login("success", occurred_at=_at(97 * 3600)),
        ],
        [
            *_every(20 * 60, [_login("failure") for _ in range(16)]),
            _login("success", actor=BOB, occurred_at=_at(6 * 3600)),
        ],
        [  # a burst from an attacker's address, then the owner signs in from home hours later, after a typo
            *_every(17, [_login("failure", ip="198.51.100.99") for _ in range(14)]),
            _login("failure", occurred_at=_at(4 * 3600)),
            _login("success", occurred_at=_at(4 * 3600 + 30)),
        ],
        _office_day(),
    ),
)


def _export(records: int) -> dict[str, Any]:
    return {"action": "data.exported", "metadata": {"record_count": records}}


def _report(records: int, actor: dict[str, Any] = ALICE) -> dict[str, Any]:
    return {"action": "report.exported", "actor": actor, "metadata": {"record_count": records}}


BULK_EXPORT_SLOW = Examples(
    fire=(
        _every(20 * 60, [_report(300) for _ in range(45)]),  # three an hour for 15 hours
        # 40,000 records a little over hourly: under the hourly rule's 50,000, 200,000 by the fifth
        _every(3700, [_export(40_000) for _ in range(6)]),
        # many small reads add up too
        _every(30, [{"action": "data.viewed", "metadata": {"record_count": 100}} for _ in range(2_100)]),
    ),
    quiet=(
        _every(18 * 60, [_report(900) for _ in range(30)]),  # a busy analyst's day
        _every(100 * 60, [_report(300) for _ in range(45)]),  # forty-five exports over three days
        _every(40 * 60, [_report(20_000, u) for u in _users(12)]),  # twelve people, one large export each
        _every(7 * 3600, [_export(45_000) for _ in range(8)]),  # at most 180,000 records in any day
    ),
)
