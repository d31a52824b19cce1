"""What the client does with each kind of answer: retries with backoff and full jitter, honours Retry-After,
never retries a rejected event or a 4xx batch, and keeps what the server refused in the dead-letter file."""

from __future__ import annotations

import json
import logging
import random
import statistics
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sdk_support import FakeVigil, Tenant, server_ids

from vigil.sdk import Client
from vigil.sdk.transport import BACKOFF_BASE, MAX_RETRY_AFTER, backoff, classify, parse_retry_after


def _dead_letters(spool_dir: Path) -> list[dict[str, Any]]:
    path = spool_dir / "dead-letter.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_retry_after_is_honoured_on_429_and_503() -> None:
    """A 429 and then a 503 with Retry-After: 1 delay each resend by about a second, whatever the backoff
    setting, and the resent body is byte for byte the first one (same ids: the server stores them once)."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        if n == 0:
            return 429, {"Retry-After": "1"}, {"error": {"type": "rate_limited", "message": "slow down"}}
        if n == 1:
            return 503, {"Retry-After": "1"}, {"error": {"type": "storage_unavailable", "message": "busy"}}
        return None

    with (
        FakeVigil(script) as fake,
        Client(fake.url, "vk_test", flush_interval=0.05, max_backoff=0.01) as client,
    ):
        for i in range(3):
            client.record(action="user.login", actor_id=f"usr_{i}")
        assert client.flush(10)
        stats = client.stats
    first, second, third = fake.received
    assert first.body == second.body == third.body
    for before, after in ((first, second), (second, third)):
        assert 0.95 <= after.at - before.at <= 3.0  # Retry-After plus at most 10% jitter, loosely
    assert (stats.retries, stats.stored, stats.attempts) == (2, 3, 9)
    with pytest.warns(DeprecationWarning, match="attempts"):
        assert stats.sent == stats.attempts  # the old name, kept for a while


def test_server_errors_are_retried_with_capped_jittered_backoff() -> None:
    """5xx answers are retried with exponential backoff and full jitter, never longer than max_backoff."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return (500, {}, {"error": {"type": "internal_error", "message": "oops"}}) if n < 5 else None

    with (
        FakeVigil(script) as fake,
        Client(fake.url, "vk_test", flush_interval=0.05, max_backoff=0.3) as client,
    ):
        client.record(action="user.login", actor_id="usr_1")
        assert client.flush(10)
        assert client.stats.retries == 5
    assert len({r.body for r in fake.received}) == 1
    gaps = [b.at - a.at for a, b in zip(fake.received, fake.received[1:], strict=False)]
    assert len(gaps) == 5
    assert max(gaps) < 0.3 + 0.5  # the cap, plus scheduling slack


@pytest.mark.parametrize("status", [404, 405, 408, 502, 504])
def test_timeouts_and_gateway_errors_are_retried(status: int) -> None:
    """408 and the other 5xx mean "later": the same batch is sent again. So do 404 and 405: the url leads
    somewhere other than the ingest route (a proxy's path), and the events wait for that to be fixed."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return (status, {}, {"error": {"type": "x", "message": "later"}}) if n == 0 else None

    with (
        FakeVigil(script) as fake,
        Client(fake.url, "vk_test", flush_interval=0.05, max_backoff=0.05) as client,
    ):
        client.record(action="user.login", actor_id="usr_1")
        assert client.flush(10)
        assert client.stats.stored == 1
    assert len(fake.received) == 2 and fake.received[0].body == fake.received[1].body


def test_rejected_events_are_not_retried(spool_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A per-event ``rejected`` result is final: logged once with its errors, counted, dead-lettered, never
    sent again; the batch's other events are stored."""
    caplog.set_level(logging.WARNING, "vigil.sdk")

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return (200, {}, fake.vigil_answer(events, rejected=frozenset({1}))) if n == 0 else None

    fake = FakeVigil(script)
    with fake, Client(fake.url, "vk_test", spool_dir, flush_interval=0.05, max_backoff=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(3)]
        assert client.flush(5)
        client.record(action="user.logout", actor_id="usr_9")  # the worker carries on
        assert client.flush(5)
        stats = client.stats
    assert [len(r.events) for r in fake.received] == [3, 1]
    assert (stats.stored, stats.rejected, stats.dead_lettered, stats.retries) == (3, 1, 1, 0)
    (dead,) = _dead_letters(spool_dir)
    assert dead["event"]["id"] == ids[1]
    assert dead["errors"] == [{"field": "action", "message": "not allowed here"}]
    logged = [r.getMessage() for r in caplog.records if ids[1] in r.getMessage()]
    assert len(logged) == 1 and "not allowed here" in logged[0]


