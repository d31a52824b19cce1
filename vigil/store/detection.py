"""Detection's rows in either store: alerts, each tenant's detection cursor and per-tenant rule settings.

The SQL is shared: SQLite runs it as written, PostgreSQL with ``%s`` placeholders and the control schema's
``vigil.`` prefix (see :class:`Sql`). Alerts are written by the engine in the same transaction that moves its
cursor, so a crash between the two can neither lose an alert nor raise it twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from vigil.errors import Conflict
from vigil.ids import uuid7_text

MAX_EVIDENCE = 100
"""Evidence events kept on one alert; the hit count keeps growing past it."""


@dataclass(frozen=True)
class NewAlert:
    """An alert the engine wants stored. It joins an alert with the same dedup key whose time span is within
    ``suppress_us`` of its own, else it becomes a new alert."""

    rule_id: str
    title: str
    severity: str
    techniques: tuple[str, ...]
    summary: str
    group: dict[str, str]
    dedup_key: str
    evidence: tuple[tuple[int, str], ...]  # (seq, event id), oldest first
    first_us: int
    last_us: int
    suppress_us: int


@dataclass(frozen=True)
class Alert:
    """A stored alert."""

    id: str
    tenant_id: int
    rule_id: str
    title: str
    severity: str
    techniques: tuple[str, ...]
    summary: str
    group: dict[str, str]
    dedup_key: str
    evidence: tuple[tuple[int, str], ...]
    first_us: int
    last_us: int
    hits: int
    status: str
    created_at: str
    updated_at: str
    new: bool = False  # raised by this very commit (not stored)


@dataclass(frozen=True)
class AlertQuery:
    tenant_id: int | None = None  # None: every tenant (security and auditor scopes only)
    rule_id: str | None = None
    severity: str | None = None
    since_us: int | None = None  # last_us >= since
    limit: int = 100
    before: str | None = None  # paging: alerts with an id below this one (newest first)


@dataclass(frozen=True)
class RuleSetting:
    """A tenant's override of one rule: enabled or not (None: the default, on) and threshold values."""

    tenant_id: int
    rule_id: str
    enabled: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


@dataclass(frozen=True)
class Sql:
    """How one store spells table names and placeholders."""

    prefix: str = ""  # "vigil." on PostgreSQL
    placeholder: str = "?"

    def __call__(self, sql: str) -> str:
        sql = sql.replace("{p}", self.prefix)
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)


_COLUMNS = (
    "id, tenant_id, rule_id, title, severity, techniques, summary, grp, dedup_key, evidence, first_us, last_us, "
    "hits, status, created_at, updated_at"
)


def alert_of(row: Sequence[Any]) -> Alert:
    return Alert(
        id=row[0],
        tenant_id=int(row[1]),
        rule_id=row[2],
        title=row[3],
        severity=row[4],
        techniques=tuple(json.loads(row[5])),
        summary=row[6],
        group=json.loads(row[7]),
        dedup_key=row[8],
        evidence=tuple((int(s), str(i)) for s, i in json.loads(row[9])),
        first_us=int(row[10]),
        last_us=int(row[11]),
        hits=int(row[12]),
        status=row[13],
        created_at=row[14],
        updated_at=row[15],
    )


