from __future__ import annotations

import azure.functions as func

from bot.retention import run_retention
from bot.runtime import get_runtime

bp = func.Blueprint()


# Every 10 minutes (at second 17), on one instance: each run purges for up to 4 minutes, so the rows of
# 10 minutes at full load are deleted with room to spare and a backlog clears over a few runs.
@bp.timer_trigger(schedule="17 */10 * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
async def retencion(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    await run_retention(rt.db, rt.settings)
