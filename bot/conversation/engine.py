"""Handle one turn (the pending messages of a conversation, read together): read the facts once, look up
what the flows need, decide purely, commit as one unit. A version conflict retries the lookups, the
decision and the commit; the AI calls (extraction, an assistant question, a transcription) are made once
per turn and never repeated by that retry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from bot import texts
from bot.assistant import Questions
from bot.conversation import effects
from bot.conversation.flows import decide, facts_for, needs
from bot.conversation.model import (
    TEXTUAL,
    Answer,
    Equipment,
    FlowInput,
    Lookups,
    Needs,
    ReportInfo,
    Rules,
    Session,
    Transition,
    Turn,
)
from bot.messages import InboundMessage, MessageKind
from core.ai.types import Extraction, IntentProvider
from core.clock import Clock
from core.notify import NotifyConfig
from core.resilience.retry import with_session_retry
from core.settings import Settings
from core.storage.conversations import (
    ReplyWrite,
    TransitionWrite,
    commit_transition,
    equipment_at,
    find_equipment,
    format_report_number,
    get_session_with_version,
    recent_chat,
)
from core.storage.database import Database
from core.storage.leases import Lease
from core.telemetry import mask_phone

log = logging.getLogger("bot.conversation")
ASK_BUDGET_MS = 1_500  # well inside the worker's budget; a slower answer is delivered by the AI sweep
Transcribe = Callable[[InboundMessage], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Handled:
    transition: Transition
    report_id: int | None
    recipient: str


def flow_rules(settings: Settings) -> Rules:
    s = settings
    return Rules(followup_ms=s.report_followup_minutes * 60_000, correction_ms=s.report_correction_minutes * 60_000,
                 handover_ms=s.handover_minutes * 60_000, draft_ttl_ms=s.draft_ttl_hours * 3_600_000,
                 notifies_maintenance=bool(s.report_notify_numbers))


def to_write(session: Session, turn: Turn, inbox_ids: Sequence[int], tr: Transition, now: int,
             notify: NotifyConfig | None = None, history: str | None = None) -> TransitionWrite:
    """The storage write of a transition; `notify` None for idle transitions (they notify nobody)."""
    recipient = turn.last.recipient if turn.messages else session.key
    replies = tuple(ReplyWrite(recipient, m.kind, m.to_json(), m.body) for m in tr.replies)
    return TransitionWrite(
        key=session.key,
        expected_version=session.version,
        state_from=session.state,
        state_to=tr.state.value,
        data=tr.data,
        equipment_id=tr.equipment_id,
        origin="USUARIO" if turn.messages else "SISTEMA",
        description=tr.description,
        now_ms=now,
        inbox_ids=tuple(inbox_ids),
        message_id=turn.last.wamid if turn.messages else None,
        earlier_message_ids=tuple(m.wamid for m in turn.messages[:-1]),
        user_messages=tuple((m.wamid, _chat_text(m)) for m in turn.messages),
        report=tr.report.to_write() if tr.report else None,
        replies=replies,
        effects=effects.for_transition(notify, session.key, tr, now, turn.last.wamid if turn.messages else None,
                                       history),
    )


class ConversationEngine:
    """Handles a turn: reads its facts once (AI extraction, assistant question, voice transcripts), then
    looks up, decides and commits, retrying those three on a version conflict."""

    def __init__(self, db: Database, intent: IntentProvider, questions: Questions, transcribe: Transcribe, *,
                 rules: Rules, notify: NotifyConfig, clock: Clock) -> None:
        self.db = db
        self.intent = intent
        self.questions = questions
        self.transcribe = transcribe
        self.rules = rules
        self.notify = notify
        self.clock = clock

    async def handle_turn(self, rows: Sequence[tuple[int, InboundMessage]], lease: Lease | None,
                          session: Session | None = None) -> Handled:
        """Handle pending inbox rows of one conversation as one turn. Raises LeaseLost / AlreadyProcessed /
        ConcurrencyError with nothing committed. `session` is the one the caller read with the rows, if any."""
        db = self.db
        messages = [await self._with_transcript(m) for _, m in rows]
        key = messages[0].conversation_key
        turn = Turn(tuple(messages))
        text = turn.text
        if session is None:
            session = Session.from_row(key, await get_session_with_version(db, key))
        extraction: Extraction | None = None
        if text:
            try:
                extraction = await self.intent.extract_structured_data(text)
            except Exception:  # the intent service never raises; a bare provider might
                log.warning("Extracción falló (%s)", mask_phone(key), exc_info=True)
        facts = facts_for(turn, extraction)
        answer = await self._answer(session, turn, facts)
        loaded = [session]

        async def load(phone: str) -> Session:
            return loaded.pop() if loaded else Session.from_row(phone, await get_session_with_version(db, phone))

        async def attempt(current: object) -> Handled:
            assert isinstance(current, Session)
            need = needs(current, turn, facts)
            lookups = await self._lookups(key, need, answer)
            history = await self._history(key, need)
            now = self.clock()
            tr = decide(FlowInput(current, turn, facts, now, lookups, self.rules))
            write = to_write(current, turn, [i for i, _ in rows], tr, now, self.notify, history)
            report_id = await commit_transition(db, write, lease)
            return Handled(tr, report_id, turn.last.recipient)

        handled = await with_session_retry(key, load, attempt)
        if handled.report_id is not None:
            log.info("Reporte creado %s para %s", format_report_number(handled.report_id), mask_phone(key))
        return handled

    async def _with_transcript(self, m: InboundMessage) -> InboundMessage:
        """A voice note's transcript, when an AI provider can make one, is read like text."""
        if m.kind is not MessageKind.AUDIO or m.text:
            return m
        transcript = await self.transcribe(m)
        return replace(m, text=transcript) if transcript else m

    async def _answer(self, session: Session, turn: Turn, facts: Extraction) -> Answer | None:
        """A free-form question goes to the assistant once per turn (inline, or later through the AI sweep)."""
        if not needs(session, turn, facts).question:
            return None
        outcome = await self.questions.ask(session.key, turn.text, session.ai_conversation_id,
                                           message_id=turn.last.wamid, budget_ms=ASK_BUDGET_MS)
        return Answer(outcome.status, outcome.answer)

    async def _lookups(self, key: str, need: Needs, answer: Answer | None) -> Lookups:
        db = self.db
        found = await find_equipment(db, need.sap_code) if need.sap_code else None
        equipment = Equipment.from_row(found) if found else None
        store = tuple(Equipment.from_row(e) for e in await equipment_at(db, need.store)) if need.store else ()
        duplicate = None
        if need.duplicate:
            equipment_id = equipment.id if equipment else need.equipment_id
            duplicate = await effects.open_report(db, equipment_id, need.plate)
        reports: tuple[ReportInfo, ...] = ()
        if need.reports:
            reports = tuple(await effects.reports_of(db, key))
        return Lookups(equipment, store, duplicate, reports, answer)

    async def _history(self, key: str, need: Needs) -> str | None:
        if not need.history:
            return None
        lines = await recent_chat(self.db, key, 20)
        return texts.chat_transcript(lines)


def _chat_text(m: InboundMessage) -> str:
    if m.kind in TEXTUAL:
        return m.text
    return f"[{m.kind.value}] {m.text}".strip()
