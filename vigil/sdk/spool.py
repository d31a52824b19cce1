"""The disk spool: where events wait, durably, while the server cannot take them.

A spool directory holds::

    spool.lock            flock()ed by the one client that uses the directory (its pid inside, for the error)
    0000000001.spool      segments: append-only files of records, replayed in order
    0000000002.spool
    dead-letter.ndjson    events the server refused for a reason of their own (see :mod:`vigil.sdk.deadletter`)
    dead-letter.lock      held while the dead-letter file changes (a replay runs beside a live client)

A record is one event, on one line: eight hex digits of the CRC-32 of the event's JSON, a space, the JSON, a
newline. The JSON never holds a raw newline, so lines frame records, and the CRC tells a whole record from a
torn or garbled one.

Crash semantics:

- Segments are only appended to, and only by the process that created them; after a restart the old segments
  are read-only and new records go to a new segment. A record that was being written when the process died
  (a last line without its newline, or whose CRC does not match) is skipped and counted; the append that
  follows it can never be glued onto it.
- ``append(..., sync=True)`` returns after ``fsync`` (and after the directory is synced when a segment was
  created), so a spilled batch survives SIGKILL and power loss.
- A segment is deleted only when every record in it has been read and settled (acknowledged by the server,
  or dead-lettered). Records of a partly acknowledged segment are sent again after a crash; the server knows
  their ids and answers ``duplicate``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import ConfigError
from vigil.sdk import deadletter

LOCK_NAME = "spool.lock"
DEAD_LETTER_NAME = deadletter.DEAD_LETTER_NAME
SEGMENT_SUFFIX = ".spool"
SEGMENT_BYTES = 16 * 1024 * 1024  # rotate past this size, so acknowledged records free their disk soon
READ_CHUNK = 256 * 1024


class SpoolInUse(ConfigError):
    """Another client holds the spool directory's lock; two writers would replay each other's events."""


def frame(data: bytes) -> bytes:
    """One spool record: CRC-32 in hex, a space, the event's JSON, a newline."""
    return b"%08x %s\n" % (zlib.crc32(data), data)


def unframe(line: bytes) -> bytes | None:
    """The event JSON of one record line (without its newline), or None when it is torn or garbled."""
    if len(line) < 11 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    data = line[9:]
    return data if zlib.crc32(data) == crc else None


@dataclass(eq=False)
class _Segment:
    number: int
    path: Path
    size: int  # bytes of records: the file's size for a recovered segment, what we wrote for ours
    read_at: int = 0  # the reader's offset: records before it have been handed out
    outstanding: int = 0  # records read but not yet settled
    fd: int | None = None  # write descriptor, while the segment is active or not yet synced
    dirty: bool = False  # written since the last fsync
    active: bool = False  # new records go here


