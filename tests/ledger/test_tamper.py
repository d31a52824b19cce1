"""An attacker with full access to the database file, and no signing key, cannot change the log unnoticed.

Each test fills a tenant with realistic events and signed checkpoints, closes the store, then rewrites the
SQLite file through the plain ``sqlite3`` module (dropping the append-only triggers first, as anyone holding the
file can) and runs ``vigil verify``, which must exit non-zero naming the tenant and the place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from vigil.auth import create_key
from vigil.cli import main
from vigil.ingest.intake import Prepared
from vigil.ledger.checkpoints import Signer, make_checkpoint
from vigil.ledger.integrity import verify_tenant
from vigil.ledger.merkle import CompactRange
from vigil.ledger.proofs import consistency
from vigil.settings import Settings
from vigil.store.base import StoredCheckpoint, Tenant
from vigil.store.sqlite import SQLiteStore
from vigil.verifier import VerificationError, verify_checkpoint, verify_consistency
from vigil.web import create_app

Fill = Callable[..., Tenant]
Events = Callable[..., list[Prepared]]

CHECKPOINTS = (100, 300, 450, 600)
"""acme's signed checkpoints; 600 is its size. Tree data holds the roots of seqs 0..255 and 256..511."""


@dataclass(frozen=True)
class Filled:
    db: str
    settings: Settings
    tenant_id: int
    vkey: str
    checkpoints: dict[int, StoredCheckpoint]
    events: Events


@pytest.fixture
def filled(store: SQLiteStore, fill: Fill, events: Events, signer: Signer, settings: Settings) -> Filled:
    """acme with 600 events and four checkpoints, globex as a bystander; the store is closed afterwards."""
    acme = fill("acme", CHECKPOINTS)
    fill("globex", (50,), total=80)
    cps = {cp.size: cp for cp in store.checkpoints(acme.id)}
    store.close()
    return Filled(settings.database, settings, acme.id, signer.vkey, cps, events)


