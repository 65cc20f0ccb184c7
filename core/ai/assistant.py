"""Free-form questions: one provider conversation per phone, a background response per question.

On OpenAI Conversations + background Responses. A question starts a background response on the
phone's conversation and is recorded in `EjecucionesIA` while it is in flight; `ask` waits at most its
budget and answers inline when the response is done by then. Otherwise the response stays recorded
(`has_active_response` is True, and the engine keeps that phone's later messages pending, since the
provider refuses work on a busy conversation with `conversation_locked`), and the sweeper's
`recover_orphaned_runs` delivers the answer when it completes, or cancels
it once it is older than `ORPHANED_RUN_MAX_AGE`. A response found completed is delivered, never
thrown away. Settling a run is conditional on it still being active, so exactly one of the
conversation worker and the sweeper delivers each answer.

Known gap: a process that dies between the provider accepting a response and our insert leaves a
response we never recorded; the provider still finishes it, so it only delays that conversation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from core import events
from core.ai.offline import normalize
from core.ai.remote import TERMINAL_STATUSES, AssistantBackend, RemoteResponse
from core.clock import Clock, system_clock
from core.errors import AIProviderError, ConversationBusy
from core.resilience.timeouts import OperationTimeout, with_timeout
from core.storage import ai_runs
from core.storage.ai_runs import AiRun
from core.storage.database import Database, Tx
from core.telemetry import mask_phone

log = logging.getLogger(__name__)

DEFAULT_ASK_BUDGET_MS = 2_000
DEFAULT_CALL_TIMEOUT_MS = 5_000
# An orphan that still cannot be cancelled at this many times the max age is given up locally,
# so a provider that can no longer be reached never blocks a phone for good.
ABANDON_FACTOR = 3



@dataclass(frozen=True, slots=True)
class AssistantWords:
    """What the worker reads when no model answers. The words are the bot's (bot/texts.py): core
    carries them, it writes none."""

    offline: str  # the offline assistant's answer to a question
    offline_status: str  # ... to a question about a report
    failed: str  # the provider failed or gave no answer
    abandoned: str  # the question took too long and was cancelled

Deliver = Callable[[Tx, AiRun, str, int], None]  # (tx, run, answer, now in ms)


class OfflineAssistant:
    """Answers at once with a helpful canned text; nothing is stored or left in flight."""

    name = "offline"

    def __init__(self, words: AssistantWords) -> None:
        self.words = words

    async def create_conversation(self, conversation_key: str) -> str:
        return "offline"

    async def start_response(self, conversation_id: str, question: str) -> RemoteResponse:
        t = normalize(question)
        about_a_report = any(w in t for w in ("mi reporte", "numero de reporte", "estado"))
        text = self.words.offline_status if about_a_report else self.words.offline
        return RemoteResponse(id=None, status="completed", text=text)

    async def retrieve_response(self, response_id: str) -> RemoteResponse:
        raise AIProviderError(self.name, "sin respuestas en segundo plano")

    async def cancel_response(self, response_id: str) -> RemoteResponse:
        raise AIProviderError(self.name, "sin respuestas en segundo plano")


@dataclass(frozen=True, slots=True)
class AskOutcome:
    """`answer`: text to send now, or None while the response is still running (the sweeper delivers it).

    status: `completed` (answer is the model's), `failed` (answer is an apology), `pending` (answer None,
    response in flight and recorded), `busy` (answer None: a response was already active; nothing done).
    """

    answer: str | None
    conversation_id: str | None
    response_id: str | None
    status: str

    @property
    def pending(self) -> bool:
        return self.status == "pending"


async def has_active_response(db: Database, conversation_key: str) -> bool:
    """True while a background response is in flight on this phone's conversation."""
    return await ai_runs.has_active_ai_run(db, conversation_key)


