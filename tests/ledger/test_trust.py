"""Trust kept outside the database: an attacker who can rewrite every row, but holds neither the signing key nor
the trusted state beside it, is caught by the server (it refuses to sign, to take writes and to be ready, and
raises a P0 alert) and by ``vigil verify`` with only the public key and its own memory.

The attacks are the ones a database writer can do (test_tamper.py's attacker: triggers dropped, rows rewritten
with leaf hashes and tree data made consistent again) plus, on PostgreSQL, the two that need no trigger dropped.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import database_args
from test_tamper import CHECKPOINTS, Filled, attacker, failure, filled, one_byte_changed, vigil_verify

from vigil.auth import create_key
from vigil.errors import IntegrityError
from vigil.ledger.checkpoints import check_tenant, load_signer, make_checkpoint, state_path
from vigil.ledger.merkle import CompactRange, leaf_hash
from vigil.ledger.trust import TrustedState, VerifierMemory, previous_size, resolve_vkey
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.detection import AlertQuery
from vigil.verifier import verify_checkpoint
from vigil.web import create_app

__all__ = ["filled"]  # the fixture, imported from test_tamper

REWRITTEN = 350
"""The event the attacker rewrites: above the checkpoint at 300, below those at 450 and 600."""


def rebuild_tree(a: Any) -> None:
    leaves = a.leaves()
    a.replace_tree([(lv, i, h) for lv, i, h in CompactRange().extend(leaves) if lv and lv % 8 == 0])


def rewrite_middle(f: Filled) -> None:
    """The attack found on the old build: one event in the middle rewritten (leaf recomputed, tree data rebuilt
    above it) and the checkpoints that would contradict it deleted."""
    with attacker(f.settings.database, f.tenant_id) as a:
        body, _ = a.row(REWRITTEN)
        forged = one_byte_changed(body)
        a.set_event(REWRITTEN, forged, leaf_hash(forged))
        rebuild_tree(a)
        a.delete_checkpoints_above(300)


def auditor(f: Filled, memory: Path, *args: str) -> list[str]:
    """``vigil verify`` as an auditor runs it: the public key only, its own memory, no server state."""
    return [
        "--database",
        f.settings.database,
        "--vkey",
        f.vkey,
        "--state",
        str(memory),
        "--state-dir",
        str(memory.parent / "no-server-state"),
        *args,
    ]


def auditor_failure(f: Filled, memory: Path) -> str:
    from click.testing import CliRunner

    from vigil.cli import main

    result = CliRunner().invoke(main, ["verify", *auditor(f, memory)])
    assert result.exit_code == 1, result.output
    assert "verification FAILED: tenant acme, " in result.output, result.output
    return result.output


def auditor_ok(f: Filled, memory: Path, *args: str) -> str:
    from click.testing import CliRunner

    from vigil.cli import main

    result = CliRunner().invoke(main, ["verify", *auditor(f, memory, *args)])
    assert result.exit_code == 0, result.output
    return result.output


def without_outside_state(f: Filled) -> None:
    """Forget every checkpoint kept outside the database (what the old build had)."""
    shutil.rmtree(state_path(f.settings))


# --- the rewritten middle ----------------------------------------------------------------------------------


def test_without_outside_state_the_rewritten_middle_looks_intact(filled: Filled, tmp_path: Path) -> None:
    """Why the trusted state exists: once the contradicting checkpoints are gone, the database agrees with
    itself, and a verifier that trusts only the database passes the forged log."""
    rewrite_middle(filled)
    without_outside_state(filled)
    auditor_ok(filled, tmp_path / "fresh-memory.json", "--no-indexes")  # the derived action column differs


def test_verify_with_only_the_public_key_catches_the_rewritten_middle(filled: Filled, tmp_path: Path) -> None:
    """An auditor who verified the log once (public key only) catches the rewrite on the next run, naming the
    tenant, the checkpoint it remembered and the range of seqs that changed."""
    memory = tmp_path / "auditor" / "memory.json"
    auditor_ok(filled, memory)
    assert verify_checkpoint(
        json.loads(memory.read_text())[filled.vkey]["vigil/acme"], filled.vkey, origin="vigil/acme"
    ).size == max(CHECKPOINTS)
    rewrite_middle(filled)
    message = auditor_failure(filled, memory)
    assert "checkpoint at size 600 in this verifier's memory" in message
    assert "events in seqs 300..599 were changed" in message


def test_verify_catches_the_rewritten_middle_from_the_server_state(filled: Filled) -> None:
    """On the server's machine, verify holds the log to the server's trusted state even on its first run."""
    rewrite_middle(filled)
    message = failure(filled.settings)
    assert "checkpoint at size 600 in the server's trusted state" in message
    assert "events in seqs 300..599 were changed" in message


def test_server_refuses_to_sign_over_the_rewritten_middle(filled: Filled) -> None:
    """make_checkpoint proves the log extends the last checkpoint it signed; on the forged log it raises,
    saying tenant, sizes and both roots, and stores nothing."""
    rewrite_middle(filled)
    store = open_store(filled.settings.database, filled.settings)
    try:
        tenant = store.get_tenant("acme")
        with pytest.raises(IntegrityError) as caught:
            make_checkpoint(store, load_signer(filled.settings), tenant)
        message = caught.value.message
        assert "tenant acme" in message and "size 600" in message and "seqs 300..599" in message
        assert "expected root" in message and "the stored tree gives" in message
        assert [cp.size for cp in store.checkpoints(tenant.id)] == [100, 300]
    finally:
        store.close()


def test_restarted_server_fails_closed_on_the_rewritten_middle(filled: Filled) -> None:
    """The restarted server checks every tenant at start: not ready, no writes and no checkpoint or bundle for
    the rewritten tenant, a P0 integrity alert; the other tenant carries on."""
    from litestar.testing import TestClient

    rewrite_middle(filled)
    store = open_store(filled.settings.database, filled.settings)
    acme, globex = store.get_tenant("acme"), store.get_tenant("globex")
    acme_key = create_key(store, acme, frozenset({"ingest", "read", "admin"}))[1]
    globex_key = create_key(store, globex, frozenset({"ingest"}))[1]
    event = [{"action": "user.login", "actor": {"id": "u1", "type": "user"}}]
    try:
        with TestClient(app=create_app(filled.settings, store)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["type"] == "integrity_failure"
            assert "tenant acme" in ready.json()["error"]["message"]
            auth = {"Authorization": f"Bearer {acme_key}"}
            r = client.post("/v1/events", json=event, headers=auth)
            assert r.status_code == 503 and r.json()["error"]["type"] == "integrity_failure", r.text
            assert client.post("/v1/checkpoints", headers=auth).status_code == 503
            assert client.get("/v1/export?from_seq=0", headers=auth).status_code == 503
            r = client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {globex_key}"})
            assert r.status_code == 200, r.text
        alerts = store.list_alerts(AlertQuery(tenant_id=acme.id))
        assert [(a.rule_id, a.severity) for a in alerts] == [("vigil.integrity", "P0")]
        assert "seqs 300..599" in alerts[0].summary
        assert [cp.size for cp in store.checkpoints(acme.id)] == [100, 300]
    finally:
        store.close()


# --- truncation, deleted checkpoints ---------------------------------------------------------------------


def test_truncated_log_is_reported_with_the_removed_range(filled: Filled, tmp_path: Path) -> None:
    """Events cut off the end (tree data rebuilt, checkpoints above deleted) are reported by the auditor and by
    the server, with the seqs removed."""
    memory = tmp_path / "memory.json"
    auditor_ok(filled, memory)
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.truncate(500)
        rebuild_tree(a)
        a.delete_checkpoints_above(450)
    assert "seqs 500..599 were removed" in auditor_failure(filled, memory)
    store = open_store(filled.settings.database, filled.settings)
    try:
        with pytest.raises(IntegrityError, match=r"the log holds 500 events .* seqs 500\.\.599 were removed"):
            check_tenant(store, load_signer(filled.settings), store.get_tenant("acme"))
    finally:
        store.close()


def test_deleting_every_checkpoint_is_reported(filled: Filled, tmp_path: Path) -> None:
    """With the log intact but every checkpoint deleted, verify and the server both say checkpoints were
    deleted, naming the size they remember."""
    memory = tmp_path / "memory.json"
    auditor_ok(filled, memory)
    with attacker(filled.settings.database, filled.tenant_id) as a:
        a.delete_checkpoints_above(0)
    message = auditor_failure(filled, memory)
    assert "checkpoint at size 600 in this verifier's memory" in message and "were deleted" in message
    store = open_store(filled.settings.database, filled.settings)
    try:
        with pytest.raises(
            IntegrityError, match=r"size 600 .* not in the database .* checkpoints were deleted"
        ):
            make_checkpoint(store, load_signer(filled.settings), store.get_tenant("acme"))
    finally:
        store.close()


def test_deleting_middle_checkpoints_is_reported_from_the_chain(filled: Filled, tmp_path: Path) -> None:
    """Each checkpoint names the one signed before it, so checkpoints deleted from the middle are found by
    the database's own chain, with no outside state at all."""
    with attacker(filled.settings.database, filled.tenant_id) as a:
        if "://" not in filled.settings.database:
            a.conn.execute(
                "DELETE FROM checkpoints WHERE tenant_id = ? AND size IN (300, 450)", (filled.tenant_id,)
            )
        else:
            a.conn.execute(
                "DELETE FROM vigil.checkpoints WHERE tenant_id = %s AND size IN (300, 450)",
                (filled.tenant_id,),
            )
    without_outside_state(filled)
    message = auditor_failure(filled, tmp_path / "fresh.json")
    assert "checkpoints between sizes 450 and 600 were deleted" in message


