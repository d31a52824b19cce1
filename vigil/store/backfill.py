"""Migration steps that fill new derived columns from the events already stored.

A column added to the events table is empty for the events logged before it; these steps compute it from the
canonical bytes (the same function an append uses, so a migrated row and a new one agree, and ``vigil verify``'s
index check holds both to it). They run inside the migration's transaction with the append-only guard lifted for
that transaction only, in chunks of keys, so memory stays bounded whatever the size of the log.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from vigil.store.search import fold, ip_key

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("vigil.store")

CHUNK = 5000


class _Actor(msgspec.Struct):
    name: str | None = None
    email: str | None = None


class _Context(msgspec.Struct):
    ip: str | None = None


class _Who(msgspec.Struct):
    """The fields the identity columns come from; msgspec skips the rest of the body."""

    actor: _Actor
    context: _Context | None = None


_who = msgspec.json.Decoder(_Who).decode


def identity(body: bytes) -> tuple[bytes | None, str | None, str | None]:
    """(ip key, folded actor name, folded actor e-mail) of a stored event's canonical bytes; all None for bytes
    that do not decode (a damaged row: ``vigil verify`` reports it, and ``vigil reindex`` fills its columns
    once the row is mended)."""
    try:
        w = _who(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None, None
    return ip_key(w.context.ip if w.context else None), fold(w.actor.name), fold(w.actor.email)


def sqlite_identity_columns(conn: sqlite3.Connection) -> None:
    """Fill events.ip, actor_name and actor_email of every stored event (SQLite migration 6)."""
    guard = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'events_no_update'")
    saved = guard.fetchone()
    if saved is not None:
        conn.execute("DROP TRIGGER events_no_update")
    last, done = -1, 0
    while True:
        rows = conn.execute(
            "SELECT rid, body FROM events WHERE rid > ? ORDER BY rid LIMIT ?", (last, CHUNK)
        ).fetchall()
        if not rows:
            break
        updates = []
        for rid, body in rows:
            cols = identity(body)
            if cols != (None, None, None):
                updates.append((*cols, rid))
        conn.executemany("UPDATE events SET ip = ?, actor_name = ?, actor_email = ? WHERE rid = ?", updates)
        last = rows[-1][0]
        done += len(rows)
        if done % 200_000 < CHUNK:
            log.info("identity columns: %d events done", done)
    if saved is not None:
        conn.execute(saved[0])


def postgres_identity_columns(conn: psycopg.Connection[Any], schema: str, text: Callable[[str], str]) -> None:
    """Fill ip, actor_name and actor_email of every stored event of tenant schema ``schema`` (tenant migration
    3); ``text`` maps strings as the store keeps them in text columns."""
    conn.execute(f"ALTER TABLE {schema}.events DISABLE TRIGGER append_only")
    last, done = -1, 0
    while True:
        rows = conn.execute(
            f"SELECT seq, body FROM {schema}.events WHERE seq > %s ORDER BY seq LIMIT %s", (last, CHUNK)
        ).fetchall()
        if not rows:
            break
        seqs: list[int] = []
        ips: list[bytes | None] = []
        names: list[str | None] = []
        emails: list[str | None] = []
        for seq, body in rows:
            ip, name, email = identity(bytes(body))
            if (ip, name, email) == (None, None, None):
                continue
            seqs.append(seq)
            ips.append(ip)
            names.append(None if name is None else text(name))
            emails.append(None if email is None else text(email))
        if seqs:
            conn.execute(
                f"UPDATE {schema}.events e SET ip = v.ip, actor_name = v.name, actor_email = v.email "
                "FROM (SELECT unnest(%s::bigint[]) seq, unnest(%s::bytea[]) ip, unnest(%s::text[]) name, "
                "unnest(%s::text[]) email) v WHERE e.seq = v.seq",
                (seqs, ips, names, emails),
            )
        last = rows[-1][0]
        done += len(rows)
        if done % 200_000 < CHUNK:
            log.info("identity columns of %s: %d events done", schema, done)
    conn.execute(f"ALTER TABLE {schema}.events ENABLE ALWAYS TRIGGER append_only")
