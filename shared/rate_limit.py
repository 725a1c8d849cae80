"""Request rates per client: a token bucket each, in memory (one process's view)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Clients tracked at once; the least recently seen is forgotten first (it starts again with a full
# bucket, so forgetting only ever lets a client through, never refuses one wrongly).
MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class RateLimit:
    """`per_minute` requests a minute on average, up to `burst` at once."""

    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise ValueError("a rate limit needs at least 1 request a minute and a burst of at least 1")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ClientRateLimiter:
    """`admit(client)`: 0 when the request may go ahead, else the seconds to wait (Retry-After)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._per_second = limit.per_minute / 60
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, client: str) -> int:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(client, None) or _Bucket(float(self.limit.burst), now)
            self._buckets[client] = bucket  # most recently seen last
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.limit.burst), bucket.tokens + elapsed * self._per_second)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0
            return max(1, math.ceil((1 - bucket.tokens) / self._per_second))
