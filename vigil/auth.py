"""API keys: ``vk_<key id>_<secret>``. Only SHA-256 of the secret is stored; the secret is shown once.

The secret has 256 bits of entropy, so a fast hash is enough (there is nothing to brute-force); comparison is
constant-time.

Every cache here is bounded, and none outlives a change in the database by more than :data:`KEY_TTL`: a key
revoked by another process (the CLI, another server) is refused within a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime

from vigil.errors import Forbidden, InvalidRequest, RateLimited, Unauthorized
from vigil.store.base import SCOPES, ApiKey, Store, Tenant
from vigil.store.sqlite import now_text

log = logging.getLogger("vigil.auth")

_KEY = re.compile(r"^vk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

KEY_TTL = 1.0
"""Seconds a key record is trusted before it is read again: the longest a revocation elsewhere goes unseen."""
KEY_CACHE_ENTRIES = 10_000
"""Key records kept; only keys that exist are cached (an unknown id is never remembered: random ids do not
repeat, so remembering them would only let a stranger grow the server)."""
TOUCH_EVERY = 60.0
"""A key's last-used time is written at most this often (seconds), never on every request."""


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    """Scopes from ``"ingest,read"`` or a list; unknown scopes are an error."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = sorted(set(items) - set(SCOPES))
    if unknown or not items:
        raise InvalidRequest(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(items) or 'none'}")
    return frozenset(items)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_secret() -> tuple[str, bytes]:
    """A fresh secret and its stored hash."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def key_text(key_id: str, secret: str) -> str:
    return f"vk_{key_id}_{secret}"


def create_key(store: Store, tenant: Tenant, scopes: frozenset[str], name: str = "") -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the stored record and the full key text (shown once)."""
    key_id = secrets.token_hex(8)
    secret, digest = new_secret()
    key = ApiKey(key_id, tenant.id, tenant.slug, name or f"key-{key_id[:6]}", scopes, digest, now_text())
    store.create_key(key)
    return key, key_text(key_id, secret)


def epoch(text: str | None) -> float:
    """Seconds since the epoch of a stored time (``now_text`` form); 0 for none."""
    return datetime.fromisoformat(text).timestamp() if text else 0.0


def secret_matches(key: ApiKey, secret: str, now: float | None = None) -> bool:
    """The secret is the key's current one, or the one a rotation replaced while its overlap lasts."""
    digest = hash_secret(secret)
    if hmac.compare_digest(key.secret_hash, digest):
        return True
    if key.previous_hash is None or not hmac.compare_digest(key.previous_hash, digest):
        return False
    return (time.time() if now is None else now) < epoch(key.previous_until)


