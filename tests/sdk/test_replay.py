"""``vigil sdk replay-dead-letters``: what the server accepts leaves the dead-letter store, what it refuses again
stays with its new reason, and nothing is lost beside a live client, after a replay that died, or when the key
is refused; against the real server, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sdk_support import Tenant, server_ids

from vigil.auth import create_key
from vigil.sdk import Client
from vigil.sdk import deadletter as dl
from vigil.sdk.event import encode_event
from vigil.store import Store
from vigil.testing import vigil_command


def _event(i: int) -> tuple[str, bytes]:
    return encode_event(
        "user.login", None, f"usr_{i}", None, None, None, None, None, None, None, None, None, None
    )


def _letter(data: bytes, status: int = 401, error: str = "HTTP 401: unknown or revoked API key") -> bytes:
    """A dead letter as an older client wrote it for a refused key (before keys were held, not dead-lettered)."""
    return dl.encode(dl.DeadLetter(datetime.now(UTC).isoformat(), status, error, msgspec.Raw(data)))


def _letters(spool_dir: Path) -> list[dict[str, Any]]:
    path = spool_dir / dl.DEAD_LETTER_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _replay(spool_dir: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_URL", "VIGIL_API_KEY")}
    if key is not None:
        env["VIGIL_API_KEY"] = key  # as the help advises: the key stays out of the process list
    return subprocess.run(
        vigil_command("sdk", "replay-dead-letters", str(spool_dir), *args),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _rejected_by_the_server(tenant: Tenant, spool_dir: Path, n: int) -> list[str]:
    """Events the real server rejects (too many metadata keys), dead-lettered by a real client."""
    too_many = {f"k{i}": i for i in range(60)}
    with Client(tenant.url, tenant.key, spool_dir, flush_interval=0.05) as client:
        ids = [client.record(action="user.login", actor_id="usr_1", metadata=too_many) for _ in range(n)]
        assert client.flush(10)
        assert client.stats.dead_lettered == n
    return ids


def test_replay_sends_the_fixed_and_keeps_the_refused(spool_dir: Path, tenant: Tenant) -> None:
    """Events dead-lettered for a key (by an older client) are stored by the replay and leave the file; those
    the server rejects again stay, with its reasons printed and counted in the letter; exit 1 while any is
    kept. --dry-run lists them all and changes nothing."""
    bad = _rejected_by_the_server(tenant, spool_dir, 2)
    good = [_event(i) for i in range(3)]
    dl.append(spool_dir, [_letter(data) for _, data in good])
    before = (spool_dir / dl.DEAD_LETTER_NAME).read_bytes()

    listed = _replay(spool_dir, "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "5 dead-lettered event(s)" in listed.stdout
    assert all(i in listed.stdout for i in bad + [i for i, _ in good])
    assert "rejected: metadata: at most 50 keys" in listed.stdout and "HTTP 401: unknown" in listed.stdout
    as_json = json.loads(_replay(spool_dir, "--dry-run", "--json").stdout)
    assert [e["id"] for e in as_json["events"]] == bad + [i for i, _ in good]
    assert (spool_dir / dl.DEAD_LETTER_NAME).read_bytes() == before

    done = _replay(spool_dir, "--url", tenant.url, "--json", key=tenant.key)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["total"], report["accepted"], report["duplicates"], report["kept"]) == (5, 3, 0, 2)
    assert [r["id"] for r in report["refused"]] == bad
    assert all(r["error"] == "rejected" and r["errors"][0]["field"] == "metadata" for r in report["refused"])
    assert done.stderr == ""  # no progress line in --json mode
    assert server_ids(tenant.url, tenant.key) == [i for i, _ in good]
    kept = _letters(spool_dir)
    assert [k["event"]["id"] for k in kept] == bad and all(k["replays"] == 1 for k in kept)

    again = _replay(spool_dir, "--url", tenant.url, key=tenant.key)
    assert again.returncode == 1
    assert "replaying" in again.stderr  # the progress line
    for i in bad:
        assert f"refused again: {i} (user.login): rejected: metadata: at most 50 keys" in again.stdout
    assert "0 of 2 event(s) accepted" in again.stdout
    assert [k["replays"] for k in _letters(spool_dir)] == [2, 2]
    assert not (spool_dir / dl.REPLAY_NAME).exists()


def test_replay_beside_a_live_client_and_after_a_replay_that_died(spool_dir: Path, tenant: Tenant) -> None:
    """A replay runs while the app's client holds the spool; it takes up the file a dead replay left (and the
    copies it left of the same letters, merged into one), and an event stored meanwhile is a duplicate."""
    stored_id, stored = _event(1)
    new_id, new = _event(2)
    r = httpx.post(
        f"{tenant.url}/v1/events",
        content=b"[" + stored + b"]",
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "stored"
    with Client(tenant.url, tenant.key, spool_dir, flush_interval=0.05) as live:
        (spool_dir / dl.REPLAY_NAME).write_bytes(_letter(stored) + b"\n" + _letter(new) + b"\n")
        dl.append(spool_dir, [_letter(new), b"not a dead letter"])  # a copy, and a line to keep as it is
        live_id = live.record(action="user.logout", actor_id="usr_3")
        assert live.flush(10)
        done = _replay(spool_dir, "--url", tenant.url, "--json", key=tenant.key)
    report = json.loads(done.stdout)
    assert (report["total"], report["accepted"], report["duplicates"]) == (2, 1, 1)
    assert (report["unreadable"], report["kept"], done.returncode) == (1, 1, 1)
    assert (spool_dir / dl.DEAD_LETTER_NAME).read_bytes() == b"not a dead letter\n"
    assert not (spool_dir / dl.REPLAY_NAME).exists()
    assert sorted(server_ids(tenant.url, tenant.key)) == sorted([stored_id, new_id, live_id])


def test_a_refused_key_stops_the_replay_and_keeps_everything(
    spool_dir: Path, tenant: Tenant, server_store: Store
) -> None:
    """With a key the server refuses (here one without the ingest scope), nothing is lost: every letter stays
    as it was, and the command says why it stopped."""
    spool_dir.mkdir()
    letters = [_letter(data) for _, data in (_event(i) for i in range(3))]
    dl.append(spool_dir, letters)
    read_only = create_key(server_store, server_store.get_tenant(tenant.slug), frozenset({"read"}))[1]
    done = _replay(spool_dir, "--url", tenant.url, key=read_only)
    assert done.returncode == 1
    assert "stopped: the server refused the key (HTTP 403" in done.stderr
    assert "0 of 3 event(s) accepted" in done.stdout and "3 not sent" in done.stdout
    assert (spool_dir / dl.DEAD_LETTER_NAME).read_bytes() == b"".join(line + b"\n" for line in letters)
    assert server_ids(tenant.url, tenant.key) == []


def test_replay_needs_a_url_and_a_key(spool_dir: Path) -> None:
    """Without --url/--key (or their environment variables) it is a usage error; an empty store replays to
    nothing and exits 0."""
    spool_dir.mkdir()
    assert _replay(spool_dir).returncode == 2
    empty = _replay(spool_dir, "--url", "http://127.0.0.1:9", "--json", key="vk_x")
    assert empty.returncode == 0 and json.loads(empty.stdout)["total"] == 0