def cursor(conn: Conn, q: Sql, tenant_id: int) -> int:
    row = conn.execute(
        q("SELECT next_seq FROM {p}detect_cursors WHERE tenant_id = ?"), (tenant_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def commit(
    conn: Conn,
    q: Sql,
    tenant_id: int,
    alerts: Sequence[NewAlert],
    now: str,
    moves: tuple[int, int] | None,
) -> list[Alert]:
    """Store ``alerts`` (merging each into an open alert with its dedup key) and, when ``moves`` is
    ``(expected, new)``, move the tenant's cursor from expected to new; Conflict if another engine moved it."""
    if moves is not None:
        expected, new = moves
        # compare-and-set in one statement, so two engines on one PostgreSQL database cannot both move it
        moved = conn.execute(
            q("UPDATE {p}detect_cursors SET next_seq = ? WHERE tenant_id = ? AND next_seq = ?"),
            (new, tenant_id, expected),
        ).rowcount
        if not moved:
            if expected != 0 or cursor(conn, q, tenant_id) != 0:
                raise Conflict(f"tenant {tenant_id}: the detection cursor moved under this engine")
            conn.execute(
                q("INSERT INTO {p}detect_cursors (tenant_id, next_seq) VALUES (?, ?)"), (tenant_id, new)
            )
    return [_store_one(conn, q, tenant_id, a, now) for a in alerts]


def _text(value: str) -> str:
    """Text fit for every store: PostgreSQL text cannot hold NUL, which an event's strings may (the log keeps
    the exact bytes; an alert's summary and key only name them)."""
    return value.replace("\x00", "\ufffd")


def _store_one(conn: Conn, q: Sql, tenant_id: int, a: NewAlert, now: str) -> Alert:
    a = replace(
        a,
        summary=_text(a.summary),
        dedup_key=_text(a.dedup_key),
        group={_text(k): _text(v) for k, v in a.group.items()},
    )
    rows = conn.execute(
        q(
            f"SELECT {_COLUMNS} FROM {{p}}alerts WHERE tenant_id = ? AND dedup_key = ? AND last_us >= ? "
            "AND first_us <= ? ORDER BY last_us DESC LIMIT 1"
        ),
        (tenant_id, a.dedup_key, a.first_us - a.suppress_us, a.last_us + a.suppress_us),
    ).fetchall()
    if rows:
        old = alert_of(rows[0])
        seen = {eid for _, eid in old.evidence}
        fresh = [e for e in a.evidence if e[1] not in seen]
        if not fresh:  # a replay or a hunt over events the alert already holds
            return old
        evidence = sorted([*old.evidence, *fresh])[:MAX_EVIDENCE]
        merged = Alert(
            **{
                **old.__dict__,
                "evidence": tuple(evidence),
                "first_us": min(old.first_us, a.first_us),
                "last_us": max(old.last_us, a.last_us),
                "hits": old.hits + 1,
                "updated_at": now,
            }
        )
        conn.execute(
            q(
                "UPDATE {p}alerts SET evidence = ?, first_us = ?, last_us = ?, hits = ?, updated_at = ? WHERE id = ?"
            ),
            (json.dumps(evidence), merged.first_us, merged.last_us, merged.hits, now, old.id),
        )
        return merged
    new = Alert(
        id=uuid7_text(),
        tenant_id=tenant_id,
        rule_id=a.rule_id,
        title=a.title,
        severity=a.severity,
        techniques=a.techniques,
        summary=a.summary,
        group=a.group,
        dedup_key=a.dedup_key,
        evidence=a.evidence[:MAX_EVIDENCE],
        first_us=a.first_us,
        last_us=a.last_us,
        hits=1,
        status="open",
        created_at=now,
        updated_at=now,
        new=True,
    )
    conn.execute(
        q(f"INSERT INTO {{p}}alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        (
            new.id,
            tenant_id,
            new.rule_id,
            new.title,
            new.severity,
            json.dumps(list(new.techniques)),
            new.summary,
            json.dumps(new.group, sort_keys=True),
            new.dedup_key,
            json.dumps([list(e) for e in new.evidence]),
            new.first_us,
            new.last_us,
            1,
            "open",
            now,
            now,
        ),
    )
    return new


def list_alerts(conn: Conn, q: Sql, query: AlertQuery) -> list[Alert]:
    where, params = [], []
    for column, value in (
        ("tenant_id", query.tenant_id),
        ("rule_id", query.rule_id),
        ("severity", query.severity),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.since_us is not None:
        where.append("last_us >= ?")
        params.append(query.since_us)
    if query.before is not None:
        where.append("id < ?")
        params.append(query.before)
    sql = f"SELECT {_COLUMNS} FROM {{p}}alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    return [alert_of(r) for r in conn.execute(q(sql), (*params, query.limit)).fetchall()]


def get_alert(conn: Conn, q: Sql, alert_id: str) -> Alert | None:
    row = conn.execute(q(f"SELECT {_COLUMNS} FROM {{p}}alerts WHERE id = ?"), (alert_id,)).fetchone()
    return None if row is None else alert_of(row)


def rule_settings(conn: Conn, q: Sql) -> list[RuleSetting]:
    rows = conn.execute(q("SELECT tenant_id, rule_id, enabled, params FROM {p}rule_settings")).fetchall()
    return [RuleSetting(int(t), r, None if e is None else bool(e), json.loads(p)) for t, r, e, p in rows]


def set_rule_setting(conn: Conn, q: Sql, setting: RuleSetting, now: str) -> None:
    conn.execute(
        q(
            "INSERT INTO {p}rule_settings (tenant_id, rule_id, enabled, params, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant_id, rule_id) DO UPDATE SET enabled = excluded.enabled, params = excluded.params, "
            "updated_at = excluded.updated_at"
        ),
        (
            setting.tenant_id,
            setting.rule_id,
            setting.enabled,
            json.dumps(setting.params, sort_keys=True),
            now,
        ),
    )


class DetectionRows:
    """The detection methods of a store, on top of its writer thread and its read connections."""

    _sql: Sql = Sql()

    def write(self, fn: Any) -> Any:  # provided by GroupCommitWriter
        raise NotImplementedError

    def _detect_read(self) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def detect_cursor(self, tenant_id: int) -> int:
        """The next seq of the tenant's log the detection engine has not yet processed."""
        with self._detect_read() as conn:
            return cursor(conn, self._sql, tenant_id)

    def commit_detection(
        self, tenant_id: int, alerts: Sequence[NewAlert], moves: tuple[int, int] | None = None
    ) -> list[Alert]:
        """Store alerts and move the cursor from ``moves[0]`` to ``moves[1]`` in one transaction."""
        # stamped on the writer thread, inside the transaction that commits the alerts
        result: list[Alert] = self.write(
            lambda conn: commit(conn, self._sql, tenant_id, alerts, now_text(), moves)
        )
        return result

    def list_alerts(self, query: AlertQuery) -> list[Alert]:
        with self._detect_read() as conn:
            return list_alerts(conn, self._sql, query)

    def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with this id (of any tenant: callers scope it), or None."""
        with self._detect_read() as conn:
            return get_alert(conn, self._sql, alert_id)

    def rule_settings(self) -> list[RuleSetting]:
        with self._detect_read() as conn:
            return rule_settings(conn, self._sql)

    def set_rule_setting(self, setting: RuleSetting) -> None:
        now = now_text()
        self.write(lambda conn: set_rule_setting(conn, self._sql, setting, now))


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
