"""The send limit of each business number, shared by every instance through the database.

Meta allows a number a throughput (80 messages/s by default, more on higher tiers: `OUTBOX_RATE_PER_SECOND`).
The limit lives in one token-bucket row per number (`core/storage/send_limits.py`), so two instances
sharing a number share its rate instead of each sending at the full rate (measured before: 125/s).

The dispatcher takes tokens *before* it claims rows, in small batches (up to the rows it can send at
once), so a claimed row goes to Meta at once and never waits on the limit while `procesando` (a crash
there would leave an unsent row looking possibly sent). Unused tokens go back. Meta's 130429 (the
number's throughput) and app limits pause the number for every instance.

The bucket holds a quarter of a second of burst, so any 5 s window sees at most rate * 5.25 sends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from core.clock import Clock, system_clock
from core.storage.database import Database
from core.storage.send_limits import give_back_tokens, pause_number, take_tokens

BURST_S = 0.25


class SendLimiter(Protocol):
    """What the dispatcher needs of one number's limit."""

    async def take(self, up_to: int = 1, *, max_wait_s: float = float("inf")) -> int: ...

    async def give_back(self, tokens: int) -> None: ...

    async def pause(self, seconds: float) -> None: ...


class NumberSendLimit:
    def __init__(self, db: Database, number: str, rate_per_second: float, clock: Clock = system_clock) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.db = db
        self.clock = clock
        self.number = number
        self.rate = float(rate_per_second)
        self.burst = max(1, int(self.rate * BURST_S))
        # Waiters of this process queue here, first come first served, instead of all polling the row.
        self._lock = asyncio.Lock()

    async def take(self, up_to: int = 1, *, max_wait_s: float = float("inf")) -> int:
        """Wait until at least one token is free (and no pause is on), then take up to `up_to` of the free
        ones at once; answers how many were taken, or 0 if that would mean waiting more than `max_wait_s`."""
        deadline = time.monotonic() + max_wait_s
        async with self._lock:
            while True:
                taken = await take_tokens(self.db, self.number, up_to=up_to, now_ms=self.clock(),
                                          rate_per_second=self.rate, burst=self.burst)
                if taken.tokens:
                    return taken.tokens
                if time.monotonic() + taken.wait_ms / 1000 > deadline:
                    return 0
                await asyncio.sleep(taken.wait_ms / 1000)

    async def give_back(self, tokens: int) -> None:
        if tokens > 0:
            await give_back_tokens(self.db, self.number, tokens, now_ms=self.clock(), rate_per_second=self.rate,
                                   burst=self.burst)

    async def pause(self, seconds: float) -> None:
        now = self.clock()
        await pause_number(self.db, self.number, until_ms=now + int(seconds * 1000), now_ms=now,
                           rate_per_second=self.rate, burst=self.burst)


class SendLimits:
    """Each business number's limit, as this process reaches it."""

    def __init__(self, db: Database, rate_per_second: float, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock
        self.rate_per_second = rate_per_second
        self._limits: dict[str, NumberSendLimit] = {}

    def for_number(self, phone_number_id: str) -> SendLimiter:
        limit = self._limits.get(phone_number_id)
        if limit is None:
            limit = self._limits[phone_number_id] = NumberSendLimit(self.db, phone_number_id, self.rate_per_second,
                                                                          self.clock)
        return limit
