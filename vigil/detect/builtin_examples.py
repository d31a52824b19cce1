"""Example event sequences for each built-in rule: ones it must fire on and ones it must stay quiet on.

``vigil rules test`` feeds each sequence to a fresh copy of the rule (CI runs them). Events are partial: the
runner fills in an id, the tenant, ``occurred_at`` (10 seconds after the previous event unless given), a user
actor, category and a success outcome. Addresses are RFC 5737 documentation addresses, placed on the map by
:func:`vigil.detect.geo.example_geo` (Berlin, London, New York, Sydney …).
"""

from __future__ import annotations

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
