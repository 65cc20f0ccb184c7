"""The send limit of each business number: a token bucket per number (Meta allows 80 messages/s by default).

The dispatcher takes tokens *before* it claims rows, so a claimed row goes to Meta at once and never waits
on the limit while `procesando` (a crash there would leave an unsent row looking possibly sent).

This bucket limits one process. Several instances share Meta's limit, so each should get rate / instances;
Meta's own 130429 answer pauses the number here and is a retry-later, so overshooting costs a delay, not a loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class SendLimiter(Protocol):
    """What the dispatcher needs of one number's limit."""

    async def take(self, up_to: int = 1, *, max_wait_s: float = float("inf")) -> int: ...

    def give_back(self, tokens: int) -> None: ...

    def pause(self, seconds: float) -> None: ...


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
        self._paused_until = 0.0
        self._lock = asyncio.Lock()  # waiters queue up first come, first served

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def take(self, up_to: int = 1, *, max_wait_s: float = float("inf")) -> int:
        """Wait until at least one token is free (and no pause is on), then take up to `up_to` of the free
        ones at once; answers how many were taken, or 0 if that would mean waiting more than `max_wait_s`."""
        async with self._lock:
            self._refill()
            # The epsilon absorbs float rounding: a refill of exactly the missing fraction may land a hair short.
            while self._tokens < 1 - 1e-9 or self._clock() < self._paused_until:
                wait = max((1 - self._tokens) / self.rate, self._paused_until - self._clock())
                if wait > max_wait_s:
                    return 0
                await self._sleep(wait)
                self._refill()
            taken = max(1, min(up_to, int(self._tokens + 1e-9)))
            self._tokens = max(self._tokens - taken, 0.0)
            return taken

    async def acquire(self) -> None:
        await self.take(1)

    def give_back(self, tokens: int) -> None:
        """Return tokens taken but not used (fewer rows were due than tokens taken)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + tokens)

    def pause(self, seconds: float) -> None:
        """Send nothing from this number for `seconds` (Meta said it is over its throughput)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


class SendLimits:
    """One bucket per business number this process sends from."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate_per_second = rate_per_second
        self._limiters: dict[str, RateLimiter] = {}

    def for_number(self, phone_number_id: str) -> SendLimiter:
        limiter = self._limiters.get(phone_number_id)
        if limiter is None:
            limiter = self._limiters[phone_number_id] = RateLimiter(self.rate_per_second)
        return limiter
