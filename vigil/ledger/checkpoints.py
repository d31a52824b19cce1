"""Signed checkpoints: a C2SP ``tlog-checkpoint`` per tenant, signed as a C2SP ``signed-note`` with Ed25519.

The signing key lives in a file of its own (mode 0600), outside the database, so that someone who can rewrite
the database still cannot sign a checkpoint that agrees with the rewrite. Only the verifier key is served.
Beside the key, the trusted state (`vigil.ledger.trust.TrustedState`) remembers the last checkpoint signed per
tenant; no checkpoint is signed over a log that does not extend it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.errors import ConfigError, IntegrityError, StorageFault
from vigil.ledger.merkle import consistency_proof, root_at
from vigil.ledger.note import format_checkpoint, sign_note, vkey
from vigil.ledger.trust import TrustedState, check_extends, origin_of, previous_line
from vigil.verifier import Checkpoint, VerificationError, verify_checkpoint, verify_consistency

if TYPE_CHECKING:
    from vigil.settings import Settings
    from vigil.store.base import Store, StoredCheckpoint, Tenant

log = logging.getLogger("vigil.checkpoints")


class Signer:
    """Holds the Ed25519 signing key; signs checkpoint bodies."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str, state: Path | None = None) -> None:
        self._key = private_key
        self.name = name
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.vkey = vkey(name, raw)
        self.trust = TrustedState(state, self.vkey) if state is not None else None

    def sign(self, origin: str, size: int, root: bytes, previous: int | None = None) -> str:
        """Sign a checkpoint; ``previous`` (the size of the one signed before it) goes in an extension line."""
        extensions = () if previous is None else (previous_line(previous),)
        return sign_note(format_checkpoint(origin, size, root, extensions), self.name, self._key)

    @classmethod
    def from_file(cls, path: Path, name: str, *, create: bool = True, state: Path | None = None) -> Signer:
        """Load the key at ``path``, creating it (mode 0600, never overwriting) when absent and allowed."""
        if not path.exists():
            if not create:
                raise ConfigError(f"no signing key at {path}")
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first: use theirs
                return cls.from_file(path, name, create=False, state=state)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            log.info("created checkpoint signing key %s", path)
            return cls(key, name, state)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"signing key {path} is readable by others (mode {mode:o}); chmod 600 it")
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError(f"signing key {path} is not a PEM private key: {exc}") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigError(f"signing key {path} is not an Ed25519 key")
        return cls(loaded, name, state)


def key_path(settings: Settings) -> Path:
    """Where the signing key lives: the setting; else next to the SQLite file. A database URL has no "next to":
    there the setting is required (fail closed rather than scatter keys in working directories)."""
    if settings.signing_key:
        return Path(settings.signing_key).expanduser()
    db = str(settings.database)
    if "://" in db and not db.startswith("sqlite:///"):
        raise ConfigError(
            "with a database URL, say where the checkpoint signing key lives: --signing-key PATH "
            "(or VIGIL_SIGNING_KEY); it is created there, mode 0600, on first start"
        )
    db = db.removeprefix("sqlite:///")
    return Path(db).expanduser().with_name(Path(db).name + ".signing-key")


def state_path(settings: Settings) -> Path:
    """Where the server's trusted state lives: the setting; else beside the signing key."""
    if settings.state_dir:
        return Path(settings.state_dir).expanduser()
    key = key_path(settings)
    return key.with_name(key.name + ".state")


def load_signer(settings: Settings, *, create: bool = True) -> Signer:
    return Signer.from_file(key_path(settings), settings.key_name, create=create, state=state_path(settings))


def _verified(signer: Signer, slug: str, cp: StoredCheckpoint) -> Checkpoint:
    """The stored checkpoint as its signed note states it; IntegrityError when it does not match."""
    try:
        signed = verify_checkpoint(cp.note, signer.vkey, origin=origin_of(slug))
    except VerificationError as exc:
        raise IntegrityError(
            f"tenant {slug}: the stored checkpoint at size {cp.size} does not verify with this server's key: {exc}"
        ) from None
    if signed.size != cp.size or signed.root != cp.root:
        raise IntegrityError(
            f"tenant {slug}: the stored checkpoint's size and root ({cp.size}, {cp.root.hex()}) differ from "
            f"its signed note ({signed.size}, {signed.root.hex()})"
        )
    return signed