def test_each_checkpoint_names_its_previous(filled: Filled) -> None:
    """The vigil-previous line of every checkpoint is the size of the checkpoint before it (0 for the first)."""
    store = open_store(filled.settings.database, filled.settings)
    try:
        cps = store.checkpoints(filled.tenant_id)
        named = [previous_size(verify_checkpoint(cp.note, filled.vkey)) for cp in cps]
        assert named == [0, 100, 300, 450]
    finally:
        store.close()


# --- PostgreSQL: past the triggers without dropping them ---------------------------------------------------


POSTGRES_ONLY = pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.service)], indirect=True
)
"""These attacks exist only on PostgreSQL: run the test there alone, never as a skipped SQLite case."""


def _pg(f: Filled) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(f.settings.database, autocommit=True) as pg:
        yield pg


@POSTGRES_ONLY
def test_postgres_replica_role_does_not_get_past_the_append_only_triggers(filled: Filled) -> None:
    """SET session_replication_role = replica used to switch the append-only triggers off; they fire always."""
    import psycopg

    for pg in _pg(filled):
        pg.execute("SET session_replication_role = replica")
        schema = f"tenant_{filled.tenant_id}"
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(f"UPDATE {schema}.events SET body = body WHERE seq = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(f"DELETE FROM {schema}.tree_nodes")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute("DELETE FROM vigil.checkpoints")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(f"TRUNCATE {schema}.events")


@POSTGRES_ONLY
def test_postgres_detached_partition_is_reported(filled: Filled, tmp_path: Path) -> None:
    """DETACH PARTITION removes a month of events without firing a trigger; verify (public key and memory) and
    the server both report the emptied tenant with the removed range."""
    memory = tmp_path / "memory.json"
    for pg in _pg(filled):
        auditor_ok(filled, memory)
        schema = f"tenant_{filled.tenant_id}"
        parts = pg.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE n.nspname = %s AND p.relname = 'events'",
            (schema,),
        ).fetchall()
        for (part,) in parts:
            count = pg.execute(f"SELECT count(*) FROM {schema}.{part}").fetchone()
            if count and count[0]:
                pg.execute(f"ALTER TABLE {schema}.events DETACH PARTITION {schema}.{part}")
        message = auditor_failure(filled, memory)
        assert "the log holds only 0 events" in message or "were removed" in message, message
        store = open_store(filled.settings.database, filled.settings)
        try:
            with pytest.raises(IntegrityError, match=r"seqs 0\.\.599 were removed"):
                check_tenant(store, load_signer(filled.settings), store.get_tenant("acme"))
        finally:
            store.close()


