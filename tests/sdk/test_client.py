"""vigil.sdk.Client: record() is cheap and checked, secrets never leave the process, flush/close/stats keep
their promises, against the real server where Vigil's own behaviour matters."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sdk_support import FakeVigil, Tenant, server_ids, wait_for

from vigil.ids import is_uuid7
from vigil.sdk import Client
from vigil.testing import HOST, free_port


def _unreachable() -> str:
    return f"http://{HOST}:{free_port()}"


def test_record_returns_a_uuid7_without_touching_the_network() -> None:
    """record() returns the event's id at once, even when the server's port has nobody listening."""
    client = Client(_unreachable(), "vk_test", flush_interval=60, max_backoff=0.05)
    ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(50)]
    assert len(set(ids)) == 50
    assert all(is_uuid7(uuid.UUID(i)) for i in ids)
    assert client.stats.attempts == 0  # under batch_size, the worker waits for flush_interval
    assert client.stats.queued == 50
    client.close(0.2)


def test_record_never_waits_for_a_hanging_request() -> None:
    """While the worker's request hangs, record() keeps returning (the app's thread never does network I/O)."""
    with FakeVigil() as fake:
        fake.hold.clear()
        client = Client(fake.url, "vk_test", batch_size=10, flush_interval=0.05, timeout=30)
        try:
            client.record(action="user.login", actor_id="usr_1")
            wait_for(lambda: len(fake.received) == 1, 5, "the first request")
            done = threading.Event()

            def app() -> None:
                for i in range(2000):
                    client.record(action="document.viewed", actor_id=f"usr_{i}")
                done.set()

            threading.Thread(target=app).start()
            assert done.wait(10), "record() blocked while a request was in flight"
            assert len(fake.received) == 1  # still the one hanging request
        finally:
            fake.hold.set()
            assert client.close(10)
        assert len(set(fake.ids)) == 2001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor_id": "usr_1"}, "needs action="),
        ({"action": "", "actor_id": "usr_1"}, "needs action="),
        ({"action": "User Login", "actor_id": "usr_1"}, "dotted lower-case"),
        ({"action": "user.login"}, "actor="),
        ({"action": "user.login", "actor": {"name": "Ada"}}, "non-empty 'id'"),
        ({"action": "user.login", "actor": {"id": "a"}, "actor_id": "a"}, "not both"),
        ({"action": "user.login", "actor_id": "a", "outcome": "ok"}, "outcome="),
        ({"action": "user.login", "actor_id": "a", "category": "misc"}, "category="),
        ({"action": "user.login", "actor_id": "a", "occurred_at": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"action": "user.login", "actor_id": "a", "id": "not an id"}, "must be a UUID"),
        ({"action": "user.login", "actor_id": "a", "metadata": {"x": object()}}, "encoded as JSON"),
        ({"action": "user.login", "actor_id": "a", "message": "x" * 70_000}, "at most 65536 bytes"),
    ],
)
def test_record_refuses_what_the_server_never_could_store(kwargs: dict[str, Any], message: str) -> None:
    """Obviously wrong events raise ValueError on the caller's side, and nothing is queued."""
    with Client(_unreachable(), "vk_test", flush_interval=60) as client:
        with pytest.raises(ValueError, match=message):
            client.record(**kwargs)
        assert client.stats.queued == 0