async def ask(
    db: Database,
    backend: AssistantBackend,
    conversation_key: str,
    question: str,
    conversation_id: str | None,
    *,
    words: AssistantWords,
    message_id: str | None = None,
    budget_ms: int = DEFAULT_ASK_BUDGET_MS,
    poll_interval_ms: int = 200,
    now_ms: Clock = system_clock,
) -> AskOutcome:
    """Answer `question` within `budget_ms` if the provider can.

    Provider trouble never raises (it becomes a `failed` outcome with an apology); storage errors do,
    like any storage call in the engine. Every provider wait is bounded by `budget_ms`; the few local
    statements (check, record, settle) are not. Give `ask` less than the turn's own budget and do
    not cancel it from outside: a cancellation between the provider accepting the response and our
    insert leaves a response we do not know about.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_ms / 1000

    def left_ms() -> int:
        return int((deadline - loop.time()) * 1000)

    who = mask_phone(conversation_key)
    if await ai_runs.has_active_ai_run(db, conversation_key):
        return AskOutcome(None, conversation_id, None, "busy")
    try:
        if not conversation_id:
            conversation_id = await _new_conversation(db, backend, conversation_key, left_ms())
        try:
            started = await with_timeout(backend.start_response(conversation_id, question), left_ms(), "startResponse")
        except AIProviderError as exc:
            if exc.status != 404:
                raise
            # The provider no longer knows the conversation (expired, deleted, another account): start afresh.
            log.info("[IA] conversación %s desconocida para el proveedor; se crea otra", conversation_id)
            conversation_id = await _new_conversation(db, backend, conversation_key, left_ms())
            started = await with_timeout(backend.start_response(conversation_id, question), left_ms(), "startResponse")
    except (OperationTimeout, AIProviderError) as exc:
        level = logging.WARNING if not isinstance(exc, ConversationBusy) else logging.INFO
        log.log(level, "[IA] pregunta de %s sin iniciar: %s", who, exc)
        return AskOutcome(words.failed, conversation_id, None, "failed")

    if started.id is None or started.status in TERMINAL_STATUSES:
        return AskOutcome(_answer_text(started, words), conversation_id, started.id, _outcome_status(started))

    await ai_runs.record_ai_run(db, started.id, conversation_key, conversation_id, started.status, message_id, now_ms())
    log.info("[IA] RESPUESTA_IA_INICIADA %s conversación=%s respuesta=%s", who, conversation_id, started.id)
    current = started
    while left_ms() > 0:
        await asyncio.sleep(min(poll_interval_ms, max(left_ms(), 0)) / 1000)
        try:
            current = await with_timeout(backend.retrieve_response(started.id), left_ms(), "retrieveResponse")
        except (OperationTimeout, AIProviderError):
            break  # out of budget or provider trouble: the sweeper takes it from here
        if current.status in TERMINAL_STATUSES:
            text = _answer_text(current, words)
            if await ai_runs.settle_ai_run(db, started.id, current.status, text, now_ms()):
                return AskOutcome(text, conversation_id, started.id, _outcome_status(current))
            return AskOutcome(None, conversation_id, started.id, "pending")  # the sweeper won and delivers it
    return AskOutcome(None, conversation_id, started.id, "pending")


async def _new_conversation(db: Database, backend: AssistantBackend, conversation_key: str, limit_ms: int) -> str:
    conversation_id = await with_timeout(backend.create_conversation(conversation_key), limit_ms, "createConversation")
    if backend.name != "offline" and not await ai_runs.set_ai_conversation(db, conversation_key, conversation_id):
        log.info("[IA] conversación %s creada para %s sin sesión aún", conversation_id, mask_phone(conversation_key))
    return conversation_id


def _answer_text(response: RemoteResponse, words: AssistantWords) -> str:
    if response.status == "completed" and response.text:
        return response.text
    return words.failed


def _outcome_status(response: RemoteResponse) -> str:
    return "completed" if response.status == "completed" and response.text else "failed"


# -- the sweeper ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecoveryReport:
    checked: int = 0
    cancelled: int = 0
    delivered: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (conversation_key, text)


async def recover_orphaned_runs(
    db: Database,
    backend: AssistantBackend,
    *,
    max_age_ms: int,
    words: AssistantWords,
    now_ms: Clock = system_clock,
    deliver: Deliver | None = None,
    call_timeout_ms: int = DEFAULT_CALL_TIMEOUT_MS,
    limit: int = 100,
    always_log: bool = False,
) -> RecoveryReport:
    """Check every active run: deliver the finished, follow the running, cancel those older than `max_age_ms`.

    `deliver(tx, run, text, now_ms)` runs in the same transaction that settles the run, and only for the
    caller that settled it, so an answer is queued once. Logs ORPHANED_RUNS_RECOVERY_START,
    ORPHANED_RUN_CANCELLED per orphan and ORPHANED_RUNS_RECOVERY_COMPLETE (at start-up always, later
    only when there was something to check). Never raises on provider trouble: a run that cannot be
    checked or cancelled now is tried again on the next sweep.
    """
    runs = await ai_runs.list_active_ai_runs(db, limit)
    if runs or always_log:
        events.orphaned_runs_recovery_start(max_age_ms)
    cancelled = 0
    delivered: list[tuple[str, str]] = []
    for run in runs:
        outcome = await _check_run(db, backend, run, max_age_ms, now_ms, deliver, call_timeout_ms, words)
        cancelled += outcome.cancelled
        if outcome.delivered is not None:
            delivered.append((run.phone, outcome.delivered))
    if runs or always_log:
        events.orphaned_runs_recovery_complete(len(runs), cancelled)
    return RecoveryReport(checked=len(runs), cancelled=cancelled, delivered=tuple(delivered))


@dataclass(frozen=True, slots=True)
class _RunCheck:
    active: bool  # still in flight after the check
    cancelled: int = 0
    delivered: str | None = None  # the text this caller settled (and handed to `deliver`)


async def _check_run(
    db: Database,
    backend: AssistantBackend,
    run: AiRun,
    max_age_ms: int,
    now_ms: Clock,
    deliver: Deliver | None,
    call_timeout_ms: int,
    words: AssistantWords,
) -> _RunCheck:
    """Look at one active run: settle it if it finished, cancel it if it is an orphan, else follow it."""
    age_ms = now_ms() - run.created_ms
    remote: RemoteResponse | None
    try:
        remote = await with_timeout(backend.retrieve_response(run.id), call_timeout_ms, "retrieveResponse")
    except (OperationTimeout, AIProviderError) as exc:
        log.warning("[IA] no se pudo consultar la respuesta %s: %s", run.id, exc)
        remote = None
    if remote is not None and remote.status in TERMINAL_STATUSES:
        text = _answer_text(remote, words)
        won = await _settle(db, run, remote.status, text, now_ms(), deliver)
        return _RunCheck(active=False, delivered=text if won else None)
    if age_ms <= max_age_ms:
        if remote is not None and remote.status != run.state:
            await ai_runs.update_active_ai_run_status(db, run.id, remote.status, now_ms())
        return _RunCheck(active=True)
    try:
        after = await with_timeout(backend.cancel_response(run.id), call_timeout_ms, "cancelResponse")
    except (OperationTimeout, AIProviderError) as exc:
        if age_ms <= ABANDON_FACTOR * max_age_ms:
            log.warning("[IA] no se pudo cancelar la respuesta huérfana %s: %s", run.id, exc)
            return _RunCheck(active=True)  # tried again on the next sweep
        # The provider cannot be asked any more (key revoked, provider switched off): stop blocking the phone.
        won = await _settle(db, run, "abandonado", words.abandoned, now_ms(), deliver)
        log.error(
            "ORPHANED_RUN_ABANDONED: Respuesta IA huérfana abandonada sin cancelar telefono=%s conversacion=%s "
            "respuesta=%s edadMinutos=%d error=%s",
            mask_phone(run.phone),
            run.conversation_id,
            run.id,
            age_ms // 60_000,
            exc,
        )
        return _RunCheck(active=False, delivered=words.abandoned if won else None)
    if after.status == "completed":  # it finished meanwhile: use it
        text = _answer_text(after, words)
        won = await _settle(db, run, "completed", text, now_ms(), deliver)
        return _RunCheck(active=False, delivered=text if won else None)
    won = await _settle(db, run, "cancelled", words.abandoned, now_ms(), deliver)
    events.orphaned_run_cancelled(run.phone, run.id, remote.status if remote is not None else run.state,
                                  age_ms, run.conversation_id or "")
    return _RunCheck(active=False, cancelled=1, delivered=words.abandoned if won else None)


async def refresh_active_response(
    db: Database,
    backend: AssistantBackend,
    conversation_key: str,
    *,
    max_age_ms: int,
    words: AssistantWords,
    deliver: Deliver | None = None,
    call_timeout_ms: int = 1_000,
    now_ms: Clock = system_clock,
) -> bool:
    """For the engine when a phone with a response in flight writes again: check that phone's runs now
    (settling and delivering the finished ones, cancelling orphans) rather than wait for the sweeper.
    True while one is still active: keep the new message pending."""
    still_active = False
    for run in await ai_runs.list_active_ai_runs_for_phone(db, conversation_key):
        check = await _check_run(db, backend, run, max_age_ms, now_ms, deliver, call_timeout_ms, words)
        still_active = still_active or check.active
    return still_active


async def _settle(db: Database, run: AiRun, state: str, text: str, now_ms: int, deliver: Deliver | None) -> bool:
    then = (lambda tx: deliver(tx, run, text, now_ms)) if deliver is not None else None
    return await ai_runs.settle_ai_run(db, run.id, state, text, now_ms, then)
