from __future__ import annotations

import azure.functions as func

from bot.conversation.sweeper import sweep_conversations
from bot.runtime import get_runtime

bp = func.Blueprint()


# Every 15 s and at every cold start: redrive stalled conversations, expire idle sessions.
@bp.timer_trigger(schedule="*/15 * * * * *", arg_name="timer", run_on_startup=True, use_monitor=False)
async def conversation_sweep(timer: func.TimerRequest) -> None:
    await sweep_conversations(get_runtime())
