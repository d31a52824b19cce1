"""X-Forwarded-For counts only from a trusted proxy: a client elsewhere cannot pick the address it is throttled
and audited under."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import auth

from vigil.auth import create_key
from vigil.errors import ConfigError
from vigil.logs import Formatter
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import PLATFORM_TENANT, SearchQuery
from vigil.web import create_app


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(Formatter("text"))
    access = logging.getLogger("vigil.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    yield handler.stream
    access.removeHandler(handler)
    access.setLevel(level)


def _settings(base: Settings, **values: Any) -> Settings:
    return Settings.load({**base.values, "checkpoint_interval": 0, **values}, environ={})


async def _requests(
    settings: Settings, store: Store, peer: str, calls: list[tuple[str, str, dict[str, str], Any]]
) -> list[httpx.Response]:
    """Send requests through the real app as if from ``peer`` (the TCP peer address the server sees)."""
    app = create_app(settings, store)
    out = []
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://vigil") as client:
            for method, url, headers, body in calls:
                out.append(await client.request(method, url, headers=headers, json=body))
        await asyncio.sleep(0.2)  # the access audit of the last request reaches the platform log
    return out


def _clients(stream: io.StringIO) -> list[str]:
    return [
        line.rsplit("client=", 1)[1].split()[0]
        for line in stream.getvalue().splitlines()
        if "client=" in line
    ]


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    settings: Settings, store: Store, access_lines: io.StringIO
) -> None:
    """No trusted proxy: wrong keys with a new X-Forwarded-For each time still count against the real peer, which
    is throttled after the limit; the access log names the peer, not the header."""
    store.create_tenant("acme")
    wrong = "vk_0123456789abcdef_" + "A" * 43
    calls = [
        ("GET", "/v1/events", {**auth(wrong), "X-Forwarded-For": f"198.51.100.{i}"}, None) for i in range(4)
    ]
    responses = asyncio.run(
        _requests(_settings(settings, auth_failure_limit=3), store, "203.0.113.50", calls)
    )
    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    assert set(_clients(access_lines)) == {"203.0.113.50"}


def test_a_trusted_proxy_gives_the_client_address(
    settings: Settings, store: Store, access_lines: io.StringIO
) -> None:
    """From a trusted proxy the right-most untrusted X-Forwarded-For address is the client: in the access log, in
    the failed-authentication count, and in the platform log's record of a key created through the API."""
    acme = store.create_tenant("acme")
    _, admin = create_key(store, acme, frozenset({"admin"}))
    wrong = "vk_0123456789abcdef_" + "A" * 43
    behind = _settings(settings, trusted_proxies="10.0.0.0/8, 127.0.0.1", auth_failure_limit=2)
    calls = [
        # what a client claimed, then what the proxy appended: the proxy's entry is the one believed
        (
            "POST",
            "/v1/keys",
            {**auth(admin), "X-Forwarded-For": "6.6.6.6, 198.51.100.7"},
            {"scopes": ["read"]},
        ),
        *[("GET", "/v1/events", {**auth(wrong), "X-Forwarded-For": f"192.0.2.{i}"}, None) for i in range(3)],
    ]
    responses = asyncio.run(_requests(behind, store, "10.1.2.3", calls))
    assert responses[0].status_code == 201
    # each forwarded address is its own source: three different clients, none throttled
    assert [r.status_code for r in responses[1:]] == [401, 401, 401]
    assert _clients(access_lines) == ["198.51.100.7", "192.0.2.0", "192.0.2.1", "192.0.2.2"]
    platform = store.get_tenant(PLATFORM_TENANT).id
    (created,) = store.search(platform, SearchQuery(action="api_key.created")).events
    assert json.loads(created[2])["context"]["ip"] == "198.51.100.7"


def test_a_peer_outside_the_trusted_proxies_is_not_believed(
    settings: Settings, store: Store, access_lines: io.StringIO
) -> None:
    """trusted_proxies names the proxy; a client connecting directly, from elsewhere, is taken at its address."""
    store.create_tenant("acme")
    behind = _settings(settings, trusted_proxies="10.0.0.0/8")
    calls = [("GET", "/healthz", {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}, None)]
    asyncio.run(_requests(behind, store, "203.0.113.9", calls))
    assert _clients(access_lines) == ["203.0.113.9"]


def test_trusted_proxies_are_checked_at_start() -> None:
    """Addresses and networks are normalised; a host name or a typo stops the start instead of trusting nobody."""
    parsed = Settings.load({"trusted_proxies": " 10.0.0.0/8, 127.0.0.1,::1 "}, environ={}).trusted_proxies
    assert parsed == "10.0.0.0/8,127.0.0.1/32,::1/128"
    for bad in ("proxy.internal", "10.0.0.300", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="not an IP address or CIDR network"):
            Settings.load({"trusted_proxies": bad}, environ={})