@contextmanager
def attacker(db: str) -> Iterator[sqlite3.Connection]:
    """A plain connection to the database with every append-only trigger dropped; commits on exit."""
    conn = sqlite3.connect(db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def rid(tenant_id: int, seq: int) -> int:
    """The row id of an event, as docs/storage.md describes it."""
    return (tenant_id << 40) | seq


def body_of(conn: sqlite3.Connection, f: Filled, seq: int) -> bytes:
    row = conn.execute("SELECT body FROM events WHERE rid = ?", (rid(f.tenant_id, seq),)).fetchone()
    return bytes(row[0])


def one_byte_changed(body: bytes) -> bytes:
    """The body with one byte of its action changed (still valid JSON)."""
    at = body.index(b'"action":"') + len(b'"action":"')
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def vigil_verify(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["verify", "--database", db, *args])


def failure(db: str, *args: str) -> str:
    """Run ``vigil verify``; assert it failed, naming tenant acme; return its message."""
    result = vigil_verify(db, *args)
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
    result = vigil_verify(filled.db)
    assert result.exit_code == 0, result.output
    assert "ok  acme" in result.output and "ok  globex" in result.output
    assert "verified 3 tenant log(s): complete and unaltered" in result.output
    store = SQLiteStore(filled.db)
    try:
        report = verify_tenant(store, store.get_tenant("acme"), filled.vkey)
    finally:
        store.close()
    assert (report.tenant, report.events, report.checkpoints) == ("acme", 600, 4)


def test_demo_database_with_checkpoints_verifies(tmp_path: Path) -> None:
    """A database filled by vigil demo --events 3000 and checkpointed with vigil checkpoint verifies."""
    db = str(tmp_path / "demo.db")
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--events", "3000", "--database", db])
    assert result.exit_code == 0, result.output
    for slug in ("acme", "globex", "initech"):
        result = runner.invoke(main, ["checkpoint", "--tenant", slug, "--database", db])
        assert result.exit_code == 0, result.output
    result = vigil_verify(db, "--json")
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
    with attacker(filled.db) as conn:
        conn.execute(
            "UPDATE events SET body = ? WHERE rid = ?",
            (one_byte_changed(body_of(conn, filled, 123)), rid(filled.tenant_id, 123)),
        )
    message = failure(filled.db)
    assert "tenant acme, seq 123: stored leaf hash does not match the event's bytes" in message
    assert vigil_verify(filled.db, "--tenant", "globex").exit_code == 0


@pytest.mark.parametrize("seq", [0, 50, 200, 300, 511, 560, 599])
def test_changed_body_with_recomputed_leaf_hash_names_the_range(filled: Filled, seq: int) -> None:
    """A changed body whose leaf hash was recomputed to match is caught by the tree data or a checkpoint root,
    naming a seq range that holds it."""
    with attacker(filled.db) as conn:
        forged = one_byte_changed(body_of(conn, filled, seq))
        conn.execute(
            "UPDATE events SET body = ?, leaf_hash = ? WHERE rid = ?",
            (forged, hashlib.sha256(b"\x00" + forged).digest(), rid(filled.tenant_id, seq)),
        )
    message = failure(filled.db)
    assert "tree data for seqs" in message or "checkpoint at size" in message
    assert seq in named_seqs(message), message


@pytest.mark.parametrize("seq", [0, 77, 255, 256, 511, 598])
def test_deleted_event_names_the_missing_seq(filled: Filled, seq: int) -> None:
    """A deleted event leaves a gap; verify names the missing seq."""
    with attacker(filled.db) as conn:
        conn.execute("DELETE FROM events WHERE rid = ?", (rid(filled.tenant_id, seq),))
    message = failure(filled.db)
    assert f"tenant acme, seq {seq}: event is missing (the next stored event is seq {seq + 1})" in message


def test_deleted_last_event_names_the_missing_seq(filled: Filled) -> None:
    """Deleting the newest event shortens the log below its checkpoint; verify names the removed seq."""
    with attacker(filled.db) as conn:
        conn.execute("DELETE FROM events WHERE rid = ?", (rid(filled.tenant_id, 599),))
    message = failure(filled.db)
    assert "checkpoint at size 600: the log holds only 599 events: seqs 599..599 were removed" in message


@pytest.mark.parametrize(("deleted", "changed", "named"), [(70, 50, 50), (40, 50, 40), (4095, 4094, 4094)])
def test_the_first_of_several_changes_is_named(
    store: SQLiteStore, fill: Fill, settings: Settings, deleted: int, changed: int, named: int
) -> None:
    """With a deleted and a changed event in one stretch of the log, verify names whichever comes first."""
    acme = fill("acme", (), total=4200)
    store.close()
    with attacker(settings.database) as conn:
        (body,) = conn.execute("SELECT body FROM events WHERE rid = ?", (rid(acme.id, changed),)).fetchone()
        conn.execute(
            "UPDATE events SET body = ? WHERE rid = ?", (one_byte_changed(body), rid(acme.id, changed))
        )
        conn.execute("DELETE FROM events WHERE rid = ?", (rid(acme.id, deleted),))
    message = failure(settings.database)
    assert f"tenant acme, seq {named}: " in message
    assert ("event is missing" in message) == (named == deleted)


def test_event_copied_from_another_tenant_names_the_seq(filled: Filled) -> None:
    """A globex event copied over an acme event (leaf hash and all) is named as belonging to another tenant."""
    with attacker(filled.db) as conn:
        (globex,) = conn.execute("SELECT id FROM tenants WHERE slug = 'globex'").fetchone()
        body, leaf = conn.execute(
            "SELECT body, leaf_hash FROM events WHERE rid = ?", (rid(globex, 3),)
        ).fetchone()
        conn.execute(
            "UPDATE events SET body = ?, leaf_hash = ? WHERE rid = ?",
            (body, leaf, rid(filled.tenant_id, 333)),
        )
    assert "tenant acme, seq 333: the event names another tenant" in failure(filled.db)


@pytest.mark.parametrize(("a", "b"), [(10, 11), (120, 130), (300, 301), (500, 580), (5, 590)])
def test_swapped_events_are_caught(filled: Filled, a: int, b: int) -> None:
    """Two events swapped (body and leaf hash together, so each row is self-consistent) are caught, naming a
    range that holds one of them."""
    with attacker(filled.db) as conn:
        rows = {
            seq: conn.execute(
                "SELECT body, leaf_hash FROM events WHERE rid = ?", (rid(filled.tenant_id, seq),)
            ).fetchone()
            for seq in (a, b)
        }
        for seq, other in ((a, b), (b, a)):
            conn.execute(
                "UPDATE events SET body = ?, leaf_hash = ? WHERE rid = ?",
                (*rows[other], rid(filled.tenant_id, seq)),
            )
    message = failure(filled.db)
    assert named_seqs(message) & {a, b}, message


def rewrite_tail(f: Filled, keep: int, forged: int, drop_checkpoints: bool = False) -> int:
    """Truncate acme's log to ``keep`` events and append ``forged`` different ones, with matching leaf hashes and
    tree data rebuilt from scratch; nothing is signed. Returns the new size."""
    events = f.events("acme", forged, seed=666)
    with attacker(f.db) as conn:
        lo, hi = rid(f.tenant_id, 0), rid(f.tenant_id, (1 << 40) - 1)
        conn.execute("DELETE FROM events WHERE rid >= ? AND rid <= ?", (rid(f.tenant_id, keep), hi))
        conn.executemany(
            "INSERT INTO events (rid, tenant_id, id, occurred_at, action, category, outcome, actor_id, body, "
            "leaf_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    rid(f.tenant_id, keep + i),
                    f.tenant_id,
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
        leaves = [
            bytes(h)
            for (h,) in conn.execute(
                "SELECT leaf_hash FROM events WHERE rid >= ? AND rid <= ? ORDER BY rid", (lo, hi)
            )
        ]
        conn.execute("DELETE FROM tree_nodes WHERE tenant_id = ?", (f.tenant_id,))
        conn.executemany(
            "INSERT INTO tree_nodes VALUES (?,?,?,?)",
            [(f.tenant_id, lv, i, h) for lv, i, h in CompactRange().extend(leaves) if lv and lv % 8 == 0],
        )
        if drop_checkpoints:
            conn.execute("DELETE FROM checkpoints WHERE tenant_id = ? AND size > ?", (f.tenant_id, keep))
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
    message = failure(filled.db)
    assert "tenant acme, checkpoint at size 450: " in message and expected in message


@pytest.mark.parametrize("drop_checkpoints", [False, True], ids=["checkpoints-kept", "checkpoints-deleted"])
def test_rewritten_tail_fails_a_client_that_kept_a_checkpoint(filled: Filled, drop_checkpoints: bool) -> None:
    """A client that kept the signed checkpoint at size 450 rejects the rewritten log's consistency proof, from the
    ledger and over HTTP, even when the attacker also deleted the checkpoints the rewrite contradicts."""
    kept = verify_checkpoint(filled.checkpoints[450].note, filled.vkey, origin="vigil/acme")
    size = rewrite_tail(filled, keep=300, forged=350, drop_checkpoints=drop_checkpoints)
    assert size == 650
    store = SQLiteStore(filled.db, filled.settings)
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


def _set_root(conn: sqlite3.Connection, f: Filled, size: int) -> None:
    conn.execute(
        "UPDATE checkpoints SET root = ? WHERE tenant_id = ? AND size = ?",
        (hashlib.sha256(b"forged").digest(), f.tenant_id, size),
    )


def _set_note_root(conn: sqlite3.Connection, f: Filled, size: int) -> None:
    lines = f.checkpoints[size].note.split("\n")
    forged = hashlib.sha256(b"forged").digest()
    lines[2] = base64.b64encode(forged).decode()
    conn.execute(
        "UPDATE checkpoints SET root = ?, note = ? WHERE tenant_id = ? AND size = ?",
        (forged, "\n".join(lines), f.tenant_id, size),
    )


def _copy_other_checkpoint(conn: sqlite3.Connection, f: Filled, size: int) -> None:
    other = f.checkpoints[450 if size != 450 else 300]
    conn.execute(
        "UPDATE checkpoints SET root = ?, note = ? WHERE tenant_id = ? AND size = ?",
        (other.root, other.note, f.tenant_id, size),
    )


def _globex_note(conn: sqlite3.Connection, f: Filled, size: int) -> None:
    (note,) = conn.execute(
        "SELECT c.note FROM checkpoints c JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = 'globex'"
    ).fetchone()
    conn.execute(
        "UPDATE checkpoints SET note = ? WHERE tenant_id = ? AND size = ?",
        (note.replace("vigil/globex\n50\n", f"vigil/acme\n{size}\n"), f.tenant_id, size),
    )


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
    with attacker(filled.db) as conn:
        forge(conn, filled, size)
    message = failure(filled.db)
    assert f"tenant acme, checkpoint at size {size}: {expected}" in message


def test_json_output_reports_the_failure(filled: Filled) -> None:
    """vigil verify --json prints ok false with the message, and exits non-zero."""
    with attacker(filled.db) as conn:
        conn.execute("DELETE FROM events WHERE rid = ?", (rid(filled.tenant_id, 42),))
    result = vigil_verify(filled.db, "--json")
    assert result.exit_code != 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("{"))
    assert json.loads(line) == {
        "ok": False,
        "error": "tenant acme, seq 42: event is missing (the next stored event is seq 43) (expected 42, found 43)",
    }


class _GrowsWhileRead:
    """A store that appends events and signs a checkpoint right after verify reads the log's size, the way a live
    server may between two of verify's reads."""

    def __init__(self, inner: SQLiteStore, signer: Signer, events: Events, grow: int) -> None:
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
    store: SQLiteStore, fill: Fill, events: Events, signer: Signer, grow: int
) -> None:
    """Events, tree data and a checkpoint added while verify runs are not mistaken for removed events."""
    acme = fill("acme", (100, 300))
    report = verify_tenant(_GrowsWhileRead(store, signer, events, grow), acme, signer.vkey)
    assert report.events == 300
    assert verify_tenant(store, acme, signer.vkey).events == 300 + grow


