"""Request bodies to JSON values, strictly, with one reader for every path.

Every body means what the strict reader (the standard library's C scanner, with hooks) reads in it, so the events
that are validated, hashed and stored are exactly what any other strict reader of the same bytes would see. The
common body takes a faster road to the same result (:func:`decode_typed`: msgspec and a C scan for repeated
keys; tests/ingest/test_decode_fast.py holds the two to the same answers). What is refused, and why:

- a key that appears twice in one object: readers disagree on which one wins, so an event could mean one thing
  to Vigil and another to the client's own tools;
- a number outside the range of a 64-bit float (``1e400``) and the non-JSON literals ``NaN`` and ``Infinity``;
- a body that is not UTF-8, a lone surrogate escape (``"\\ud800"``: no Unicode text has it) and NUL characters
  (``"\\u0000"``: C strings, logs and terminals cut the text there);
- nesting deeper than the parser's own limit (about 900 levels; intake's limit for ``changes`` is far lower);
- anything after the JSON document (``[...] junk``).

A JSON body is one document: a problem of the document as a whole (broken syntax, a duplicate key anywhere) is a
400 for the request; an NDJSON body is one document per line, and a bad line is rejected alone, never taking the
good lines with it. Text problems (NUL, lone surrogates) are found per event in both, with the field's path.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from vigil.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from vigil.model import MAX_REQUEST_BYTES, MAX_REQUEST_EVENTS

NDJSON = "application/x-ndjson"
JSON = "application/json"

_INF = float("inf")


@dataclass(slots=True)
class Malformed:
    """An item of a body (an NDJSON line, an array element) that is not an acceptable JSON value, and why."""

    message: str
    field: str = ""


class _Refused(ValueError):
    """Raised from the parser's hooks: the text is JSON, but not JSON Vigil takes."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Refused(f"the key {dup[:60]!r} appears twice in one object; keys must be unique")
    return obj


def _float(text: str) -> float:
    value = float(text)
    if value == _INF or value == -_INF:
        raise _Refused(f"the number {text[:40]} is outside the range of a 64-bit float (about ±1.8e308)")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


_parse = json.JSONDecoder(object_pairs_hook=_object, parse_float=_float, parse_constant=_constant).decode


def _reason(exc: ValueError | RecursionError, text: str) -> str:
    """Why ``text`` could not be parsed, with the byte offset where the parser could say."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (invalid byte at {exc.start})"
    if isinstance(exc, json.JSONDecodeError):
        byte = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        return f"{exc.msg} at byte {byte} (line {exc.lineno}, column {exc.colno})"
    return str(exc)


def decode_content(body: bytes, encoding: str) -> bytes:
    """The request body with its Content-Encoding (identity or gzip) undone, never past the request limit.

    A gzip body may hold several members (RFC 1952 §2.2: ``cat a.gz b.gz``); every one is inflated, as ``gunzip``
    does. Anything after the last member that is not another member is refused, never ignored: a reader that
    stopped at the first member would see other events than one that did not. The limit holds for the inflated
    bytes: a small compressed body cannot expand into a large one (a zip bomb).
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send gzip or nothing")
    out: list[bytes] = []
    room = MAX_REQUEST_BYTES + 1
    view, pos, members = memoryview(body), 0, 0
    while pos < len(body) or not members:
        if members and bytes(view[pos : pos + 2]) != b"\x1f\x8b":
            raise InvalidRequest(
                f"the gzip body has {len(body) - pos} bytes after member {members} that are not another member"
            )
        members += 1
        if members > _MAX_MEMBERS:
            raise InvalidRequest(f"a gzip body holds at most {_MAX_MEMBERS} members")
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            if pos >= len(body):
                raise InvalidRequest("the gzip body is truncated")
            # fed in pieces, so what is left after a member is never more than a piece: no quadratic copying
            piece = view[pos : pos + _PIECE]
            pos += len(piece)
            try:
                chunk = inflater.decompress(piece, room)
            except zlib.error as exc:
                raise InvalidRequest(f"the gzip body is corrupt (member {members}): {exc}") from None
            room -= len(chunk)
            out.append(chunk)
            if room <= 0 or inflater.unconsumed_tail:
                raise PayloadTooLarge(f"the request body inflates to more than {MAX_REQUEST_BYTES} bytes")
        pos -= len(inflater.unused_data)
    return b"".join(out)


_MAX_MEMBERS = MAX_REQUEST_EVENTS  # one member per event is the most a client has reason to send
_PIECE = 64 * 1024


def parse(raw: bytes) -> Any:
    """One strict JSON document of ``raw``; raises :class:`ValueError` (with the reason) or ``RecursionError``."""
    return _parse(raw.decode("utf-8"))


def decode_body(body: bytes, content_type: str) -> list[Any]:
    """The items of a request body (see :func:`decode_request`), a WorkOS envelope unwrapped."""
    return decode_request(body, content_type)[0]


