"""A token bucket for asyncio: the Cloud API allows 80 messages/s per business number by default.

It limits one process. Several instances share Meta's limit, so each should get rate / instances;
Meta's own 130429 answer is still handled as a retry-later, so overshooting costs a delay, not a loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = float(rate_per_second)
        # One second's worth of burst: Meta measures throughput per second.
        self.capacity = float(burst if burst is not None else max(1.0, self.rate))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()  # waiters queue up first come, first served

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            # The epsilon absorbs float rounding: a refill of exactly the missing fraction may land a hair short.
            while self._tokens < 1 - 1e-9:
                await self._sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens = max(self._tokens - 1, 0.0)