def _change_byte(conn: sqlite3.Connection, f: Filled, seq: int) -> None:
    conn.execute(
        "UPDATE events SET body = ? WHERE rid = ?",
        (one_byte_changed(body_of(conn, f, seq)), rid(f.tenant_id, seq)),
    )


def _change_event(conn: sqlite3.Connection, f: Filled, seq: int) -> None:
    forged = one_byte_changed(body_of(conn, f, seq))
    conn.execute(
        "UPDATE events SET body = ?, leaf_hash = ? WHERE rid = ?",
        (forged, hashlib.sha256(b"\x00" + forged).digest(), rid(f.tenant_id, seq)),
    )


def _delete(conn: sqlite3.Connection, f: Filled, seq: int) -> None:
    conn.execute("DELETE FROM events WHERE rid = ?", (rid(f.tenant_id, seq),))


def _byte_then_gap(conn: sqlite3.Connection, f: Filled) -> None:
    _change_byte(conn, f, 520)
    _delete(conn, f, 530)


def _tree_data(conn: sqlite3.Connection, f: Filled) -> None:
    conn.execute("UPDATE tree_nodes SET hash = zeroblob(32) WHERE tenant_id = ? AND idx = 1", (f.tenant_id,))


ATTACKS: list[tuple[str, Callable[[sqlite3.Connection, Filled], object], str]] = [
    ("untouched", lambda conn, f: None, "ok 600 4"),
    ("byte-123", lambda conn, f: _change_byte(conn, f, 123), "seq 123: stored leaf hash does not match"),
    ("event-200", lambda conn, f: _change_event(conn, f, 200), "tree data for seqs 0..255"),
    ("event-450", lambda conn, f: _change_event(conn, f, 450), "tree data for seqs 256..511"),
    ("event-560", lambda conn, f: _change_event(conn, f, 560), "checkpoint at size 600: root recomputed"),
    (
        "deleted-255",
        lambda conn, f: _delete(conn, f, 255),
        "seq 255: event is missing (the next stored event is seq 256)",
    ),
    (
        "deleted-599",
        lambda conn, f: _delete(conn, f, 599),
        "checkpoint at size 600: the log holds only 599 events",
    ),
    ("byte-520-deleted-530", _byte_then_gap, "seq 520: stored leaf hash does not match"),
    (
        "root-300",
        lambda conn, f: _set_root(conn, f, 300),
        "checkpoint at size 300: stored size and root differ",
    ),
    ("tree-data", _tree_data, "tree data for seqs 256..511"),
]


@pytest.mark.parametrize(("attack", "expected"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_worker_processes_report_what_one_process_reports(filled: Filled, attack: Any, expected: str) -> None:
    """Checked by two worker processes, span by span, the log passes or fails exactly as it does in one process."""
    with attacker(filled.db) as conn:
        attack(conn, filled)
    store = SQLiteStore(filled.db, filled.settings)
    outcomes = []
    try:
        acme = store.get_tenant("acme")
        for workers in (1, 2):
            try:
                report = verify_tenant(store, acme, filled.vkey, workers=workers)
                outcomes.append(f"ok {report.events} {report.checkpoints}")
            except VerificationError as exc:
                outcomes.append(str(exc))
    finally:
        store.close()
    assert outcomes[0] == outcomes[1]
    assert expected in outcomes[0]


@pytest.fixture
def database(db_path: Path) -> str:
    """These attacks edit the SQLite file directly, so they run on SQLite."""
    return str(db_path)
