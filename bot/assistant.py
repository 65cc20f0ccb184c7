"""The AI layer wired into the runtime: the intent service, the assistant, and the sweeper pass.

The conversation engine calls (all take the `Runtime`):
    service = rt.get_intent()                   # detect_intent / extract_structured_data / interpret_term
    await has_active_question(rt, key)          # True -> keep this phone's messages pending
    await refresh_question(rt, key)             # same, but first checks the provider (delivers if done)
    outcome = await ask_question(rt, key, text, conversation_id, message_id=wamid, budget_ms=...)
    # outcome.answer: queue it as the reply now; None + outcome.pending: the sweeper delivers it later
    # outcome.conversation_id: keep it on the session (SesionesChat.ConversacionIA)
The timer in bot/functions/ai_recovery.py runs `sweep_ai_responses` (bot/conversation/sweeper.py).
"""

from __future__ import annotations

import logging
import time

from bot.conversation import replies as r
from bot.runtime import Runtime
from core.ai import assistant
from core.ai.assistant import AskOutcome
from core.storage.ai_runs import AiRun
from core.storage.database import Tx
from core.storage.outbox import queue_reply

ANSWER_EMPTY = "No encontré una respuesta a tu pregunta."

log = logging.getLogger(__name__)


async def has_active_question(rt: Runtime, conversation_key: str) -> bool:
    return await assistant.has_active_response(rt.db, conversation_key)


async def refresh_question(rt: Runtime, conversation_key: str) -> bool:
    """Check this phone's in-flight response now (delivering it if done); True while still active."""
    return await assistant.refresh_active_response(
        rt.db,
        rt.get_assistant(),
        conversation_key,
        max_age_ms=rt.settings.orphaned_run_max_age_ms,
        deliver=enqueue_answer,
    )


async def ask_question(
    rt: Runtime,
    conversation_key: str,
    question: str,
    conversation_id: str | None,
    *,
    message_id: str | None = None,
    budget_ms: int = assistant.DEFAULT_ASK_BUDGET_MS,
) -> AskOutcome:
    return await assistant.ask(
        rt.db,
        rt.get_assistant(),
        conversation_key,
        question,
        conversation_id,
        message_id=message_id,
        budget_ms=budget_ms,
    )


def enqueue_answer(tx: Tx, run: AiRun, text: str) -> None:
    """Queue a late answer in ColaEnvios, inside the transaction that settles its run (so: once)."""
    message = r.text(text or ANSWER_EMPTY)
    queue_reply(tx, run.phone, kind=message.kind, content=message.to_json(), now_ms=int(time.time() * 1000),
                origin_message_id=run.message_id)