def test_secrets_are_redacted_before_the_event_leaves_the_process() -> None:
    """What reaches the wire has the server's redactions already: secret keys, auth headers, JWTs."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
    with FakeVigil() as fake, Client(fake.url, "vk_test", flush_interval=0.05) as client:
        client.record(
            action="user.password.changed",
            actor_id="usr_1",
            metadata={
                "password": "hunter2",
                "API-Key": "k-123456",
                "note": "Bearer abc.def.ghi",
                "plan": "pro",
            },
            changes={"password_hash": ["old-hash", "new-hash"], "email": ["a@x.example", "b@x.example"]},
            context={"ip": "203.0.113.9"},
            message="changed the password",
        )
        client.record(action="user.login", actor_id="usr_1", metadata={"session": jwt})
        assert client.flush(5)
    wire = b"".join(r.body for r in fake.received)
    for secret in (b"hunter2", b"k-123456", b"abc.def.ghi", b"old-hash", b"new-hash", jwt.encode()):
        assert secret not in wire
    first, second = (e for r in fake.received for e in r.events)
    assert first["metadata"] == {
        "password": "[REDACTED:secret]",
        "API-Key": "[REDACTED:secret]",
        "note": "[REDACTED:auth_header]",
        "plan": "pro",
    }
    assert first["changes"] == {
        "password_hash": ["[REDACTED:secret]", "[REDACTED:secret]"],
        "email": ["a@x.example", "b@x.example"],
    }
    assert second["metadata"] == {"session": "[REDACTED:jwt]"}


def test_the_request_carries_the_key_and_the_event_as_recorded() -> None:
    """One POST to /v1/events with the bearer key, JSON, and the event with its client-made id and time."""
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with FakeVigil() as fake, Client(fake.url, "vk_secret_key", flush_interval=0.05) as client:
        eid = client.record(
            "invoice.paid",
            actor={"id": "svc_billing", "type": "service"},
            targets=[{"type": "invoice", "id": "inv_9"}],
            outcome="success",
            category="change",
            reason="card charged",
            occurred_at=when,
        )
        before = datetime.now(UTC)
        auto = client.record(action="user.login", actor_id="usr_1")
        assert client.flush(5)
    (request,) = fake.received
    assert request.headers["Authorization"] == "Bearer vk_secret_key"
    assert request.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in request.headers  # the server does not accept gzip bodies (yet)
    first, second = request.events
    assert first == {
        "id": eid,
        "action": "invoice.paid",
        "actor": {"id": "svc_billing", "type": "service"},
        "occurred_at": "2024-05-01T12:30:00Z",
        "outcome": "success",
        "category": "change",
        "targets": [{"type": "invoice", "id": "inv_9"}],
        "reason": "card charged",
    }
    assert second["id"] == auto
    assert second["actor"] == {"id": "usr_1"}
    # the time of record(), not of delivery: an event spooled through an outage keeps it
    assert abs(datetime.fromisoformat(second["occurred_at"]) - before).total_seconds() < 5


def test_batches_by_size_and_by_time() -> None:
    """A full batch goes at once; a partial one after flush_interval."""
    with FakeVigil() as fake, Client(fake.url, "vk_test", batch_size=10, flush_interval=0.5) as client:
        for i in range(25):
            client.record(action="user.login", actor_id=f"usr_{i}")
        wait_for(lambda: len(fake.received) >= 2, 5, "two full batches")
        assert [len(r.events) for r in fake.received[:2]] == [10, 10]
        wait_for(lambda: len(fake.received) == 3, 5, "the partial batch")
        assert len(fake.received[2].events) == 5
        assert fake.received[2].at - fake.received[1].at > 0.2


def test_stats_count_stored_duplicates_and_rejected_on_the_real_server(tenant: Tenant) -> None:
    """Against the real server: the same event resent is a duplicate (stored once); another event under a taken
    id (a conflict) and an invalid event are rejected."""
    at = datetime.now(UTC)
    with Client(tenant.url, tenant.key, flush_interval=0.05) as client:
        at = datetime.now(UTC)
        ids = [client.record(action="user.login", actor_id=f"usr_{i}", occurred_at=at) for i in range(30)]
        client.record(
            action="user.login", actor_id="usr_0", id=ids[0], occurred_at=at
        )  # a retry, as an app might
        client.record(action="user.logout", actor_id="usr_0", id=ids[0], occurred_at=at)  # not the same event
        client.record(action="user.login", actor_id="usr_x", metadata={f"k{i}": i for i in range(60)})
        assert client.flush(10)
        stats = client.stats
    assert (stats.attempts, stats.stored, stats.duplicates, stats.rejected) == (33, 30, 1, 2)
    assert (stats.retries, stats.spooled, stats.dropped, stats.queued) == (0, 0, 0, 0)
    assert server_ids(tenant.url, tenant.key) == ids


def test_full_queue_without_spool_drops_counts_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """With no spool, events over max_queue are dropped, counted, and logged at most once a minute."""
    caplog.set_level(logging.WARNING, "vigil.sdk")
    with FakeVigil() as fake:
        fake.hold.clear()
        client = Client(fake.url, "vk_test", batch_size=10, max_queue=50, flush_interval=0.05)
        try:
            client.record(action="user.login", actor_id="usr_first")
            wait_for(lambda: len(fake.received) == 1, 5, "the hanging request")
            for i in range(200):
                client.record(action="user.login", actor_id=f"usr_{i}")
            assert client.stats.dropped == 150
        finally:
            fake.hold.set()
            client.close(10)
    drops = [r for r in caplog.records if "dropping events" in r.getMessage()]
    assert len(drops) == 1
    assert len(set(fake.ids)) == 51


def test_full_queue_with_spool_spills_to_disk_and_loses_nothing(spool_dir: Path) -> None:
    """With a spool, events over max_queue go to disk from the app's thread, and are delivered later."""
    with FakeVigil() as fake:
        fake.hold.clear()
        client = Client(fake.url, "vk_test", spool_dir, batch_size=10, max_queue=50, flush_interval=0.05)
        recorded = [client.record(action="user.login", actor_id="usr_first")]
        wait_for(lambda: len(fake.received) == 1, 5, "the hanging request")
        recorded += [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(200)]
        assert client.stats.spooled >= 150
        assert client.stats.dropped == 0
        fake.hold.set()
        assert client.flush(10)
        wait_for(lambda: set(recorded) <= set(fake.ids), 10, "every event delivered")
        assert client.close(10)
    assert len(fake.ids) == len(set(fake.ids)) == 201


