"""The writer takes tenants in turn, on SQLite and PostgreSQL alike: a tenant's big batch is committed in parts
with other tenants' events between them, and a tenant with too many events waiting is refused (429) while others
are not."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from support import prepared_events

from vigil.errors import QueueFull
from vigil.settings import Settings
from vigil.store import Store, open_store


@pytest.fixture
def fair_store(settings: Settings) -> Iterator[Store]:
    values = {**settings.values, "commit_tenant_events": 100, "tenant_queue_events": 600}
    s = open_store(settings.database, Settings.load(values, environ={}))
    yield s
    s.close()


class _Held:
    """Holds the writer thread inside a write(fn) until released, so that jobs queue up behind it."""

    def __init__(self, store: Store, pool: ThreadPoolExecutor) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

        def hold(_: Any) -> None:
            self.entered.set()
            self.release.wait(30)

        self.done = pool.submit(store.write, hold)  # type: ignore[attr-defined]
        assert self.entered.wait(30)


def _commits(store: Store) -> list[set[int]]:
    seen: list[set[int]] = []
    store.on_commit(lambda tenants: seen.append(set(tenants)))
    return seen


def _bounded(store: Store, tenant_id: int, n: int, slug: str) -> Any:
    return asyncio.run(store.append_async(tenant_id, prepared_events(n, slug), bounded=True))


def test_a_small_tenant_is_not_queued_behind_a_big_batch(fair_store: Store) -> None:
    """Tenant A's 1,000 events are committed 100 at a time; B's one event goes into the first commit, not after
    A's ten."""
    a, b = fair_store.create_tenant("acme"), fair_store.create_tenant("globex")
    commits = _commits(fair_store)
    with ThreadPoolExecutor(4) as pool:
        held = _Held(fair_store, pool)
        big: Future[Any] = pool.submit(fair_store.append, a.id, prepared_events(1000))
        while not fair_store._lanes.get(a.id):  # type: ignore[attr-defined]  # A is queued first
            threading.Event().wait(0.005)
        small: Future[Any] = pool.submit(fair_store.append, b.id, prepared_events(1, "globex"))
        while not fair_store._lanes.get(b.id):  # type: ignore[attr-defined]
            threading.Event().wait(0.005)
        held.release.set()
        results, one = big.result(30), small.result(30)
    assert [r.seq for r in results] == list(range(1000)) and not any(r.duplicate for r in results)
    assert one[0].seq == 0
    appends = [c for c in commits if c]
    assert appends[0] == {a.id, b.id}, appends[:3]  # B rode with A's first part
    assert sum(1 for c in appends if a.id in c) == 10  # A's batch: ten commits of 100
    assert fair_store.tree_size(a.id) == 1000 and fair_store.tree_size(b.id) == 1


def test_a_split_batch_keeps_duplicates_and_order(fair_store: Store) -> None:
    """A batch committed in parts answers like one commit: seqs in order, a repeated id is a duplicate of the
    first even when the two fall into different parts."""
    a, b = fair_store.create_tenant("acme"), fair_store.create_tenant("globex")
    fair_store.append(b.id, prepared_events(1, "globex"))  # another tenant is active: A gets its share only
    commits = _commits(fair_store)
    events = prepared_events(250)
    events[200] = events[10]  # the same id in the third part as in the first
    results = fair_store.append(a.id, events)
    assert results[200].duplicate and results[200].seq == results[10].seq
    assert [r.seq for r in results if not r.duplicate] == list(range(249))
    assert fair_store.tree_size(a.id) == 249
    assert len(commits) == 3


def test_a_tenant_alone_fills_whole_commits(fair_store: Store) -> None:
    """With no other tenant active, a big batch is one commit: fairness costs nothing when nobody waits."""
    a = fair_store.create_tenant("acme")
    commits = _commits(fair_store)
    assert len(fair_store.append(a.id, prepared_events(1000))) == 1000
    assert commits == [{a.id}]


def test_a_tenant_over_its_queue_bound_is_refused_and_others_are_not(fair_store: Store) -> None:
    """With 600 of A's events waiting, another bounded batch of A gets QueueFull (429, Retry-After); B's batch
    and the server's own unbounded appends are still taken."""
    a, b = fair_store.create_tenant("acme"), fair_store.create_tenant("globex")
    with ThreadPoolExecutor(6) as pool:
        held = _Held(fair_store, pool)
        first = pool.submit(_bounded, fair_store, a.id, 600, "acme")
        while fair_store._queued.get(a.id, 0) < 600:  # type: ignore[attr-defined]
            threading.Event().wait(0.005)
        with pytest.raises(QueueFull) as refused:
            _bounded(fair_store, a.id, 1, "acme")
        assert refused.value.status == 429 and refused.value.retry_after >= 1
        other = pool.submit(_bounded, fair_store, b.id, 5, "globex")
        unbounded = pool.submit(fair_store.append, a.id, prepared_events(1))
        while not fair_store._lanes.get(b.id):  # type: ignore[attr-defined]
            threading.Event().wait(0.005)
        held.release.set()
        assert len(first.result(30)) == 600 and len(other.result(30)) == 5 and len(unbounded.result(30)) == 1
    assert fair_store._queued == {}  # type: ignore[attr-defined]  # nothing counted as waiting once written
    assert len(_bounded(fair_store, a.id, 10, "acme")) == 10  # room again


@pytest.mark.parametrize(("broken", "kept"), [(50, 0), (150, 100)])
def test_a_failing_part_fails_only_its_batch(fair_store: Store, broken: int, kept: int) -> None:
    """When a part of a split batch fails, its caller gets the error, the parts not yet written are dropped
    (earlier parts stay), and another tenant's events in the same commit are stored."""
    a, b = fair_store.create_tenant("acme"), fair_store.create_tenant("globex")
    events: list[Any] = prepared_events(300)
    events[broken] = _Broken(events[broken])
    with ThreadPoolExecutor(4) as pool:
        held = _Held(fair_store, pool)
        bad = pool.submit(fair_store.append, a.id, events)
        while not fair_store._lanes.get(a.id):  # type: ignore[attr-defined]
            threading.Event().wait(0.005)
        good = pool.submit(fair_store.append, b.id, prepared_events(3, "globex"))
        while not fair_store._lanes.get(b.id):  # type: ignore[attr-defined]
            threading.Event().wait(0.005)
        held.release.set()
        with pytest.raises(Exception):  # noqa: B017 - whatever the store raises for a broken row
            bad.result(30)
        assert len(good.result(30)) == 3
    assert fair_store.tree_size(b.id) == 3
    assert fair_store.tree_size(a.id) == kept  # parts before the broken one stay; the rest is never written
    assert fair_store._queued == {} and not fair_store._lanes  # type: ignore[attr-defined]


class _Broken:
    """A prepared event whose body the database cannot store."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "body":
            return object()  # no driver can bind this
        return getattr(self._inner, name)
