"""Signed checkpoints: a C2SP ``tlog-checkpoint`` per tenant, signed as a C2SP ``signed-note`` with Ed25519.

The signing key lives in a file of its own (mode 0600), outside the database, so that someone who can rewrite
the database still cannot sign a checkpoint that agrees with the rewrite. Only the verifier key is served.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.errors import ConfigError, StorageFault
from vigil.ledger.merkle import root_at
from vigil.ledger.note import format_checkpoint, sign_note, vkey

if TYPE_CHECKING:
    from vigil.settings import Settings
    from vigil.store.base import Store, StoredCheckpoint, Tenant

log = logging.getLogger("vigil.checkpoints")


def origin_of(tenant: str) -> str:
    """The checkpoint origin line of a tenant's log."""
    return f"vigil/{tenant}"


class Signer:
    """Holds the Ed25519 signing key; signs checkpoint bodies."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        self._key = private_key
        self.name = name
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.vkey = vkey(name, raw)

    def sign(self, origin: str, size: int, root: bytes) -> str:
        return sign_note(format_checkpoint(origin, size, root), self.name, self._key)

    @classmethod
    def from_file(cls, path: Path, name: str, *, create: bool = True) -> Signer:
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
                return cls.from_file(path, name, create=False)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            log.info("created checkpoint signing key %s", path)
            return cls(key, name)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"signing key {path} is readable by others (mode {mode:o}); chmod 600 it")
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError(f"signing key {path} is not a PEM private key: {exc}") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigError(f"signing key {path} is not an Ed25519 key")
        return cls(loaded, name)


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


def load_signer(settings: Settings, *, create: bool = True) -> Signer:
    return Signer.from_file(key_path(settings), settings.key_name, create=create)


def make_checkpoint(store: Store, signer: Signer, tenant: Tenant) -> StoredCheckpoint | None:
    """Sign and store a checkpoint of the tenant's log as it is now; None for an empty log.

    When the newest checkpoint already has the current size, that one is returned: checkpoints are made only
    when the log grew.
    """
    size = store.tree_size(tenant.id)
    if size == 0:
        return None
    latest = store.checkpoint(tenant.id)
    if latest is not None and latest.size >= size:
        return latest
    root = root_at(size, store.subtree_reader(tenant.id))
    note = signer.sign(origin_of(tenant.slug), size, root)
    return store.add_checkpoint(tenant.id, size, root, note)


def checkpoint_all(store: Store, signer: Signer) -> int:
    """Checkpoint every tenant whose log grew; returns how many checkpoints were made."""
    made = 0
    for tenant in store.list_tenants():
        before = store.checkpoint(tenant.id)
        cp = make_checkpoint(store, signer, tenant)
        if cp is not None and (before is None or cp.size != before.size):
            made += 1
    return made


async def run_schedule(store: Store, signer: Signer, interval: float) -> None:
    """Checkpoint every ``interval`` seconds until cancelled; a failure is logged and retried next round."""
    while True:
        await asyncio.sleep(interval)
        try:
            made = await asyncio.to_thread(checkpoint_all, store, signer)
            if made:
                log.info("signed %d checkpoint(s)", made)
        except StorageFault:  # the store logged it once when it found it
            pass
        except Exception:
            log.exception("checkpointing failed; retrying in %s s", interval)
