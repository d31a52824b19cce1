"""``Idempotency-Key`` on ``POST /v1/events``: a retried request gets the answer the first one got.

WorkOS's clients send one event per request, without an id, and an ``Idempotency-Key`` header to make retries
safe; Stripe and the IETF draft "The Idempotency-Key HTTP Header Field" work the same way. Vigil keeps, per
tenant and for ``idempotency_window`` seconds, the SHA-256 of each key (never the key: it is the client's
string), the fingerprint of the body it came with (:func:`vigil.ingest.intake.request_fingerprint`: the same
JSON values, however spaced) and the answer given:

- the same key and the same body again: the same answer, replayed (``Idempotent-Replayed: true``), and nothing
  is stored twice;
- the same key with another body: 422 ``idempotency_key_reused``, and nothing is stored;
- the same key while its first request is still being answered (in this process): 409, retry shortly.

Only answers that stored something (200) are kept: a refusal (401, 413, 429, 503, or 422 for every event) leaves
nothing to replay, so the retry is simply tried again. The kept answer is a second write after the events'
commit; if the process dies between the two, the retry is tried again, and lands on the same events anyway: the
events without an id got ids made from the key and the fingerprint (:func:`vigil.ids.derived_id`), so they come
back ``duplicate`` with their original seqs instead of being stored twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field

from vigil.errors import Conflict, IdempotencyKeyReused, InvalidRequest, StorageError
from vigil.store.base import Store

log = logging.getLogger("vigil.ingest")

MAX_KEY_LEN = 255
_KEY = re.compile(r"[!-~]{1,255}\Z")  # visible ASCII: a UUIDv4, as WorkOS suggests, or any token


def idempotency_key(header: str | None) -> str | None:
    """The request's Idempotency-Key (None without one); refused unless 1 to 255 visible ASCII characters."""
    if header is None:
        return None
    key = header.strip()
    if not _KEY.match(key):
        raise InvalidRequest(
            f"the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID, say), "
            "without spaces"
        )
    return key


@dataclass
class Claim:
    """A keyed request being answered: ``answer`` is set when an earlier one with the same body was answered."""

    tenant_id: int
    key_hash: bytes
    fingerprint: bytes
    answer: bytes | None = None
    _keys: Idempotency | None = field(default=None, repr=False)

    async def keep(self, answer: bytes) -> None:
        """Remember ``answer`` for retries of this request."""
        if self._keys is not None:
            await self._keys.keep(self, answer)

    def release(self) -> None:
        """The request is answered (or failed): a retry may come in."""
        if self._keys is not None:
            self._keys.busy.discard((self.tenant_id, self.key_hash))


class Idempotency:
    """The idempotency keys of one server: kept in the store, claimed in memory while a request runs."""

    def __init__(self, store: Store, window_s: int) -> None:
        self.store = store
        self.window_us = window_s * 1_000_000
        self.busy: set[tuple[int, bytes]] = set()

    async def claim(self, tenant_id: int, key: str, fingerprint: bytes) -> Claim:
        """Claim ``key`` for this request, or hand back the answer an earlier one with the same body got."""
        key_hash = hashlib.sha256(key.encode()).digest()
        if not self.window_us:  # answers are not kept; retries still land on the same events (derived ids)
            return Claim(tenant_id, key_hash, fingerprint)
        if (tenant_id, key_hash) in self.busy:
            raise Conflict(
                "a request with this Idempotency-Key is still being answered; retry in a moment for its answer"
            )
        now = time.time_ns() // 1000
        found = await asyncio.to_thread(
            self.store.idempotent_answer, tenant_id, key_hash, now - self.window_us
        )
        if found is not None:
            kept_fingerprint, answer = found
            if kept_fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used for a request with another body; an idempotency key names "
                    "one request: send a new key for new events"
                )
            return Claim(tenant_id, key_hash, fingerprint, answer)
        if (tenant_id, key_hash) in self.busy:  # taken while we looked
            raise Conflict(
                "a request with this Idempotency-Key is still being answered; retry in a moment for its answer"
            )
        self.busy.add((tenant_id, key_hash))
        return Claim(tenant_id, key_hash, fingerprint, None, self)

    async def keep(self, claim: Claim, answer: bytes) -> None:
        """Keep the answer. The events are committed by now: a store that fails here must not turn their
        answer into an error (a retry then lands on them as duplicates, by their derived ids)."""
        now = time.time_ns() // 1000
        try:
            await asyncio.to_thread(
                self.store.remember_answer,
                claim.tenant_id,
                claim.key_hash,
                claim.fingerprint,
                answer,
                now,
                now - self.window_us,
            )
        except StorageError as exc:
            log.warning("could not keep the answer of an idempotent request: %s", exc.message)
