from __future__ import annotations

import azure.functions as func

from bot.retention import run_retention
from bot.runtime import get_runtime

bp = func.Blueprint()


# Every hour at minute 17, on one instance: bounded batches, so a backlog clears over a few runs.
@bp.timer_trigger(schedule="0 17 * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
async def retencion(timer: func.TimerRequest) -> None:
    await run_retention(get_runtime())
