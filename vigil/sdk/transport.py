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

if TYPE_CHECKING:
    import httpx

# The 4xx that mean "later", not "never": 408 and 429, and 404 and 405, which say the url leads somewhere
# other than Vigil's ingest route (a proxy's path, a typo): the events are fine, so they wait for the fix.
RETRY_STATUSES = frozenset({404, 405, 408, 429})
KEY_STATUSES = frozenset({401, 403})  # the key was refused: the events wait for a new one (Client.set_key)
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 3600.0  # a server asking for more than an hour is misconfigured; ask again then
BACKOFF_BASE = 0.25  # seconds before the first retry, at most (full jitter)


class Result(msgspec.Struct):
    """One event's result in an ingest answer. ``status`` is a plain string: a newer server may answer with a
    status this client does not know (it is then taken as a refusal of that event, never as stored)."""

    index: int
    status: str
    id: str | None = None
    seq: int | None = None
    leaf_hash: str | None = None
    errors: list[dict[str, Any]] | None = None


class _IngestAnswer(msgspec.Struct):
    results: list[Result]


_ingest_answer = msgspec.json.Decoder(_IngestAnswer)
_error_answer = msgspec.json.Decoder(dict[str, Any])


@dataclass
class Answer:
    """What became of one POST.

    ``kind``: ``ok`` (``results`` has the per-event results), ``retry`` (nothing is known to be stored: send
    again after ``retry_after`` or a backoff), ``key`` (401 or 403: the key was refused, not the events; send
    again after a backoff or a new key), ``refused`` (a 4xx that will never succeed: dead-letter it),
    ``split`` (413 ``batch_too_large``: the batch is over the tenant's burst; send it again in smaller batches, of
    at most ``max_events`` events or ``max_bytes`` bytes). A 422 is ``ok``: every event was rejected, and
    ``results`` says why for each.
    """

    kind: Literal["ok", "retry", "key", "refused", "split"]
    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    results: list[Result] = field(default_factory=list)
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


USER_AGENT = f"vigil-python/{vigil.__version__}"


class Transport:
    """An httpx client bound to one server and one API key; used by the worker thread only (and
    :meth:`set_key`, from any thread)."""

    def __init__(self, url: str, api_key: str, timeout: float, compress: bool = True) -> None:
        self._httpx = module = import_httpx()
        self.compress = compress
        self.url = url.rstrip("/") + "/v1/events"
        self.timeout = timeout
        self._authorization = f"Bearer {api_key}"
        self._http: httpx.Client = module.Client(
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
        )

    def set_key(self, api_key: str) -> None:
        """Send with this key from the next request on (one attribute write: safe while a request runs)."""
        self._authorization = f"Bearer {api_key}"

    def post(self, body: bytes, timeout: float | None = None) -> Answer:
        """POST one JSON array of events; never raises for what the network or the server does."""
        headers = {"Authorization": self._authorization}
        if self.compress and len(body) >= COMPRESS_OVER:
            # level 1: most of gzip's gain on JSON for a fraction of its time, on the worker thread
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
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
            return Answer("ok", status, error, results=msgspec.convert(details, list[Result]))
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
            return Answer("refused", status, error)
    if status == 413:
        split = _split_limits(content)
        if split is not None:
            return Answer("split", status, f"HTTP 413: {error}", max_events=split[0], max_bytes=split[1])
    after = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
    if status in KEY_STATUSES:
        return Answer("key", status, f"HTTP {status}: {error}")
    if status in (404, 405):
        return Answer("retry", status, f"HTTP {status}: {error} (is the url the Vigil server's base url?)")
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
