"""The client gzips large batches (docs/sdk.md, `compress`), and the real server stores them: it accepts gzip."""

from __future__ import annotations

from sdk_support import FakeVigil, Tenant, server_ids

from vigil.sdk import Client
from vigil.sdk.transport import COMPRESS_OVER


def _record(client: Client, n: int) -> list[str]:
    return [
        client.record(action="report.exported", actor_id="usr_1", metadata={"note": "quarterly " * 12})
        for _ in range(n)
    ]


def test_large_batches_are_sent_gzipped() -> None:
    """compress=True (the default): a batch of 1 KiB or more goes with Content-Encoding: gzip."""
    with FakeVigil() as fake, Client(fake.url, "vk_test", batch_size=40, flush_interval=0.05) as client:
        _record(client, 40)
        assert client.flush(10)
    big = [r for r in fake.received if len(r.body) >= COMPRESS_OVER]
    assert big and all(r.headers.get("Content-Encoding") == "gzip" for r in big)


def test_the_server_stores_a_gzipped_batch(tenant: Tenant) -> None:
    """The same client against the real server: every event of the gzipped batches is stored."""
    with Client(tenant.url, tenant.key, batch_size=40, flush_interval=0.05) as client:
        ids = _record(client, 80)
        assert client.flush(30)
    assert sorted(server_ids(tenant.url, tenant.key)) == sorted(ids)
