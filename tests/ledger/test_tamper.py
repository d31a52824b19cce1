"""An attacker with full access to the database, and no signing key, cannot change the log unnoticed.

Each test fills a tenant with realistic events and signed checkpoints, closes the store, then rewrites the stored
rows as anyone holding the database can: on SQLite through the plain ``sqlite3`` module on the file, on
PostgreSQL as the owning superuser; either way after dropping the append-only triggers. Then ``vigil verify``
must exit non-zero naming the tenant and the place, with the same message on both stores.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient
from support import database_args

from vigil.auth import create_key
from vigil.cli import main
from vigil.ingest.intake import Prepared
from vigil.ledger import bulk, integrity
from vigil.ledger.checkpoints import Signer, make_checkpoint
from vigil.ledger.integrity import verify_tenant
from vigil.ledger.merkle import CompactRange
from vigil.ledger.proofs import consistency
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import StoredCheckpoint, Tenant
from vigil.verifier import VerificationError, verify_checkpoint, verify_consistency
from vigil.web import create_app

Fill = Callable[..., Tenant]
Events = Callable[..., list[Prepared]]

CHECKPOINTS = (100, 300, 450, 600)
"""acme's signed checkpoints; 600 is its size. Tree data holds the roots of seqs 0..255 and 256..511."""


@dataclass(frozen=True)
class Filled:
    settings: Settings
    tenant_id: int
    vkey: str
    checkpoints: dict[int, StoredCheckpoint]
    events: Events


@pytest.fixture
def filled(store: Store, fill: Fill, events: Events, signer: Signer, settings: Settings) -> Filled:
    """acme with 600 events and four checkpoints, globex as a bystander; the store is closed afterwards."""
    acme = fill("acme", CHECKPOINTS)
    fill("globex", (50,), total=80)
    cps = {cp.size: cp for cp in store.checkpoints(acme.id)}
    store.close()
    return Filled(settings, acme.id, signer.vkey, cps, events)


