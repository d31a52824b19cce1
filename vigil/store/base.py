"""What every store gives the rest of Vigil, and the plain records it hands back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

if TYPE_CHECKING:
    from vigil.ingest.intake import Prepared
    from vigil.store.detection import Alert, AlertQuery, NewAlert, RuleSetting

SCOPES: tuple[str, ...] = ("ingest", "read", "admin", "security", "auditor", "metrics")
PLATFORM_TENANT = "vigil"
"""The platform's own log: every read, search, export and admin action on the logs is recorded there."""


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    created_at: str


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: int
    tenant: str
    name: str
    scopes: frozenset[str]
    secret_hash: bytes
    created_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None
    rotated_at: str | None = None
    previous_hash: bytes | None = None  # the secret a rotation replaced, accepted until previous_until
    previous_until: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Appended:
    """Where one event landed: its ``seq`` and leaf hash. ``duplicate``: the id was already in the log with the
    same event (a retry; these are the original's). ``conflict``: the id was already in the log with another
    event; nothing was stored, and ``seq`` and ``leaf`` are those of the event that holds the id."""

    seq: int
    leaf: bytes
    duplicate: bool = False
    conflict: bool = False


_decode_body = msgspec.json.Decoder(dict[str, Any]).decode


def _client_part(body: bytes) -> dict[str, Any]:
    ev = _decode_body(body)
    received = ev.pop("received_at", None)
    if ev.get("occurred_at") == received:
        del ev["occurred_at"]  # the client said nothing: the server wrote its receive time there
    return ev


def same_event(stored: bytes, new: bytes) -> bool:
    """Whether two canonical bodies with the same id are one event sent twice: equal but for what the server
    wrote, its receive time (``received_at``, and ``occurred_at`` where the client left it to the server).

    Both are the stored form (redacted, defaults filled in), so a retry of the same request is the same event
    even when it arrives a day later; any other difference, one character of a message, is a conflict."""
    return stored == new or _client_part(stored) == _client_part(new)


def repeat(seq: int, leaf: bytes, stored: bytes, new: Prepared) -> Appended:
    """The answer for an event whose id the log (or the same batch) already holds at ``seq``."""
    if same_event(stored, new.body):
        return Appended(seq, leaf, duplicate=True)
    return Appended(seq, leaf, conflict=True)