class Spool:
    """Segments of records in one locked directory; one reader (the worker), any number of appenders."""

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # events hold personal data
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = _take_lock(self.directory / LOCK_NAME)
        self._mutex = threading.Lock()
        self._segments: dict[int, _Segment] = {}
        self._order: deque[_Segment] = deque()  # segments not yet fully read, oldest first
        self._buffer: deque[tuple[int, bytes]] = deque()  # parsed records not yet handed out
        self._dir_dirty = False
        self.skipped = 0  # torn or garbled records found while reading
        try:
            for path in sorted(self.directory.glob("*" + SEGMENT_SUFFIX)):
                if not path.stem.isdigit():
                    continue
                seg = _Segment(int(path.stem), path, path.stat().st_size)
                self._segments[seg.number] = seg
                self._order.append(seg)
        except OSError:
            self._release_lock()
            raise
        self.first_new = max(self._segments, default=0) + 1  # segments below this are replayed
        self._next = self.first_new

    # -- appending (any thread) ----------------------------------------------------------------------------

    def append(self, records: Sequence[bytes], *, sync: bool) -> None:
        """Append records (event JSON) to the active segment; with ``sync``, return only once they are durable."""
        if not records:
            return
        buf = b"".join([frame(r) for r in records])
        with self._mutex:
            seg = self._writable()
            if seg.fd is None:
                raise OSError(errno.EBADF, "spool segment is closed")
            _write_all(seg.fd, buf)
            seg.size += len(buf)
            seg.dirty = True
            if seg.size >= self.segment_bytes:
                seg.active = False
        if sync:
            self.sync()

    def sync(self) -> None:
        """fsync every segment written since the last sync (and the directory, when a segment was created)."""
        with self._mutex:
            todo: list[tuple[_Segment, int]] = []
            for seg in self._segments.values():
                if seg.dirty and seg.fd is not None:
                    seg.dirty = False
                    todo.append((seg, os.dup(seg.fd)))  # fsync outside the mutex; appenders need not wait
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        try:
            for _, fd in todo:
                os.fsync(fd)
            if dir_dirty:
                dfd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError:
            with self._mutex:
                for seg, _ in todo:
                    seg.dirty = True
                self._dir_dirty = self._dir_dirty or dir_dirty
            raise
        finally:
            for _, fd in todo:
                os.close(fd)
        with self._mutex:
            for seg, _ in todo:
                if not seg.active and not seg.dirty:
                    self._close_fd(seg)
                    self._maybe_delete(seg)

    def _writable(self) -> _Segment:
        for seg in reversed(self._order):
            if seg.active:
                return seg
            break
        number, self._next = self._next, self._next + 1
        path = self.directory / f"{number:010d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        seg = _Segment(number, path, 0, fd=fd, active=True)
        self._segments[number] = seg
        self._order.append(seg)
        self._dir_dirty = True
        return seg

    # -- reading and settling (the worker) -----------------------------------------------------------------

    def backlog(self) -> bool:
        """True when records wait to be read."""
        with self._mutex:
            return bool(self._buffer) or any(seg.read_at < seg.size for seg in self._order)

    def read(self, max_records: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Up to ``max_records`` records (at most ``max_bytes`` of JSON, but at least one), oldest first, as
        (segment number, event JSON). Each must later be passed to :meth:`settle`."""
        out: list[tuple[int, bytes]] = []
        nbytes = 0
        with self._mutex:
            while len(out) < max_records:
                if not self._buffer and not self._fill():
                    break
                number, data = self._buffer[0]
                if out and nbytes + len(data) > max_bytes:
                    break
                self._buffer.popleft()
                out.append((number, data))
                nbytes += len(data)
        return out

    def settle(self, numbers: Iterable[int]) -> None:
        """The records read from these segments (one number per record) are done with: acknowledged or
        dead-lettered. Segments whose records are all done are deleted."""
        with self._mutex:
            touched: set[int] = set()
            for n in numbers:
                seg = self._segments.get(n)
                if seg is not None:
                    seg.outstanding -= 1
                    touched.add(n)
            for n in touched:
                self._maybe_delete(self._segments[n])

    def _fill(self) -> bool:
        """Parse the next chunk of records into the buffer; False when there is nothing left to read."""
        while self._order:
            seg = self._order[0]
            if seg.read_at >= seg.size:
                self._order.popleft()
                if seg.active:
                    # the reader caught up with the writer (the active segment is always the last one): later
                    # records go to a new segment, so this one can go once its records are acknowledged
                    seg.active = False
                    if not seg.dirty:
                        self._close_fd(seg)
                    self._maybe_delete(seg)
                    return False
                self._maybe_delete(seg)
                continue
            want = min(seg.size - seg.read_at, READ_CHUNK)
            chunk = self._pread(seg, want, seg.read_at)
            end = chunk.rfind(b"\n")
            if end < 0 and len(chunk) < seg.size - seg.read_at:
                # one record longer than a chunk (events are capped well below that, but the file may not be
                # ours): read to the next newline
                chunk = self._pread(seg, seg.size - seg.read_at, seg.read_at)
                end = chunk.find(b"\n")
            if end < 0:
                # the tail of a segment without a newline: the record that was being written at the crash
                self.skipped += 1
                seg.read_at = seg.size
                continue
            for line in chunk[:end].split(b"\n"):
                data = unframe(line)
                if data is None:
                    self.skipped += 1
                    continue
                self._buffer.append((seg.number, data))
                seg.outstanding += 1
            seg.read_at += end + 1
            if seg.read_at >= seg.size and not seg.active:
                # fully read: leave the reading order now, so the segment is deleted when its last record is
                # settled (otherwise it waited for another read that no backlog would ever trigger)
                self._order.popleft()
            if self._buffer:
                return True
        return False

    def _pread(self, seg: _Segment, size: int, offset: int) -> bytes:
        fd = os.open(seg.path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def _maybe_delete(self, seg: _Segment) -> None:
        # a dirty segment may go too: every record in it is acknowledged, so its durability no longer matters
        if seg.active or seg.outstanding > 0 or seg.read_at < seg.size:
            return
        if seg in self._order:
            return
        self._close_fd(seg)
        self._segments.pop(seg.number, None)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()

    def _close_fd(self, seg: _Segment) -> None:
        if seg.fd is not None:
            os.close(seg.fd)
            seg.fd = None

    # -- dead letters and closing --------------------------------------------------------------------------

    def dead_letter(self, lines: Sequence[bytes]) -> None:
        """Append JSON lines to ``dead-letter.ndjson`` and fsync it."""
        deadletter.append(self.directory, lines)

    def close(self) -> None:
        """Sync what is unsynced, close every file and release the directory's lock."""
        try:
            self.sync()
        finally:
            with self._mutex:
                for seg in self._segments.values():
                    seg.active = False
                    self._close_fd(seg)
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def _take_lock(path: Path) -> int:
    """flock() the lock file, or raise :class:`SpoolInUse` naming the process that holds it.

    flock, not lockf: its locks belong to the open file, so a second client in the same process is refused
    too (POSIX record locks would let a process lock the same file twice).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise SpoolInUse(
            f"the spool directory {path.parent} is in use by another Vigil client (pid {holder}); "
            "give each client its own spool_dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _write_all(fd: int, buf: bytes) -> None:
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        view = view[n:]