class SQLiteAttacker:
    """Edits one tenant's rows in the SQLite file. Events are keyed by ``rid``, as docs/storage.md describes."""

    def __init__(self, conn: sqlite3.Connection, tenant_id: int) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def rid(self, seq: int, tenant_id: int | None = None) -> int:
        return ((self.tenant_id if tenant_id is None else tenant_id) << 40) | seq

    def tenant(self, slug: str) -> int:
        (tid,) = self.conn.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()
        return int(tid)

    def row(self, seq: int, tenant_id: int | None = None) -> tuple[bytes, bytes]:
        """The stored body and leaf hash of an event."""
        sql = "SELECT body, leaf_hash FROM events WHERE rid = ?"
        body, leaf = self.conn.execute(sql, (self.rid(seq, tenant_id),)).fetchone()
        return bytes(body), bytes(leaf)

    def set_event(self, seq: int, body: bytes, leaf: bytes | None = None) -> None:
        """Give an event another body, and another leaf hash when one is given."""
        sql = "UPDATE events SET body = ?, leaf_hash = coalesce(?, leaf_hash) WHERE rid = ?"
        self.conn.execute(sql, (body, leaf, self.rid(seq)))

    def delete(self, seq: int) -> None:
        self.conn.execute("DELETE FROM events WHERE rid = ?", (self.rid(seq),))

    def truncate(self, keep: int) -> None:
        """Remove every event from seq ``keep`` on."""
        self.conn.execute(
            "DELETE FROM events WHERE rid >= ? AND rid <= ?", (self.rid(keep), self.rid((1 << 40) - 1))
        )

    def append(self, first: int, events: Sequence[Prepared]) -> None:
        """Insert events at seqs ``first``, ``first + 1``, … as the store would have written them."""
        self.conn.executemany(
            "INSERT INTO events (rid, tenant_id, id, occurred_at, action, category, outcome, actor_id, body, "
            "leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    self.rid(first + i),
                    self.tenant_id,
                    uuid.UUID(str(p.id)).bytes,
                    p.occurred_us,
                    p.event.action,
                    p.event.category,
                    p.event.outcome,
                    p.event.actor.id,
                    p.body,
                    p.leaf,
                )
                for i, p in enumerate(events)
            ],
        )

    def leaves(self) -> list[bytes]:
        sql = "SELECT leaf_hash FROM events WHERE rid >= ? AND rid <= ? ORDER BY rid"
        return [bytes(h) for (h,) in self.conn.execute(sql, (self.rid(0), self.rid((1 << 40) - 1)))]

    def replace_tree(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Replace all the tenant's stored tree data with ``nodes`` (level, index, hash)."""
        self.conn.execute("DELETE FROM tree_nodes WHERE tenant_id = ?", (self.tenant_id,))
        self.conn.executemany(
            "INSERT INTO tree_nodes VALUES (?,?,?,?)", [(self.tenant_id, *node) for node in nodes]
        )

    def set_tree_node(self, level: int, idx: int, hash_: bytes) -> None:
        sql = "UPDATE tree_nodes SET hash = ? WHERE tenant_id = ? AND level = ? AND idx = ?"
        self.conn.execute(sql, (hash_, self.tenant_id, level, idx))

    def set_checkpoint(self, size: int, root: bytes, note: str | None = None) -> None:
        """Give the stored checkpoint at ``size`` another root column, and another note when one is given."""
        sql = "UPDATE checkpoints SET root = ?, note = coalesce(?, note) WHERE tenant_id = ? AND size = ?"
        self.conn.execute(sql, (root, note, self.tenant_id, size))

    def set_checkpoint_note(self, size: int, note: str) -> None:
        sql = "UPDATE checkpoints SET note = ? WHERE tenant_id = ? AND size = ?"
        self.conn.execute(sql, (note, self.tenant_id, size))

    def delete_checkpoints_above(self, size: int) -> None:
        self.conn.execute("DELETE FROM checkpoints WHERE tenant_id = ? AND size > ?", (self.tenant_id, size))

    def checkpoint_note(self, tenant_id: int) -> str:
        """The note of another tenant's first checkpoint."""
        sql = "SELECT note FROM checkpoints WHERE tenant_id = ? ORDER BY size LIMIT 1"
        (note,) = self.conn.execute(sql, (tenant_id,)).fetchone()
        return str(note)


class PostgresAttacker:
    """Edits one tenant's rows in PostgreSQL: its events, targets and tree data in schema ``tenant_<id>`` (events
    partitioned by month), its checkpoints in the control schema ``vigil``."""

    def __init__(self, conn: Any, tenant_id: int) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.s = f"tenant_{tenant_id}"

    def tenant(self, slug: str) -> int:
        (tid,) = self.conn.execute("SELECT id FROM vigil.tenants WHERE slug = %s", (slug,)).fetchone()
        return int(tid)

    def row(self, seq: int, tenant_id: int | None = None) -> tuple[bytes, bytes]:
        """The stored body and leaf hash of an event."""
        s = self.s if tenant_id is None else f"tenant_{tenant_id}"
        sql = f"SELECT body, leaf_hash FROM {s}.events WHERE seq = %s"
        body, leaf = self.conn.execute(sql, (seq,)).fetchone()
        return bytes(body), bytes(leaf)

    def set_event(self, seq: int, body: bytes, leaf: bytes | None = None) -> None:
        """Give an event another body, and another leaf hash when one is given."""
        sql = f"UPDATE {self.s}.events SET body = %s, leaf_hash = coalesce(%s, leaf_hash) WHERE seq = %s"
        self.conn.execute(sql, (body, leaf, seq))

    def delete(self, seq: int) -> None:
        self.conn.execute(f"DELETE FROM {self.s}.events WHERE seq = %s", (seq,))

    def truncate(self, keep: int) -> None:
        """Remove every event from seq ``keep`` on."""
        self.conn.execute(f"DELETE FROM {self.s}.events WHERE seq >= %s", (keep,))

    def append(self, first: int, events: Sequence[Prepared]) -> None:
        """Insert events at seqs ``first``, ``first + 1``, … as the store would have written them."""
        received_us = time.time_ns() // 1000  # this month: its partition exists
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.s}.events (seq, received_us, id, occurred_us, action, category, outcome, "
                "actor_id, body, leaf_hash, search) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [
                    (
                        first + i,
                        received_us,
                        uuid.UUID(str(p.id)),
                        p.occurred_us,
                        p.event.action,
                        p.event.category,
                        p.event.outcome,
                        p.event.actor.id,
                        p.body,
                        p.leaf,
                        p.text,
                    )
                    for i, p in enumerate(events)
                ],
            )

    def leaves(self) -> list[bytes]:
        return [bytes(h) for (h,) in self.conn.execute(f"SELECT leaf_hash FROM {self.s}.events ORDER BY seq")]

    def replace_tree(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Replace all the tenant's stored tree data with ``nodes`` (level, index, hash)."""
        self.conn.execute(f"DELETE FROM {self.s}.tree_nodes")
        with self.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {self.s}.tree_nodes (level, idx, hash) VALUES (%s,%s,%s)", nodes)

    def set_tree_node(self, level: int, idx: int, hash_: bytes) -> None:
        sql = f"UPDATE {self.s}.tree_nodes SET hash = %s WHERE level = %s AND idx = %s"
        self.conn.execute(sql, (hash_, level, idx))

    def set_checkpoint(self, size: int, root: bytes, note: str | None = None) -> None:
        """Give the stored checkpoint at ``size`` another root column, and another note when one is given."""
        sql = "UPDATE vigil.checkpoints SET root = %s, note = coalesce(%s, note) WHERE tenant_id = %s AND size = %s"
        self.conn.execute(sql, (root, note, self.tenant_id, size))

    def set_checkpoint_note(self, size: int, note: str) -> None:
        sql = "UPDATE vigil.checkpoints SET note = %s WHERE tenant_id = %s AND size = %s"
        self.conn.execute(sql, (note, self.tenant_id, size))

    def delete_checkpoints_above(self, size: int) -> None:
        sql = "DELETE FROM vigil.checkpoints WHERE tenant_id = %s AND size > %s"
        self.conn.execute(sql, (self.tenant_id, size))

    def checkpoint_note(self, tenant_id: int) -> str:
        """The note of another tenant's first checkpoint."""
        sql = "SELECT note FROM vigil.checkpoints WHERE tenant_id = %s ORDER BY size LIMIT 1"
        (note,) = self.conn.execute(sql, (tenant_id,)).fetchone()
        return str(note)


Attacker = SQLiteAttacker | PostgresAttacker


@contextmanager
def attacker(database: str, tenant_id: int) -> Iterator[Attacker]:
    """A plain connection to the database with every append-only trigger dropped; commits on exit."""
    if "://" not in database:
        conn = sqlite3.connect(database)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        try:
            yield SQLiteAttacker(conn, tenant_id)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    # The URL's role is the superuser that owns every Vigil schema. Triggers cloned onto the events partitions
    # go with their parent's.
    with psycopg.connect(database) as pg:
        triggers = pg.execute(
            "SELECT format('DROP TRIGGER %I ON %I.%I', t.tgname, n.nspname, c.relname) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND (n.nspname = 'vigil' OR n.nspname LIKE 'tenant\\_%')"
        ).fetchall()
        assert triggers, "no append-only triggers found to drop"
        for (drop,) in triggers:
            pg.execute(drop)
        yield PostgresAttacker(pg, tenant_id)  # the with block commits


def one_byte_changed(body: bytes) -> bytes:
    """The body with one byte of its action changed (still valid JSON)."""
    at = body.index(b'"action":"') + len(b'"action":"')
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def vigil_verify(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["verify", *database_args(settings), *args])


def failure(settings: Settings, *args: str) -> str:
    """Run ``vigil verify``; assert it failed, naming tenant acme; return its message."""
    result = vigil_verify(settings, *args)
    assert result.exit_code != 0, result.output
    assert "verification FAILED: tenant acme, " in result.output, result.output
    return result.output


def named_seqs(message: str) -> set[int]:
    """Every seq the message names, alone (``seq 7``) or as a range (``seqs 0..99``)."""
    named = {int(s) for s in re.findall(r"\bseq (\d+)\b", message)}
    for lo, hi in re.findall(r"\bseqs (\d+)\.\.(\d+)\b", message):
        named.update(range(int(lo), int(hi) + 1))
    return named


def test_untouched_database_verifies(filled: Filled) -> None:
    """vigil verify passes an untouched database: exit 0, every tenant listed."""
    result = vigil_verify(filled.settings)
    assert result.exit_code == 0, result.output
    assert "ok  acme" in result.output and "ok  globex" in result.output
    assert "verified 3 tenant logs: complete and unaltered" in result.output
    store = open_store(filled.settings.database, filled.settings)
    try:
        report = verify_tenant(store, store.get_tenant("acme"), filled.vkey)
    finally:
        store.close()
    assert (report.tenant, report.events, report.checkpoints) == ("acme", 600, 4)


def test_demo_database_with_checkpoints_verifies(settings: Settings) -> None:
    """A database filled by vigil demo --events 3000 and checkpointed with vigil checkpoint verifies."""
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--events", "3000", "--database", settings.database])
    assert result.exit_code == 0, result.output
    for slug in ("acme", "globex", "initech"):
        result = runner.invoke(main, ["checkpoint", "--tenant", slug, *database_args(settings)])
        assert result.exit_code == 0, result.output
    result = vigil_verify(settings, "--json")
    assert result.exit_code == 0, result.output
    tenants = {t["tenant"]: t for t in json.loads(result.stdout)["tenants"]}
    assert {s: tenants[s]["checkpoints"] for s in ("acme", "globex", "initech")} == {
        "acme": 1,
        "globex": 1,
        "initech": 1,
    }
    assert sum(t["events"] for t in tenants.values()) >= 2990


def test_changed_body_byte_names_the_seq(filled: Filled) -> None:
    """One changed byte of a stored body (leaf hash left alone) fails verify, naming that seq."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.set_event(123, one_byte_changed(a.row(123)[0]))
    message = failure(filled.settings)
    assert "tenant acme, seq 123: stored leaf hash does not match the event's bytes" in message
    assert vigil_verify(filled.settings, "--tenant", "globex").exit_code == 0


def _change_event(a: Attacker, seq: int) -> None:
    """Change a byte of the event's body and store the leaf hash of the changed body with it."""
    forged = one_byte_changed(a.row(seq)[0])
    a.set_event(seq, forged, hashlib.sha256(b"\x00" + forged).digest())


@pytest.mark.parametrize("seq", [0, 50, 200, 300, 511, 560, 599])
def test_changed_body_with_recomputed_leaf_hash_names_the_range(filled: Filled, seq: int) -> None:
    """A changed body whose leaf hash was recomputed to match is caught by the tree data or a checkpoint root,
    naming a seq range that holds it."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        _change_event(a, seq)
    message = failure(filled.settings)
    assert "tree data for seqs" in message or "checkpoint at size" in message
    assert seq in named_seqs(message), message


@pytest.mark.parametrize("seq", [0, 77, 255, 256, 511, 598])
def test_deleted_event_names_the_missing_seq(filled: Filled, seq: int) -> None:
    """A deleted event leaves a gap; verify names the missing seq."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.delete(seq)
    message = failure(filled.settings)
    assert f"tenant acme, seq {seq}: event is missing (the next stored event is seq {seq + 1})" in message


def test_deleted_last_event_names_the_missing_seq(filled: Filled) -> None:
    """Deleting the newest event shortens the log below its checkpoint; verify names the removed seq."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.delete(599)
    message = failure(filled.settings)
    assert "checkpoint at size 600: the log holds only 599 events: seqs 599..599 were removed" in message


@pytest.mark.parametrize(("deleted", "changed", "named"), [(70, 50, 50), (40, 50, 40), (4095, 4094, 4094)])
def test_the_first_of_several_changes_is_named(
    store: Store, fill: Fill, settings: Settings, deleted: int, changed: int, named: int
) -> None:
    """With a deleted and a changed event in one stretch of the log, verify names whichever comes first."""
    acme = fill("acme", (), total=4200)
    store.close()
    with attacker(settings.database, acme.id) as a:
        a.set_event(changed, one_byte_changed(a.row(changed)[0]))
        a.delete(deleted)
    message = failure(settings)
    assert f"tenant acme, seq {named}: " in message
    assert ("event is missing" in message) == (named == deleted)


def test_event_copied_from_another_tenant_names_the_seq(filled: Filled) -> None:
    """A globex event copied over an acme event (leaf hash and all) is named as belonging to another tenant."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.set_event(333, *a.row(3, a.tenant("globex")))
    assert "tenant acme, seq 333: the event names another tenant" in failure(filled.settings)


@pytest.mark.parametrize(("a", "b"), [(10, 11), (120, 130), (300, 301), (500, 580), (5, 590)])
def test_swapped_events_are_caught(filled: Filled, a: int, b: int) -> None:
    """Two events swapped (body and leaf hash together, so each row is self-consistent) are caught, naming a
    range that holds one of them."""
    with attacker(filled.settings.database, filled.tenant_id) as attack:
        rows = {seq: attack.row(seq) for seq in (a, b)}
        attack.set_event(a, *rows[b])
        attack.set_event(b, *rows[a])
    message = failure(filled.settings)
    assert named_seqs(message) & {a, b}, message


def rewrite_tail(f: Filled, keep: int, forged: int, drop_checkpoints: bool = False) -> int:
    """Truncate acme's log to ``keep`` events and append ``forged`` different ones, with matching leaf hashes and
    tree data rebuilt from scratch; nothing is signed. Returns the new size."""
    events = f.events("acme", forged, seed=666)
    with attacker(f.settings.database, f.tenant_id) as a:
        a.truncate(keep)
        a.append(keep, events)
        leaves = a.leaves()
        a.replace_tree([(lv, i, h) for lv, i, h in CompactRange().extend(leaves) if lv and lv % 8 == 0])
        if drop_checkpoints:
            a.delete_checkpoints_above(keep)
    return len(leaves)


@pytest.mark.parametrize(
    ("forged", "expected"), [(350, "root recomputed"), (100, "seqs 400..449 were removed")]
)
def test_rewritten_tail_fails_verify_at_the_first_contradicted_checkpoint(
    filled: Filled, forged: int, expected: str
) -> None:
    """A truncated tail replaced by other events, with leaf hashes and tree data made consistent, contradicts the
    signed checkpoint at size 450 (by its root, or by its size when the forged log is shorter)."""
    rewrite_tail(filled, keep=300, forged=forged)
    message = failure(filled.settings)
    assert "tenant acme, checkpoint at size 450: " in message and expected in message


@pytest.mark.parametrize("drop_checkpoints", [False, True], ids=["checkpoints-kept", "checkpoints-deleted"])
def test_rewritten_tail_fails_a_client_that_kept_a_checkpoint(filled: Filled, drop_checkpoints: bool) -> None:
    """A client that kept the signed checkpoint at size 450 rejects the rewritten log's consistency proof, from the
    ledger and over HTTP, even when the attacker also deleted the checkpoints the rewrite contradicts."""
    kept = verify_checkpoint(filled.checkpoints[450].note, filled.vkey, origin="vigil/acme")
    size = rewrite_tail(filled, keep=300, forged=350, drop_checkpoints=drop_checkpoints)
    assert size == 650
    store = open_store(filled.settings.database, filled.settings)
    try:
        proof = consistency(store, filled.tenant_id, kept.size, size)
        assert proof.first_root != kept.root
        with pytest.raises(VerificationError, match="first root"):
            verify_consistency(kept.size, size, proof.proof, kept.root, proof.second_root)
        key = create_key(store, store.get_tenant("acme"), frozenset({"read"}))[1]
        with TestClient(app=create_app(filled.settings, store)) as client:
            r = client.get(
                f"/v1/checkpoints/consistency?first={kept.size}&second={size}",
                headers={"Authorization": f"Bearer {key}"},
            )
    finally:
        store.close()
    assert r.status_code == 200
    served = r.json()
    with pytest.raises(VerificationError):
        verify_consistency(
            kept.size,
            served["second"],
            [bytes.fromhex(h) for h in served["proof"]],
            kept.root,
            bytes.fromhex(served["second_root"]),
        )


FORGED_ROOT = hashlib.sha256(b"forged").digest()


def _set_root(a: Attacker, f: Filled, size: int) -> None:
    a.set_checkpoint(size, FORGED_ROOT)


def _set_note_root(a: Attacker, f: Filled, size: int) -> None:
    lines = f.checkpoints[size].note.split("\n")
    lines[2] = base64.b64encode(FORGED_ROOT).decode()
    a.set_checkpoint(size, FORGED_ROOT, "\n".join(lines))


def _copy_other_checkpoint(a: Attacker, f: Filled, size: int) -> None:
    other = f.checkpoints[450 if size != 450 else 300]
    a.set_checkpoint(size, other.root, other.note)


def _globex_note(a: Attacker, f: Filled, size: int) -> None:
    note = a.checkpoint_note(a.tenant("globex"))
    a.set_checkpoint_note(size, note.replace("vigil/globex\n50\n", f"vigil/acme\n{size}\n"))


@pytest.mark.parametrize("size", [100, 300, 600])
@pytest.mark.parametrize(
    ("forge", "expected"),
    [
        (_set_root, "stored size and root differ from the signed note"),
        (_set_note_root, "signature or format does not verify"),
        (_copy_other_checkpoint, "stored size and root differ from the signed note"),
        (_globex_note, "signature or format does not verify"),
    ],
    ids=["root-column", "note-text", "other-signed-checkpoint", "other-tenant-signature"],
)
def test_replaced_checkpoint_names_that_checkpoint(
    filled: Filled, size: int, forge: Any, expected: str
) -> None:
    """A stored checkpoint given another root (in the column, in the note text, or by copying another validly
    signed note into its row) is caught, naming that checkpoint."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        forge(a, filled, size)
    message = failure(filled.settings)
    assert f"tenant acme, checkpoint at size {size}: {expected}" in message


def test_json_output_reports_the_failure(filled: Filled) -> None:
    """vigil verify --json prints ok false with the message, and exits non-zero."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.delete(42)
    result = vigil_verify(filled.settings, "--json")
    assert result.exit_code != 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("{"))
    assert json.loads(line) == {
        "ok": False,
        "error": "tenant acme, seq 42: event is missing (the next stored event is seq 43) (expected 42, found 43)",
    }


