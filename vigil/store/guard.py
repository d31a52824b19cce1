"""Guards around the SQLite file: is it still the file we opened, would a write succeed, is the server alone.

SQLite writes through the file descriptors it opened, so when the file (or its directory) is deleted or another
file is moved into its place, commits keep "succeeding" into an inode nobody can reach any more, and are gone at
shutdown. :class:`FileGuard` compares the path's (device, inode) with the ones recorded at open after every
commit (two ``stat`` calls), so the commit that lands in a lost file is answered with an error instead of an
acknowledgement, and every later write is refused until the operator restarts the server on a good file.

:class:`ServeLock` keeps a second ``vigil serve`` off a file one is already serving: two writer threads in two
processes would each believe they own every tenant's frontier.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from vigil.errors import StorageError, StorageFault, StoreInUse

log = logging.getLogger("vigil.store")

MB = 1024 * 1024


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class FileGuard:
    """Checks that the database file is the one this process opened, and that a write can succeed."""

    def __init__(self, path: str, min_free_mb: int = 0) -> None:
        self.path = path
        self.wal = path + "-wal"
        self.directory = os.path.dirname(os.path.abspath(path))
        self.min_free = min_free_mb * MB
        self.fault: str | None = None  # sticky: the file was lost; only a restart on a good file clears it
        self._db_id = _identity(path)
        self._wal_id: tuple[int, int] | None = None
        self._low = False
        if self._db_id is None:
            raise StorageError(f"the SQLite database {path} does not exist after opening it")

    def _lost(self) -> str | None:
        """Why the path no longer leads to the files this process writes, or None."""
        db = _identity(self.path)
        if db != self._db_id:
            how = "removed" if db is None else "replaced by another file"
            return f"the SQLite database {self.path} was {how} while the server ran"
        wal = _identity(self.wal)
        if self._wal_id is None:
            self._wal_id = wal  # the WAL appears with the first write and stays while a connection is open
        elif wal != self._wal_id:
            how = "removed" if wal is None else "replaced by another file"
            return f"the SQLite write-ahead log {self.wal} was {how} while the server ran"
        return None

    def _set_fault(self, why: str) -> StorageFault:
        if self.fault is None:
            self.fault = (
                f"{why}: events written since then are not in the database at that path. Writes are refused; "
                "restore the file and restart the server"
            )
            log.error(
                "%s", self.fault
            )  # logged once: every later write gets the same error without a log line
        return StorageFault(self.fault)

    def after_commit(self) -> None:
        """Raise :class:`StorageError` when the commit just made went into a file the path no longer names."""
        if self.fault is not None:
            raise StorageFault(self.fault)
        why = self._lost()
        if why is not None:
            raise self._set_fault(why)

    def before_write(self) -> None:
        """Refuse a write once the file was lost, or while free space is under the minimum."""
        if self.fault is not None:
            raise StorageFault(self.fault)
        if self.min_free:
            self._space()

    def _space(self) -> None:
        try:
            st = os.statvfs(self.directory)
        except OSError as exc:
            why = self._lost()  # the usual reason: the directory is gone
            if why is not None:
                raise self._set_fault(why) from None
            raise StorageError(f"cannot read the free space of {self.directory}: {exc}") from None
        free = st.f_bavail * st.f_frsize
        if free < self.min_free:
            if not self._low:
                self._low = True
                log.error(
                    "only %d MB free in %s, under the minimum of %d MB (sqlite_min_free_mb): writes are refused",
                    free // MB,
                    self.directory,
                    self.min_free // MB,
                )
            raise StorageFault(
                f"only {free // MB} MB free in {self.directory}, under the minimum of {self.min_free // MB} MB "
                "(sqlite_min_free_mb): free disk space; writes resume by themselves"
            )
        if self._low:
            self._low = False
            log.warning("free space in %s is back over the minimum: writes resume", self.directory)

    def ready(self) -> None:
        """Raise :class:`StorageError` unless a write would succeed now: the file is the one opened, its
        directory and the file are writable, and free space is over the minimum."""
        if self.fault is not None:
            raise StorageFault(self.fault)
        why = self._lost()
        if why is not None:
            raise self._set_fault(why)
        for what in (self.directory, self.path):
            if not os.access(what, os.W_OK):
                raise StorageFault(f"{what} is not writable: writes to the SQLite database would fail")
        self._space()


class ServeLock:
    """An exclusive lock on ``<database>.lock``, held by the process serving the database for its lifetime.

    ``flock`` on a file of its own: a lock on the database file itself would share SQLite's POSIX locks, which
    closing any descriptor of that file releases. The kernel drops the lock when the process dies, so a crash
    never leaves a stale lock. Read-only commands do not take it and keep working while a server runs.
    """

    def __init__(self, database: str) -> None:
        self.path = str(Path(database).expanduser()) + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f"process {holder}" if holder.isdigit() else "another process"
                raise StoreInUse(
                    f"{self.path.removesuffix('.lock')} is already being served by {who} (it holds "
                    f"{self.path}); run one server per SQLite file, or use PostgreSQL to run several"
                ) from None
            raise StorageError(f"cannot lock {self.path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock; the file stays, empty locks are harmless
            self._fd = None
