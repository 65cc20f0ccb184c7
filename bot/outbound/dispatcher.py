"""Send what `ColaEnvios` holds: eagerly per recipient after a transition commits, and by a timer sweep.

Safety with many dispatchers at once (instances, processes, the eager path, the sweep) comes from the
storage layer: a row is claimed by one atomic statement, only the head of each recipient's queue is
claimable (so a user's replies go out in Id order), and every write-back is fenced by the claim token.
A send whose outcome is unknown (no answer, or a worker that died mid-send) becomes `incierto`, never
a blind resend, unless `OUTBOX_AT_LEAST_ONCE` is set. A send cancelled (timeout, shutdown) before its
request left gives its claim back (`pendiente`, no attempt counted); cancelled after the request left,
it is `incierto`. Either way the row is written back before the cancellation goes on, never stranded.

The send limit is taken before the claim, never after: a row is `procesando` only while its request is
about to start or in flight, so a crash while replies wait on the limit leaves them `pendiente`.
Outages delay replies and do not drop them: throttled and never-connected attempts do not count against
OUTBOX_MAX_ATTEMPTS, retries back off exponentially (jittered) and fire at their own due time, and a row
is given up only at its deadline (24 h for a reply) or when Meta failed it OUTBOX_MAX_ATTEMPTS times.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from bot.runtime import Runtime
from core import events
from core.metrics import outbound_sends_total
from core.settings import Settings
from core.storage.outbox import (
    ClaimedSend,
    OutboxState,
    Outcome,
    abandon_expired,
    claim_outbound,
    claim_outbound_recipient,
    recipient_numbers,
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
# Rows per claim, all sent at once right after it: a claimed row never waits for a free sending slot.
SEND_CONCURRENCY = 16
EAGER_MAX_ROUNDS = 10  # replies one transition can queue, sent one after another
# The race is milliseconds wide (a status registered before its send's commit is visible): ten minutes
# of recent sends is plenty, and keeps this pass cheap on a timer that runs every 10 s.
STATUS_RECONCILE_WINDOW_MS = 10 * 60_000
# Meta's limits, in units of OUTBOX_BACKOFF_BASE_MS (2 s by default), so tests can shrink time as a whole:
PAIR_RATE_MIN_BASES = 3  # 131056: one recipient gets about one message every 6 s
APP_LIMIT_MIN_BASES = 30  # 4, 17, 80007: the app's or the account's call limit; a minute, then try again
APP_LIMIT_CODES = frozenset({4, 17, 80007})
NUMBER_LIMIT_CODE = 130429  # the number's throughput: the whole number pauses, not only this row
RETRY_TIMER_MAX_MS = 10 * 60_000  # longer backoffs are left to the sweep
# How long a dispatcher waits for the number's send limit before leaving the rows to a timer or the sweep:
# a normal refill takes milliseconds; a number paused by Meta's 130429 or an app limit takes seconds.
EAGER_LIMIT_WAIT_S = 5.0
SWEEP_LIMIT_WAIT_S = 1.0


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
    abandoned: int = 0  # past their deadline while still waiting: `error`
    stopped_early: bool = False  # the time budget ran out with work possibly left

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


def backoff_ms(retry: int, error: WhatsAppError | None = None, *, base_ms: int = 2_000, cap_ms: int = 300_000) -> int:
    """Exponential backoff with jitter: half to full of base * 2^(retry-1), capped; Meta's rate-limit codes
    wait at least what Meta asks for (131056: a pair's 6 s; 4/17/80007: a minute)."""
    ceiling = min(cap_ms, base_ms * 2 ** min(max(retry - 1, 0), 30))
    delay = int(random.uniform(ceiling / 2, ceiling))
    if isinstance(error, ThrottlingError) and error.code == 131056:
        delay = max(delay, PAIR_RATE_MIN_BASES * base_ms)
    if isinstance(error, ThrottlingError) and error.code in APP_LIMIT_CODES:
        delay = max(delay, APP_LIMIT_MIN_BASES * base_ms)
    return delay


def _retry_delay_ms(settings: Settings, claim: ClaimedSend, error: WhatsAppError | None = None) -> int:
    return backoff_ms(claim.postponements + 1, error, base_ms=settings.outbox_backoff_base_ms,
                      cap_ms=settings.outbox_backoff_cap_ms)


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

    number = claim.business_number or settings.whatsapp_phone_number_id
    try:
        wamid = await sender.send(claim.recipient, message, phone_number_id=number, on_request=on_request)
    except asyncio.CancelledError:
        await asyncio.shield(_settle_cancelled(rt, claim, request_started, clock))
        raise
    except TransientWhatsAppError as exc:
        delay = _retry_delay_ms(settings, claim, exc)
        if isinstance(exc, ThrottlingError) and exc.code in APP_LIMIT_CODES | {NUMBER_LIMIT_CODE}:
            # The number (or the whole app) is over its limit: every send from it waits, not only this row.
            try:
                await rt.get_send_limits().for_number(number).pause(delay / 1000)
            except Exception as pause_failed:  # the row still backs off; only the number-wide pause is lost
                log.warning("OUTBOX_PAUSA_NO_REGISTRADA: %s: %s", type(pause_failed).__name__, pause_failed,
                            exc_info=True)
        return Outcome(claim, OutboxState.PENDIENTE, error=str(exc), next_attempt_ms=clock() + delay,
                       counts_attempt=exc.counts_attempt)
    except SendOutcomeUnknown as exc:
        if settings.outbox_at_least_once:
            return Outcome(claim, OutboxState.PENDIENTE, error=str(exc),
                           next_attempt_ms=clock() + _retry_delay_ms(settings, claim))
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
        log.error("OUTBOX_CANCELADO_SIN_REGISTRAR id=%s destinatario=%s: %s", claim.id, who, exc, exc_info=True)


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
        attempts = claim.attempts if outcome.counts_attempt else claim.attempts - 1
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
        elif outcome.state is OutboxState.PENDIENTE and attempts < max_attempts:
            tally.retried += 1
            outbound_sends_total.labels("reintento").inc()
            log.warning("OUTBOX_REINTENTO id=%s destinatario=%s intento=%s/%s cuenta=%s espera=%s ms: %s",
                        claim.id, who, attempts, max_attempts, "sí" if outcome.counts_attempt else "no",
                        outcome.next_attempt_ms - clock(), outcome.error)
            _schedule_retry(rt, claim.recipient, outcome.next_attempt_ms - clock())
        elif outcome.state is OutboxState.PENDIENTE:
            tally.failed += 1
            outbound_sends_total.labels("error").inc()
            events.outbound_abandoned(claim.id, claim.recipient, "intentos",
                                      f"intento {attempts}/{max_attempts}: {outcome.error}")
        elif outcome.state is OutboxState.INCIERTO:
            tally.uncertain += 1
            outbound_sends_total.labels("incierto").inc()
            log.error("OUTBOX_INCIERTO id=%s destinatario=%s: %s", claim.id, who, outcome.error)
        else:
            tally.failed += 1
            outbound_sends_total.labels("error").inc()
            log.error("OUTBOX_ERROR id=%s destinatario=%s intento=%s: %s", claim.id, who, claim.attempts, outcome.error)


def _schedule_retry(rt: Runtime, recipient: str, delay_ms: int) -> None:
    """Dispatch the recipient again when its row is due, instead of waiting for the next sweep. One timer
    per recipient (the earliest wins); the sweep still covers a process that dies before it fires."""
    if delay_ms > RETRY_TIMER_MAX_MS or rt.stopping:
        return
    existing = rt.retry_timers.get(recipient)
    if existing is not None and not existing.done():
        return  # already waiting; dispatch_recipient then sends whatever is due, in order

    async def fire() -> None:
        try:
            await asyncio.sleep(max(delay_ms, 0) / 1000 + 0.005)
            rt.retry_timers.pop(recipient, None)
            await dispatch_recipient(rt, recipient)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the sweep retries it
            log.warning("OUTBOX_REINTENTO_PROGRAMADO_FALLIDO destinatario=%s: %s: %s",
                        mask_phone(recipient), type(exc).__name__, exc, exc_info=True)
        finally:
            if rt.retry_timers.get(recipient) is asyncio.current_task():
                rt.retry_timers.pop(recipient, None)

    rt.retry_timers[recipient] = asyncio.get_running_loop().create_task(fire())


async def _send_all(rt: Runtime, claims: list[ClaimedSend], clock: Callable[[], int]) -> list[Outcome]:
    sender = rt.get_whatsapp()
    # One claim holds at most one row per recipient, so sending them in parallel keeps each user's order;
    # a claim holds at most SEND_CONCURRENCY rows, so every request starts right away.
    tasks = [asyncio.ensure_future(_deliver(rt, sender, c, clock)) for c in claims]
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        # Sends still in flight settled themselves (`_deliver`); record the ones that had finished.
        finished = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        if finished:
            await asyncio.shield(_write_back(rt, finished, clock, _Tally()))
        raise


async def _release_all(rt: Runtime, claiming: asyncio.Future[list[ClaimedSend]]) -> None:
    try:
        claims = await claiming
    except Exception:  # nothing was claimed, so nothing to hand back
        log.warning("Reclamo cancelado falló; no hay filas que devolver", exc_info=True)
        return
    for claim in claims:
        await release_claim(rt.db, claim)


async def _claim_within_limit(
    rt: Runtime, number: str, claim: Callable[[int], Awaitable[list[ClaimedSend]]], up_to: int, max_wait_s: float
) -> list[ClaimedSend] | None:
    """Take send-limit tokens first, then claim at most that many rows (unused tokens go back): a row is
    claimed only when its request can start at once, so it never waits on the limit as `procesando`.
    None when no token came within `max_wait_s` (the number is paused): nothing was claimed."""
    limiter = rt.get_send_limits().for_number(number)
    tokens = await limiter.take(up_to, max_wait_s=max_wait_s)
    if tokens == 0:
        return None
    claiming = asyncio.ensure_future(claim(tokens))
    try:
        claims = await asyncio.shield(claiming)
    except asyncio.CancelledError:
        await asyncio.shield(_release_all(rt, claiming))  # a claim that commits anyway is handed back
        raise
    if len(claims) < tokens:
        await limiter.give_back(tokens - len(claims))
    return claims


async def dispatch_recipient(rt: Runtime, recipient: str, *, clock: Callable[[], int] = epoch_ms) -> int:
    """The eager path: send this recipient's due replies, oldest first; answers how many were sent.

    Claims one row at a time (the head of the recipient's queue) and stops at the first row that
    must wait (retry later, unknown outcome) or that another dispatcher holds.
    """
    tally = _Tally()
    default = rt.settings.whatsapp_phone_number_id
    for _ in range(EAGER_MAX_ROUNDS):
        claims: list[ClaimedSend] | None = []
        # Tokens are per business number, so take the right one's: usually the recipient has one.
        for number in {n or default for n in await recipient_numbers(rt.db, recipient)}:
            claims = await _claim_within_limit(
                rt, number, lambda n, number=number: claim_outbound_recipient(  # type: ignore[misc]
                    rt.db, recipient, now_ms=clock(), limit=min(n, 1), number=number, default_number=default),
                1, EAGER_LIMIT_WAIT_S)
            if claims is None or claims:
                break
        if claims is None:  # the number is paused: try again once the pause is likely over
            _schedule_retry(rt, recipient, int(EAGER_LIMIT_WAIT_S * 1000))
            break
        if not claims:
            break
        outcomes = await _send_all(rt, claims, clock)
        before = tally.sent + tally.failed
        await _write_back(rt, outcomes, clock, tally)
        if tally.sent + tally.failed == before:  # retried, uncertain or lost: the queue head must wait
            break
    return tally.sent


async def _abandon_expired(rt: Runtime, clock: Callable[[], int]) -> int:
    abandoned = await abandon_expired(rt.db, now_ms=clock())
    for row_id, recipient in abandoned:
        events.outbound_abandoned(row_id, recipient, "plazo", "venció su plazo sin poder enviarse")
    return len(abandoned)


async def sweep_outbox(
    rt: Runtime, *, budget_s: float = SWEEP_BUDGET_S, clock: Callable[[], int] = epoch_ms
) -> SweepResult:
    """Settle stuck claims, give up rows past their deadline, then send up to MAX_TRABAJOS_POR_EJECUCION
    rows, stopping before the budget ends."""
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
    abandoned = await _abandon_expired(rt, clock)
    caught_up = await reconcile_delivery_statuses(rt.db, since_ms=clock() - STATUS_RECONCILE_WINDOW_MS)
    if caught_up:
        log.warning("OUTBOX_ESTADOS_RECONCILIADOS %s filas: estados de entrega que llegaron antes que su envío",
                    caught_up)
    remaining = settings.max_trabajos_por_ejecucion
    tally, claimed, stopped_early = _Tally(), 0, False
    slowest_batch = 0.0
    default = settings.whatsapp_phone_number_id
    # Each served number has its own limit: a number with nothing due or paused by Meta drops out.
    numbers = list(dict.fromkeys((default, *settings.served_phone_number_ids)))
    while remaining > 0 and numbers:
        # Do not start a batch the budget cannot cover; its rows would finish past the deadline.
        if time.monotonic() + slowest_batch > deadline:
            stopped_early = True
            break
        number = numbers[0]
        batch_started = time.monotonic()
        claims = await _claim_within_limit(
            rt, number, lambda n: claim_outbound(rt.db, limit=n, now_ms=clock(), number=number,  # noqa: B023
                                                 default_number=default),
            min(SEND_CONCURRENCY, remaining), SWEEP_LIMIT_WAIT_S)
        if claims is None:  # the number is paused by Meta: the next run (or a retry timer) goes on
            stopped_early = True
        if not claims:
            numbers.pop(0)
            continue
        numbers.append(numbers.pop(0))  # numbers take turns
        claimed += len(claims)
        remaining -= len(claims)
        outcomes = await _send_all(rt, claims, clock)
        await _write_back(rt, outcomes, clock, tally)
        slowest_batch = max(slowest_batch, time.monotonic() - batch_started)
    result = SweepResult(
        settled=settled, claimed=claimed, sent=tally.sent, retried=tally.retried, failed=tally.failed,
        uncertain=tally.uncertain, lost=tally.lost, abandoned=abandoned, stopped_early=stopped_early,
    )
    if claimed or settled or abandoned:
        log.info("OUTBOX_SWEEP_COMPLETE %s en %.0f ms", result.as_dict(), (time.monotonic() - started) * 1000)
    return result