# --- the state files themselves ----------------------------------------------------------------------------


def test_trusted_state_moves_only_forward_and_refuses_an_edited_file(filled: Filled) -> None:
    """advance() keeps the larger checkpoint; a state file edited by hand does not verify and is refused."""
    state = TrustedState(state_path(filled.settings), filled.vkey)
    current = state.get("acme")
    assert current is not None and current.size == 600
    state.advance("acme", filled.checkpoints[100].note)
    assert state.get("acme") == current
    assert not [p for p in state.directory.iterdir() if p.name.endswith(".tmp")]
    path = state.directory / "acme.checkpoint"
    path.write_text(filled.checkpoints[600].note.replace("\n600\n", "\n601\n"))
    with pytest.raises(IntegrityError, match="does not verify with the verifier key"):
        state.get("acme")


def test_first_start_adopts_the_newest_stored_checkpoint(filled: Filled) -> None:
    """A server started without trusted state (an upgrade, a new state directory) adopts the newest stored
    checkpoint once its signature checks, and holds the log to it from then on."""
    without_outside_state(filled)
    store = open_store(filled.settings.database, filled.settings)
    try:
        signer = load_signer(filled.settings)
        head = check_tenant(store, signer, store.get_tenant("acme"))
        assert head is not None and head.size == 600
        assert signer.trust is not None and signer.trust.get("acme") == head
    finally:
        store.close()