def test_flush_without_spool_waits_for_the_server_and_says_false_on_timeout() -> None:
    """flush() is True only when the events are acknowledged (or spooled); with the server down and no spool,
    it returns False at its timeout."""
    client = Client(_unreachable(), "vk_test", flush_interval=0.05, max_backoff=0.05)
    client.record(action="user.login", actor_id="usr_1")
    started = time.monotonic()
    assert client.flush(0.5) is False
    assert 0.4 < time.monotonic() - started < 5
    assert client.stats.retries >= 1
    assert client.close(0.5) is False  # nowhere to keep the event: it is dropped, and counted
    assert client.stats.dropped == 1


def test_close_spools_what_it_cannot_deliver(spool_dir: Path, tenant: Tenant) -> None:
    """close() with the server down keeps every event in the spool, and a later client delivers them."""
    client = Client(_unreachable(), "vk_test", spool_dir, flush_interval=60)
    ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(120)]
    assert client.close(2)
    assert client.stats.spooled == 120
    assert client.record(action="user.login", actor_id="late") and client.stats.dropped == 1
    with Client(tenant.url, tenant.key, spool_dir, flush_interval=0.05) as again:
        wait_for(lambda: again.stats.stored == 120, 10, "the spool's replay")
        assert again.stats.replayed == 120
    assert server_ids(tenant.url, tenant.key) == ids
    assert sorted(p.name for p in spool_dir.iterdir()) == ["spool.lock"]


def test_pending_events_are_sent_at_interpreter_exit(tenant: Tenant, tmp_path: Path) -> None:
    """An app that never calls close() still delivers what it recorded: atexit flushes, with a bounded wait."""
    app = textwrap.dedent(
        """
        import json, sys
        from vigil.sdk import Client
        client = Client(sys.argv[1], sys.argv[2], flush_interval=600)
        print(json.dumps([client.record(action="user.logout", actor_id=f"usr_{i}") for i in range(40)]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", app, tenant.url, tenant.key],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert server_ids(tenant.url, tenant.key) == json.loads(out.stdout)


def test_missing_httpx_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx, Client() fails at once with the pip command that fixes it."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"pip install 'vigil-audit\[sdk\]'"):
        Client("http://127.0.0.1:9", "vk_test")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("127.0.0.1:8000", "vk"), {}, "http://"),
        (("http://127.0.0.1:8000", ""), {}, "api_key"),
        (("http://127.0.0.1:8000", "vk"), {"batch_size": 1001}, "batch_size"),
        (("http://127.0.0.1:8000", "vk"), {"batch_size": 10, "max_queue": 5}, "max_queue"),
        (("http://127.0.0.1:8000", "vk"), {"flush_interval": 0}, "flush_interval"),
    ],
)
def test_bad_settings_are_refused(args: tuple[str, str], kwargs: dict[str, Any], message: str) -> None:
    """Settings that cannot work raise ValueError at construction."""
    with pytest.raises(ValueError, match=message):
        Client(*args, **kwargs)


def test_a_real_round_trip_reads_back_the_event(tenant: Tenant) -> None:
    """The event read back from the real server is the one recorded, redacted, with the client's id."""
    with Client(tenant.url, tenant.key, flush_interval=0.05) as client:
        eid = client.record(
            action="user.login",
            actor={"id": "usr_42", "name": "Ada"},
            context={"ip": "203.0.113.7", "user_agent": "pytest"},
            metadata={"password": "hunter2", "method": "sso"},
            message="Ada signed in",
        )
        assert client.flush(10)
    got = httpx.get(f"{tenant.url}/v1/events/{eid}", headers={"Authorization": f"Bearer {tenant.key}"}).json()
    assert got["id"] == eid
    assert got["metadata"] == {"password": "[REDACTED:secret]", "method": "sso"}
    assert got["actor"] == {"id": "usr_42", "name": "Ada", "type": "user"}


def test_large_batches_are_gzipped_and_the_real_server_stores_them(tenant: Tenant) -> None:
    """Bodies over 1 KiB go out gzip-compressed; the server inflates and stores every event."""
    client = Client(tenant.url, tenant.key, batch_size=50)
    ids = [
        client.record("doc.edited", actor_id=f"u{i}", metadata={"n": i, "pad": "x" * 40}) for i in range(120)
    ]
    assert client.flush(30)
    client.close()
    got = httpx.get(
        tenant.url + "/v1/events?limit=1000", headers={"Authorization": f"Bearer {tenant.key}"}
    ).json()
    assert {e["id"] for e in got["data"]} == set(ids)


def test_compression_is_on_by_default_and_can_be_turned_off() -> None:
    """A batch over 1 KiB carries Content-Encoding: gzip; compress=False sends plain JSON."""
    for compress, expected in ((True, "gzip"), (False, None)):
        with (
            FakeVigil() as fake,
            Client(fake.url, "vk_test", flush_interval=0.05, compress=compress) as client,
        ):
            for i in range(30):
                client.record("doc.edited", actor_id=f"u{i}", metadata={"pad": "x" * 60})
            assert client.flush(10)
            encodings = {r.headers.get("Content-Encoding") for r in fake.received}
            assert encodings == {expected}
            assert sum(len(r.events) for r in fake.received) == 30
