"""The queue-triggered worker and the hand-off that feeds it.

The webhook registers messages and hands their conversation keys to a queue; `ConversationWorker.work`
(the queue trigger's body) drains one conversation under its lease and sends its replies. A queue
message is only a wake-up call: the inbox rows are the truth, so a duplicate finds the lease busy or
nothing pending, and a lost one is redriven by the sweep. The worker never raises, so a message never
reaches the poison queue; a failing inbox row counts its own attempts and ends in `error`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.conversation.drain import ConversationDrain
from bot.conversation.engine import ASK_BUDGET_MS
from core import events, metrics
from core.ai.service import Budgets
from core.errors import BotError
from core.handoff import HandoffQueue
from core.storage.conversations import pending_messages
from core.storage.database import Database
from core.telemetry import mask_phone

log = logging.getLogger("bot.conversation.worker")

# What one message may take before its commit: every AI budget it can spend, plus margin for the
# database round trips. A drain does not start a message with less than this left of its budget.
_AI = Budgets()
MESSAGE_RESERVE_MS = _AI.detect_ms + _AI.extract_ms + _AI.interpret_ms + ASK_BUDGET_MS + 2_000


async def hand_off(queue: HandoffQueue, keys: Sequence[str], *, origin: str) -> bool:
    """Queue these conversation keys for the worker. False (logged) if the queue refused them.

    The caller has already committed the inbox rows, so a failure here delays the messages (until
    Meta's redelivery or the sweep), it never loses them.
    """
    unique = [k for k in dict.fromkeys(keys) if k]
    if not unique:
        return True
    try:
        await queue.enqueue(unique)
    except BotError as exc:
        events.handoff_failed(origin, len(unique), str(exc))
        return False
    metrics.handoff_total.labels(origin=origin, outcome="ok").inc(len(unique))
    return True


def seconds_in_queue(enqueued_at: datetime | None) -> float | None:
    if enqueued_at is None:
        return None
    when = enqueued_at if enqueued_at.tzinfo else enqueued_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


class ConversationWorker:
    def __init__(self, db: Database, drain: ConversationDrain, handoff: HandoffQueue, *, budget_ms: int) -> None:
        self.db = db
        self.drain = drain
        self.handoff = handoff
        self.budget_ms = budget_ms  # WORKER_BUDGET_MS

    async def work(self, key: str, *, enqueued_at: datetime | None = None, dequeue_count: int = 1) -> int:
        """Drain one conversation within the worker's budget; answers how many messages were handled.

        Never raises: every failure is logged and left to the inbox row's own attempt count.
        """
        key = key.strip()
        if not key:
            log.warning("Mensaje de cola vacío; se descarta")
            return 0
        wait_s = seconds_in_queue(enqueued_at)
        if wait_s is not None:
            events.queue_wait(key, int(wait_s * 1000), dequeue_count)
        started = time.monotonic()
        # The last moment a message may START: the rest of the budget is its reserve.
        start_deadline = started + (self.budget_ms - MESSAGE_RESERVE_MS) / 1000
        try:
            handled = await self.drain.drain(key, start_deadline)
            if time.monotonic() >= start_deadline and await pending_messages(self.db, key, 1):
                # Out of budget with work left: hand it back at once rather than wait for the sweep.
                await hand_off(self.handoff, [key], origin="worker")
        except Exception:
            log.exception("Worker: el drenado de %s falló; los mensajes quedan pendientes", mask_phone(key))
            return 0
        log.debug("Worker: %s drenado, %d mensajes, espera en cola %s s, intento de cola %d", mask_phone(key),
                  handled, "?" if wait_s is None else f"{wait_s:.3f}", dequeue_count)
        return handled
