"""Trust kept outside the database: the last checkpoint each party signed or verified, and the checks against it.

Everything inside the database can be rewritten by someone who can write to it: events, tree data and the
checkpoints themselves. What they cannot do without the signing key is produce a new signed checkpoint, so the
defence is to remember, somewhere else, the newest checkpoint one has seen signed, and to require the log to
extend it every time (a transparency-log monitor's trust-on-first-use):

- the server keeps a `TrustedState` directory beside its signing key: per tenant, the last checkpoint it signed,
  written atomically and only ever moving forward. Before it signs and at start it proves that the log still
  extends that checkpoint (`check_extends`), and refuses to sign or take writes when it does not;
- ``vigil verify`` keeps a `VerifierMemory` of its own, a file of the newest checkpoint it verified per log, and
  checks the server's state too when it can read it.

Checkpoints also name the size of the checkpoint signed before them (the ``vigil-previous`` extension line), so a
checkpoint deleted from the middle of the chain is noticed as well (`check_chain`).

Both files hold signed notes, which are checked against the verifier key each time they are read: editing them
needs the signing key. Someone holding the signing key *and* able to replace these files can still show a
rewritten history; that is what external witnesses are for.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.errors import ConfigError, IntegrityError, StorageError
from vigil.ledger.merkle import consistency_proof, root_at
from vigil.verifier import Checkpoint, VerificationError, verify_checkpoint, verify_consistency

if TYPE_CHECKING:
    from vigil.store.base import Store, Tenant

log = logging.getLogger("vigil.trust")

PREVIOUS = "vigil-previous"
"""Checkpoint extension line ``vigil-previous <size>``: the size of the checkpoint signed before this one."""
_PREVIOUS_LINE = re.compile(rf"^{PREVIOUS} (0|[1-9][0-9]{{0,19}})$")
_VKEY = re.compile(r"^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$")
_SLUG_FILE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def previous_line(size: int) -> str:
    return f"{PREVIOUS} {size}"


def previous_size(cp: Checkpoint) -> int | None:
    """The ``vigil-previous`` size a checkpoint names; None for checkpoints signed before the line existed."""
    for line in cp.extensions:
        m = _PREVIOUS_LINE.match(line)
        if m:
            return int(m.group(1))
    return None


def origin_of(tenant: str) -> str:
    """The checkpoint origin line of a tenant's log."""
    return f"vigil/{tenant}"


@dataclass(frozen=True)
class Problem:
    """Why a tenant's log cannot be trusted: what was found, with tenant, sizes and roots."""

    tenant: str
    message: str

    def __str__(self) -> str:
        return f"tenant {self.tenant}: {self.message}"


def _hex(root: bytes) -> str:
    return root.hex()


def check_extends(store: Store, tenant: Tenant, trusted: Checkpoint, source: str) -> Problem | None:
    """Prove from the stored tree data that the tenant's log extends ``trusted``; else say what was found.

    ``source`` names where ``trusted`` came from ("the server's trusted state", "this verifier's memory").
    A rewrite is narrowed down to the range after the newest stored checkpoint whose root still matches.
    """
    slug = tenant.slug
    size = store.tree_size(tenant.id)
    if size < trusted.size:
        return Problem(
            slug,
            f"the log holds {size} events but {source} has a signed checkpoint at size {trusted.size} "
            f"(root {_hex(trusted.root)}): seqs {size}..{trusted.size - 1} were removed",
        )
    reader = store.subtree_reader(tenant.id)
    try:
        proof = consistency_proof(trusted.size, size, reader)
        root = root_at(size, reader)
        verify_consistency(trusted.size, size, proof, trusted.root, root)
        return None
    except (VerificationError, ValueError, LookupError, StorageError) as exc:
        found = f"{exc}"
    try:
        found_root = _hex(root_at(trusted.size, reader))
    except (ValueError, LookupError, StorageError) as exc:
        found_root = f"unreadable ({exc})"
    prior = 0
    for cp in store.checkpoints(tenant.id):
        if cp.size < trusted.size and cp.size > prior:
            try:
                if root_at(cp.size, reader) == cp.root:
                    prior = cp.size
            except (ValueError, LookupError, StorageError):
                continue
    return Problem(
        slug,
        f"the log no longer extends the checkpoint at size {trusted.size} in {source}: events in seqs "
        f"{prior}..{trusted.size - 1} were changed, reordered or replaced (expected root "
        f"{_hex(trusted.root)} at size {trusted.size}, the stored tree gives {found_root}; {found})",
    )


