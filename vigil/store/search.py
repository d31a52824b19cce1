"""One search planner for every store: paging window, time narrowing and the filter SQL.

Stores differ only in their SQL dialect (placeholders, the name of the log-order key, table names, full-text
search); a :class:`Dialect` says how. The plan rules live here once:

- every statement is bounded to the tenant's key range ``[lo, hi]``, which also carries the snapshot (and, in
  log order, the cursor), so paging is stable while events arrive;
- a time range first narrows that range to the blocks of 256 events that can hold matches (``event_blocks``);
- a search by target walks the target key in log order; words as the only filter walk the full-text index in
  log order and stop at the limit;
- "newest" is occurred time, latest first, ``seq`` breaking ties (:func:`newest_page`): the blocks are visited
  latest ``max_occurred`` first, each batch with the log-order plans above, until no block left can hold an
  event newer than the page's last. Events arrive roughly in time order, so that is the first block or two;
  a backfill only adds the blocks it landed in, and those with older times are never read for a first page.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigil.errors import InvalidRequest
from vigil.ledger.tiles import TILE_HEIGHT
from vigil.store.base import SearchQuery

if TYPE_CHECKING:
    from vigil.model import Event

MAX_SEARCH_WORDS = 16
_WORD = re.compile(r"[^\W_]+\*?")

# (words, lo, hi, alone) -> (source or None, order column or None, where clause, params)
TextClause = Callable[[str, int, int, bool], tuple[str | None, str | None, str, list[Any]]]


@dataclass(frozen=True)
class Dialect:
    mark: str  # the placeholder: "?" or "%s"
    key: str  # the log-order column of events and event_targets ("rid" or "seq")
    events: str  # the events table
    targets: str  # the event_targets table
    occurred: str  # the occurred-time column
    blocks: str  # the event_blocks table
    tenant: tuple[
        str, ...
    ]  # extra conditions naming the tenant ("tenant_id = ?"), with the tenant id as param
    text: TextClause
    hints: bool = (
        False  # "+column" keeps a text column's index out of a plan (SQLite; PostgreSQL has no text "+")
    )


def search_words(text: str) -> list[str]:
    """The words of a free-text search (``word*`` for a prefix); a clear 400 when there are none or too many.

    Refused, never cut short: a search whose later words were dropped would answer a different question.
    """
    words = _WORD.findall(text)
    if not words:
        raise InvalidRequest("free-text search needs at least one word")
    if len(words) > MAX_SEARCH_WORDS:
        raise InvalidRequest(
            f"free-text search takes at most {MAX_SEARCH_WORDS} words; this one has {len(words)}"
        )
    return words


# -- the columns of the identity filters --------------------------------------------------------------------

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def ip_key(text: str | None) -> bytes | None:
    """The 16 bytes an address is indexed by (IPv4 as IPv4-mapped IPv6, so one byte order sorts both and a CIDR
    block is a range); None for no address or text that is not one address (``ip:port``, a list, a name)."""
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _V4_MAPPED + addr.packed if addr.version == 4 else addr.packed


def ip_text(key: bytes) -> str:
    """The address an :func:`ip_key` stands for, as text (for messages)."""
    if key[:12] == _V4_MAPPED:
        return str(ipaddress.IPv4Address(key[12:]))
    return str(ipaddress.IPv6Address(key))


def ip_range(text: str) -> tuple[bytes, bytes]:
    """The first and last :func:`ip_key` of an address or a CIDR block (host bits are allowed: 10.1.2.3/8 is
    10.0.0.0/8); a clear 400 otherwise."""
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            lo, hi = net.network_address, net.broadcast_address
        else:
            lo = hi = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidRequest(
            f"ip {text[:80]!r} is not an IPv4 or IPv6 address or CIDR block "
            "(like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32)"
        ) from None
    first, last = ip_key(str(lo)), ip_key(str(hi))
    if first is None or last is None:  # pragma: no cover - an ipaddress object always prints as one
        raise InvalidRequest(f"ip {text[:80]!r} is not an address")
    return first, last


def fold(text: str | None) -> str | None:
    """An actor's name or e-mail as indexed and searched: case-folded (exact otherwise)."""
    return None if text is None else text.casefold()


