"""The key ring and the failed-authentication throttle: bounded whatever strangers send, never trusting a
record for more than a second."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.auth import AuthThrottle, KeyRing, create_key
from vigil.errors import RateLimited, Unauthorized
from vigil.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bogus() -> str:
    return f"Bearer vk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def test_unknown_key_ids_are_never_cached(store: Store) -> None:
    """A flood of random bogus keys leaves the cache empty (it used to keep every unknown id for good)."""
    ring = KeyRing(store)
    for _ in range(500):
        with pytest.raises(Unauthorized):
            ring.authenticate(_bogus())
    assert len(ring) == 0


def test_cache_is_bounded_and_records_go_stale_within_a_second(store: Store) -> None:
    """At most max_entries records, least recently used dropped first; a record is re-read after its TTL
    (never more than a second, whatever was asked)."""
    clock = Clock()
    ring = KeyRing(store, ttl=30.0, max_entries=3, clock=clock)
    assert ring.ttl == 1.0
    t = store.create_tenant("acme")
    made = [create_key(store, t, frozenset({"read"})) for _ in range(5)]
    for _, text in made:
        ring.authenticate(f"Bearer {text}")
    assert len(ring) == 3
    key, text = made[0]
    ring.authenticate(f"Bearer {text}")
    store.revoke_key(key.key_id, "2026-01-01T00:00:00.000000Z")
    ring.authenticate(f"Bearer {text}")  # still the cached record, for at most the TTL
    clock.now += 1.01
    with pytest.raises(Unauthorized, match="revoked"):
        ring.authenticate(f"Bearer {text}")


def test_throttle_blocks_after_the_limit_until_the_window_ends() -> None:
    """N failures pass as failures; then the source waits out the window; other sources are not affected."""
    clock = Clock()
    th = AuthThrottle(3, 60, clock=clock)
    for _ in range(3):
        assert th.blocked("198.51.100.7") == 0
        th.failed("198.51.100.7")
    assert th.blocked("198.51.100.7") == pytest.approx(60)
    assert th.blocked("198.51.100.8") == 0
    clock.now += 59.5
    assert th.blocked("198.51.100.7") == pytest.approx(0.5)
    clock.now += 1
    assert th.blocked("198.51.100.7") == 0
    th.failed("198.51.100.7")  # a new window starts from one
    assert th.blocked("198.51.100.7") == 0


@given(st.lists(st.ip_addresses(), min_size=1, max_size=300))
def test_throttle_table_is_bounded(addresses: list[object]) -> None:
    """However many sources fail, the table holds at most max_sources of them."""
    th = AuthThrottle(5, 60, max_sources=50)
    for a in addresses:
        th.failed(AuthThrottle.source_of(str(a)))
        assert len(th) <= 50


def test_ipv6_sources_count_per_64() -> None:
    """One host owns a whole IPv6 /64: its addresses are one source; an IPv4-mapped address is the IPv4 one."""
    same = {AuthThrottle.source_of(f"2001:db8:1:2::{i:x}") for i in range(100)}
    assert same == {"2001:db8:1:2::/64"}
    assert AuthThrottle.source_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert AuthThrottle.source_of("testclient") == "testclient"


def test_a_blocked_source_never_reaches_the_store(store: Store) -> None:
    """While blocked, an unknown key id is refused with 429 without a store read; a cached key gets through."""
    t = store.create_tenant("acme")
    _, good = create_key(store, t, frozenset({"read"}))
    ring = KeyRing(store, throttle=AuthThrottle(2, 60))
    ring.authenticate(f"Bearer {good}", "203.0.113.1")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            ring.authenticate(_bogus(), "203.0.113.1")
    reads = []
    real = store.get_key
    store.get_key = lambda key_id: (reads.append(key_id), real(key_id))[1]  # type: ignore[method-assign]
    with pytest.raises(RateLimited) as exc:
        ring.authenticate(_bogus(), "203.0.113.1")
    assert exc.value.retry_after >= 1 and reads == []
    assert ring.authenticate(f"Bearer {good}", "203.0.113.1").tenant == "acme"
