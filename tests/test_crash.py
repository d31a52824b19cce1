"""A server killed mid-stream (SIGKILL; SQLite with synchronous=FULL, or PostgreSQL) loses nothing it acknowledged,
and its logs and Merkle trees stay whole and keep growing after the restart."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from vigil.ids import uuid7
from vigil.ledger.merkle import CompactRange, leaf_hash, root_at
from vigil.store import open_store
from vigil.testing import ServerProcess as Server
from vigil.testing import tenant_with_key

pytestmark = pytest.mark.slow

TENANTS = ("acme", "globex")
SENDERS_PER_TENANT = 2
BATCH = 50
ACKED_BEFORE_KILL = 1500  # events; the kill comes once this many are acknowledged (or after KILL_AFTER_S)
KILL_AFTER_S = 20.0


@dataclass
class Log:
    """What the senders of one run saw."""

    acked: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (tenant, seq, leaf hash)
    unanswered: list[tuple[str, list[str]]] = field(default_factory=list)  # (tenant, ids) of lost requests
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _batch(n: int, k: int) -> list[dict[str, Any]]:
    actions = ("user.login", "document.updated", "invoice.sent", "role.assigned")
    return [
        {
            "id": str(uuid7()),
            "action": actions[(k + i) % len(actions)],
            "actor": {"id": f"usr_{(k * 7 + i) % 13}", "type": "user"},
            "targets": [{"type": "document", "id": f"doc_{(k + i) % 31}"}],
            "message": f"crash test batch {k} event {i}",
            "metadata": {"batch": k, "i": i},
        }
        for i in range(n)
    ]


def _send(http: httpx.Client, tenant: str, events: list[dict[str, Any]], log: Log) -> bool:
    """POST one batch; record what was acknowledged. False when the server did not answer."""
    try:
        r = http.post("/v1/events", json=events)
    except httpx.HTTPError:
        with log.lock:
            log.unanswered.append((tenant, [e["id"] for e in events]))
        return False
    if r.status_code != 200:
        with log.lock:
            log.refused.append(f"HTTP {r.status_code}: {r.text[:300]}")
        return False
    results = r.json()["results"]
    with log.lock:
        for res in results:
            if res["status"] == "stored":
                log.acked[res["id"]] = (tenant, res["seq"], res["leaf_hash"])
            else:
                log.refused.append(str(res))
    return True


def _sender(url: str, key: str, tenant: str, log: Log, stop: threading.Event, first: int) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        k = first
        while not stop.is_set() and _send(http, tenant, _batch(BATCH, k), log):
            k += 1


def _check_acked(url: str, keys: dict[str, str], acked: dict[str, tuple[str, int, str]]) -> None:
    """Every acknowledged event is served with the seq and leaf hash it was acknowledged with."""
    clients = {
        t: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
        for t, k in keys.items()
    }
    try:
        missing, wrong = [], []
        for eid, (tenant, seq, leaf) in acked.items():
            r = clients[tenant].get(f"/v1/events/{eid}")
            if r.status_code != 200:
                missing.append((tenant, eid, r.status_code))
                continue
            got = r.json()
            if (got["seq"], got["leaf_hash"]) != (seq, leaf):
                wrong.append((tenant, eid, (seq, leaf), (got["seq"], got["leaf_hash"])))
        assert not missing, f"{len(missing)} acknowledged events are gone, e.g. {missing[:3]}"
        assert not wrong, f"{len(wrong)} events changed seq or leaf hash, e.g. {wrong[:3]}"
    finally:
        for c in clients.values():
            c.close()


def _check_trees(database: str) -> dict[str, int]:
    """Each tenant's seqs run 0..size-1, each leaf hashes its body, and the root computed from all leaves
    equals the root read through the stored tree data (at the full size and at smaller sizes)."""
    store = open_store(database)
    sizes = {}
    try:
        for tenant in store.list_tenants():
            size = store.tree_size(tenant.id)
            rows = store.read_range(tenant.id, 0, size)
            assert [seq for seq, _, _ in rows] == list(range(size)), f"{tenant.slug}: seqs have gaps"
            assert all(leaf == leaf_hash(body) for _, leaf, body in rows), f"{tenant.slug}: leaf != body"
            frontier = CompactRange()
            roots = {}
            checkpoints = {size, size - 1, size // 2, 255, 256, 257, 65_536} & set(range(1, size + 1))
            for seq, leaf, _ in rows:
                frontier.append(leaf)
                if seq + 1 in checkpoints:
                    roots[seq + 1] = frontier.root()
            reader = store.subtree_reader(tenant.id)
            for n, expected in sorted(roots.items()):
                assert root_at(n, reader) == expected, f"{tenant.slug}: stored tree root differs at size {n}"
            sizes[tenant.slug] = size
    finally:
        store.close()
    return sizes


def _check_unanswered(
    database: str, tenant_ids: dict[str, int], unanswered: list[tuple[str, list[str]]]
) -> None:
    """A request that got no answer was committed whole or not at all."""
    store = open_store(database)
    try:
        for tenant, ids in unanswered:
            present = sum(store.get_event(tenant_ids[tenant], eid) is not None for eid in ids)
            assert present in (0, len(ids)), f"{tenant}: {present} of {len(ids)} events of a request stored"
    finally:
        store.close()


def test_sigkill_loses_no_acknowledged_event_and_keeps_the_tree(database: str, tmp_path: Path) -> None:
    """SIGKILL mid-stream, restart on the same database: acknowledged events are all there with their seq and
    leaf hash, seqs are contiguous from 0, stored tree data matches the leaves, and appending still works."""
    ids, keys = {}, {}
    for slug in TENANTS:
        ids[slug], keys[slug] = tenant_with_key(database, slug)

    # a database URL has no file to keep the signing key next to: the server needs its path
    key = ["--signing-key", str(tmp_path / "signing-key")] if "://" in database else []
    # the check reads every acknowledged event back, one request each: far over a key's read rate
    server = Server(database, synchronous="FULL", extra=[*key, "--search-rate-limit", "0"])
    try:
        server.start()
        log, stop = Log(), threading.Event()
        senders = [
            threading.Thread(target=_sender, args=(server.url, keys[t], t, log, stop, 1000 * j), daemon=True)
            for t in TENANTS
            for j in range(SENDERS_PER_TENANT)
        ]
        for s in senders:
            s.start()
        deadline = time.monotonic() + KILL_AFTER_S
        while log.count() < ACKED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # while every sender has a request in flight or about to be
        stop.set()
        for s in senders:
            s.join(timeout=60)
        assert not log.refused, log.refused[:3]
        assert log.acked, f"nothing was acknowledged before the kill:\n{server.output()}"
        assert log.unanswered, "no request was cut off: the kill did not land mid-stream"

        server.start()  # same database, after the crash
        _check_acked(server.url, keys, log.acked)
        _check_unanswered(database, ids, log.unanswered)
        before = _check_trees(database)
        assert all(seq < before[tenant] for tenant, seq, _ in log.acked.values())

        after = Log()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for slug in TENANTS:
                http.headers["Authorization"] = f"Bearer {keys[slug]}"
                for k in range(5):
                    assert _send(http, slug, _batch(BATCH, 10_000 + k), after)
        assert not after.refused, after.refused[:3]
        for slug in TENANTS:
            seqs = sorted(seq for tenant, seq, _ in after.acked.values() if tenant == slug)
            expected = list(range(before[slug], before[slug] + 5 * BATCH))
            assert seqs == expected, f"{slug}: the new seqs do not follow on"
        _check_acked(server.url, keys, after.acked)
        # uvicorn re-raises the SIGTERM it handled, so a clean stop ends with -SIGTERM (or 0), never -SIGKILL
        assert server.stop() in (0, -signal.SIGTERM), server.output()
        grown = _check_trees(database)
        for slug in TENANTS:
            assert grown[slug] == before[slug] + 5 * BATCH
    except BaseException:
        print(server.output())
        raise
    finally:
        server.close()