def check_tenant(store: Store, signer: Signer, tenant: Tenant) -> Checkpoint | None:
    """Prove the tenant's log extends the newest checkpoint this server knows it signed, and return that one.

    The newest is the larger of the trusted state's and the newest stored checkpoint (after checking its
    signature); the state moves up to it, so the first start after an upgrade adopts what the database holds.
    Raises IntegrityError, saying what was found, when the log was truncated or rewritten below that checkpoint
    or when the checkpoint the state remembers is no longer in the database.
    """
    slug = tenant.slug
    trusted = signer.trust.get(slug) if signer.trust is not None else None
    latest = store.checkpoint(tenant.id)
    stored = _verified(signer, slug, latest) if latest is not None else None
    for head, source in ((trusted, "the server's trusted state"), (stored, "the newest stored checkpoint")):
        if head is None:
            continue
        problem = check_extends(store, tenant, head, source)
        if problem is not None:
            raise IntegrityError(str(problem))
    if trusted is not None and (stored is None or stored.size < trusted.size):
        newest = "none" if stored is None else f"size {stored.size}"
        raise IntegrityError(
            f"tenant {slug}: the checkpoint at size {trusted.size} (root {trusted.root.hex()}) that this server "
            f"signed last is not in the database (newest stored checkpoint: {newest}): checkpoints were deleted"
        )
    adopt = stored is not None and (trusted is None or stored.size > trusted.size)
    if adopt and latest is not None and signer.trust is not None:
        signer.trust.advance(slug, latest.note)
    return stored if stored is not None else trusted


def make_checkpoint(store: Store, signer: Signer, tenant: Tenant) -> StoredCheckpoint | None:
    """Sign and store a checkpoint of the tenant's log as it is now; None for an empty log.

    When the newest checkpoint already has the current size, that one is returned: checkpoints are made only
    when the log grew. Before signing, the log is proved to extend the last checkpoint signed (`check_tenant`,
    then a consistency proof to the new root); IntegrityError, and no signature, when it does not.
    """
    head = check_tenant(store, signer, tenant)
    size = store.tree_size(tenant.id)
    if size == 0:
        return None
    latest = store.checkpoint(tenant.id)
    if latest is not None and latest.size >= size:
        return latest
    reader = store.subtree_reader(tenant.id)
    root = root_at(size, reader)
    if head is not None:
        try:
            verify_consistency(head.size, size, consistency_proof(head.size, size, reader), head.root, root)
        except VerificationError as exc:
            raise IntegrityError(
                f"tenant {tenant.slug}: the log at size {size} (root {root.hex()}) does not extend the checkpoint "
                f"at size {head.size} (root {head.root.hex()}): {exc}"
            ) from None
    note = signer.sign(origin_of(tenant.slug), size, root, previous=head.size if head is not None else 0)
    cp = store.add_checkpoint(tenant.id, size, root, note)
    if signer.trust is not None:
        signer.trust.advance(tenant.slug, note)
    return cp


def checkpoint_all(
    store: Store, signer: Signer, on_problem: Callable[[Tenant, IntegrityError], None] | None = None
) -> int:
    """Checkpoint every tenant whose log grew; returns how many checkpoints were made.

    A tenant whose log fails the integrity checks is skipped (and handed to ``on_problem``); the others are
    still checkpointed. Without ``on_problem`` the first such failure is raised.
    """
    made = 0
    for tenant in store.list_tenants():
        before = store.checkpoint(tenant.id)
        try:
            cp = make_checkpoint(store, signer, tenant)
        except IntegrityError as exc:
            if on_problem is None:
                raise
            on_problem(tenant, exc)
            continue
        if cp is not None and (before is None or cp.size != before.size):
            made += 1
    return made


async def run_schedule(
    store: Store,
    signer: Signer,
    interval: float,
    on_problem: Callable[[Tenant, IntegrityError], None] | None = None,
) -> None:
    """Checkpoint every ``interval`` seconds until cancelled; a failure is logged and retried next round."""
    while True:
        await asyncio.sleep(interval)
        try:
            made = await asyncio.to_thread(checkpoint_all, store, signer, on_problem)
            if made:
                log.info("signed %d checkpoint(s)", made)
        except StorageFault:  # the store logged it once when it found it
            pass
        except Exception:
            log.exception("checkpointing failed; retrying in %s s", interval)