def search_columns(event: Event) -> tuple[bytes | None, str | None, str | None]:
    """The identity columns of an event's row: (ip key, folded actor name, folded actor e-mail)."""
    ctx = event.context
    return ip_key(ctx.ip if ctx is not None else None), fold(event.actor.name), fold(event.actor.email)


# -- the plan ---------------------------------------------------------------------------------------------


def window(query: SearchQuery, snapshot: int, base: int) -> tuple[int, int]:
    """The key range [lo, hi] a page may read: the snapshot, and in log order past the cursor (empty when
    lo > hi). In newest order the cursor is a time and a seq, which :func:`search_sql` applies."""
    lo, hi = base, base + snapshot
    if query.after is not None and query.order != "newest":
        lo = max(lo, base + query.after[1] + 1)
    return lo, hi


def time_bounds_sql(d: Dialect, blocks: str) -> str:
    """SQL giving (first block, last block) that can hold matches, and the last complete block, for a tenant."""
    m = d.mark
    hit = f"max_occurred >= {m} AND min_occurred < {m}"
    where = " AND ".join(c.replace("?", m) for c in d.tenant) or "TRUE"
    return (
        f"SELECT min(block) FILTER (WHERE {hit}), max(block) FILTER (WHERE {hit}), max(block) "
        f"FROM {blocks} WHERE {where}"
    )


def narrow(lo: int, hi: int, base: int, blocks: tuple[Any, Any, Any], tail_hit: bool) -> tuple[int, int]:
    """Narrow [lo, hi] with the block range index: ``blocks`` is (first, last, last complete) as above, and
    ``tail_hit`` says whether the incomplete last block holds a match."""
    bmin, bmax, _ = blocks
    tail = tail_start(base, blocks)
    new_lo = base + (bmin << TILE_HEIGHT) if bmin is not None else tail
    if tail_hit:
        new_hi = hi
    elif bmax is not None:
        new_hi = base + ((bmax + 1) << TILE_HEIGHT) - 1
    else:
        return 1, 0  # nothing can match
    return max(lo, new_lo), min(hi, new_hi)


def tail_start(base: int, blocks: tuple[Any, Any, Any]) -> int:
    """The first key after the last complete block."""
    complete = blocks[2]
    return base + (0 if complete is None else (complete + 1) << TILE_HEIGHT)


def tail_sql(d: Dialect) -> str:
    """Is there a match in keys [from, hi] (the tail)? Index use on the time column is suppressed on purpose:
    the tail is at most 255 rows found by key."""
    m = d.mark
    return (
        f"SELECT 1 FROM {d.events} WHERE {d.key} >= {m} AND {d.key} <= {m} AND +{d.occurred} >= {m} "
        f"AND +{d.occurred} < {m} LIMIT 1"
    )


