"""Per-tenant token buckets: ``rate`` events per second, up to ``burst`` at once."""

from __future__ import annotations

import math
import time

from vigil.errors import RateLimited


class RateLimiter:
    """Charges each request its number of events; over the limit it raises 429 with a ``Retry-After``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, rate)
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, tenant_id: int, n: int, now: float | None = None) -> None:
        if self.rate <= 0 or n <= 0:
            return
        t = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(tenant_id, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        if tokens < n:
            self._buckets[tenant_id] = (tokens, t)
            wait = math.ceil((n - tokens) / self.rate) if n <= self.burst else math.ceil(n / self.rate)
            raise RateLimited(
                f"tenant over its rate limit of {self.rate:g} events/s; retry in {wait} s",
                retry_after=max(1, wait),
            )
        self._buckets[tenant_id] = (tokens - n, t)