@pytest.mark.parametrize("status", [400, 413, 415])
def test_4xx_goes_to_the_dead_letter_file_without_retry(spool_dir: Path, status: int) -> None:
    """A 4xx about the request itself (not the key, not the url, not "later") is final for the whole batch:
    every event goes to dead-letter.ndjson with the status and the server's message, nothing is resent, and
    later batches are sent as usual."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return (status, {}, {"error": {"type": "invalid_request", "message": "no way"}}) if n == 0 else None

    fake = FakeVigil(script)
    with fake, Client(fake.url, "vk_test", spool_dir, flush_interval=0.05, max_backoff=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(5)]
        assert client.flush(5)
        after = client.record(action="user.logout", actor_id="usr_1")
        assert client.flush(5)
        stats = client.stats
    assert [r.ids for r in fake.received] == [ids, [after]]
    dead = _dead_letters(spool_dir)
    assert [d["event"]["id"] for d in dead] == ids
    assert {(d["status"], d["error"]) for d in dead} == {(status, f"HTTP {status}: no way")}
    assert (stats.dead_lettered, stats.retries, stats.stored) == (5, 0, 1)


def test_4xx_without_a_spool_logs_the_events(caplog: pytest.LogCaptureFixture) -> None:
    """Without a spool_dir there is no dead-letter file: the refused events are written to the log, whole."""
    caplog.set_level(logging.ERROR, "vigil.sdk")

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        return 400, {}, {"error": {"type": "invalid_request", "message": "no way"}}

    with FakeVigil(script) as fake, Client(fake.url, "vk_test", flush_interval=0.05) as client:
        eid = client.record(action="user.login", actor_id="usr_1")
        assert client.flush(5)
    assert len(fake.received) == 1
    assert any(eid in r.getMessage() and "no way" in r.getMessage() for r in caplog.records)


def test_events_the_real_server_rejects_are_dead_lettered_with_its_errors(
    spool_dir: Path, tenant: Tenant
) -> None:
    """The real server's 422 (every event of the batch invalid) is not retried; each event is dead-lettered
    with the server's own errors, and the valid events of other batches are stored."""
    too_many = {f"k{i}": i for i in range(60)}
    with Client(tenant.url, tenant.key, spool_dir, batch_size=2, flush_interval=0.05) as client:
        bad = [client.record(action="user.login", actor_id="usr_1", metadata=too_many) for _ in range(2)]
        assert client.flush(10)
        good = client.record(action="user.login", actor_id="usr_2")
        assert client.flush(10)
        stats = client.stats
    assert (stats.rejected, stats.dead_lettered, stats.stored, stats.retries) == (2, 2, 1, 0)
    dead = _dead_letters(spool_dir)
    assert [d["event"]["id"] for d in dead] == bad
    assert all(d["status"] == 422 and d["errors"][0]["field"] == "metadata" for d in dead)
    assert server_ids(tenant.url, tenant.key) == [good]


def test_backoff_is_exponential_with_full_jitter() -> None:
    """Each wait is uniform in [0, min(cap, base * 2**(attempt-1))]: spread out, never over the cap."""
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(5.0, BACKOFF_BASE * 2 ** (attempt - 1))
        waits = [backoff(attempt, 5.0, rng) for _ in range(2000)]
        assert 0 <= min(waits) < ceiling * 0.05
        assert ceiling * 0.95 < max(waits) <= ceiling
        assert abs(statistics.mean(waits) - ceiling / 2) < ceiling * 0.05


def test_retry_after_parsing() -> None:
    """Retry-After in seconds or as an HTTP date; nonsense is ignored and absurd waits are capped."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("99999999") == MAX_RETRY_AFTER
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8 < (parse_retry_after(in_ten) or 0) <= 10


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "retry"),
        (302, "retry"),
        (400, "refused"),
        (401, "key"),
        (403, "key"),
        (404, "retry"),
        (405, "retry"),
        (408, "retry"),
        (413, "refused"),
        (415, "refused"),
        (422, "refused"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_what_each_status_means(status: int, kind: str) -> None:
    """Which answers are retried, which wait for a new key, and which are final (bodies here are not Vigil's:
    a 200 that is not an ingest answer is retried, a 422 without per-event details is final)."""
    answer = classify(status, "2", b"<html>not vigil</html>")
    assert answer.kind == kind
    assert answer.retry_after == (2.0 if status in (429, 503) else None)


def test_an_unknown_per_event_status_is_never_taken_as_stored(spool_dir: Path) -> None:
    """A result this client does not know (a newer server's ``conflict``) is a refusal of that event: counted
    as rejected and dead-lettered with the status as its error, never as stored."""

    def script(n: int, events: list[dict[str, Any]]) -> Any:
        if n:
            return None
        answer = fake.vigil_answer(events)
        answer["results"][0] = {"index": 0, "status": "conflict", "id": events[0]["id"], "seq": 7}
        return 200, {}, answer

    fake = FakeVigil(script)
    with fake, Client(fake.url, "vk_test", spool_dir, flush_interval=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(2)]
        assert client.flush(5)
        stats = client.stats
    assert (stats.stored, stats.rejected, stats.dead_lettered) == (1, 1, 1)
    (dead,) = _dead_letters(spool_dir)
    assert (dead["event"]["id"], dead["error"], dead["status"]) == (ids[0], "conflict", 200)