@dataclass(frozen=True)
class SearchQuery:
    """Filters that combine (AND); lists of targets match when the event has that target."""

    actor_id: str | None = None
    action: str | None = None  # exact, or a prefix ending in ".*"
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    category: str | None = None
    since_us: int | None = None  # occurred_at >= since
    until_us: int | None = None  # occurred_at < until
    text: str | None = None
    ip: str | None = None  # context.ip: an address, or a CIDR block (203.0.113.0/24, 2001:db8::/32)
    actor_name: str | None = None  # exact, case-insensitive
    actor_email: str | None = None  # exact, case-insensitive
    order: Literal["newest", "seq"] = "newest"
    """newest: occurred time, latest first, seq breaking ties; seq: log (arrival) order."""
    limit: int = 50
    after: tuple[int, int] | None = None  # keyset position: (occurred_us, seq) for newest, (0, seq) for seq
    snapshot: int | None = None  # highest seq visible to this paging session

    def filtered(self) -> bool:
        """Whether any filter narrows the log (the order, the page and the cursor do not)."""
        return any(
            v is not None
            for v in (
                self.actor_id,
                self.action,
                self.target_type,
                self.target_id,
                self.outcome,
                self.category,
                self.since_us,
                self.until_us,
                self.text,
                self.ip,
                self.actor_name,
                self.actor_email,
            )
        )


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: tree size, root hash and the signed note text."""

    size: int
    root: bytes
    note: str
    created_at: str


RawEvent = tuple[int, bytes, bytes]
"""An event as stored: (seq, leaf hash, canonical JSON body). :func:`vigil.model.stored_json` renders it."""


@dataclass(frozen=True)
class Page:
    events: list[RawEvent]
    next: tuple[int, int] | None
    snapshot: int


SubtreeReader = Callable[[int, int], bytes]


class Store(Protocol):
    """A place the log lives. SQLite (embedded) and PostgreSQL (production) both pass one contract suite."""

    def create_tenant(self, slug: str, name: str | None = None) -> Tenant: ...
    def get_tenant(self, slug: str) -> Tenant: ...
    def list_tenants(self) -> list[Tenant]: ...
    def create_key(self, key: ApiKey) -> None: ...
    def get_key(self, key_id: str) -> ApiKey | None: ...
    def list_keys(self, tenant_id: int | None = None) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark the key revoked at ``at``; False when it already was. NotFound when there is no such key."""

    def rotate_key(self, key_id: str, secret_hash: bytes, at: str, previous_until: str) -> None:
        """Give the key a new secret; the current one stays valid until ``previous_until`` (one replaced secret
        at most: an older one stops at once). NotFound for no such key, Conflict for a revoked one."""

    def touch_keys(self, used: Mapping[str, str]) -> None:
        """Record when keys were last used (key id -> time), in one write; never moves a time backwards."""

    def append(self, tenant_id: int, events: Sequence[Prepared]) -> list[Appended]:
        """Append events to a tenant's log durably; blocks until committed."""

    async def append_async(
        self, tenant_id: int, events: Sequence[Prepared], *, bounded: bool = False
    ) -> list[Appended]:
        """The same, from the event loop; concurrent callers share commits. ``bounded``: refuse with
        :class:`~vigil.errors.QueueFull` when the tenant already has its most events waiting."""

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Have ``listener`` called with the tenant ids of every commit that appended events."""

    def idempotent_answer(self, tenant_id: int, key_hash: bytes, since_us: int) -> tuple[bytes, bytes] | None:
        """(body fingerprint, answer) of the tenant's ingest request made with this idempotency key hash at or
        after ``since_us``; None when there is none."""

    def remember_answer(
        self, tenant_id: int, key_hash: bytes, fingerprint: bytes, answer: bytes, at_us: int, expire_us: int
    ) -> None:
        """Keep an ingest request's answer under its idempotency key hash (when two race, the first one stays),
        and drop every one kept before ``expire_us``."""

    def tree_size(self, tenant_id: int) -> int: ...
    def subtree_reader(self, tenant_id: int) -> SubtreeReader: ...
    def search(self, tenant_id: int, query: SearchQuery) -> Page: ...
    def get_event(self, tenant_id: int, event_id: str) -> RawEvent | None: ...
    def read_range(self, tenant_id: int, start: int, end: int) -> list[RawEvent]:
        """(seq, leaf hash, body) of seqs [start, end), in order; gaps show as missing seqs."""

    def read_packed(self, tenant_id: int, start: int, end: int) -> tuple[int, bytes, bytes]:
        """The stored events of seqs [start, end), in seq order and packed by the database for bulk reading: (how
        many there are, their leaf hashes concatenated, their bodies joined by newlines). Nothing is checked:
        ``vigil verify`` checks the count and the shape, and reads with ``read_range`` when they are off."""

    def tree_nodes(self, tenant_id: int) -> list[tuple[int, int, bytes]]:
        """Every stored (level, index, hash) of the tenant's tree data."""

    def add_checkpoint(self, tenant_id: int, size: int, root: bytes, note: str) -> StoredCheckpoint: ...
    def checkpoint(self, tenant_id: int, size: int | None = None) -> StoredCheckpoint | None:
        """The checkpoint at ``size``, or the newest one."""

    def checkpoints(self, tenant_id: int) -> list[StoredCheckpoint]: ...

    def detect_cursor(self, tenant_id: int) -> int:
        """The next seq of the tenant's log that the detection engine has not processed."""

    def commit_detection(
        self, tenant_id: int, alerts: Sequence[NewAlert], moves: tuple[int, int] | None = None
    ) -> list[Alert]:
        """Store alerts (each joins an open alert with its dedup key) and move the detection cursor from
        ``moves[0]`` to ``moves[1]``, in one transaction; Conflict if the cursor was not at ``moves[0]``."""

    def list_alerts(self, query: AlertQuery) -> list[Alert]: ...
    def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with this id, of whichever tenant (the caller checks the tenant), or None."""

    def rule_settings(self) -> list[RuleSetting]: ...
    def set_rule_setting(self, setting: RuleSetting) -> None: ...

    def check(self) -> None:
        """Raise StorageError unless the store can take writes and answer reads."""

    def close(self) -> None: ...
