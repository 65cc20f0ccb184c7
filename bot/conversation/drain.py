"""Drain a conversation's pending inbox rows under its lease, oldest first, within a time budget.

Busy lease -> return at once: the holder drains this message too. After releasing, look once more
for pending rows: a message registered while we held the lease found it busy and relies on us
(the lost-wakeup gap). `deadline` is the last moment a message may start; the worker sets it so a
started message always has its whole AI budget (bot/conversation/worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from bot.assistant import refresh_question
from bot.conversation.engine import handle_turn, now_ms
from bot.evidence import fetch_pending_evidence
from bot.messages import InboundMessage
from bot.outbound.dispatcher import dispatch_recipient
from bot.runtime import Runtime
from core import events, metrics
from core.errors import AlreadyProcessed, LeaseLost, StorageError
from core.storage.conversations import read_turn, record_inbox_failure, release_and_peek
from core.storage.leases import Lease, acquire_lease, extend_lease
from core.telemetry import mask_phone, mask_wamid

log = logging.getLogger("bot.conversation.drain")
# Pending messages sent within TURN_GAP_SECONDS of each other are read together as one turn (at most
# TURN_MAX): a burst gets one answer, a flood of hundreds a few.
TURN_MAX = 50
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


async def notify_replies_committed(rt: Runtime, recipient: str) -> int:
    """Send right after the commit that queued replies; answers how many went out. A failure only
    delays them to the outbox sweep. This waits on the per-number rate limiter, which is fine here:
    it runs in the queue-triggered worker, never in the webhook's request."""
    if not rt.settings.outbox_eager_dispatch:
        return 0
    try:
        return await dispatch_recipient(rt, recipient)
    except Exception as exc:
        log.warning("Envío inmediato falló (%s): %s", mask_phone(recipient), exc, exc_info=True)
        return 0


class Heartbeat:
    """Extends the lease about every third of its TTL while work goes on; flags `lost` if it could not."""

    def __init__(self, rt: Runtime, lease: Lease) -> None:
        self.rt = rt
        self.lease = lease
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        ttl = self.rt.settings.lock_timeout_ms
        while not self.lost:
            await asyncio.sleep(ttl / 3000)
            try:
                extended = await extend_lease(self.rt.db, self.lease, ttl, now_ms())
            except StorageError as exc:
                log.warning("No se pudo extender el lock (%s): %s", mask_phone(self.lease.key), exc)
                continue
            if extended is None:
                self.lost = True
                events.lock_timeout(self.lease.key, ttl, self.lease.token, reason="perdido durante el proceso")
            else:
                self.lease = extended

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def drain_conversation(rt: Runtime, key: str, deadline: float) -> int:
    handled = 0
    ttl = rt.settings.lock_timeout_ms
    while time.monotonic() < deadline and not rt.stopping:
        owner = f"{INSTANCE}:{uuid.uuid4().hex[:12]}"
        lease = await acquire_lease(rt.db, key, owner, ttl, now_ms())
        if lease is None:
            events.lock_busy(key)
            return handled
        if lease.took_over_from:
            events.lock_timeout(key, ttl, lease.token, reason="tomado tras expirar")
        events.lock_acquired(key, ttl, lease.token)
        heartbeat = Heartbeat(rt, lease)
        heartbeat.start()
        try:
            count, stopped = await _drain_under_lease(rt, key, heartbeat, deadline)
            handled += count
        finally:
            await heartbeat.stop()
            pending = True
            with contextlib.suppress(StorageError):
                pending = await release_and_peek(rt.db, heartbeat.lease)
        if stopped or not pending:
            return handled
    return handled


async def _drain_under_lease(rt: Runtime, key: str, hb: Heartbeat, deadline: float) -> tuple[int, bool]:
    """Handle pending rows oldest first. Answers (handled, stopped early)."""
    handled = 0
    single = False  # after a failed turn, rows go one at a time so a poison row is isolated
    check_ai = True  # once per lease: is an assistant response running on this conversation?
    while True:
        limit = 1 if single else TURN_MAX
        read = await read_turn(rt.db, key, limit, check_ai_run=check_ai)
        if check_ai and read.ai_run_active and await refresh_question(rt, key):
            # An assistant response is running on this conversation: later messages wait, in order,
            # until it completes or is cancelled (the AI sweep drains them then).
            return handled, True
        check_ai = False
        batch = read.rows
        if not batch:
            return handled, False
        if time.monotonic() >= deadline or hb.lost or rt.stopping:
            return handled, True
        rows: list[tuple[int, InboundMessage]] = []
        gap = rt.settings.turn_gap_seconds
        for previous, row in zip([None, *batch], batch, strict=False):
            if previous is not None and row.wa_timestamp - previous.wa_timestamp > gap:
                break  # sent apart: the next turn
            try:
                rows.append((row.id, InboundMessage.from_json(row.payload)))
            except (ValueError, TypeError, KeyError) as exc:
                await _record_failure(rt, row.id, exc)
                break  # handle what came before it, in order
        if not rows:
            continue
        try:
            result = await handle_turn(rt, rows, hb.lease, read.session)
        except AlreadyProcessed:
            continue
        except LeaseLost:
            ttl = rt.settings.lock_timeout_ms
            events.lock_timeout(key, ttl, hb.lease.token, reason="perdido antes de confirmar")
            return handled, True
        except Exception as exc:  # counted against the row's attempts, then retried later
            if len(rows) > 1:
                log.warning("Turno de %d mensajes falló (%r); se reintenta mensaje por mensaje", len(rows), exc,
                            exc_info=True)
                single = True
                continue
            state = await _record_failure(rt, rows[0][0], exc)
            metrics.messages_processed_total.labels(outcome="fallo").inc()
            if state == "error":
                log.error("Mensaje %s marcado como error tras %d intentos", mask_wamid(batch[0].message_id),
                          rt.settings.inbox_max_attempts)
                continue  # poison message: do not block the conversation behind it
            return handled, True
        single = False
        handled += len(rows)
        metrics.messages_processed_total.labels(outcome="ok").inc(len(rows))
        first = batch[0]
        if result.transition.replies and await notify_replies_committed(rt, result.recipient) and first.received_ms:
            events.reply_sent(key, max(0, now_ms() - first.received_ms))
        if result.transition.evidence:
            # After the replies: a download never delays an answer; the evidence sweep retries failures.
            await fetch_pending_evidence(rt, key)
        if len(rows) == len(batch) < limit:
            return handled, False  # all read and handled: the look after the release covers newcomers


async def _record_failure(rt: Runtime, inbox_id: int, exc: BaseException) -> str | None:
    log.warning("Procesamiento falló para el mensaje %d: %r", inbox_id, exc)
    try:
        return await record_inbox_failure(rt.db, inbox_id, repr(exc), rt.settings.inbox_max_attempts)
    except StorageError:
        return None
