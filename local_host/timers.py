"""Timer triggers on their six-field NCRONTAB schedules (seconds first), as the Functions host runs them."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest
from croniter import croniter

log = logging.getLogger("local_host.timers")


# Schedules named by an app setting (`%NAME%`, resolved by the Functions host) and their local values when the
# setting is absent. Azure's values are in infra/main.bicep.
LOCAL_SCHEDULES = {
    "CONVERSATION_SWEEP_SCHEDULE": "*/15 * * * * *",
    "AI_RECOVERY_SCHEDULE": "*/15 * * * * *",
    "OUTBOX_SWEEP_SCHEDULE": "*/10 * * * * *",
    "METRICS_SAMPLE_SCHEDULE": "30 * * * * *",
    "EVIDENCE_SWEEP_SCHEDULE": "*/30 * * * * *",
}


# The local host's in-process queue loses what it held on a restart, so these recovery timers also run once
# at start here (on Azure nothing runs on startup: their first scheduled run after a start has no grace).
LOCAL_STARTUP_RUNS = frozenset({"conversation_sweep", "ai_recovery"})


def resolve_schedule(schedule: str) -> str:
    """`%NAME%` -> the app setting NAME (or its local value), as the host resolves binding expressions."""
    if not (schedule.startswith("%") and schedule.endswith("%")):
        return schedule
    name = schedule.strip("%")
    value = os.environ.get(name, "").strip() or LOCAL_SCHEDULES.get(name, "")
    if not value:
        raise ValueError(f"the timer schedule names the app setting {name}, which is not set")
    return value


def ncrontab_to_croniter(schedule: str) -> str:
    """`sec min hour day month dow` -> croniter's `min hour day month dow sec`."""
    fields = schedule.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB needs six fields (seconds first), got {schedule!r}")
    return " ".join([*fields[1:], fields[0]])


async def invoke(fn: Callable[..., object], arg_name: str, past_due: bool = False) -> None:
    request = TimerRequest(past_due=past_due)
    if inspect.iscoroutinefunction(fn):
        await fn(**{arg_name: request})
    else:
        await asyncio.to_thread(fn, **{arg_name: request})


async def run_timer(name: str, fn: Callable[..., object], arg_name: str, schedule: str, run_on_startup: bool) -> None:
    """Fire `fn` on its schedule until cancelled; one execution at a time, like the host's singleton lock."""
    itr = croniter(ncrontab_to_croniter(resolve_schedule(schedule)), datetime.now(UTC))
    if run_on_startup:
        await _safe(name, fn, arg_name)
    while True:
        due = itr.get_next(float)
        await asyncio.sleep(max(due - time.time(), 0))
        await _safe(name, fn, arg_name, past_due=time.time() - due > 1)


async def _safe(name: str, fn: Callable[..., object], arg_name: str, past_due: bool = False) -> None:
    try:
        await invoke(fn, arg_name, past_due)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("Timer %s falló", name)
