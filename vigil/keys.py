"""The life of an API key: created, rotated, revoked. Each change is one store write and one event in the
platform's own log (tenant ``vigil``), so who changed which key, and when, is itself tamper-evident.

The CLI and the admin API both call these; neither changes a key any other way.
"""

from __future__ import annotations

import getpass
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.auth import create_key, key_text, new_secret
from vigil.errors import InvalidRequest, NotFound
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import Actor, Context, EventIn, Target
from vigil.store.base import PLATFORM_TENANT, ApiKey, Store, Tenant
from vigil.store.sqlite import now_text

MAX_OVERLAP = 30 * 86_400
"""The longest a replaced secret may keep working after a rotation (seconds)."""
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class KeyChange:
    """What a change did: the key as it now is, the platform event that records it (None when nothing
    changed), and a new secret's full key text, shown once."""

    key: ApiKey
    event: Prepared | None
    secret: str | None = None


def parse_overlap(text: str | int) -> int:
    """``24h``, ``90m``, ``30s``, ``7d`` or plain seconds, up to :data:`MAX_OVERLAP`."""
    m = _DURATION.match(str(text).strip())
    if m is None:
        raise InvalidRequest(f"overlap {str(text)[:40]!r}: use a duration like 24h, 90m, 30s or 0")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if seconds > MAX_OVERLAP:
        raise InvalidRequest(f"overlap is at most {MAX_OVERLAP // 86_400} days; got {text}")
    return seconds


def operator() -> Actor:
    """The actor of a change made with the CLI: whoever runs it on the server's machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return Actor(id="vigil-cli", type="operator", name=user[:200])


def key_actor(key: ApiKey) -> Actor:
    return Actor(id=key.key_id, type="api_key", name=key.name)


def describe(key: ApiKey) -> dict[str, Any]:
    """A key as the CLI and the API show it: never its secret or hashes."""
    overlap = key.previous_until if key.previous_hash is not None else None
    if overlap is not None and overlap <= now_text():
        overlap = None
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "rotated_at": key.rotated_at,
        "previous_secret_until": overlap,
        "revoked_at": key.revoked_at,
        "revoked": key.revoked,
    }


def find(store: Store, key_id: str, within: int | None = None) -> ApiKey:
    """The key ``key_id``; with ``within``, only if it belongs to that tenant (else NotFound, the same answer
    as for no key at all, so a tenant cannot learn another's key ids)."""
    key = store.get_key(key_id) if re.fullmatch(r"[0-9a-f]{16}", key_id) else None
    if key is None or (within is not None and key.tenant_id != within):
        raise NotFound(f"no key {key_id!r}" + (" in this tenant" if within is not None else ""))
    return key


def create(
    store: Store, tenant: Tenant, scopes: frozenset[str], name: str, by: Actor, ip: str | None = None
) -> KeyChange:
    key, secret = create_key(store, tenant, scopes, name)
    meta = {"scopes": ",".join(sorted(key.scopes))}
    return KeyChange(key, _event("api_key.created", key, by, meta, ip), secret)


def revoke(
    store: Store, key_id: str, by: Actor, within: int | None = None, ip: str | None = None
) -> KeyChange:
    """Revoke a key; revoking a revoked key changes nothing and records nothing."""
    find(store, key_id, within)
    changed = store.revoke_key(key_id, now_text())
    key = find(store, key_id)
    return KeyChange(key, _event("api_key.revoked", key, by, {}, ip) if changed else None)


def rotate(
    store: Store, key_id: str, overlap: int, by: Actor, within: int | None = None, ip: str | None = None
) -> KeyChange:
    """Give a key a new secret; the current one keeps working for ``overlap`` seconds, then is refused."""
    find(store, key_id, within)
    secret, digest = new_secret()
    until = datetime.fromtimestamp(time.time() + overlap, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store.rotate_key(key_id, digest, now_text(), until)
    key = find(store, key_id)
    meta = {"overlap_seconds": overlap, "previous_until": until}
    return KeyChange(key, _event("api_key.rotated", key, by, meta, ip), key_text(key_id, secret))


def revoke_named(store: Store, tenant: Tenant, name: str, by: Actor) -> list[KeyChange]:
    """Revoke every live key of ``tenant`` called ``name`` (how ``vigil demo`` retires the keys it printed)."""
    return [
        revoke(store, k.key_id, by) for k in store.list_keys(tenant.id) if k.name == name and not k.revoked
    ]


def record(store: Store, changes: list[KeyChange]) -> None:
    """Append the changes' events to the platform log (blocking; the API awaits ``append_async`` instead)."""
    events = [c.event for c in changes if c.event is not None]
    if events:
        store.append(store.get_tenant(PLATFORM_TENANT).id, events)


def _event(action: str, key: ApiKey, by: Actor, meta: dict[str, Any], ip: str | None) -> Prepared:
    ev = EventIn(
        action=action,
        category="audit",
        outcome="success",
        actor=by,
        targets=[Target(type="api_key", id=key.key_id, name=key.name), Target(type="tenant", id=key.tenant)],
        context=Context(ip=ip) if ip else None,
        message=f"{by.name or by.id} {action.rsplit('.', 1)[1]} API key {key.name} ({key.key_id}) of {key.tenant}",
        metadata={"tenant": key.tenant, **meta},
    )
    prepared = prepare_event(ev, PLATFORM_TENANT, time.time_ns() // 1000)
    if not isinstance(prepared, Prepared):  # our own fixed shape: a failure here is a bug, never user input
        raise InvalidRequest(f"could not record {action}: {prepared.errors}")
    return prepared
