"""Timer: download evidence still `pendiente` (new rows the worker did not reach, failed ones whose
backoff ended, claims whose holder died). On the app setting EVIDENCE_SWEEP_SCHEDULE (locally every 30 s,
on Azure every 5 minutes); when nothing is due a tick costs one indexed query."""

from __future__ import annotations

import azure.functions as func

from bot.runtime import get_runtime

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%EVIDENCE_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def evidence_sweep(timer: func.TimerRequest) -> None:
    await get_runtime().evidence.sweep()
