"""with_timeout & co: the limit holds, the slow call is really cancelled, fallbacks are logged and counted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.metrics import ai_timeouts_total
from core.resilience.timeouts import (
    OperationTimeout,
    with_timeout,
    with_timeout_and_fallback,
)


class Probe:
    """A slow operation that records whether it finished or was cancelled."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False
        self.finished = False

    async def run(self, seconds: float, value: object = "done") -> object:
        self.started = True
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.finished = True
        return value


def timeouts(operation: str) -> float:
    return ai_timeouts_total.labels(operation=operation)._value.get()


async def test_with_timeout_returns_the_value_in_time() -> None:
    assert await with_timeout(Probe().run(0, 7), 1000, "fast") == 7


async def test_with_timeout_cancels_the_slow_call_and_raises() -> None:
    probe = Probe()
    with pytest.raises(OperationTimeout) as info:
        await with_timeout(probe.run(30), 50, "slowOp")
    assert info.value.operation == "slowOp" and info.value.timeout_ms == 50
    assert isinstance(info.value, TimeoutError)
    assert probe.cancelled and not probe.finished


async def test_a_timeout_error_raised_by_the_call_itself_is_not_renamed() -> None:
    async def raises() -> None:
        raise TimeoutError("socket said so")

    with pytest.raises(TimeoutError) as info:
        await with_timeout(raises(), 1000, "op")
    assert not isinstance(info.value, OperationTimeout)


async def test_zero_budget_times_out_without_running_the_call() -> None:
    probe = Probe()
    with pytest.raises(OperationTimeout):
        await with_timeout(probe.run(1), 0, "none")
    assert not probe.started


async def test_fallback_logs_counts_and_cancels(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    before = timeouts("extractStructuredData")
    with caplog.at_level(logging.WARNING):
        result = await with_timeout_and_fallback(probe.run(30), 40, "fallback", "extractStructuredData")
    assert result == "fallback"
    assert probe.cancelled and not probe.finished
    assert "[Timeout] extractStructuredData excedió 40ms, usando fallback" in caplog.text
    assert timeouts("extractStructuredData") == before + 1


async def test_fallback_is_not_used_for_other_errors() -> None:
    async def boom() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError):
        await with_timeout_and_fallback(boom(), 1000, None, "op")


async def test_cancelling_the_caller_cancels_the_call() -> None:
    probe = Probe()
    task = asyncio.create_task(with_timeout_and_fallback(probe.run(30), 10_000, "fb", "op"))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.cancelled
