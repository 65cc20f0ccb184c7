"""The AI layer wired into the runtime: the intent service, the assistant, and the sweeper pass.

The conversation engine calls (all take the `Runtime`):
    service = get_intent_service(rt)            # detect_intent / extract_structured_data / interpret_term
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

from bot.runtime import Runtime
from core.ai import assistant
from core.ai.assistant import AskOutcome
from core.ai.remote import AssistantBackend
from core.ai.service import IntentService, build_assistant_backend, build_intent_service
from core.ai.types import IntentProvider
from core.storage.ai_runs import AiRun
from core.storage.database import Tx
from core.whatsapp.outgoing import MAX_TEXT_BODY, OutgoingMessage, fit

ANSWER_EMPTY = "No encontré una respuesta a tu pregunta."

log = logging.getLogger(__name__)
SERVICE_KEY = "intent"  # the key the conversation engine reads (bot/conversation/engine.py on main)
ASSISTANT_KEY = "assistant"


def get_intent_service(rt: Runtime) -> IntentProvider:
    """The intent service for this runtime (built from settings once); tests may pre-seed `rt.extras["intent"]`."""
    service = rt.extras.get(SERVICE_KEY)
    if service is None:
        service = build_intent_service(rt.settings)
        rt.extras[SERVICE_KEY] = service
    return service  # type: ignore[return-value]


def get_assistant(rt: Runtime) -> AssistantBackend:
    backend = rt.extras.get(ASSISTANT_KEY)
    if backend is None:
        backend = build_assistant_backend(rt.settings)
        rt.extras[ASSISTANT_KEY] = backend
    return backend  # type: ignore[return-value]


async def has_active_question(rt: Runtime, conversation_key: str) -> bool:
    return await assistant.has_active_response(rt.db, conversation_key)


async def refresh_question(rt: Runtime, conversation_key: str) -> bool:
    """Check this phone's in-flight response now (delivering it if done); True while still active."""
    return await assistant.refresh_active_response(
        rt.db,
        get_assistant(rt),
        conversation_key,
        max_age_ms=rt.settings.orphaned_run_max_age_ms,
        deliver=enqueue_answer,
    )


async def close_ai(rt: Runtime) -> None:
    """Close the AI clients built for this runtime (call from `Runtime.aclose`)."""
    service = rt.extras.pop(SERVICE_KEY, None)
    if isinstance(service, IntentService):
        await service.aclose()
    backend = rt.extras.pop(ASSISTANT_KEY, None)
    close = getattr(backend, "aclose", None)
    if close is not None:
        await close()


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
        get_assistant(rt),
        conversation_key,
        question,
        conversation_id,
        message_id=message_id,
        budget_ms=budget_ms,
    )


def enqueue_answer(tx: Tx, run: AiRun, text: str) -> None:
    """Queue a late answer in ColaEnvios, inside the transaction that settles its run (so: once)."""
    message = OutgoingMessage(body=fit(text or ANSWER_EMPTY, MAX_TEXT_BODY))
    tx.execute(
        "enqueue_outbound",
        {
            "destinatario": run.telefono,
            "tipo": message.kind,
            "contenido": message.to_json(),
            "ahora": int(time.time() * 1000),
            "message_id_origen": run.message_id,
        },
    )
