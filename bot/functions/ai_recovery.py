"""Timer: deliver finished assistant answers and cancel orphaned background responses.

runOnStartup: a cold start is exactly when responses left by a dead instance need recovering.
Every 15 s, so an answer that outlived its webhook reaches the user soon after it completes.
"""

from __future__ import annotations

import azure.functions as func

from bot.conversation.sweeper import sweep_ai_responses
from bot.runtime import get_runtime

bp = func.Blueprint()
_started = False


@bp.timer_trigger(schedule="*/15 * * * * *", arg_name="timer", run_on_startup=True, use_monitor=False)
async def ai_recovery(timer: func.TimerRequest) -> None:
    global _started
    await sweep_ai_responses(get_runtime(), startup=not _started)
    _started = True
