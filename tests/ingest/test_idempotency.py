"""Idempotency keys on a real store (SQLite and PostgreSQL): claimed while a request runs, answered again after,
refused with another body, forgotten after the window, and never more than the key's hash kept."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from vigil.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from vigil.ingest.idempotency import Idempotency, idempotency_key
from vigil.store import Store


def test_a_key_is_claimed_while_in_flight_then_answers_again(store: Store) -> None:
    """A second request with a key in flight is a 409; once answered, the same body gets the answer, another
    body a 422; another tenant's same key is its own."""
    t, other = store.create_tenant("acme"), store.create_tenant("globex")
    keys = Idempotency(store, 60)

    async def run() -> None:
        first = await keys.claim(t.id, "key-1", b"f" * 32)
        assert first.answer is None
        with pytest.raises(Conflict, match="still being answered"):
            await keys.claim(t.id, "key-1", b"f" * 32)
        assert (await keys.claim(other.id, "key-1", b"g" * 32)).answer is None
        await first.keep(b'{"accepted":1}')
        first.release()
        again = await keys.claim(t.id, "key-1", b"f" * 32)
        assert again.answer == b'{"accepted":1}'
        with pytest.raises(IdempotencyKeyReused, match="another body"):
            await keys.claim(t.id, "key-1", b"x" * 32)

    asyncio.run(run())
    stored = store.idempotent_answer(t.id, hashlib.sha256(b"key-1").digest(), 0)
    assert stored == (b"f" * 32, b'{"accepted":1}')  # kept under the key's hash, never the key


def test_with_no_window_nothing_is_kept(store: Store) -> None:
    """idempotency_window=0: no answer is kept (the derived ids still make retries duplicates), and a key in
    flight is not held either."""
    t = store.create_tenant("acme")
    keys = Idempotency(store, 0)

    async def run() -> None:
        claim = await keys.claim(t.id, "k", b"f")
        assert claim.answer is None and (await keys.claim(t.id, "k", b"f")).answer is None
        await claim.keep(b"{}")
        claim.release()

    asyncio.run(run())
    assert store.idempotent_answer(t.id, hashlib.sha256(b"k").digest(), 0) is None


@pytest.mark.parametrize("bad", ["", " ", "two words", "x" * 256, "é"])
def test_a_key_must_be_visible_ascii(bad: str) -> None:
    """1 to 255 visible ASCII characters, else a 400 that says so."""
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        idempotency_key(bad)
    assert idempotency_key(None) is None and idempotency_key(" 884793cd-bef4 ") == "884793cd-bef4"
