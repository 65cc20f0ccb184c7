"""Free-form questions to the assistant, as the conversation asks them.

The engine asks once per turn (`ask`); an answer that is not ready within its budget is delivered later
by the AI sweep (`sweep` in bot/conversation/sweeper.py), in the transaction that settles its run, and
while a run is active the conversation's later messages wait (`refresh`).
"""

from __future__ import annotations

import logging

from bot import texts as r
from core.ai import assistant
from core.ai.assistant import AskOutcome, RecoveryReport
from core.ai.remote import AssistantBackend
from core.clock import Clock
from core.storage.ai_runs import AiRun
from core.storage.database import Database, Tx
from core.storage.outbox import queue_reply

log = logging.getLogger(__name__)


class Questions:
    def __init__(self, db: Database, backend: AssistantBackend, *, orphan_max_age_ms: int, clock: Clock) -> None:
        self.db = db
        self.backend = backend
        self.orphan_max_age_ms = orphan_max_age_ms
        self.clock = clock

    async def has_active(self, conversation_key: str) -> bool:
        return await assistant.has_active_response(self.db, conversation_key)

    async def refresh(self, conversation_key: str) -> bool:
        """Check this phone's in-flight response now (delivering it if done); True while still active."""
        return await assistant.refresh_active_response(
            self.db, self.backend, conversation_key, max_age_ms=self.orphan_max_age_ms, words=r.ASSISTANT_WORDS,
            deliver=enqueue_answer, now_ms=self.clock)

    async def ask(self, conversation_key: str, question: str, conversation_id: str | None, *,
                  message_id: str | None = None, budget_ms: int = assistant.DEFAULT_ASK_BUDGET_MS) -> AskOutcome:
        """outcome.answer: queue it as the reply now; None + outcome.pending: the AI sweep delivers it later;
        outcome.conversation_id: kept on the session (SesionesChat.ConversacionIA)."""
        return await assistant.ask(self.db, self.backend, conversation_key, question, conversation_id,
                                   words=r.ASSISTANT_WORDS, message_id=message_id, budget_ms=budget_ms,
                                   now_ms=self.clock)

    async def recover(self, *, always_log: bool = False) -> RecoveryReport:
        """Deliver finished background answers and cancel orphaned runs."""
        return await assistant.recover_orphaned_runs(self.db, self.backend, max_age_ms=self.orphan_max_age_ms,
                                                     words=r.ASSISTANT_WORDS, deliver=enqueue_answer,
                                                     always_log=always_log, now_ms=self.clock)


def enqueue_answer(tx: Tx, run: AiRun, text: str, now_ms: int) -> None:
    """Queue a late answer in ColaEnvios, inside the transaction that settles its run (so: once)."""
    message = r.text(text or r.ANSWER_EMPTY)
    queue_reply(tx, run.phone, kind=message.kind, content=message.to_json(), now_ms=now_ms,
                origin_message_id=run.message_id)
