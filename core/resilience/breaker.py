"""A circuit breaker per AI provider (a HALF_OPEN failure reopens it with a fresh count).

CLOSED --N consecutive failures--> OPEN --cool-down--> HALF_OPEN --M successes--> CLOSED
                                                       HALF_OPEN --one failure--> OPEN (failure count reset)

Why our own and not a library: the maintained Python breakers (pybreaker, aiobreaker, circuitbreaker)
either wrap sync calls, keep global state, or lack a bounded HALF_OPEN probe; this one is ~150 lines,
has an injectable clock, and is tested transition by transition.

Concurrency: every method is synchronous, so on one event loop each runs without interleaving. A call
takes a `Permit` before it starts and hands it back with its outcome. In HALF_OPEN only
`half_open_max_calls` permits are out at once (the probes); everyone else is refused until a probe
returns. A permit remembers the breaker's generation (bumped on every transition), so an outcome that
arrives after the state changed under it (a slow call started while CLOSED finishing during
HALF_OPEN) cannot close or reopen the breaker by mistake.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core import events
from core.metrics import breaker_state

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    HALF_OPEN = "HALF_OPEN"
    OPEN = "OPEN"


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class Permit:
    generation: int
    probe: bool  # taken in HALF_OPEN: it holds one of the probe slots


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        success_threshold: int = 2,
        cooldown_ms: int = 30_000,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or success_threshold < 1 or half_open_max_calls < 1 or cooldown_ms < 0:
            raise ValueError("breaker thresholds must be >= 1 and the cool-down >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.cooldown_s = cooldown_ms / 1000
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._generation = 0
        self.failures = 0  # consecutive, counted in CLOSED
        self.successes = 0  # counted in HALF_OPEN
        self._probes = 0  # HALF_OPEN permits out
        self._opened_at = 0.0
        breaker_state.labels(provider=name).set(_GAUGE[self._state])

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> BreakerState:
        """The current state; an OPEN breaker whose cool-down has passed becomes HALF_OPEN here."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._transition(BreakerState.HALF_OPEN, "cool-down elapsed")
        return self._state

    def _transition(self, to: BreakerState, reason: str) -> None:
        before = self._state
        self._state = to
        self._generation += 1
        self.successes = 0
        self._probes = 0
        if to is BreakerState.OPEN:
            self._opened_at = self._clock()
            self.failures = 0  # a reopened breaker starts counting afresh
        elif to is BreakerState.CLOSED:
            self.failures = 0
        events.breaker_state_changed(self.name, before.value, to.value, self.failures)
        log.debug("CircuitBreaker %s: %s", self.name, reason)

    # -- calls ---------------------------------------------------------------------------------
    def acquire(self) -> Permit | None:
        """Permission to make one call, or None if the breaker refuses it."""
        state = self.get_state()
        if state is BreakerState.CLOSED:
            return Permit(self._generation, probe=False)
        if state is BreakerState.HALF_OPEN and self._probes < self.half_open_max_calls:
            self._probes += 1
            return Permit(self._generation, probe=True)
        return None

    def _current(self, permit: Permit) -> bool:
        if permit.generation != self._generation:
            return False  # the state changed while the call ran: its outcome is stale
        if permit.probe:
            self._probes -= 1
        return True

    def record_success(self, permit: Permit) -> None:
        if not self._current(permit):
            return
        if self._state is BreakerState.CLOSED:
            self.failures = 0
        elif self._state is BreakerState.HALF_OPEN:
            self.successes += 1
            if self.successes >= self.success_threshold:
                self._transition(BreakerState.CLOSED, f"{self.successes} éxitos en HALF_OPEN")

    def record_failure(self, permit: Permit) -> None:
        if not self._current(permit):
            return
        if self._state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self._transition(BreakerState.OPEN, f"{self.failures} fallos consecutivos")
        elif self._state is BreakerState.HALF_OPEN:
            self._transition(BreakerState.OPEN, "fallo en HALF_OPEN")

    def release(self, permit: Permit) -> None:
        """Give a permit back with no verdict (the caller was cancelled for reasons not the provider's)."""
        self._current(permit)
