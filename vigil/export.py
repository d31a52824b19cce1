"""Exports of a tenant's log as CSV, JSON or NDJSON, streamed page by page: ``GET /v1/export`` and
``vigil export`` both write what this module yields, so memory stays flat whatever the size of the log.

Events come in seq order. Without filters they are read by seq in chunks, and a chunk with a seq missing stops
the export with an error (a log with a hole must never be exported as if it were whole). With filters they are
the answer of the search, paged by seq from one snapshot. Bundles (a contiguous slice with its proofs) are
written by :func:`vigil.ledger.bundle.write_bundle`.

Every line, element or row carries the event's ``seq`` and ``leaf_hash``: the event without those two keys,
canonicalised (RFC 8785), is the leaf's bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from vigil.errors import StorageError
from vigil.model import Actor, Context, Event, stored_json
from vigil.store.base import RawEvent, SearchQuery, Store

FORMATS: tuple[str, ...] = ("csv", "json", "ndjson", "bundle")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8; header=present",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "bundle": "application/zip",
}
EXTENSIONS = {"csv": "csv", "json": "json", "ndjson": "ndjson", "bundle": "zip"}
CHUNK = 10_000  # seqs per read of an unfiltered export
PAGE = 1000  # events per search page of a filtered export

_NESTED: dict[str, type[msgspec.Struct]] = {"actor": Actor, "context": Context}
_AS_JSON = ("targets", "changes", "metadata")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet: it gets a leading ``'`` (OWASP's advice)."""


def csv_columns() -> list[str]:
    """The CSV header: ``seq``, ``leaf_hash``, then every field of the event in the model's order, ``actor``
    and ``context`` flattened (``actor.id``, ``context.ip`` …), lists and maps as JSON text."""
    out = ["seq", "leaf_hash"]
    for f in msgspec.structs.fields(Event):
        nested = _NESTED.get(f.encode_name)
        if nested is None:
            out.append(f.encode_name)
        else:
            out.extend(f"{f.encode_name}.{g.encode_name}" for g in msgspec.structs.fields(nested))
    return out


CSV_COLUMNS = csv_columns()
_decode = msgspec.json.Decoder(Event).decode
_json = msgspec.json.encode


def read_whole(store: Store, tenant_id: int, start: int, stop: int) -> list[RawEvent]:
    """Events [start, stop) of a tenant's log; StorageError when any of them is missing."""
    rows = store.read_range(tenant_id, start, stop)
    if len(rows) != stop - start or (rows and (rows[0][0] != start or rows[-1][0] != stop - 1)):
        raise StorageError(
            f"events {start}..{stop - 1} are not all in the store ({len(rows)} of {stop - start} found); "
            "the log has a hole: run vigil verify"
        )
    return rows


def pages(
    store: Store, tenant_id: int, query: SearchQuery | None, first: int, end: int
) -> Iterator[list[RawEvent]]:
    """The events of seqs [first, end) that match ``query`` (all of them without filters), in seq order, a page
    at a time."""
    if query is None or not query.filtered():
        for start in range(first, end, CHUNK):
            yield read_whole(store, tenant_id, start, min(start + CHUNK, end))
        return
    q = dataclasses.replace(
        query, order="seq", limit=PAGE, after=(0, first - 1) if first > 0 else None, snapshot=end - 1
    )
    while True:
        page = store.search(tenant_id, q)
        if page.events:
            yield page.events
        if page.next is None:
            return
        q = dataclasses.replace(q, after=page.next)


def encode(fmt: str, events: Iterable[list[RawEvent]]) -> Iterator[bytes]:
    """The bytes of an export in ``fmt`` (csv, json or ndjson), a chunk per page of events."""
    if fmt == "ndjson":
        for page in events:
            yield b"".join(stored_json(*e) + b"\n" for e in page)
    elif fmt == "json":
        yield b"["
        sep = b"\n"
        for page in events:
            parts = []
            for e in page:
                parts.append(sep + stored_json(*e))
                sep = b",\n"
            yield b"".join(parts)
        yield b"\n]\n"
    elif fmt == "csv":
        yield _csv_rows([CSV_COLUMNS])
        for page in events:
            yield _csv_rows(csv_row(*e) for e in page)
    else:
        raise ValueError(f"no such export format: {fmt}")


def csv_row(seq: int, leaf: bytes, body: bytes) -> list[Any]:
    """One event as a CSV row of :data:`CSV_COLUMNS` (text cells made safe for spreadsheets)."""
    ev = _decode(body)
    row: list[Any] = [seq, leaf.hex()]
    for f in msgspec.structs.fields(Event):
        value = getattr(ev, f.name)
        nested = _NESTED.get(f.encode_name)
        if nested is not None:
            row.extend(_cell(getattr(value, g.name, None)) for g in msgspec.structs.fields(nested))
        elif f.encode_name in _AS_JSON:
            row.append("" if value is None or value == [] else _json(value).decode())
        else:
            row.append(_cell(value))
    return row


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_rows(rows: Iterable[list[Any]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)  # RFC 4180: CRLF, quotes doubled where needed
    return buf.getvalue().encode("utf-8")
