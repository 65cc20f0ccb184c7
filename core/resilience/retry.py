"""`with_retry` / `with_session_retry`: retry a versioned write that lost a race , on tenacity.

3 attempts, exponential backoff with jitter (about 50 -> 100 -> 200 ms). Each retry logs
`[ConcurrencyRetry] <operation>(<masked phone>) - Intento n/3 falló, reintentando en <ms>ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from core import events
from core.errors import ConcurrencyError

T = TypeVar("T")
log = logging.getLogger("core.resilience.retry")
MAX_ATTEMPTS = 3


async def with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    operation: str,
    phone: str,
    attempts: int = MAX_ATTEMPTS,
    base_ms: float = 50.0,
) -> T:
    """Run `fn`, retrying on `ConcurrencyError`; the last error propagates when attempts run out."""

    def before_sleep(state: RetryCallState) -> None:
        delay_ms = round((state.next_action.sleep if state.next_action else 0) * 1000)
        events.concurrency_retry(operation, phone, state.attempt_number, attempts, delay_ms)

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ConcurrencyError),
            stop=stop_after_attempt(attempts),
            # 50 -> 100 -> 200 ms plus up to 20 ms of jitter, so racing writers do not collide again in step
            wait=wait_exponential_jitter(initial=base_ms / 1000, exp_base=2, jitter=0.02),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                return await fn()
    except ConcurrencyError as exc:
        events.concurrency_exhausted(operation, phone, attempts, exc.expected_version)
        raise
    raise AssertionError("unreachable")


async def with_session_retry(
    phone: str,
    load: Callable[[str], Awaitable[object]],
    work: Callable[[object], Awaitable[T]],
    *,
    operation: str = "updateSession",
) -> T:
    """Read the session fresh on every attempt and hand it to `work` (which writes with its version)."""

    async def once() -> T:
        return await work(await load(phone))

    return await with_retry(once, operation=operation, phone=phone)
