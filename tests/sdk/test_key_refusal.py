"""A refused key (401, 403) never dead-letters an event: the events wait, in the spool or in memory, and go as
soon as the client gets a working key (``set_key``, or a restart with a new key on the same spool)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sdk_support import FakeVigil, Tenant, server_ids, wait_for

from vigil.auth import create_key
from vigil.sdk import Client
from vigil.store import Store

GOOD = "vk_good"


def _key_script(fake_box: list[FakeVigil]) -> Any:
    """Refuse every key but GOOD: a 401 first, then the 429 with which a server throttles a source that keeps
    failing authentication (Retry-After: 30, far longer than the test waits)."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        headers = {k.lower(): v for k, v in fake_box[0].received[n].headers.items()}
        if headers.get("authorization") == f"Bearer {GOOD}":
            return None
        if n == 0:
            return 401, {}, {"error": {"type": "unauthorized", "message": "unknown or revoked API key"}}
        return 429, {"Retry-After": "30"}, {"error": {"type": "rate_limited", "message": "too many failures"}}

    return script


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "memory"])
def test_set_key_sends_the_waiting_events_at_once(spool_dir: Path, with_spool: bool) -> None:
    """While the key is refused the events wait (durably with a spool: flush says True) and none is
    dead-lettered; set_key() ends the 30-second wait at once and they are stored, sent with the new key."""
    box: list[FakeVigil] = []
    fake = FakeVigil(_key_script(box))
    box.append(fake)
    spool = spool_dir if with_spool else None
    with fake, Client(fake.url, "vk_revoked", spool, flush_interval=0.05, max_backoff=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(3)]
        wait_for(lambda: len(fake.received) >= 2, 10, "the 401 and the throttled retry")
        assert client.flush(0.5) is with_spool  # in the spool, or still waiting in memory
        stats = client.stats
        assert (stats.key_refused, stats.dead_lettered, stats.stored) == (1, 0, 0)
        client.set_key(GOOD)
        started = time.monotonic()
        wait_for(lambda: client.stats.stored == 3, 10, "the events, sent with the new key")
        assert time.monotonic() - started < 10  # not the 30 s the server asked for
        assert client.flush(5)
    last = fake.received[-1]
    assert {k.lower(): v for k, v in last.headers.items()}["authorization"] == f"Bearer {GOOD}"
    assert sorted({i for r in fake.received[2:] for i in r.ids}) == sorted(ids)
    assert not (spool_dir / "dead-letter.ndjson").exists()


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_retried_with_backoff_never_dead_lettered(spool_dir: Path, status: int) -> None:
    """401 and 403 are about the key, not the events: retried with backoff until the server takes them."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return (status, {}, {"error": {"type": "x", "message": "key refused"}}) if n < 3 else None

    fake = FakeVigil(script)
    with fake, Client(fake.url, "vk_test", spool_dir, flush_interval=0.05, max_backoff=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(4)]
        wait_for(lambda: client.stats.stored == 4, 10, "the events, once the key works again")
        stats = client.stats
    assert (stats.key_refused, stats.retries, stats.dead_lettered) == (3, 0, 0)
    assert set(fake.ids) == set(ids)
    assert not (spool_dir / "dead-letter.ndjson").exists()


def test_a_restart_with_a_new_key_sends_the_spool(
    spool_dir: Path, tenant: Tenant, server_store: Store
) -> None:
    """On the real server: a key without the ingest scope (403) keeps the events in the spool; a new client
    with a good key on the same spool directory sends them, each stored once."""
    t = server_store.get_tenant(tenant.slug)
    read_only = create_key(server_store, t, frozenset({"read"}))[1]
    client = Client(tenant.url, read_only, spool_dir, flush_interval=0.05, max_backoff=0.05)
    ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(5)]
    assert client.flush(10)
    wait_for(lambda: client.stats.key_refused >= 1, 10, "the server's 403")
    assert client.close(5)
    assert client.stats.dead_lettered == 0 and not (spool_dir / "dead-letter.ndjson").exists()
    assert server_ids(tenant.url, tenant.key) == []
    with Client(tenant.url, tenant.key, spool_dir, flush_interval=0.05) as again:
        assert again.flush(10)
        assert (again.stats.replayed, again.stats.stored) == (5, 5)
    assert server_ids(tenant.url, tenant.key) == ids


def test_set_key_refuses_what_is_no_key() -> None:
    """An empty key, or one with a line break (it would split the header), is a ValueError."""
    with FakeVigil() as fake, Client(fake.url, "vk_test", flush_interval=60) as client:
        for bad in ("", "vk\r\nX-Evil: 1"):
            with pytest.raises(ValueError, match="api_key"):
                client.set_key(bad)
