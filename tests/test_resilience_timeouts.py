"""with_timeout & co: the limit holds, the slow call is really cancelled, fallbacks are logged and counted."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from core.metrics import ai_timeouts_total
from core.resilience.timeouts import (
    OperationTimeout,
    all_with_timeout,
    with_timeout,
    with_timeout_and_fallback,
    with_timeout_and_fallback_fn,
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


async def test_fallback_fn_only_runs_on_timeout_and_may_be_async() -> None:
    calls: list[str] = []

    def sync_fb() -> str:
        calls.append("sync")
        return "s"

    async def async_fb() -> str:
        calls.append("async")
        return "a"

    assert await with_timeout_and_fallback_fn(Probe().run(0, "v"), 1000, sync_fb, "op") == "v"
    assert calls == []
    assert await with_timeout_and_fallback_fn(Probe().run(30), 20, sync_fb, "op") == "s"
    assert await with_timeout_and_fallback_fn(Probe().run(30), 20, async_fb, "op") == "a"
    assert calls == ["sync", "async"]


async def test_all_with_timeout_gives_each_item_its_own_limit() -> None:
    fast, slow, medium = Probe(), Probe(), Probe()
    started = time.monotonic()
    results = await all_with_timeout(
        [
            (fast.run(0, "fast"), 1000, "fb-fast", "a"),
            (slow.run(30, "slow"), 50, "fb-slow", "b"),
            (medium.run(0.05, "medium"), 2000, "fb-medium", "c"),
        ]
    )
    assert results == ["fast", "fb-slow", "medium"]
    assert slow.cancelled and medium.finished
    assert time.monotonic() - started < 5  # loose: nobody waited for the 30 s sleeper


async def test_all_with_timeout_cancels_the_rest_when_one_fails() -> None:
    sibling = Probe()

    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("x")

    with pytest.raises(ValueError):
        await all_with_timeout([(boom(), 1000, None, "a"), (sibling.run(30), 5000, None, "b")])
    assert sibling.cancelled


async def test_cancelling_the_caller_cancels_the_call() -> None:
    probe = Probe()
    task = asyncio.create_task(with_timeout_and_fallback(probe.run(30), 10_000, "fb", "op"))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.cancelled