class _GrowsWhileRead:
    """A store that appends events and signs a checkpoint right after verify reads the log's size, the way a live
    server may between two of verify's reads."""

    def __init__(self, inner: Store, signer: Signer, events: Events, grow: int) -> None:
        self.inner = inner
        self.events = events
        self.signer = signer
        self.grow = grow

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def tree_size(self, tenant_id: int) -> int:
        size = self.inner.tree_size(tenant_id)
        if self.grow:
            more, self.grow = self.events("acme", self.grow, seed=size), 0
            self.inner.append(tenant_id, more)
            make_checkpoint(self.inner, self.signer, self.inner.get_tenant("acme"))
        return size


@pytest.mark.parametrize("grow", [10, 300])
def test_a_log_growing_during_verify_is_not_reported_as_tampered(
    store: Store, fill: Fill, events: Events, signer: Signer, grow: int
) -> None:
    """Events, tree data and a checkpoint added while verify runs are not mistaken for removed events."""
    acme = fill("acme", (100, 300))
    report = verify_tenant(_GrowsWhileRead(store, signer, events, grow), acme, signer.vkey)
    assert report.events == 300
    assert verify_tenant(store, acme, signer.vkey).events == 300 + grow


def with_newline(body: bytes) -> bytes:
    """The body with a raw newline after its opening brace: still JSON, but no longer canonical. vigil verify
    reads bodies packed, newline-separated; a newline inside one must not split it into two."""
    return b"{\n" + body[1:]


