"""Recovery sweeps (timers, and once at start-up).

`sweep_conversations` hands every stalled conversation (pending rows, no live lease) to the worker
queue in bounded batches, so a backlog after a crash clears at the worker's normal rate instead of a
few conversations per timer tick; then it expires idle sessions. `sweep_ai_responses` delivers
finished assistant answers, cancels orphaned ones, and hands the conversations they held back to
the worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from bot.assistant import Questions
from bot.conversation.drain import INSTANCE
from bot.conversation.engine import to_write
from bot.conversation.flows import on_idle
from bot.conversation.model import Rules, Session, Turn
from bot.conversation.worker import hand_off
from bot.outbound.dispatcher import Dispatcher
from core import events
from core.ai.assistant import RecoveryReport
from core.clock import Clock
from core.errors import BotError
from core.handoff import HandoffQueue
from core.storage.conversations import (
    commit_transition,
    get_session_with_version,
    idle_sessions,
    stalled_conversations,
)
from core.storage.database import Database
from core.storage.leases import acquire_lease, clear_expired_leases, release_lease
from core.telemetry import mask_phone

log = logging.getLogger("bot.conversation.sweeper")
# A row younger than this probably has its queue message on the way. The start-up pass uses no grace:
# a restarted local host's in-process queue starts empty.
GRACE_MS = 10_000
IDLE_SWEEP_BUDGET_S = 10.0  # for expiring sessions; the hand-off itself is a few statements
HANDOFF_LIMIT = 2_000  # stalled conversations handed off per sweep (the next sweep takes the rest)
HANDOFF_BATCH = 100  # keys per queue write
IDLE_SESSIONS_PER_SWEEP = 50  # idle sessions expired per sweep


@dataclass(frozen=True, slots=True)
class ConversationSweepResult:
    conversations: int  # stalled conversations found
    handed_off: int  # of those, accepted by the worker queue
    expired: int


class ConversationSweeper:
    def __init__(self, db: Database, handoff: HandoffQueue, questions: Questions, outbox: Dispatcher, *,
                 rules: Rules, lease_ttl_ms: int, idle_minutes: int, clock: Clock) -> None:
        self.db = db
        self.handoff = handoff
        self.questions = questions
        self.outbox = outbox
        self.rules = rules
        self.lease_ttl_ms = lease_ttl_ms
        self.idle_ms = idle_minutes * 60_000  # SESSION_IDLE_MINUTES
        self.clock = clock

    async def sweep(self, budget_s: float = IDLE_SWEEP_BUDGET_S, *,
                    grace_ms: int = GRACE_MS) -> ConversationSweepResult:
        """Hand stalled conversations to the worker, then expire idle sessions. `handed_off` counts the
        conversations whose hand-off the queue accepted."""
        deadline = time.monotonic() + budget_s
        now = self.clock()
        # Leases of dead holders first: their conversations then count as stalled and are handed off below.
        for key, token in await clear_expired_leases(self.db, now):
            events.lock_timeout(key, self.lease_ttl_ms, token, reason="dueño caído; liberado por el barrido")
        keys = await stalled_conversations(self.db, now, now - grace_ms, HANDOFF_LIMIT)
        handled = 0
        for start in range(0, len(keys), HANDOFF_BATCH):
            chunk = keys[start:start + HANDOFF_BATCH]
            if await hand_off(self.handoff, chunk, origin="barrido"):
                handled += len(chunk)
        expired = 0
        idle_before = self.clock() - self.idle_ms
        for key in await idle_sessions(self.db, idle_before, IDLE_SESSIONS_PER_SWEEP):
            if time.monotonic() >= deadline:
                break
            try:
                expired += await self.expire_session(key, idle_before)
            except BotError as exc:
                log.warning("No se pudo expirar la sesión (%s): %s", mask_phone(key), exc)
        if keys or expired:
            log.info("Barrido: %d conversaciones estancadas, %d entregadas al worker, %d sesiones expiradas",
                     len(keys), handled, expired)
        return ConversationSweepResult(len(keys), handled, expired)

    async def expire_session(self, key: str, idle_before_ms: int) -> int:
        """The session's idle transition (a reminder, a dropped draft, the end of a handover) under the
        conversation's lease, with a versioned write; 0 if it moved meanwhile or there was nothing to do."""
        lease = await acquire_lease(self.db, key, f"{INSTANCE}:sweeper:{uuid.uuid4().hex[:8]}", self.lease_ttl_ms,
                                    self.clock())
        if lease is None:
            return 0  # someone is talking to the bot right now: not idle
        try:
            session = Session.from_row(key, await get_session_with_version(self.db, key))
            if session.last_activity_ms >= idle_before_ms:
                return 0
            now = self.clock()
            tr = on_idle(session, now, self.rules)
            if tr is None:
                return 0
            # Every idle transition is committed, even a silent one: it moves the session's last activity, so
            # the sweep looks at it again only after another idle period.
            await commit_transition(self.db, to_write(session, Turn(()), (), tr, now), lease)
            log.info("Sesión inactiva (%s): %s -> %s (%s)", mask_phone(key), session.state, tr.state.value,
                     tr.description)
        finally:
            with contextlib.suppress(BotError):
                await release_lease(self.db, lease)
        if tr.replies:
            await self.outbox.send_now(key)
        return 1

    async def sweep_ai_responses(self, *, startup: bool = False) -> RecoveryReport:
        """Deliver finished background answers, cancel orphans, then hand their phones back to the worker."""
        report = await self.questions.recover(always_log=startup)
        keys = sorted({key for key, _ in report.delivered})
        if keys:
            # Their later messages waited for these responses; the worker handles them now.
            await hand_off(self.handoff, keys, origin="ia")
        return report