def test_verifier_memory_refuses_an_edited_file(filled: Filled, tmp_path: Path) -> None:
    """A memory file whose note was edited is refused with an error naming the file, never trusted."""
    memory = tmp_path / "memory.json"
    auditor_ok(filled, memory)
    data = json.loads(memory.read_text())
    data[filled.vkey]["vigil/acme"] = data[filled.vkey]["vigil/acme"].replace("\n600\n", "\n6000\n")
    memory.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="does not verify"):
        VerifierMemory(memory).get(filled.vkey, "vigil/acme")
    memory.write_text("[1, 2]")
    result = vigil_verify(filled.settings, "--state", str(memory))
    assert result.exit_code == 1 and "is not what vigil verify writes" in result.output


def test_verifier_memory_keeps_the_largest(filled: Filled, tmp_path: Path) -> None:
    mem = VerifierMemory(tmp_path / "m.json")
    mem.remember(filled.vkey, "vigil/acme", filled.checkpoints[450].note)
    mem.remember(filled.vkey, "vigil/acme", filled.checkpoints[100].note)
    mem.save()
    got = VerifierMemory(tmp_path / "m.json").get(filled.vkey, "vigil/acme")
    assert got is not None and got.size == 450


def test_vkey_from_a_file_and_from_the_servers_url(filled: Filled, tmp_path: Path) -> None:
    """--vkey takes the key, @FILE or the URL of /v1/checkpoints/key; anything else is a clear error."""
    path = tmp_path / "vkey.txt"
    path.write_text(filled.vkey + "\n")
    assert resolve_vkey(f"@{path}") == filled.vkey
    assert resolve_vkey(str(path)) == filled.vkey

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (filled.vkey + "\n").encode()
            self.send_response(200 if self.path == "/v1/checkpoints/key" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/checkpoints/key"
        assert resolve_vkey(url) == filled.vkey
        result = vigil_verify(filled.settings, "--vkey", url, "--state", str(tmp_path / "m.json"))
        assert result.exit_code == 0, result.output
    finally:
        server.shutdown()
        server.server_close()
    result = vigil_verify(filled.settings, "--vkey", "not a key")
    assert result.exit_code == 1 and "is not a verifier key" in result.output


def test_verify_with_a_wrong_public_key_fails(filled: Filled, tmp_path: Path, settings: Settings) -> None:
    """A public key of another log does not verify this one's checkpoints."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vigil.ledger.note import vkey

    other = vkey("vigil", Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    result = vigil_verify(filled.settings, "--vkey", other, "--state", str(tmp_path / "m.json"))
    assert result.exit_code == 1 and "does not verify" in result.output


def test_untouched_log_passes_with_both_anchors(filled: Filled, tmp_path: Path) -> None:
    """The honest case: server state and memory both held, twice in a row, while the log grows between."""
    memory = tmp_path / "memory.json"
    args = [*database_args(filled.settings), "--state", str(memory)]
    from click.testing import CliRunner

    from vigil.cli import main

    first = CliRunner().invoke(main, ["verify", *args])
    assert first.exit_code == 0, first.output
    store: Store = open_store(filled.settings.database, filled.settings)
    try:
        tenant = store.get_tenant("acme")
        store.append(tenant.id, filled.events("acme", 20, seed=9))
        make_checkpoint(store, load_signer(filled.settings), tenant)
    finally:
        store.close()
    second = CliRunner().invoke(main, ["verify", *args])
    assert second.exit_code == 0, second.output
    assert "held to 2 outside checkpoints" in second.output
