"""Check, and rebuild, the indexes searches answer from against the ledger.

The Merkle tree proves the events' canonical bytes; searches never read them, they read *derived* rows: the
columns an event's row is filtered on (tenant, id, occurred time, action, category, outcome, actor, and the
identity columns: the address of ``context.ip``, the actor's folded name and e-mail), its target rows, the
full-text index and the blocks of the time index. An attacker who can write the database can hide an event from
search (delete its words), plant it into another word's results, or file it under another tenant,
and the tree still verifies. So this module recomputes every derived value from the canonical bytes and compares
it with what the store holds, tenant by tenant, in ``seq`` order, as streams: memory stays bounded whatever the
size of the log.

Stores hand out their derived rows through :class:`IndexSource` (``index_source()``), already merged per ``seq``
and read from one snapshot, and apply repairs (``repair_index()``); what the rows must be is decided here, once.
Every finding names the tenant and the ``seq`` (or the block) and carries the repair that makes the row what the
ledger says, which ``vigil reindex`` applies.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, Protocol

import msgspec

from vigil.ingest.intake import search_text
from vigil.ledger.tiles import TILE_HEIGHT, TILE_WIDTH
from vigil.model import Event
from vigil.store.base import Tenant
from vigil.store.search import ip_text, search_columns


class Columns(NamedTuple):
    """The derived columns of an event's row. ``tenant_id`` and ``received_us`` are None where a store has no
    such column (PostgreSQL's schema is the tenant; SQLite keeps no arrival time)."""

    tenant_id: int | None
    id: str
    occurred_us: int
    received_us: int | None
    action: str
    category: str
    outcome: str
    actor_id: str
    ip: bytes | None = None
    actor_name: str | None = None
    actor_email: str | None = None


Target = tuple[str, str, int]
"""A target row: (type, id, the tenant it is filed under)."""


EventRow = tuple[
    int,
    int | None,
    object,
    int,
    int | None,
    str,
    str,
    str,
    str,
    bytes | None,
    str | None,
    str | None,
    bytes,
    str | None,
]
"""An event row as a store hands it over: (seq, *the derived columns in :class:`Columns` order, body, indexed
text or None). The id column is in the store's own form (see ``IndexSource.id_form``)."""

TargetRow = tuple[int, str, str, int]
"""(seq, type, id, the tenant the row is filed under)."""


@dataclass
class Chunk:
    """A tenant's derived rows for a range of seqs: event rows in seq order, target rows and indexed words by
    seq (words only where they live apart from the event row: SQLite's full-text index)."""

    events: list[EventRow]
    targets: dict[int, set[Target]]
    words: dict[int, frozenset[str]]


@dataclass(frozen=True)
class TenantIndex:
    """One tenant's derived rows, from one snapshot: its log size, chunks in seq order, blocks in block order."""

    size: int
    chunks: Iterator[Chunk]
    blocks: Iterator[tuple[int, int, int]]


CHUNK = 4096


def chunks(
    read_events: Callable[[int, int], list[EventRow]],
    size: int,
    targets: Iterator[TargetRow],
    words: Iterator[tuple[int, frozenset[str]]] | None = None,
) -> Iterator[Chunk]:
    """Cut a tenant's streams into chunks of CHUNK seqs: ``read_events(lo, hi)`` reads the event rows of seqs
    [lo, hi); ``targets`` and ``words`` are seq-ordered streams, which may run past the log's end (rows for
    events that do not exist), so chunks go on until they are drained."""
    tg = next(targets, None)
    wd = next(words, None) if words is not None else None
    lo = 0
    while True:
        if lo >= size:  # past the log: only stray index rows, jump to the next one
            heads = [x[0] for x in (tg, wd) if x is not None]
            if not heads:
                return
            lo = max(lo, min(heads) - min(heads) % CHUNK)
        hi = lo + CHUNK
        events = read_events(lo, min(hi, size)) if lo < size else []
        tmap: dict[int, set[Target]] = {}
        while tg is not None and tg[0] < hi:
            tmap.setdefault(tg[0], set()).add((tg[1], tg[2], tg[3]))
            tg = next(targets, None)
        wmap: dict[int, frozenset[str]] = {}
        if words is not None:
            while wd is not None and wd[0] < hi:
                wmap[wd[0]] = wd[1]
                wd = next(words, None)
        yield Chunk(events, tmap, wmap)
        lo = hi


class IndexSource(Protocol):
    """What a store gives the checker (``store.index_source(tenant_id)``, a context manager)."""

    terms: bool
    """True when ``words`` are index terms (compare term sets), False when they are the indexed text."""
    tenant_column: bool
    """Whether event and target rows name their tenant in a column (SQLite) or by where they live (PostgreSQL)."""
    arrival_column: bool
    """Whether event rows keep the arrival time (PostgreSQL's partition key)."""

    def text_form(self, value: str) -> str:
        """A string as the store keeps it in a text column."""

    def id_form(self, value: str) -> object:
        """An event id as the store keeps it in its id column."""

    def tenant(self, tenant_id: int) -> AbstractContextManager[TenantIndex]: ...

    def strays(self) -> Iterator[Stray]:
        """Index rows filed under no tenant, or under one tenant while naming another's event (only when the
        source covers every tenant)."""


@dataclass(frozen=True)
class Stray:
    tenant_id: int
    seq: int
    what: str
    fix: Fix


@dataclass(frozen=True)
class Fix:
    """One repair: make a derived row what the ledger says. ``kind`` says which; ``expected`` None deletes."""

    kind: Literal["columns", "targets", "words", "block"]
    key: int  # the seq, or the block number for kind "block"
    expected: object = None
    stored: object = None
    tenant_id: int | None = None  # for strays filed under another tenant


@dataclass(frozen=True)
class Finding:
    tenant: str
    key: int
    message: str
    fix: Fix | None  # None: nothing an index rebuild can mend (the ledger itself is damaged)

    def __str__(self) -> str:
        return f"tenant {self.tenant}, {self.message}"


@dataclass
class IndexReport:
    tenants: int = 0
    events: int = 0
    seconds: float = 0.0
    problems: int = 0
    shown: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problems == 0


class IndexStore(Protocol):
    def index_source(self, tenant_id: int | None = None) -> AbstractContextManager[IndexSource]: ...
    def repair_index(self, tenant_id: int, fixes: Sequence[Fix]) -> None: ...


# -- what the rows must be ------------------------------------------------------------------------------------

_decode = msgspec.json.Decoder(Event).decode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ASCII_WORD = re.compile(r"[0-9a-z]+")


def to_us(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time as stored in an event."""
    return (datetime.fromisoformat(text) - _EPOCH) // _ONE_US


class _Tokenizer:
    """The words SQLite's FTS5 ``unicode61`` tokenizer makes of a text, as the full-text index holds them.

    ASCII text (nearly all of it) is split here: unicode61 keeps runs of ASCII letters and digits and folds case.
    Anything else goes through SQLite's own tokenizer, in a private in-memory table, so diacritics and case
    folding agree with the index to the byte (a property test pins the ASCII rule against SQLite)."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None

    def __call__(self, text: str) -> frozenset[str]:
        if text.isascii():
            return frozenset(_ASCII_WORD.findall(text.lower()))
        return self.sqlite(text)

    def sqlite(self, text: str) -> frozenset[str]:
        if self._conn is None:
            self._conn = sqlite3.connect(":memory:", isolation_level=None)
            self._conn.execute(
                "CREATE VIRTUAL TABLE t USING fts5 (text, content='', detail=none, tokenize='unicode61')"
            )
            self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        c = self._conn
        c.execute("INSERT INTO t(t) VALUES ('delete-all')")
        c.execute("INSERT INTO t(rowid, text) VALUES (1, ?)", (text,))
        return frozenset(term for (term,) in c.execute("SELECT term FROM v"))


tokens = _Tokenizer()


# -- the check ------------------------------------------------------------------------------------------------


def _quote(words: Iterable[str], limit: int = 5) -> str:
    words = sorted(words)
    shown = ", ".join(repr(w[:40]) for w in words[:limit])
    return shown + (f" and {len(words) - limit} more" if len(words) > limit else "")


COLUMN_NAMES = (
    "tenant",
    "id",
    "occurred time",
    "arrival time",
    "action",
    "category",
    "outcome",
    "actor",
    "ip",
    "actor name",
    "actor e-mail",
)


def check_tenant(
    src: IndexSource, tenant: Tenant, progress: Callable[[int], None] | None = None
) -> Iterator[Finding]:
    """Every derived row of ``tenant`` that differs from what its ledger says, in seq order (blocks as each one
    completes)."""
    slug, tid = tenant.slug, tenant.id
    own = tid if src.tenant_column else None
    arrival, terms, id_form = src.arrival_column, src.terms, src.id_form
    form = src.text_form
    plain = terms and not arrival  # SQLite: text columns hold strings as they are, no arrival time
    empty: frozenset[str] = frozenset()
    with src.tenant(tid) as ix:
        size = ix.size
        blocks = _Blocks(slug, size, ix.blocks)
        prev = -1
        for chunk in ix.chunks:
            cur_block, lo_us, hi_us, in_block = -1, 0, 0, 0
            for row in chunk.events:
                seq = row[0]
                if seq == prev:
                    yield _at(slug, seq, "more than one event row holds this seq", None)
                    continue
                prev = seq
                try:
                    ev = _decode(row[12])
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    yield _at(slug, seq, f"the event's bytes do not decode ({exc})", None)
                    continue
                if ev.tenant != slug:
                    yield _at(slug, seq, f"the event names tenant {ev.tenant!r}", None)
                occurred = to_us(ev.occurred_at)
                ip, name, email = search_columns(ev)
                want: tuple[object, ...]
                if plain:
                    want = (
                        own,
                        id_form(ev.id),
                        occurred,
                        None,
                        ev.action,
                        ev.category,
                        ev.outcome,
                        ev.actor.id,
                        ip,
                        name,
                        email,
                    )
                else:
                    want = (
                        own,
                        id_form(ev.id),
                        occurred,
                        to_us(ev.received_at) if arrival else None,
                        form(ev.action),
                        form(ev.category),
                        form(ev.outcome),
                        form(ev.actor.id),
                        ip,
                        None if name is None else form(name),
                        None if email is None else form(email),
                    )
                if row[1:12] != want:
                    yield _columns_finding(slug, seq, Columns(*row[1:12]), Columns(*want))  # type: ignore[arg-type]
                stored_t = chunk.targets.pop(seq, None)
                if ev.targets or stored_t:
                    got_t = frozenset(stored_t or ())
                    targets = frozenset((form(t.type), form(t.id), tid) for t in ev.targets)
                    if got_t != targets:
                        yield _targets_finding(slug, seq, got_t, targets)
                text = search_text(ev)
                if terms:
                    expected = tokens(text)
                    got = chunk.words.pop(seq, empty)
                    if got != expected:
                        yield _words_finding(slug, seq, got, expected, text)
                elif row[13] != form(text) and not _same_pieces(row[13], form(text)):
                    got_p, want_p = frozenset((row[13] or "").split(" ")), frozenset(form(text).split(" "))
                    f = _words_finding(slug, seq, got_p, want_p, form(text))
                    if got_p == want_p:  # the same words, repeated another number of times
                        f = _at(slug, seq, "full-text index text differs from the event's", f.fix)
                    yield Finding(f.tenant, f.key, f.message, Fix("words", seq, form(text), row[13]))
                # the time index: each complete block of 256 events keeps its earliest and latest time
                block = seq >> TILE_HEIGHT
                if block != cur_block:
                    cur_block, lo_us, hi_us, in_block = block, occurred, occurred, 0
                elif occurred < lo_us:
                    lo_us = occurred
                elif occurred > hi_us:
                    hi_us = occurred
                in_block += 1
                if in_block == TILE_WIDTH:
                    yield from blocks.complete(block, (lo_us, hi_us))
            what = "index rows name an event the log does not hold"
            for seq, stored in sorted(chunk.targets.items()):
                rows = frozenset(stored)
                yield _at(slug, seq, what + " (target rows)", Fix("targets", seq, frozenset(), rows))
            for seq, words in sorted(chunk.words.items()):
                yield _at(slug, seq, what + " (full-text index)", Fix("words", seq, None, words))
            if progress is not None:
                progress(len(chunk.events))
        yield from blocks.rest()


def _same_pieces(stored: str | None, want: str) -> bool:
    """Whether an indexed text holds the same words in another order: the canonical bytes sort the metadata
    keys, the text was made from the event as sent, and a full-text index does not care about order."""
    return stored is not None and sorted(stored.split(" ")) == sorted(want.split(" "))


def _at(slug: str, seq: int, message: str, fix: Fix | None) -> Finding:
    return Finding(slug, seq, f"seq {seq}: {message}", fix)


def _columns_finding(slug: str, seq: int, got: Columns, want: Columns) -> Finding:
    diff = [
        f"{name} is {_show(g, name)}, the event says {_show(w, name)}"
        for name, g, w in zip(COLUMN_NAMES, got, want, strict=True)
        if g != w
    ]
    moved = got.tenant_id != want.tenant_id
    why = " (moved out of this tenant's searches)" if moved else " (searches by them are misled)"
    return _at(slug, seq, "row columns differ: " + "; ".join(diff) + why, Fix("columns", seq, want, got))


def _show(value: object, name: str = "") -> str:
    if name == "ip" and isinstance(value, bytes) and len(value) == 16:
        return repr(ip_text(value))
    if isinstance(value, bytes) and len(value) == 16:
        return repr(str(uuid.UUID(bytes=value)))
    return repr(value)


def _targets_finding(slug: str, seq: int, got: frozenset[Target], want: frozenset[Target]) -> Finding:
    parts = []
    if want - got:
        parts.append(f"missing {sorted((t, i) for t, i, _ in want - got)} (hidden from target searches)")
    if got - want:
        parts.append(f"extra {sorted(got - want)} (planted into target searches)")
    return _at(slug, seq, "target rows differ: " + "; ".join(parts), Fix("targets", seq, want, got))


def _words_finding(slug: str, seq: int, got: frozenset[str], want: frozenset[str], text: str) -> Finding:
    parts = []
    if want - got:
        parts.append(f"is missing {_quote(want - got)} (hidden from search)")
    if got - want:
        parts.append(f"holds {_quote(got - want)}, which the event does not (planted into their results)")
    return _at(slug, seq, "full-text index " + "; ".join(parts), Fix("words", seq, text, got or None))


class _Blocks:
    """The stored time blocks of a tenant, compared with the ones its events make as each completes."""

    def __init__(self, slug: str, size: int, stored: Iterator[tuple[int, int, int]]) -> None:
        self.slug, self.size, self.stored = slug, size, stored
        self.head = next(stored, None)

    def _through(self, last: int, want: dict[int, tuple[int, int]]) -> Iterator[Finding]:
        while self.head is not None and self.head[0] <= last:
            b, mn, mx = self.head
            expected = want.pop(b, None)
            if expected != (mn, mx):
                yield _block_finding(self.slug, b, self.size, (mn, mx), expected)
            self.head = next(self.stored, None)
        for b, expected in sorted(want.items()):
            yield _block_finding(self.slug, b, self.size, None, expected)

    def complete(self, block: int, times: tuple[int, int]) -> Iterator[Finding]:
        return self._through(block, {block: times})

    def rest(self) -> Iterator[Finding]:
        """Blocks stored beyond the last complete one."""
        return self._through(1 << 62, {})


def _block_finding(
    slug: str, block: int, size: int, stored: tuple[int, int] | None, want: tuple[int, int] | None
) -> Finding:
    lo = block << TILE_HEIGHT
    where = f"time block {block} (seqs {lo}..{lo + TILE_WIDTH - 1})"
    if want is None:
        what = "is stored but the log has no such complete block"
    elif stored is None:
        what = "is missing: time searches may skip these events"
    else:
        what = f"holds times {stored[0]}..{stored[1]}, the events say {want[0]}..{want[1]} (time searches are misled)"
    return Finding(slug, lo, f"{where} {what}", Fix("block", block, want, stored))


def findings(
    store: IndexStore, tenants: Sequence[Tenant], every: bool, progress: Callable[[int], None] | None = None
) -> Iterator[Finding]:
    """Every finding of ``tenants``; with ``every`` (all tenants of the store) also rows filed under no tenant."""
    by_id = {t.id: t.slug for t in tenants}
    with store.index_source(None if every else tenants[0].id) as src:
        for t in sorted(tenants, key=lambda t: t.id):
            yield from check_tenant(src, t, progress)
        if every:
            for s in src.strays():
                slug = by_id.get(s.tenant_id, f"#{s.tenant_id} (no such tenant)")
                yield Finding(slug, s.seq, f"seq {s.seq}: {s.what}", s.fix)


def check_indexes(
    store: IndexStore,
    tenants: Sequence[Tenant],
    *,
    every: bool = True,
    progress: Callable[[int], None] | None = None,
    show: int = 50,
) -> IndexReport:
    """Check the derived rows of ``tenants`` (``every``: all of the store's) against their ledgers."""
    started = time.perf_counter()
    report = IndexReport(tenants=len(tenants))

    def count(n: int) -> None:
        report.events += n
        if progress is not None:
            progress(n)

    for f in findings(store, tenants, every, count):
        report.problems += 1
        if len(report.shown) < show:
            report.shown.append(f)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class ReindexReport:
    tenants: int = 0
    events: int = 0
    repaired: int = 0
    unrepairable: list[Finding] = field(default_factory=list)
    seconds: float = 0.0


def reindex(
    store: IndexStore,
    tenants: Sequence[Tenant],
    *,
    every: bool = True,
    progress: Callable[[int], None] | None = None,
    batch: int = 1000,
) -> ReindexReport:
    """Rebuild the derived rows of ``tenants`` from their ledgers: every row that differs from what the ledger
    says is rewritten (rows that agree are left alone, so an intact index costs only the reading)."""
    started = time.perf_counter()
    report = ReindexReport(tenants=len(tenants))
    by_slug = {t.slug: t.id for t in tenants}

    def count(n: int) -> None:
        report.events += n
        if progress is not None:
            progress(n)

    queue: dict[int, list[Fix]] = {}
    queued = 0
    for f in findings(store, tenants, every, count):
        if f.fix is None:
            report.unrepairable.append(f)
            continue
        tid = f.fix.tenant_id if f.fix.tenant_id is not None else by_slug[f.tenant]
        queue.setdefault(tid, []).append(f.fix)
        queued += 1
        report.repaired += 1
        if queued >= batch:
            for t, fixes in queue.items():
                store.repair_index(t, fixes)
            queue, queued = {}, 0
    for t, fixes in queue.items():
        store.repair_index(t, fixes)
    report.seconds = time.perf_counter() - started
    return report
