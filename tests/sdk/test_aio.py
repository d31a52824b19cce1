"""vigil.sdk.AsyncClient: record() never blocks the event loop, flush and aclose wait without blocking it."""

from __future__ import annotations

import asyncio

from sdk_support import FakeVigil, Tenant, server_ids

from vigil.sdk import AsyncClient


async def _ticks_during(awaitable: object, interval: float = 0.01) -> tuple[object, int]:
    """Await ``awaitable`` while a ticker runs on the same loop; returns its result and the ticks counted."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(interval)

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable  # type: ignore[misc]
    finally:
        stop.set()
        await task
    return result, ticks


def test_flush_waits_without_blocking_the_loop() -> None:
    """While the server holds the request, ``await flush(timeout)`` lets other tasks run, then says False;
    once the server answers, flush says True."""

    async def main() -> None:
        with FakeVigil() as fake:
            fake.hold.clear()
            client = AsyncClient(fake.url, "vk_test", flush_interval=0.05, timeout=30)
            try:
                for i in range(10):
                    client.record(action="user.login", actor_id=f"usr_{i}")
                ok, ticks = await _ticks_during(client.flush(timeout=0.6))
                assert ok is False
                assert ticks >= 20  # the loop ran all along (about 60 ticks of 10 ms)
            finally:
                fake.hold.set()
            assert await client.flush(timeout=10)
            assert await client.aclose()
            assert client.stats.stored == 10

    asyncio.run(main())


def test_async_round_trip_on_the_real_server(tenant: Tenant) -> None:
    """``async with AsyncClient(...)`` records, flushes and closes; the server has every event once."""

    async def main() -> list[str]:
        async with AsyncClient(tenant.url, tenant.key, flush_interval=0.05) as client:
            ids = [client.record(action="document.viewed", actor_id=f"usr_{i}") for i in range(25)]
            assert await client.flush(10)
            assert client.stats.stored == 25
        return ids

    ids = asyncio.run(main())
    assert server_ids(tenant.url, tenant.key) == ids
