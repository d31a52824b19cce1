"""The Python SDK: a non-blocking client that batches, retries and spools audit events (docs/sdk.md).

    from vigil.sdk import Client

    vigil = Client("https://vigil.example", "vk_…", spool_dir="/var/spool/myapp-vigil")
    vigil.record(action="user.login", actor_id="usr_42")

httpx is needed to send (``pip install 'vigil-audit[sdk]'``); importing this package does not need it.
"""

from vigil.sdk.aio import AsyncClient
from vigil.sdk.client import Client
from vigil.sdk.spool import SpoolInUse
from vigil.sdk.worker import ClientStats

__all__ = ["AsyncClient", "Client", "ClientStats", "SpoolInUse"]
