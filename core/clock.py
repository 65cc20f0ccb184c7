"""The one clock: milliseconds since the epoch. Services receive it from the composition root
(bot/runtime.py), so a test can run a whole flow at another time by passing its own."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns() // 1_000_000
