"""Handle one inbound message: gather reads, ask the AI what the state needs, decide purely, commit as one unit."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from bot.assistant import ask_question
from bot.conversation.flows import Answer, FlowInput, Transition, aside, decide, is_question, needs
from bot.messages import InboundMessage, MessageKind
from bot.runtime import Runtime
from core.ai.types import FALLBACK_INTENT, Intencion, Intent
from core.resilience.retry import with_session_retry
from core.storage.conversations import (
    ReplyWrite,
    Session,
    TransitionWrite,
    commit_transition,
    find_equipment,
    format_report_number,
    get_session_with_version,
    save_user_message,
    touch_last_activity,
)
from core.storage.leases import Lease
from core.telemetry import mask_phone

log = logging.getLogger("bot.conversation")
TEXTUAL = (MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY)
ASK_BUDGET_MS = 1_500  # well inside the webhook's budget; a slower answer is delivered by the AI sweep


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Handled:
    transition: Transition
    report_id: int | None
    recipient: str


def to_write(session: Session, msg: InboundMessage, inbox_id: int | None, tr: Transition, now: int) -> TransitionWrite:
    replies = tuple(ReplyWrite(msg.recipient, m.kind, m.to_json(), m.body) for m in tr.replies)
    return TransitionWrite(
        key=session.key,
        expected_version=session.version,
        state_from=session.state,
        state_to=tr.state.value,
        data=tr.data,
        equipment_id=tr.equipment_id,
        origin="USUARIO",
        description=tr.description,
        now_ms=now,
        inbox_id=inbox_id,
        message_id=msg.wamid,
        report=tr.report,
        replies=replies,
    )


async def handle_message(rt: Runtime, inbox_id: int, msg: InboundMessage, lease: Lease | None) -> Handled:
    """Handle one pending inbox row. Raises LeaseLost / AlreadyProcessed / ConcurrencyError with nothing committed."""
    db, ai, key = rt.db, rt.get_intent(), msg.conversation_key
    textual = msg.kind in TEXTUAL
    history, session, touched, intent = await asyncio.gather(
        save_user_message(db, key, msg.text if textual else f"[{msg.kind.value}]", msg.wamid),
        get_session_with_version(db, key),
        touch_last_activity(db, key, now_ms()),
        ai.detect_intent(msg.text) if textual else _no_intent(),
        return_exceptions=True,
    )
    if isinstance(history, BaseException):
        log.warning("No se pudo guardar el mensaje en el historial (%s): %s", mask_phone(key), history)
    if isinstance(touched, BaseException):
        log.warning("No se pudo actualizar la última actividad (%s): %s", mask_phone(key), touched)
    if isinstance(session, BaseException):
        log.error("Error obteniendo sesión (%s): %s", mask_phone(key), session)
        raise session
    if isinstance(intent, BaseException):
        log.warning("Detección de intención falló (%s): %s", mask_phone(key), intent)
        intent = FALLBACK_INTENT

    loaded = [session]

    async def load(phone: str) -> Session:
        return loaded.pop() if loaded else await get_session_with_version(db, phone)

    async def attempt(current: object) -> Handled:
        assert isinstance(current, Session)
        need = needs(current.state, msg)
        term_text = msg.choice_id or msg.text
        extraction = await ai.extract_structured_data(msg.text) if need.extraction else None
        term = await ai.interpret_term(term_text, need.term) if need.term else None
        equipment = await find_equipment(db, need.sap_code) if need.sap_code else None
        answer = None
        if is_question(extraction) or aside(current.state, msg, intent, term) is Intencion.PREGUNTA:
            # Free-form question: the assistant answers inline, or later through the AI sweep.
            outcome = await ask_question(rt, key, msg.text, current.ai_conversation_id, message_id=msg.wamid,
                                         budget_ms=ASK_BUDGET_MS)
            answer = Answer(outcome.status, outcome.answer)
        tr = decide(FlowInput(current, msg, intent, extraction, term, equipment, answer))
        report_id = await commit_transition(db, to_write(current, msg, inbox_id, tr, now_ms()), lease)
        return Handled(tr, report_id, msg.recipient)

    handled = await with_session_retry(key, load, attempt)
    if handled.report_id is not None:
        log.info("Reporte creado %s para %s", format_report_number(handled.report_id), mask_phone(key))
    return handled


async def _no_intent() -> Intent:
    return FALLBACK_INTENT