def check_chain(slug: str, checkpoints: Sequence[tuple[int, Checkpoint]]) -> Problem | None:
    """Check that each checkpoint's ``vigil-previous`` size is among the stored ones: none deleted in between.

    ``checkpoints`` are (stored size, verified checkpoint) pairs, oldest first.
    """
    sizes = {size for size, _ in checkpoints}
    for size, cp in checkpoints:
        prev = previous_size(cp)
        if prev is None or prev == 0 or prev in sizes:
            continue
        return Problem(
            slug,
            f"checkpoints between sizes {prev} and {size} were deleted: the checkpoint at size {size} names "
            f"the one at size {prev} as its previous, and it is not in the database",
        )
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class TrustedState:
    """The server's memory of the last checkpoint it signed per tenant: a directory of signed notes.

    One file per tenant, ``<slug>.checkpoint``, holding the signed note; each read verifies it against the
    signing key's verifier key, and `advance` refuses to move backwards.
    """

    def __init__(self, directory: Path, vkey: str) -> None:
        self.directory = directory
        self.vkey = vkey

    def _path(self, slug: str) -> Path:
        if not _SLUG_FILE.match(slug) or slug.startswith("."):
            raise ConfigError(f"tenant slug {slug!r} cannot name a trusted-state file")
        return self.directory / f"{slug}.checkpoint"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise advances between processes sharing the directory (the server and `vigil checkpoint`)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def get(self, slug: str) -> Checkpoint | None:
        """The last checkpoint signed for ``slug``, verified; None when none was signed with this state."""
        path = self._path(slug)
        try:
            note = path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"trusted state {path} cannot be read: {exc}") from None
        try:
            return verify_checkpoint(note, self.vkey, origin=origin_of(slug))
        except VerificationError as exc:
            raise IntegrityError(
                f"trusted state {path} does not verify with the verifier key: {exc}; either it was altered or the "
                "key is not this server's"
            ) from None

    def advance(self, slug: str, note: str) -> Checkpoint:
        """Record ``note`` (a checkpoint signed for ``slug``) as the newest, if it is not older than the current."""
        cp = verify_checkpoint(note, self.vkey, origin=origin_of(slug))
        with self._locked():
            current = self.get(slug)
            if current is not None and current.size > cp.size:
                return current
            write_atomically(self._path(slug), note.encode("utf-8"))
        return cp


def default_memory_path() -> Path:
    """Where ``vigil verify`` remembers what it verified: ``$XDG_STATE_HOME/vigil`` (``~/.local/state/vigil``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vigil" / "verified-checkpoints.json"


class VerifierMemory:
    """The newest checkpoint a verifier has verified, per verifier key and log origin, kept in one JSON file.

    The file maps ``vkey -> origin -> signed note``; every note is verified again when the file is loaded, so
    a file edited by hand is refused rather than trusted.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._notes: dict[str, dict[str, str]] = {}
        self._dirty = False
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"verifier memory {path} cannot be read: {exc}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) and all(isinstance(n, str) for n in v.values())
                for k, v in data.items()
            ):
                raise ValueError("not a map of verifier key to origin to note")
        except ValueError as exc:
            raise IntegrityError(f"verifier memory {path} is not what vigil verify writes: {exc}") from None
        self._notes = data

    def get(self, vkey: str, origin: str) -> Checkpoint | None:
        note = self._notes.get(vkey, {}).get(origin)
        if note is None:
            return None
        try:
            return verify_checkpoint(note, vkey, origin=origin)
        except VerificationError as exc:
            raise IntegrityError(
                f"verifier memory {self.path} holds a checkpoint for {origin} that does not verify: {exc}"
            ) from None

    def remember(self, vkey: str, origin: str, note: str) -> None:
        """Keep ``note`` if it is larger than what is remembered for ``origin``."""
        cp = verify_checkpoint(note, vkey, origin=origin)
        current = self.get(vkey, origin)
        if current is not None and current.size >= cp.size:
            return
        self._notes.setdefault(vkey, {})[origin] = note
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self._notes, indent=1, sort_keys=True).encode("utf-8"))
        self._dirty = False


def resolve_vkey(value: str) -> str:
    """A verifier key given as the key itself, ``@FILE``, a file path, or an ``http(s)://`` URL serving it."""
    text = value.strip()
    if text.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(text, timeout=10) as resp:  # noqa: S310 (scheme checked above)
                body: bytes = resp.read(4096)
        except OSError as exc:
            raise ConfigError(f"cannot fetch the verifier key from {text}: {exc}") from None
        text = body.decode("utf-8", "replace").strip()
    elif text.startswith("@") or ("+" not in text and Path(text).exists()):
        path = Path(text.removeprefix("@")).expanduser()
        try:
            text = path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the verifier key file {path}: {exc}") from None
    if not _VKEY.match(text):
        raise ConfigError(f"{value!r} is not a verifier key (name+hash+base64), a key file or a URL")
    return text
