"""One POST of a batch to ``/v1/events``, and what its answer means for the batch: done, retry, or give up.

httpx is imported here, lazily, so that ``import vigil.sdk`` works without it and a missing install fails at
``Client(...)`` with the command that fixes it.
"""

from __future__ import annotations

import email.utils
import gzip
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec

import vigil
from vigil.model import EventResult, IngestResponse

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 429})  # the 4xx that mean "later", not "never"
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 3600.0  # a server asking for more than an hour is misconfigured; ask again then
BACKOFF_BASE = 0.25  # seconds before the first retry, at most (full jitter)

_ingest_answer = msgspec.json.Decoder(IngestResponse)
_error_answer = msgspec.json.Decoder(dict[str, Any])


@dataclass
class Answer:
    """What became of one POST.

    ``kind``: ``ok`` (``results`` has the per-event results), ``retry`` (nothing is known to be stored: send
    again after ``retry_after`` or a backoff), ``refused`` (a 4xx that will never succeed: dead-letter it),
    ``split`` (413 ``batch_too_large``: the batch is over the tenant's burst; send it again in smaller batches, of
    at most ``max_events`` events or ``max_bytes`` bytes). A 422 is ``ok``: every event was rejected, and
    ``results`` says why for each.
    """

    kind: Literal["ok", "retry", "refused", "split"]
    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    results: list[EventResult] = field(default_factory=list)
    max_events: int | None = None
    max_bytes: int | None = None


def import_httpx() -> Any:
    """The httpx module, or an ImportError that says how to install it."""
    try:
        import httpx
    except ImportError as exc:
        raise ImportError(
            "the Vigil SDK sends events with httpx, which is not installed: pip install 'vigil-audit[sdk]'"
        ) from exc
    return httpx


COMPRESS_OVER = 1024  # bytes; smaller bodies gain too little to be worth compressing


class Transport:
    """An httpx client bound to one server and one API key; used by the worker thread only."""

    def __init__(self, url: str, api_key: str, timeout: float, compress: bool = True) -> None:
        self._httpx = module = import_httpx()
        self.compress = compress
        self.url = url.rstrip("/") + "/v1/events"
        self.timeout = timeout
        self._http: httpx.Client = module.Client(
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "User-Agent": f"vigil-python/{vigil.__version__}",
            },
            timeout=timeout,
            follow_redirects=False,
        )

    def post(self, body: bytes, timeout: float | None = None) -> Answer:
        """POST one JSON array of events; never raises for what the network or the server does."""
        headers = None
        if self.compress and len(body) >= COMPRESS_OVER:
            # level 1: most of gzip's gain on JSON for a fraction of its time, on the worker thread
            body, headers = gzip.compress(body, compresslevel=1), {"Content-Encoding": "gzip"}
        try:
            r = self._http.post(
                self.url, content=body, headers=headers, timeout=self.timeout if timeout is None else timeout
            )
        except self._httpx.TimeoutException as exc:
            return Answer("retry", error=f"timed out ({type(exc).__name__})")
        except Exception as exc:  # whatever failed, nothing is known to be stored: a resend is safe
            return Answer("retry", error=f"{type(exc).__name__}: {exc}")
        return classify(r.status_code, r.headers.get("retry-after"), r.content)

    def close(self) -> None:
        self._http.close()


def classify(status: int, retry_after: str | None, content: bytes) -> Answer:
    """The meaning of an HTTP answer to ``POST /v1/events``."""
    if status == 200:
        try:
            answer = _ingest_answer.decode(content)
        except msgspec.DecodeError as exc:
            # not Vigil's answer (a proxy's page?): nothing is known to be stored, and a resend is idempotent
            return Answer("retry", status, f"unreadable answer: {exc}")
        return Answer("ok", status, results=answer.results)
    error = _error_message(content)
    if status == 422:
        try:
            details = _error_answer.decode(content)["error"]["details"]
            return Answer("ok", status, error, results=msgspec.convert(details, list[EventResult]))
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
            return Answer("refused", status, error)
    if status == 413:
        split = _split_limits(content)
        if split is not None:
            return Answer("split", status, f"HTTP 413: {error}", max_events=split[0], max_bytes=split[1])
    after = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
    if status in RETRY_STATUSES or status >= 500:
        return Answer("retry", status, f"HTTP {status}: {error}", after)
    if 400 <= status < 500:
        return Answer("refused", status, f"HTTP {status}: {error}")
    return Answer("retry", status, f"HTTP {status}: unexpected answer")


def _split_limits(content: bytes) -> tuple[int | None, int | None] | None:
    """(most events, most bytes) a 413 ``batch_too_large`` allows, or None for any other 413."""
    try:
        err = _error_answer.decode(content)["error"]
        if err["type"] != "batch_too_large":
            return None
        limits = {d["limit"]: int(d["max"]) for d in err.get("details", [])}
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    return limits.get("events"), limits.get("bytes")


def _error_message(content: bytes) -> str:
    try:
        return str(_error_answer.decode(content)["error"]["message"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return content[:200].decode("utf-8", "replace")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(attempt: int, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): exponential with full jitter, at most ``cap``.

    Full jitter (a uniform draw below the exponential ceiling) spreads the retries of many clients that failed
    together, so a recovering server is not hit by all of them at once.
    """
    ceiling = min(cap, BACKOFF_BASE * 2 ** min(attempt - 1, 32))
    return (rng or random).uniform(0, ceiling)


def retry_delay(
    attempt: int, retry_after: float | None, cap: float, rng: random.Random | None = None
) -> float:
    """The wait before the next attempt: the server's ``Retry-After`` (plus up to 10% jitter) when it gave
    one, else :func:`backoff`."""
    if retry_after is not None:
        return retry_after + (rng or random).uniform(0, retry_after * 0.1)
    return backoff(attempt, cap, rng)
