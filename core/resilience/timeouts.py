"""Hard time limits on awaitables, with fallbacks .

Built on `asyncio.timeout`: when the limit passes, the awaited task is cancelled, so an HTTP call in
flight is aborted and its connection closed rather than left running in the background. A timeout
that falls back logs `[Timeout] <operation> excedió <ms>ms, usando fallback` (the operations queries search
that text) and counts `ai_timeouts_total{operation}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from core import events

T = TypeVar("T")
log = logging.getLogger(__name__)


class OperationTimeout(TimeoutError):
    """An operation ran past its limit; it was cancelled."""

    def __init__(self, operation: str, timeout_ms: int) -> None:
        self.operation = operation
        self.timeout_ms = timeout_ms
        super().__init__(f"{operation} excedió {timeout_ms}ms")


def _close_unawaited(aw: Awaitable[Any]) -> None:
    # A coroutine that never ran would warn "was never awaited"; close it quietly.
    if asyncio.iscoroutine(aw):
        aw.close()


async def with_timeout(aw: Awaitable[T], timeout_ms: int, operation: str = "operation") -> T:
    """Await `aw` for at most `timeout_ms`; past that it is cancelled and `OperationTimeout` raised."""
    if timeout_ms <= 0:
        _close_unawaited(aw)
        raise OperationTimeout(operation, timeout_ms)
    cm = asyncio.timeout(timeout_ms / 1000)
    try:
        async with cm:
            return await aw
    except TimeoutError:
        if not cm.expired():
            raise  # raised by `aw` itself (e.g. an inner limit): not ours to rename
        raise OperationTimeout(operation, timeout_ms) from None


def _log_timeout(operation: str, timeout_ms: int) -> None:
    events.ai_timeout(operation, timeout_ms)


async def with_timeout_and_fallback(aw: Awaitable[T], timeout_ms: int, fallback: T, operation: str) -> T:
    """Await `aw` for at most `timeout_ms`; on timeout cancel it, log and count, and answer `fallback`.

    Only the timeout falls back: any other error raised by `aw` propagates.
    """
    try:
        return await with_timeout(aw, timeout_ms, operation)
    except OperationTimeout:
        _log_timeout(operation, timeout_ms)
        return fallback
