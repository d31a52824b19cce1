"""The dead-letter store: events the server refused for a reason of their own, kept until someone replays them.

It lives in the spool directory::

    dead-letter.ndjson            one refused event a line, appended by the client's worker
    dead-letter.lock              flock()ed around every change to the two files, and held only that long
    dead-letter.replaying.ndjson  the letters a replay (``vigil sdk replay-dead-letters``) is sending now

A line is ``{"dead_lettered_at", "status", "error", "errors"?, "replays"?, "replayed_at"?, "event"}``: when
and why the event was refused (the HTTP status, the answer's message or the event's result, the server's
per-event errors) and the event's JSON exactly as it was sent.

A replay runs beside a live client: it moves the letters aside under the lock (so the worker's appends land in
a fresh ``dead-letter.ndjson``), sends them, and appends those refused again back under the lock. A replay that
dies half-way leaves ``dead-letter.replaying.ndjson``; the next replay takes it up first. Nothing is deleted
before the server acknowledged it, and an event sent twice is stored once (the server knows its id).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

DEAD_LETTER_NAME = "dead-letter.ndjson"
LOCK_NAME = "dead-letter.lock"
REPLAY_NAME = "dead-letter.replaying.ndjson"


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """One refused event and why; ``event`` is its JSON as sent."""

    dead_lettered_at: str
    status: int | None
    error: str
    event: msgspec.Raw
    errors: list[dict[str, Any]] | None = None
    replays: int = 0  # replays that were refused again
    replayed_at: str | None = None  # the last of them

    def summary(self) -> dict[str, Any]:
        """The letter without its event, plus the event's id and action: what a listing shows."""
        ev = event_fields(self.event)
        return {
            "id": ev.get("id"),
            "action": ev.get("action"),
            "dead_lettered_at": self.dead_lettered_at,
            "status": self.status,
            "error": self.error,
            **({"errors": self.errors} if self.errors else {}),
            **({"replays": self.replays, "replayed_at": self.replayed_at} if self.replays else {}),
        }


class _Head(msgspec.Struct):
    id: Any = None
    action: Any = None


_head = msgspec.json.Decoder(_Head)
_letter = msgspec.json.Decoder(DeadLetter)
encode = msgspec.json.Encoder().encode


def event_fields(event: bytes) -> dict[str, Any]:
    """The ``id`` (when it is text) and ``action`` of an event's JSON, for listings; {} when it is no JSON."""
    try:
        head = _head.decode(event)
    except msgspec.DecodeError:
        return {}
    return {"id": head.id if isinstance(head.id, str) else None, "action": head.action}


def parse(line: bytes) -> DeadLetter | None:
    """The letter of one line, or None for a line that is not one (kept as it is, never dropped)."""
    try:
        return _letter.decode(line)
    except msgspec.DecodeError:
        return None


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the dead-letter lock of ``directory`` (blocking: every holder keeps it for a file operation only)."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def append(directory: Path, lines: Sequence[bytes]) -> None:
    """Append letters (encoded lines) to ``dead-letter.ndjson`` and fsync them."""
    if not lines:
        return
    with locked(directory):
        _append(directory / DEAD_LETTER_NAME, lines)


def _append(path: Path, lines: Sequence[bytes]) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # events hold personal data
    try:
        _write_all(fd, b"".join(line + b"\n" for line in lines))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _sync_dir(path.parent)


def _read_lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [line for line in data.split(b"\n") if line.strip()]


def _key(line: bytes) -> bytes:
    """What makes two lines the same letter: the event's id (a letter is moved, never copied, except by a
    replay that died between two steps), else the line itself."""
    letter = parse(line)
    if letter is not None:
        event_id = event_fields(letter.event).get("id")
        if isinstance(event_id, str) and event_id:
            return b"id:" + event_id.encode()
    return b"line:" + line


def _merge(*groups: list[bytes]) -> list[bytes]:
    """The lines of every group, in order, one per letter: a later copy of a letter replaces an earlier one."""
    out: dict[bytes, bytes] = {}
    for group in groups:
        for line in group:
            key = _key(line)
            out.pop(key, None)
            out[key] = line
    return list(out.values())


def peek(directory: Path) -> list[bytes]:
    """Every dead letter of ``directory`` (those a dead replay left first), without changing anything."""
    with locked(directory):
        return _merge(_read_lines(directory / REPLAY_NAME), _read_lines(directory / DEAD_LETTER_NAME))


def take(directory: Path) -> list[bytes]:
    """Move every dead letter into ``dead-letter.replaying.ndjson`` (durably) and return them; the client
    appends its new letters to a fresh ``dead-letter.ndjson`` meanwhile."""
    with locked(directory):
        replay, current = directory / REPLAY_NAME, directory / DEAD_LETTER_NAME
        lines = _merge(_read_lines(replay), _read_lines(current))
        if not current.exists():
            return lines  # nothing new: the replay file (if any) already holds them all
        tmp = directory / (REPLAY_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, b"".join(line + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, replay)
        _sync_dir(directory)  # the replay file is durable before the letters leave dead-letter.ndjson
        current.unlink()
        _sync_dir(directory)
        return lines


def put_back(directory: Path, lines: Sequence[bytes]) -> None:
    """End a replay: the letters still refused (or not sent) go back to ``dead-letter.ndjson``; the replay
    file goes. A crash between the two leaves copies that the next :func:`take` merges into one."""
    with locked(directory):
        _append(directory / DEAD_LETTER_NAME, lines)
        with contextlib.suppress(FileNotFoundError):
            (directory / REPLAY_NAME).unlink()
        _sync_dir(directory)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, buf: bytes) -> None:
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        view = view[n:]
