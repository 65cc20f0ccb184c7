"""Recovery sweep (timer, and once at start-up): drain conversations left pending, expire idle sessions."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from bot.conversation.drain import INSTANCE, drain_conversations, notify_replies_committed
from bot.conversation.engine import now_ms
from bot.conversation.flows import IDLE_STATES, expire
from bot.runtime import Runtime
from core.errors import BotError
from core.storage.conversations import (
    ReplyWrite,
    TransitionWrite,
    commit_transition,
    get_session_with_version,
    idle_sessions,
    stalled_conversations,
)
from core.storage.leases import acquire_lease, release_lease
from core.telemetry import mask_phone

log = logging.getLogger("bot.conversation.sweeper")
# A row younger than this probably has a webhook about to drain it; leave it to that webhook.
GRACE_MS = 2_000
SWEEP_BUDGET_S = 20.0
BATCH = 50


@dataclass(frozen=True, slots=True)
class SweepResult:
    conversations: int
    messages: int
    expired: int


async def sweep_conversations(rt: Runtime, budget_s: float = SWEEP_BUDGET_S) -> SweepResult:
    deadline = time.monotonic() + budget_s
    now = now_ms()
    keys = await stalled_conversations(rt.db, now, now - GRACE_MS, BATCH)
    handled = await drain_conversations(rt, keys, deadline) if keys else 0
    expired = 0
    idle_before = now_ms() - rt.settings.session_idle_minutes * 60_000
    for key in await idle_sessions(rt.db, idle_before, BATCH):
        if time.monotonic() >= deadline:
            break
        try:
            expired += await expire_session(rt, key, idle_before)
        except BotError as exc:
            log.warning("No se pudo expirar la sesión (%s): %s", mask_phone(key), exc)
    if keys or expired:
        log.info("Barrido: %d conversaciones, %d mensajes, %d sesiones expiradas", len(keys), handled, expired)
    return SweepResult(len(keys), handled, expired)


async def expire_session(rt: Runtime, key: str, idle_before_ms: int) -> int:
    """Back to INICIO under the conversation's lease, with a versioned write; 0 if it moved meanwhile."""
    lease = await acquire_lease(rt.db, key, f"{INSTANCE}:sweeper:{uuid.uuid4().hex[:8]}",
                                rt.settings.lock_timeout_ms, now_ms())
    if lease is None:
        return 0  # someone is talking to the bot right now: not idle
    try:
        session = await get_session_with_version(rt.db, key)
        if session.state in IDLE_STATES or session.last_activity_ms >= idle_before_ms:
            return 0
        tr = expire(session)
        write = TransitionWrite(
            key=key, expected_version=session.version, state_from=session.state, state_to=tr.state.value,
            data=tr.data, equipment_id=None, origin="SISTEMA", description=tr.description, now_ms=now_ms(),
            replies=tuple(ReplyWrite(key, m.kind, m.to_json(), m.body) for m in tr.replies),
        )
        await commit_transition(rt.db, write, lease)
        log.info("Sesión expirada por inactividad (%s): %s -> INICIO", mask_phone(key), session.state)
    finally:
        with contextlib.suppress(BotError):
            await release_lease(rt.db, lease)
    await notify_replies_committed(rt, key)
    return 1