def decode_request(body: bytes, content_type: str) -> tuple[list[Any], str | None]:
    """The items of a request body, each a JSON value or :class:`Malformed`, and the ``organization_id`` of a
    WorkOS envelope (None without one).

    A JSON body is an array of events, or one event as an object (WorkOS sends one event per request): a batch
    of one. An object holding ``event`` and nothing but ``organization_id`` beside it is WorkOS's Create Event
    body; its event is the batch, and the caller checks the organization against the key's tenant. NDJSON lines
    that are not acceptable JSON become :class:`Malformed` items, so they are rejected one by one; a JSON body
    that is not acceptable JSON, or neither an array nor an object, is a 400 that says where.
    """
    media = content_type.split(";")[0].strip().lower()
    if media not in ("", JSON, NDJSON):
        raise UnsupportedMediaType(
            f"send {JSON} (an array of events, or one event) or {NDJSON} (one event per line); got {media}"
        )
    if media == NDJSON:
        items: list[Any] = []
        for lineno, line in enumerate(body.split(b"\n"), 1):
            if not line.strip():
                continue
            text = ""
            try:
                text = line.decode("utf-8")
                item = _parse(text)
            except (ValueError, RecursionError) as exc:
                items.append(Malformed(f"malformed JSON: line {lineno}: {_reason(exc, text)}"))
                continue
            items.append(_text_problem(item) if "\\u" in text else item)
        _check_count(len(items))
        return items, None
    text = ""
    try:
        text = body.decode("utf-8")
        loose = _parse(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"malformed JSON: {_reason(exc, text)}") from None
    organization: str | None = None
    if isinstance(loose, dict):
        loose, organization = _envelope(loose)
    if not isinstance(loose, list):
        raise InvalidRequest(
            "the body must be a JSON array of events or one event as an object (or NDJSON with "
            f"Content-Type: {NDJSON}); got a JSON {_KINDS.get(type(loose), type(loose).__name__)}"
        )
    _check_count(len(loose))
    if "\\u" in text:  # escapes are rare: only then can a string hold NUL or a lone surrogate
        loose = [_text_problem(item) for item in loose]
    return loose, organization


_KINDS = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _envelope(obj: dict[str, Any]) -> tuple[list[Any], str | None]:
    """``[event]`` and the organization of a WorkOS ``{"organization_id", "event"}`` body; ``[obj]`` otherwise."""
    if "event" not in obj or not set(obj) <= {"event", "organization_id"}:
        return [obj], None  # one event; an event of ours has no "event" field, so it is never mistaken
    organization = obj.get("organization_id")
    if organization is not None and not isinstance(organization, str):
        raise InvalidRequest("organization_id must be a string (the name of the key's own tenant)")
    return [obj["event"]], organization


def _native_scan() -> Callable[[bytes], bool | None] | None:
    try:  # built when a C compiler was at hand at install time (setup.py); the strict reader alone otherwise
        from vigil.ingest._scan import keys_unique
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return keys_unique


_keys_unique = _native_scan()

FAST = _keys_unique is not None
"""Whether :func:`decode_typed` can answer (the C scan for repeated keys is built)."""


def decode_typed(
    body: bytes, content_type: str, array: msgspec.json.Decoder[Any], item: msgspec.json.Decoder[Any]
) -> list[Any] | None:
    """The events of ``body`` decoded straight to typed values, or ``None`` when only the strict reader can say.

    The common body (valid events, no escapes, no repeated key) costs one msgspec decode and one C pass over the
    bytes. It gives what the strict reader followed by ``msgspec.convert`` gives, since msgspec refuses what the
    strict reader refuses (bad UTF-8, out-of-range numbers, non-JSON literals, trailing text, deep nesting)
    except two things, which are checked here: repeated keys (the C scan) and NUL or lone-surrogate escapes (any
    ``\\u`` sends the body to the strict reader). ``array`` decodes a JSON body (a list of events), ``item`` one
    NDJSON line. Anything unusual (a bad event, an empty body, too many events) returns ``None``, and the strict
    reader then says precisely what is wrong.
    """
    if _keys_unique is None or b"\\u" in body:
        return None
    media = content_type.split(";")[0].strip().lower()
    try:
        if media == NDJSON:
            typed = [item.decode(line) for line in body.split(b"\n") if line.strip()]
        elif media in ("", JSON):
            typed = array.decode(body)
        else:
            return None
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if not 0 < len(typed) <= MAX_REQUEST_EVENTS or _keys_unique(body) is not True:
        return None
    return typed


def _check_count(n: int) -> None:
    if n > MAX_REQUEST_EVENTS:
        raise PayloadTooLarge(f"a request holds at most {MAX_REQUEST_EVENTS} events; this one has {n}")
    if n == 0:
        raise InvalidRequest("the request holds no events")


def _text_problem(item: Any) -> Any:
    """``item``, or :class:`Malformed` naming the first string (key or value) with a NUL or a lone surrogate."""
    stack: list[tuple[str, Any]] = [("", item)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            problem = _bad_text(v)
            if problem:
                return Malformed(f"holds {problem}, which no string may hold", path)
        elif isinstance(v, dict):
            for k, sub in v.items():
                where = f"{path}.{k[:60]}" if path else k[:60]
                problem = _bad_text(k)
                if problem:
                    return Malformed(f"a key holds {problem}, which no string may hold", path)
                stack.append((where, sub))
        elif isinstance(v, list):
            stack.extend((f"{path}[{j}]", sub) for j, sub in enumerate(v))
    return item


def _bad_text(s: str) -> str:
    if "\x00" in s:
        return "a NUL character (\\u0000)"
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (like \\ud800)"
    return ""