def search_sql(
    d: Dialect,
    q: SearchQuery,
    lo: int,
    hi: int,
    tenant: list[Any],
    base: int = 0,
    *,
    by_key: bool = False,
    range_index: bool = True,
) -> tuple[str, list[Any]]:
    """The SELECT (key, leaf_hash, body, occurred) of one page, or in newest order of one batch of blocks, with
    its parameters (``base``: the tenant's first key, which the cursor's seq is counted from). In log order the
    rows come in key order and stop at the limit; in newest order they are sorted by time, and the time column's
    own index is kept out of the plan (the blocks narrowed the time already; walking that index from the top
    would read every newer event of the tenant). ``by_key``: newest order's filters, in descending key order
    (the probe of :func:`newest_page`). ``range_index=False`` keeps the indexes of the range filters (an action
    prefix, a CIDR block) out of the plan: for a small key range the key itself is the better way in, while the
    range index would read every match of the tenant and sort them."""
    m, k = d.mark, d.key
    newest = q.order == "newest"
    occ = f"+e.{d.occurred}" if newest else f"e.{d.occurred}"
    plus = "" if range_index or not d.hints else "+"
    where = [c.replace("?", m).replace("tenant_id", "e.tenant_id") for c in d.tenant] + [
        f"e.{k} BETWEEN {m} AND {m}"
    ]
    params: list[Any] = [*tenant, lo, hi]
    source, order_col = f"{d.events} e", f"e.{k}"
    tenant_t = [c.replace("?", m).replace("tenant_id", "t.tenant_id") for c in d.tenant]
    if q.target_type is not None and q.target_id is not None:
        # (target id, type, key) leads the targets' key: rows come in log order, one per event
        source, order_col = f"{d.targets} t JOIN {d.events} e ON e.{k} = t.{k}", f"t.{k}"
        where += [*tenant_t, f"t.target_id = {m}", f"t.type = {m}", f"t.{k} BETWEEN {m} AND {m}"]
        params += [*tenant, q.target_id, q.target_type, lo, hi]
    elif q.target_type is not None or q.target_id is not None:
        column, value = ("type", q.target_type) if q.target_id is None else ("target_id", q.target_id)
        inner = " AND ".join(
            [*(c.replace("?", m) for c in d.tenant), f"{column} = {m}", f"{k} BETWEEN {m} AND {m}"]
        )
        where.append(f"e.{k} IN (SELECT {k} FROM {d.targets} WHERE {inner})")
        params += [*tenant, value, lo, hi]
    for column, value in (
        ("actor_id", q.actor_id),
        ("outcome", q.outcome),
        ("category", q.category),
        ("actor_name", fold(q.actor_name)),
        ("actor_email", fold(q.actor_email)),
    ):
        if value is not None:
            where.append(f"e.{column} = {m}")
            params.append(value)
    if q.ip is not None:
        first, last = ip_range(q.ip)
        if first == last:
            where.append(f"e.ip = {m}")
            params.append(first)
        else:
            where.append(f"{plus}e.ip >= {m} AND {plus}e.ip <= {m}")
            params += [first, last]
    if q.action is not None:
        if q.action.endswith(".*"):
            prefix = q.action[:-1]
            where.append(f"{plus}e.action >= {m} AND {plus}e.action < {m}")
            params += [prefix, prefix[:-1] + "/"]  # "/" sorts right after "."
        else:
            where.append(f"e.action = {m}")
            params.append(q.action)
    alone = source == f"{d.events} e" and len(where) == len(d.tenant) + 1  # nothing but words (and time)
    if q.since_us is not None:
        where.append(f"{occ} >= {m}")
        params.append(q.since_us)
    if q.until_us is not None:
        where.append(f"{occ} < {m}")
        params.append(q.until_us)
    if newest and q.after is not None:
        where.append(f"({occ} < {m} OR ({occ} = {m} AND e.{k} < {m}))")
        params += [q.after[0], q.after[0], base + q.after[1]]
    if q.text:
        text_source, text_order, clause, text_params = d.text(q.text, lo, hi, alone)
        if text_source is not None and text_order is not None:
            source, order_col = text_source, text_order
        where.append(clause)
        params += text_params
    order = f"{occ} DESC, e.{k} DESC" if newest else f"{order_col} ASC"
    if by_key:
        order = f"{order_col} DESC"
    sql = (
        f"SELECT e.{k}, e.leaf_hash, e.body, e.{d.occurred} FROM {source} WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT {m}"
    )
    params.append(q.limit + 1)
    return sql, params


Row = tuple[Any, ...]
"""A row of :func:`search_sql`: (key, leaf hash, body, occurred)."""
Runner = Callable[[str, list[Any]], list[Row]]
"""Runs one statement of a store's read transaction and returns its rows."""

FIRST_BATCH = 1  # blocks in the first batch after the tail
GROWTH = 4  # each batch this many times the last: a rare match costs a few statements, not one per block
RANGE_INDEX_KEYS = 64 << TILE_HEIGHT  # batches smaller than 64 blocks read a prefix or CIDR filter by key