def _set_rehashed(a: Attacker, seq: int, body: bytes) -> None:
    a.set_event(seq, body, hashlib.sha256(b"\x00" + body).digest())


def _byte_then_gap(a: Attacker) -> None:
    a.set_event(520, one_byte_changed(a.row(520)[0]))
    a.delete(530)


ATTACKS: list[tuple[str, Callable[[Attacker], object], str]] = [
    ("untouched", lambda a: None, "ok 600 4"),
    (
        "byte-123",
        lambda a: a.set_event(123, one_byte_changed(a.row(123)[0])),
        "seq 123: stored leaf hash does not match",
    ),
    ("event-200", lambda a: _change_event(a, 200), "tree data for seqs 0..255"),
    ("event-450", lambda a: _change_event(a, 450), "tree data for seqs 256..511"),
    ("event-560", lambda a: _change_event(a, 560), "checkpoint at size 600: root recomputed"),
    ("deleted-255", lambda a: a.delete(255), "seq 255: event is missing (the next stored event is seq 256)"),
    ("deleted-599", lambda a: a.delete(599), "checkpoint at size 600: the log holds only 599 events"),
    ("byte-520-deleted-530", _byte_then_gap, "seq 520: stored leaf hash does not match"),
    (
        "root-300",
        lambda a: a.set_checkpoint(300, FORGED_ROOT),
        "checkpoint at size 300: stored size and root differ",
    ),
    ("tree-data", lambda a: a.set_tree_node(8, 1, bytes(32)), "tree data for seqs 256..511"),
    (
        "newline-100",
        lambda a: a.set_event(100, with_newline(a.row(100)[0])),
        "seq 100: stored leaf hash does not match",
    ),
    (
        "newline-rehashed-100",
        lambda a: _set_rehashed(a, 100, with_newline(a.row(100)[0])),
        "tree data for seqs 0..255",
    ),
    (
        "short-leaf-300",
        lambda a: a.set_event(300, a.row(300)[0], a.row(300)[1][:31]),
        "seq 300: stored leaf hash does not match",
    ),
    (
        "globex-event-333",
        lambda a: a.set_event(333, *a.row(3, a.tenant("globex"))),
        "seq 333: the event names another tenant",
    ),
]


