"""Send what `ColaEnvios` holds: eagerly per recipient after a transition commits, and by a timer sweep.

Safety with many dispatchers at once (instances, processes, the eager path, the sweep) comes from the
storage layer: a row is claimed by one atomic statement, only the head of each recipient's queue is
claimable (so a user's replies go out in Id order), and every write-back is fenced by the claim token.
A send whose outcome is unknown (no answer, or a worker that died mid-send) becomes `incierto`, never
a blind resend, unless `OUTBOX_AT_LEAST_ONCE` is set. A send cancelled (timeout, shutdown) before its
request left gives its claim back (`pendiente`, no attempt counted); cancelled after the request left,
it is `incierto`. Either way the row is written back before the cancellation goes on, never stranded.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bot.runtime import Runtime
from core.metrics import outbound_sends_total
from core.storage.outbox import (
    ClaimedSend,
    OutboxState,
    Outcome,
    claim_outbound,
    claim_outbound_recipient,
    reconcile_delivery_statuses,
    record_outcomes,
    release_claim,
    settle_stuck,
)
from core.telemetry import mask_phone, mask_wamid
from core.whatsapp.client import MessageSender
from core.whatsapp.errors import (
    PermanentWhatsAppError,
    SendOutcomeUnknown,
    ThrottlingError,
    TransientWhatsAppError,
    WhatsAppError,
)
from core.whatsapp.outgoing import outgoing_from_json

log = logging.getLogger(__name__)

SWEEP_BUDGET_S = 8.0  # the timer fires every 10 s; leave room so runs do not pile up
SWEEP_BATCH = 50  # rows per claim statement
SEND_CONCURRENCY = 16  # sends in flight per dispatcher (the rate limiter still applies)
EAGER_MAX_ROUNDS = 10  # replies one transition can queue, sent one after another
BACKOFF_BASE_MS = 2_000
BACKOFF_CAP_MS = 5 * 60_000
# The race is milliseconds wide (a status registered before its send's commit is visible): ten minutes
# of recent sends is plenty, and keeps this pass cheap on a timer that runs every 10 s.
STATUS_RECONCILE_WINDOW_MS = 10 * 60_000
PAIR_RATE_MIN_MS = 6_000  # 131056: one recipient gets about one message every 6 s


def epoch_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class SweepResult:
    settled: int = 0  # stuck claims turned `incierto` (or requeued) before claiming
    claimed: int = 0
    sent: int = 0
    retried: int = 0  # back to `pendiente` with a backoff
    failed: int = 0  # `error`: permanent, or out of attempts
    uncertain: int = 0  # `incierto`: no answer from Meta
    lost: int = 0  # claims that were no longer ours when we went to mark them
    stopped_early: bool = False  # the time budget ran out with work possibly left

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


def backoff_ms(attempt: int, error: WhatsAppError | None = None) -> int:
    """Exponential backoff with jitter (half to full of 2 s * 2^(attempt-1), capped at 5 min)."""
    ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** max(attempt - 1, 0))
    delay = int(random.uniform(ceiling / 2, ceiling))
    if isinstance(error, ThrottlingError) and error.code == 131056:
        delay = max(delay, PAIR_RATE_MIN_MS)
    return delay


async def _deliver(rt: Runtime, sender: MessageSender, claim: ClaimedSend, clock: Callable[[], int]) -> Outcome:
    """Send one claimed row and say how it ended; never raises for a send failure."""
    settings = rt.settings
    try:
        message = outgoing_from_json(claim.content)
    except (ValueError, KeyError, TypeError) as exc:
        return Outcome(claim, OutboxState.ERROR, error=f"contenido inválido: {type(exc).__name__}: {exc}")
    request_started = False

    def on_request() -> None:
        nonlocal request_started
        request_started = True

    try:
        wamid = await sender.send(claim.recipient, message, on_request=on_request)
    except asyncio.CancelledError:
        await asyncio.shield(_settle_cancelled(rt, claim, request_started, clock))
        raise
    except TransientWhatsAppError as exc:
        return Outcome(
            claim, OutboxState.PENDIENTE, error=str(exc), next_attempt_ms=clock() + backoff_ms(claim.attempts, exc)
        )
    except SendOutcomeUnknown as exc:
        if settings.outbox_at_least_once:
            return Outcome(claim, OutboxState.PENDIENTE, error=str(exc),
                           next_attempt_ms=clock() + backoff_ms(claim.attempts))
        return Outcome(claim, OutboxState.INCIERTO, error=str(exc))
    except PermanentWhatsAppError as exc:
        return Outcome(claim, OutboxState.ERROR, error=str(exc))
    except WhatsAppError as exc:  # unclassified: do not hammer Meta with it
        return Outcome(claim, OutboxState.ERROR, error=str(exc))
    except Exception as exc:
        # A bug or a broken client after the request may have left: the outcome is unknown.
        log.exception("OUTBOX_FALLO_INESPERADO id=%s destinatario=%s", claim.id, mask_phone(claim.recipient))
        return Outcome(claim, OutboxState.INCIERTO, error=f"fallo inesperado: {type(exc).__name__}")
    return Outcome(claim, OutboxState.ENVIADO, wamid=wamid)


async def _settle_cancelled(rt: Runtime, claim: ClaimedSend, request_started: bool,
                            clock: Callable[[], int]) -> None:
    """Write back a send cancelled mid-way, so its row is never left `procesando` until the claim times out."""
    who = mask_phone(claim.recipient)
    try:
        if not request_started:
            if await release_claim(rt.db, claim):
                outbound_sends_total.labels("liberado").inc()
                log.warning("OUTBOX_LIBERADO id=%s destinatario=%s: envío cancelado antes de salir; vuelve a pendiente",
                            claim.id, who)
            return
        outcome = Outcome(claim, OutboxState.INCIERTO, error="envío cancelado con la petición en curso")
        if (await record_outcomes(rt.db, [outcome], now_ms=clock(), max_attempts=rt.settings.outbox_max_attempts))[0]:
            outbound_sends_total.labels("incierto").inc()
            log.error("OUTBOX_INCIERTO id=%s destinatario=%s: envío cancelado con la petición en curso", claim.id, who)
    except Exception as exc:  # the claim timeout settles it later
        log.error("OUTBOX_CANCELADO_SIN_REGISTRAR id=%s destinatario=%s: %s", claim.id, who, exc)


@dataclass
class _Tally:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    lost: int = 0


async def _write_back(rt: Runtime, outcomes: list[Outcome], clock: Callable[[], int], tally: _Tally) -> None:
    max_attempts = rt.settings.outbox_max_attempts
    applied = await record_outcomes(rt.db, outcomes, now_ms=clock(), max_attempts=max_attempts)
    for outcome, ok in zip(outcomes, applied, strict=True):
        claim, who = outcome.claim, mask_phone(outcome.claim.recipient)
        if not ok:
            # Settled as `incierto` (claim timed out) or re-claimed: someone else owns the row now.
            tally.lost += 1
            outbound_sends_total.labels("reclamo_perdido").inc()
            log.warning("OUTBOX_RECLAMO_PERDIDO id=%s destinatario=%s estado=%s: la fila ya no es nuestra; se omite",
                        claim.id, who, outcome.state)
        elif outcome.state is OutboxState.ENVIADO:
            tally.sent += 1
            outbound_sends_total.labels("enviado").inc()
            log.info("OUTBOX_ENVIADO id=%s destinatario=%s wamid=%s", claim.id, who, mask_wamid(outcome.wamid))
        elif outcome.state is OutboxState.PENDIENTE and claim.attempts < max_attempts:
            tally.retried += 1
            outbound_sends_total.labels("reintento").inc()
            log.warning("OUTBOX_REINTENTO id=%s destinatario=%s intento=%s/%s: %s",
                        claim.id, who, claim.attempts, max_attempts, outcome.error)
        elif outcome.state is OutboxState.INCIERTO:
            tally.uncertain += 1
            outbound_sends_total.labels("incierto").inc()
            log.error("OUTBOX_INCIERTO id=%s destinatario=%s: %s", claim.id, who, outcome.error)
        else:
            tally.failed += 1
            outbound_sends_total.labels("error").inc()
            log.error("OUTBOX_ERROR id=%s destinatario=%s intento=%s: %s", claim.id, who, claim.attempts, outcome.error)


async def _send_all(rt: Runtime, claims: list[ClaimedSend], clock: Callable[[], int]) -> list[Outcome]:
    sender = rt.get_whatsapp()
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(claim: ClaimedSend) -> Outcome:
        async with gate:
            return await _deliver(rt, sender, claim, clock)

    # One claim holds at most one row per recipient, so sending them in parallel keeps each user's order.
    tasks = [asyncio.ensure_future(one(c)) for c in claims]
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        # Sends still in flight settled themselves (`_deliver`); record the ones that had finished.
        finished = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        if finished:
            await asyncio.shield(_write_back(rt, finished, clock, _Tally()))
        raise


async def dispatch_recipient(rt: Runtime, recipient: str, *, clock: Callable[[], int] = epoch_ms) -> int:
    """The eager path: send this recipient's due replies, oldest first; answers how many were sent.

    Claims one row at a time (the head of the recipient's queue) and stops at the first row that
    must wait (retry later, unknown outcome) or that another dispatcher holds.
    """
    tally = _Tally()
    for _ in range(EAGER_MAX_ROUNDS):
        claims = await claim_outbound_recipient(rt.db, recipient, now_ms=clock())
        if not claims:
            break
        outcomes = await _send_all(rt, claims, clock)
        before = tally.sent + tally.failed
        await _write_back(rt, outcomes, clock, tally)
        if tally.sent + tally.failed == before:  # retried, uncertain or lost: the queue head must wait
            break
    return tally.sent


async def sweep_outbox(
    rt: Runtime, *, budget_s: float = SWEEP_BUDGET_S, clock: Callable[[], int] = epoch_ms
) -> SweepResult:
    """Settle stuck claims, then send up to MAX_TRABAJOS_POR_EJECUCION rows, stopping before the budget ends."""
    settings = rt.settings
    started = time.monotonic()
    deadline = started + budget_s
    settled = await settle_stuck(
        rt.db, now_ms=clock(), claim_timeout_ms=settings.outbox_claim_timeout_ms,
        at_least_once=settings.outbox_at_least_once, max_attempts=settings.outbox_max_attempts,
    )
    if settled:
        log.warning("OUTBOX_RECLAMOS_VENCIDOS %s filas %s", settled,
                    "devueltas a pendiente" if settings.outbox_at_least_once else "marcadas incierto")
    caught_up = await reconcile_delivery_statuses(rt.db, since_ms=clock() - STATUS_RECONCILE_WINDOW_MS)
    if caught_up:
        log.warning("OUTBOX_ESTADOS_RECONCILIADOS %s filas: estados de entrega que llegaron antes que su envío",
                    caught_up)
    remaining = settings.max_trabajos_por_ejecucion
    tally, claimed, stopped_early = _Tally(), 0, False
    slowest_batch = 0.0
    while remaining > 0:
        # Do not start a batch the budget cannot cover; its rows would finish past the deadline.
        if time.monotonic() + slowest_batch > deadline:
            stopped_early = True
            break
        batch_started = time.monotonic()
        claims = await claim_outbound(rt.db, limit=min(SWEEP_BATCH, remaining), now_ms=clock())
        if not claims:
            break
        claimed += len(claims)
        remaining -= len(claims)
        outcomes = await _send_all(rt, claims, clock)
        await _write_back(rt, outcomes, clock, tally)
        slowest_batch = max(slowest_batch, time.monotonic() - batch_started)
    result = SweepResult(
        settled=settled, claimed=claimed, sent=tally.sent, retried=tally.retried, failed=tally.failed,
        uncertain=tally.uncertain, lost=tally.lost, stopped_early=stopped_early,
    )
    if claimed or settled:
        log.info("OUTBOX_SWEEP_COMPLETE %s en %.0f ms", result.as_dict(), (time.monotonic() - started) * 1000)
    return result
