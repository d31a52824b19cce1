"""Every error Vigil raises on purpose, in one tree.

::

    VigilError                      500  something Vigil itself got wrong
    ├── ConfigError                 500  a setting is missing or invalid (raised at start, never per request)
    │   ├── (vigil.sdk.SpoolInUse)       a second SDK client on a spool directory another one holds
    │   └── RuleError               500  a detection rule that cannot be loaded; says which file and why
    ├── StorageError                503  the store could not do what was asked (busy, closed, corrupt)
    │   ├── AppendOnlyViolation     500  something tried to change or remove committed log data
    │   ├── IntegrityError          503  the log no longer extends a checkpoint signed earlier: no more writes
    │   ├── StoreInUse              503  another `vigil serve` holds the SQLite file (raised at start)
    │   ├── StorageFault            503  file lost, unwritable or out of space: logged once when found
    │   └── (vigil.sdk.ServerUnreachable) 503  the server could not be reached for a read
    └── ClientError                 400  the request is wrong; the body says why
        ├── InvalidRequest          400  malformed JSON, bad query parameter
        ├── ValidationFailed        422  every event of the request was rejected (per-event errors listed)
        │   └── IdempotencyKeyReused 422  an Idempotency-Key sent again with another body
        ├── Unauthorized            401  no API key, or an unknown one
        ├── Forbidden               403  the key lacks the scope the route needs
        ├── NotFound                404  no such event, tenant or key (within the caller's tenant)
        ├── Conflict                409  the thing already exists
        ├── RequestTimeout          408  the request body did not arrive in time; the connection is closed
        ├── PayloadTooLarge         413  request or event over its size limit
        │   └── BatchTooLarge       413  a batch over the tenant's burst: it can never pass; split it
        ├── UnsupportedMediaType    415  a body that is neither JSON nor NDJSON
        └── RateLimited             429  over the tenant's rate limit; ``retry_after`` seconds
            └── QueueFull           429  the tenant already has its most events waiting for the writer

The HTTP status lives on the class; :func:`vigil.web.app` renders every one of them as::

    {"error": {"type": "validation_failed", "message": "...", "details": [...]}}
"""

from __future__ import annotations

from typing import Any, ClassVar


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    close_connection: bool = False
    """Set where the error is raised before a request body was read: the answer then closes the connection, so
    the server does not read (and throw away) a body it has already refused."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The JSON error body, in the one shape every error uses."""
        err: dict[str, Any] = {"type": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


class ConfigError(VigilError):
    code = "config_error"


class RuleError(ConfigError):
    """A rule that is malformed or uses something the engine cannot evaluate; it is never loaded."""

    code = "rule_error"

    def __init__(self, message: str, *, source: str = "", feature: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source
        self.feature = feature


class StorageError(VigilError):
    status = 503
    code = "storage_unavailable"


class AppendOnlyViolation(StorageError):
    status = 500
    code = "append_only_violation"


class IntegrityError(StorageError):
    """The stored log contradicts trusted state kept outside the database (rewritten, truncated, checkpoints
    deleted): the tenant takes no more writes and gets no more checkpoints until an operator looks."""

    code = "integrity_failure"


class StoreInUse(StorageError):
    """A second server on a SQLite file that one is already serving; raised at start, names the holder."""

    code = "store_in_use"


class StorageFault(StorageError):
    """A storage fault the store logs once when it finds it (file removed or replaced, disk full); the error
    every request then gets is not logged again, so a flood of refused writes cannot flood the log."""


class ClientError(VigilError):
    status = 400
    code = "bad_request"


class InvalidRequest(ClientError):
    code = "invalid_request"


class ValidationFailed(ClientError):
    status = 422
    code = "validation_failed"


class IdempotencyKeyReused(ValidationFailed):
    """The Idempotency-Key of an earlier request, with another body: refused, never taken as that request."""

    code = "idempotency_key_reused"


class Unauthorized(ClientError):
    status = 401
    code = "unauthorized"


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class BatchTooLarge(PayloadTooLarge):
    """More events or bytes in one request than the tenant's burst: no wait makes it pass, a split does."""

    code = "batch_too_large"

    @classmethod
    def over(cls, what: str, size: float, limit: float) -> BatchTooLarge:
        """The error for ``size`` ``what`` (events, bytes) against a burst of ``limit``; details say the limit."""
        return cls(
            f"this request has {size:g} {what}, more than the {limit:g} {what} a tenant may send at once "
            f"(its burst); split it into requests of at most {limit:g} {what}",
            details=[{"limit": what, "max": int(limit), "got": int(size)}],
        )


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ClientError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(RateLimited):
    code = "queue_full"
