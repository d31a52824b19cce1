"""API keys: ``vk_<key id>_<secret>``. Only SHA-256 of the secret is stored; the secret is shown once.

The secret has 256 bits of entropy, so a fast hash is enough (there is nothing to brute-force); comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable

from vigil.errors import Forbidden, InvalidRequest, Unauthorized
from vigil.store.base import SCOPES, ApiKey, Store, Tenant
from vigil.store.sqlite import now_text

_KEY = re.compile(r"^vk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    """Scopes from ``"ingest,read"`` or a list; unknown scopes are an error."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = sorted(set(items) - set(SCOPES))
    if unknown or not items:
        raise InvalidRequest(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(items) or 'none'}")
    return frozenset(items)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_key(store: Store, tenant: Tenant, scopes: frozenset[str], name: str = "") -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the stored record and the full key text (shown once)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        key_id, tenant.id, tenant.slug, name or f"key-{key_id[:6]}", scopes, hash_secret(secret), now_text()
    )
    store.create_key(key)
    return key, f"vk_{key_id}_{secret}"


class KeyRing:
    """Checks bearer keys against the store, caching records briefly so ingest does not read per request."""

    def __init__(self, store: Store, ttl: float = 30.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        m = _KEY.match(token.strip()) if scheme.lower() == "bearer" else None
        if m is None:
            raise Unauthorized("the Authorization header must be 'Bearer vk_<id>_<secret>'")
        key_id, secret = m.groups()
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is None or hit[0] < now:
            hit = (now + self.ttl, self.store.get_key(key_id))
            self._cache[key_id] = hit
        key = hit[1]
        if key is None or key.revoked or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            raise Unauthorized("unknown or revoked API key")
        return key


def require(key: ApiKey, *scopes: str) -> None:
    """Raise 403 unless the key holds one of ``scopes``."""
    if not key.scopes.intersection(scopes):
        raise Forbidden(
            f"this key lacks the {' or '.join(scopes)} scope (it has: {', '.join(sorted(key.scopes))})"
        )