def _before_and_after(
    f: Filled, attack: Callable[[Attacker], object], switch: Callable[[], None], workers: int
) -> list[str]:
    """What verify_tenant says of the attacked log in one process, then with ``workers`` after ``switch()``."""
    with attacker(f.settings.database, f.tenant_id) as a:
        attack(a)
    store = open_store(f.settings.database, f.settings)
    outcomes = []
    try:
        acme = store.get_tenant("acme")
        for n in (1, workers):
            if outcomes:
                switch()
            try:
                report = verify_tenant(store, acme, f.vkey, workers=n)
                outcomes.append(f"ok {report.events} {report.checkpoints}")
            except VerificationError as exc:
                outcomes.append(str(exc))
    finally:
        store.close()
    return outcomes


@pytest.mark.parametrize(("attack", "expected"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_worker_processes_report_what_one_process_reports(
    filled: Filled, attack: Any, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked by two worker processes, span by span, the log passes or fails exactly as it does in one process."""

    def only_workers() -> (
        None
    ):  # workers open the store again, by its path or URL: no span is checked in here
        monkeypatch.setattr(integrity, "STEAL", False)  # else this process takes queued jobs too
        monkeypatch.setattr(integrity, "_check_span", _not_in_this_process)

    outcomes = _before_and_after(filled, attack, only_workers, workers=2)
    assert outcomes[0] == outcomes[1]
    assert expected in outcomes[0]


@pytest.mark.parametrize(("attack", "expected"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_python_hashing_reports_what_the_c_extension_reports(
    filled: Filled, attack: Any, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the C extension (an install with no compiler), verify hashes in Python and must pass or fail
    exactly as with it."""

    def python_hashing() -> None:
        monkeypatch.setattr(integrity, "joined_leaf_hashes", bulk.py_joined_leaf_hashes)
        monkeypatch.setattr(integrity, "subtree_roots", bulk.py_subtree_roots)

    outcomes = _before_and_after(filled, attack, python_hashing, workers=1)
    assert outcomes[0] == outcomes[1]
    assert expected in outcomes[0]


def _not_in_this_process(*args: object) -> NoReturn:
    raise AssertionError("a span was checked in this process, not in a worker")
