"""A bug in our own provider code is not the provider's failure: the intent service logs it with its
traceback, hands over to the next provider and leaves the breaker as it was. `AIProviderError` counts."""

from __future__ import annotations

import logging
from typing import NoReturn

import pytest

from core.ai.offline import OfflineProvider
from core.ai.service import IntentService
from core.errors import AIProviderError
from core.resilience.breaker import BreakerState, CircuitBreaker


class BuggyProvider(OfflineProvider):
    """`detect_intent` raises the given exception."""

    name = "buggy"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def detect_intent(self, text: str) -> NoReturn:
        self.calls += 1
        raise self.error


TEXT = "el refrigerador no enfría"


def service_with(provider: BuggyProvider) -> tuple[IntentService, CircuitBreaker]:
    breaker = CircuitBreaker(provider.name, failure_threshold=1, success_threshold=1, cooldown_ms=60_000)
    return IntentService([provider, OfflineProvider()], breakers={provider.name: breaker}), breaker


@pytest.mark.parametrize("error", [TypeError("bad argument"), AttributeError("no attribute"), KeyError("x")])
async def test_a_programming_error_does_not_open_the_breaker(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = BuggyProvider(error)
    service, breaker = service_with(buggy)
    with caplog.at_level(logging.WARNING, logger="core.ai.service"):
        for _ in range(3):
            # the offline rules answered
            assert await service.detect_intent(TEXT) == await OfflineProvider().detect_intent(TEXT)
    assert buggy.calls == 3  # never skipped: the breaker stayed closed
    assert breaker.get_state() is BreakerState.CLOSED and breaker.failures == 0
    logged = [r for r in caplog.records if "error inesperado con el proveedor buggy" in r.getMessage()]
    assert len(logged) == 3 and all(r.exc_info and r.exc_info[1] is error for r in logged)


async def test_a_provider_error_opens_the_breaker() -> None:
    buggy = BuggyProvider(AIProviderError("buggy", "HTTP 500"))
    service, breaker = service_with(buggy)
    for _ in range(3):
        assert await service.detect_intent(TEXT) == await OfflineProvider().detect_intent(TEXT)
    assert breaker.get_state() is BreakerState.OPEN
    assert buggy.calls == 1  # skipped once open