def newest_page(
    d: Dialect, run: Runner, q: SearchQuery, snapshot: int, base: int, tenant: list[Any]
) -> tuple[list[Row], tuple[int, int] | None]:
    """One page in newest order (occurred time, latest first, seq breaking ties) and the cursor after it.

    The blocks of 256 events are visited latest ``max_occurred`` first: the incomplete tail, then batches of
    blocks growing by :data:`GROWTH`, each read with the log-order plan of :func:`search_sql` restricted to its
    keys, keeping the best ``limit + 1`` rows. It stops when the last of them is later than every block not yet
    read (no event there can rank above it), so the page is exact however the times are spread."""
    lo, hi = base, base + snapshot
    limit = q.limit
    if q.since_us is None and q.until_us is None and q.filtered():
        # A rare filter has its few matches found fastest by the log-order plan: when it finds no more than a
        # page, they are all, and only need sorting. (With times, the blocks narrow better than this would.)
        found = run(*search_sql(d, q, lo, hi, tenant, base, by_key=True))
        if len(found) <= limit:
            found.sort(key=lambda r: (r[3], r[0]), reverse=True)
            return found, None
    m = d.mark
    where_t = " AND ".join(c.replace("?", m) for c in d.tenant) or "TRUE"
    rows = run(f"SELECT max(block) FROM {d.blocks} WHERE {where_t}", list(tenant))
    complete = rows[0][0] if rows else None
    tail = base + (0 if complete is None else (complete + 1) << TILE_HEIGHT)
    best: list[Row] = []

    def take(a: int, b: int) -> None:
        sql, params = search_sql(d, q, a, b, tenant, base, range_index=b - a >= RANGE_INDEX_KEYS)
        best.extend(run(sql, params))
        best.sort(key=lambda r: (r[3], r[0]), reverse=True)
        del best[limit + 1 :]

    if max(tail, lo) <= hi:
        take(max(tail, lo), hi)
    last_block = (hi - base) >> TILE_HEIGHT
    blocks = _by_latest(d, run, q, tenant, last_block)
    head = next(blocks, None)
    size = FIRST_BATCH
    while head is not None:
        if len(best) > limit and best[limit][3] > head[1]:
            break  # every block left ends before the page's last row
        batch: list[int] = []
        while head is not None and len(batch) < size:
            batch.append(head[0])
            head = next(blocks, None)
        for first, last in _runs(batch):
            take(base + (first << TILE_HEIGHT), min(hi, base + ((last + 1) << TILE_HEIGHT) - 1))
        size *= GROWTH
    page = best[:limit]
    nxt = (page[-1][3], page[-1][0] - base) if len(best) > limit else None
    return page, nxt


def _by_latest(
    d: Dialect, run: Runner, q: SearchQuery, tenant: list[Any], last_block: int
) -> Iterator[tuple[int, int]]:
    """(block, max_occurred) of the tenant's complete blocks up to ``last_block`` that can hold a match of the
    query's times and cursor, latest ``max_occurred`` first (ties: the later block), read in growing pages."""
    m = d.mark
    conds = [c.replace("?", m) for c in d.tenant] + [f"block <= {m}"]
    params: list[Any] = [*tenant, last_block]
    if q.since_us is not None:
        conds.append(f"max_occurred >= {m}")
        params.append(q.since_us)
    if q.until_us is not None:
        conds.append(f"min_occurred < {m}")
        params.append(q.until_us)
    if q.after is not None:
        conds.append(f"min_occurred <= {m}")
        params.append(q.after[0])
    where = " AND ".join(conds)
    page, key = 8, None
    while True:
        after = f" AND (max_occurred, block) < ({m}, {m})" if key else ""
        extra: list[Any] = [key[1], key[0]] if key else []
        got = run(
            f"SELECT block, max_occurred FROM {d.blocks} WHERE {where}{after} "
            f"ORDER BY max_occurred DESC, block DESC LIMIT {m}",
            [*params, *extra, page],
        )
        yield from ((int(b), int(t)) for b, t in got)
        if len(got) < page:
            return
        key = (int(got[-1][0]), int(got[-1][1]))
        page *= GROWTH


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    """Consecutive block numbers as (first, last) runs, in descending order."""
    out: list[tuple[int, int]] = []
    for b in sorted(blocks, reverse=True):
        if out and out[-1][0] == b + 1:
            out[-1] = (b, out[-1][1])
        else:
            out.append((b, b))
    return out
