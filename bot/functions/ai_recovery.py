"""Timer: deliver finished assistant answers and cancel orphaned background responses.

The first run after a start recovers what a dead instance left (no runOnStartup: on Azure that would run
at every scale-out). The schedule is an app setting: every 15 s locally, so an answer that outlived its
webhook reaches the user soon after it completes; every 5 minutes on Azure (infra/), so an idle app can
scale to zero.
"""

from __future__ import annotations

import azure.functions as func

from bot.runtime import get_runtime

bp = func.Blueprint()
_started = False


@bp.timer_trigger(schedule="%AI_RECOVERY_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
async def ai_recovery(timer: func.TimerRequest) -> None:
    global _started
    await get_runtime().sweeper.sweep_ai_responses(startup=not _started)
    _started = True
