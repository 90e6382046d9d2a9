"""A per-key token bucket: how often one tenant may test-fire its webhooks.

A test-fire makes a real request to the tenant's server, so without a limit an admin key
would turn VIZOCHOK into a request cannon aimed at whatever the tenant's URL names.  The
bucket holds ``limit`` tokens and refills them evenly over ``period_seconds``; time comes
from an injected monotonic clock, so tests move it instead of sleeping.  The state lives in
this process: N replicas allow up to N times the limit, which bounds cost, not correctness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import InvalidCall

#: Buckets kept before full (idle) ones are dropped; a full bucket is the same as none.
_MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``limit`` events per ``period_seconds`` per key, with bursts up to ``limit``."""

    def __init__(
        self,
        *,
        limit: int,
        period_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or period_seconds <= 0:
            raise InvalidCall("a rate limit needs limit >= 1 and period_seconds > 0")
        self.limit = limit
        self.period_seconds = period_seconds
        self._rate = limit / period_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> float | None:
        """Take one token: ``None`` when allowed, else the seconds until one is free."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._drop_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.limit), now)
        bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(seconds)))

    def _drop_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self.limit:
                del self._buckets[key]
