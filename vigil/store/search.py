"""One search planner for every store: paging window, time narrowing and the filter SQL.

Stores differ only in their SQL dialect (placeholders, the name of the log-order key, table names, full-text
search); a :class:`Dialect` says how. The plan rules live here once:

- every statement is bounded to the tenant's key range ``[lo, hi]``, which also carries the snapshot and the
  cursor, so paging is stable while events arrive;
- a time range first narrows that range to the blocks of 256 events that can hold matches (``event_blocks``);
- a search by target walks the target key in log order; words as the only filter walk the full-text index in
  log order and stop at the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vigil.errors import InvalidRequest
from vigil.ledger.tiles import TILE_HEIGHT
from vigil.store.base import SearchQuery

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
    tenant: tuple[
        str, ...
    ]  # extra conditions naming the tenant ("tenant_id = ?"), with the tenant id as param
    text: TextClause


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


def window(query: SearchQuery, snapshot: int, base: int) -> tuple[int, int]:
    """The key range [lo, hi] a page may read: the snapshot, past the cursor (empty when lo > hi)."""
    lo, hi = base, base + snapshot
    if query.after is not None:
        if query.order == "newest":
            hi = min(hi, base + query.after[1] - 1)
        else:
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


def search_sql(d: Dialect, q: SearchQuery, lo: int, hi: int, tenant: list[Any]) -> tuple[str, list[Any]]:
    """The SELECT (key, leaf_hash, body) of one page, with its parameters."""
    m, k = d.mark, d.key
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
    for column, value in (("actor_id", q.actor_id), ("outcome", q.outcome), ("category", q.category)):
        if value is not None:
            where.append(f"e.{column} = {m}")
            params.append(value)
    if q.action is not None:
        if q.action.endswith(".*"):
            prefix = q.action[:-1]
            where.append(f"e.action >= {m} AND e.action < {m}")
            params += [prefix, prefix[:-1] + "/"]  # "/" sorts right after "."
        else:
            where.append(f"e.action = {m}")
            params.append(q.action)
    alone = source == f"{d.events} e" and len(where) == len(d.tenant) + 1  # nothing but words (and time)
    if q.since_us is not None:
        where.append(f"e.{d.occurred} >= {m}")
        params.append(q.since_us)
    if q.until_us is not None:
        where.append(f"e.{d.occurred} < {m}")
        params.append(q.until_us)
    if q.text:
        text_source, text_order, clause, text_params = d.text(q.text, lo, hi, alone)
        if text_source is not None and text_order is not None:
            source, order_col = text_source, text_order
        where.append(clause)
        params += text_params
    sql = (
        f"SELECT e.{k}, e.leaf_hash, e.body FROM {source} WHERE {' AND '.join(where)} "
        f"ORDER BY {order_col} {'DESC' if q.order == 'newest' else 'ASC'} LIMIT {m}"
    )
    params.append(q.limit + 1)
    return sql, params
