"""The Python SDK: a non-blocking client that batches, retries and spools audit events (docs/sdk.md).

    from vigil.sdk import Client

    vigil = Client("https://vigil.example", "vk_…", spool_dir="/var/spool/myapp-vigil")
    vigil.record(action="user.login", actor_id="usr_42")
    for event in vigil.search(action="user.*"):     # reads need a key with the read scope
        ...

httpx is needed to send (``pip install 'vigil-audit[sdk]'``); importing this package does not need it.
"""

from vigil.model import StoredEvent
from vigil.sdk.aio import AsyncClient
from vigil.sdk.api import InclusionProof, Page, ServerUnreachable, Verified
from vigil.sdk.client import Client
from vigil.sdk.reader import AsyncReader, Exported, Reader
from vigil.sdk.spool import SpoolInUse
from vigil.sdk.worker import ClientStats
from vigil.verifier import VerificationError

__all__ = [
    "AsyncClient",
    "AsyncReader",
    "Client",
    "ClientStats",
    "Exported",
    "InclusionProof",
    "Page",
    "Reader",
    "ServerUnreachable",
    "SpoolInUse",
    "StoredEvent",
    "VerificationError",
    "Verified",
]