class AuthThrottle:
    """Failed authentications per source address: after ``limit`` failures within ``window`` seconds the source
    gets 429 until the window ends. IPv6 sources count per /64 (one host holds a whole /64). The table keeps at
    most ``max_sources`` sources, dropping the least recently failing first, so a flood from many addresses
    costs bounded memory."""

    def __init__(
        self,
        limit: int,
        window: float,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self.clock = clock
        self._fails: OrderedDict[str, tuple[float, int]] = OrderedDict()  # source -> (window start, count)
        self._lock = threading.Lock()

    @staticmethod
    def source_of(host: str | None) -> str:
        try:
            addr = ipaddress.ip_address(host or "")
        except ValueError:
            return host or "?"
        if addr.version == 6 and addr.ipv4_mapped is None:
            return str(ipaddress.ip_network(f"{addr}/64", strict=False))
        return str(addr.ipv4_mapped or addr) if addr.version == 6 else str(addr)

    def blocked(self, source: str) -> float:
        """Seconds until ``source`` may try again; 0 when it may now."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            hit = self._fails.get(source)
        if hit is None or hit[1] < self.limit:
            return 0.0
        left = hit[0] + self.window - self.clock()
        return left if left > 0 else 0.0

    def failed(self, source: str) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        with self._lock:
            start, count = self._fails.pop(source, (now, 0))
            if now >= start + self.window:
                start, count = now, 0
            self._fails[source] = (start, count + 1)
            while len(self._fails) > self.max_sources:
                self._fails.popitem(last=False)
            # drop a few expired windows from the cold end, so the table shrinks when a flood stops
            for _ in range(2):
                oldest = next(iter(self._fails.items()), None)
                if oldest is None or now < oldest[1][0] + self.window:
                    break
                self._fails.popitem(last=False)

    def __len__(self) -> int:
        return len(self._fails)


class KeyRing:
    """Checks bearer keys against the store, caching records for at most ``ttl`` seconds so ingest does not
    read per request, and noting when each key was last used (written by :meth:`flush`)."""

    def __init__(
        self,
        store: Store,
        ttl: float = KEY_TTL,
        max_entries: int = KEY_CACHE_ENTRIES,
        throttle: AuthThrottle | None = None,
        touch_every: float = TOUCH_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = min(ttl, KEY_TTL)
        self.max_entries = max_entries
        self.throttle = throttle
        self.touch_every = touch_every
        self.clock = clock
        # key id -> (monotonic time the record goes stale, record, last use known: epoch seconds)
        self._cache: OrderedDict[str, tuple[float, ApiKey, float]] = OrderedDict()
        self._pending: dict[str, str] = {}  # key id -> last use not yet written
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, source: str | None = None) -> ApiKey:
        """The key the header names, or Unauthorized; RateLimited when ``source`` presented too many wrong keys
        lately (then only a key already cached with its right secret gets through, without touching the store).

        A missing or malformed header is a 401 and never counts: it costs nothing to refuse."""
        if not authorization:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        m = _KEY.match(token.strip()) if scheme.lower() == "bearer" else None
        if m is None:
            raise Unauthorized("the Authorization header must be 'Bearer vk_<id>_<secret>'")
        key_id, secret = m.groups()
        wait = self.throttle.blocked(source) if self.throttle is not None and source is not None else 0.0
        try:
            return self._check(key_id, secret, cached_only=wait > 0)
        except Unauthorized:
            if self.throttle is not None and source is not None:
                self.throttle.failed(source)
            if wait > 0:
                raise RateLimited(
                    f"too many failed authentications from this address; retry in {math.ceil(wait)} s",
                    retry_after=max(1, math.ceil(wait)),
                ) from None
            raise

    def _check(self, key_id: str, secret: str, cached_only: bool) -> ApiKey:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key_id)
            if hit is not None:
                self._cache.move_to_end(key_id)
        if hit is None or hit[0] < now:
            if hit is None and cached_only:
                raise Unauthorized("unknown or revoked API key")
            key = self.store.get_key(key_id)
            if key is None:
                self.forget(key_id)
                raise Unauthorized("unknown or revoked API key")
            hit = (now + self.ttl, key, epoch(key.last_used_at))
            with self._lock:
                self._cache[key_id] = hit
                self._cache.move_to_end(key_id)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        key = hit[1]
        if key.revoked or not secret_matches(key, secret):
            raise Unauthorized("unknown or revoked API key")
        self._note_use(key_id, hit[2])
        return key

    def _note_use(self, key_id: str, last_used: float) -> None:
        wall = time.time()
        if wall - last_used < self.touch_every or key_id in self._pending:
            return
        with self._lock:
            self._pending[key_id] = now_text()
            hit = self._cache.get(key_id)
            if hit is not None:  # so the next request does not note it again before the write lands
                self._cache[key_id] = (hit[0], hit[1], wall)

    def forget(self, key_id: str) -> None:
        """Drop a key's cached record: this process sees a change it made on the next request."""
        with self._lock:
            self._cache.pop(key_id, None)

    def flush(self) -> int:
        """Write the noted last-used times in one store write; returns how many keys."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self.store.touch_keys(pending)
        return len(pending)

    def __len__(self) -> int:
        return len(self._cache)


async def keep_flushing(ring: KeyRing) -> None:
    """Write the key ring's noted last uses every ``touch_every`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(ring.touch_every)
        try:
            await asyncio.to_thread(ring.flush)
        except Exception as exc:  # a busy store must not stop the loop; the next round writes newer times
            log.warning("could not record when keys were last used: %s", exc)


def require(key: ApiKey, *scopes: str) -> None:
    """Raise 403 unless the key holds one of ``scopes``."""
    if not key.scopes.intersection(scopes):
        raise Forbidden(
            f"this key lacks the {' or '.join(scopes)} scope (it has: {', '.join(sorted(key.scopes))})"
        )
