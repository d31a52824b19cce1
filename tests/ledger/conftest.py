"""Fixtures for the ledger tests: the checkpoint signer of the test database, realistic events, and tenants
filled with them and checkpointed at chosen sizes. Fixtures only: helpers that tests import live in support.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
import pytest

from vigil import demo
from vigil.ingest.intake import Prepared, prepare_event
from vigil.ledger.checkpoints import Signer, load_signer, make_checkpoint
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import Store
from vigil.store.base import Tenant


def prepared(slug: str, count: int, seed: int = 1) -> list[Prepared]:
    """``count`` demo events of tenant ``slug``, validated and canonicalised as the intake does it."""
    raw, _ = demo.generate(slug, count, seed=seed)
    received_us = time.time_ns() // 1000
    out = []
    for item in raw[:count]:
        p = prepare_event(msgspec.convert(item, EventIn), slug, received_us)
        assert isinstance(p, Prepared), p
        out.append(p)
    assert len(out) == count
    return out


@pytest.fixture
def signer(settings: Settings) -> Signer:
    """The signing key the app and the CLI use for the test database (created next to it)."""
    return load_signer(settings)


@pytest.fixture
def events() -> Callable[..., list[Prepared]]:
    """``events(slug, count, seed=1)``: that many demo events of a tenant, ready to append."""
    return prepared


@pytest.fixture
def fill(store: Store, signer: Signer) -> Callable[..., Tenant]:
    """``fill(slug, checkpoints=(100, 300), total=None)``: a new tenant whose log gets a signed checkpoint at
    each size in ``checkpoints`` while it is appended to, then grows to ``total`` events."""

    def fill_tenant(slug: str, checkpoints: Sequence[int] = (), total: int | None = None) -> Tenant:
        tenant = store.create_tenant(slug)
        sizes = sorted(checkpoints)
        end = max([*sizes, total or 0])
        events = prepared(slug, end)
        done = 0
        for size in sizes:
            store.append(tenant.id, events[done:size])
            done = size
            cp = make_checkpoint(store, signer, tenant)
            assert cp is not None and cp.size == size
        if done < end:
            store.append(tenant.id, events[done:end])
        return tenant

    return fill_tenant
