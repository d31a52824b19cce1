"""A batch over the tenant's burst is answered 413 with the limit; the client splits it and delivers every event
once, instead of dead-lettering them or retrying a batch that can never pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_support import assert_exactly_once, server_ids, wait_for

from vigil.sdk import Client
from vigil.sdk.transport import classify
from vigil.testing import ServerProcess, tenant_with_key


def test_a_413_batch_too_large_means_split() -> None:
    """The 413 that names a limit is 'split' with that limit; any other 413 stays 'refused'."""
    body = (
        b'{"error":{"type":"batch_too_large","message":"m","details":[{"limit":"events","max":10,"got":30}]}}'
    )
    answer = classify(413, None, body)
    assert (answer.kind, answer.max_events, answer.max_bytes) == ("split", 10, None)
    assert classify(413, None, b'{"error":{"type":"payload_too_large","message":"m"}}').kind == "refused"


@pytest.fixture(scope="module")
def small_burst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    where: Path = tmp_path_factory.mktemp("vigil-split")
    database = str(where / "vigil.db")
    _, key = tenant_with_key(database, "acme", "ingest,read")
    extra = ["--rate-burst", "10", "--signing-key", str(where / "signing-key"), "--detect", "false"]
    extra += ["--search-rate-limit", "0"]
    with ServerProcess(database, synchronous="NORMAL", rate_limit=10, extra=extra) as server:
        yield server.url, key


@pytest.mark.slow
@pytest.mark.parametrize("spool", [False, True])
def test_the_client_splits_a_batch_over_the_burst(
    small_burst: tuple[str, str], tmp_path: Path, spool: bool
) -> None:
    """25 events in one batch against a burst of 10: delivered as batches of at most 10, each event once,
    nothing dead-lettered."""
    url, key = small_burst
    before = set(server_ids(url, key))
    with Client(
        url, key, tmp_path / "spool" if spool else None, batch_size=100, flush_interval=0.05
    ) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(25)]
        assert client.flush(30)
        wait_for(
            lambda: client.stats.stored == 25, 30, "every event delivered"
        )  # a spool answers flush first
        stats = client.stats
    assert stats.dead_lettered == 0 and stats.stored == 25
    assert_exactly_once(ids, [i for i in server_ids(url, key) if i not in before])
