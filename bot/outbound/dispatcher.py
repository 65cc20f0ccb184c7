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
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from core import events
from core.clock import Clock
from core.metrics import outbound_sends_total
from core.settings import Settings
from core.storage.database import Database
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
from core.whatsapp.ratelimit import SendLimits

log = logging.getLogger(__name__)

OUTBOX_SWEEP_BUDGET_S = 8.0  # the timer fires every 10 s; leave room so runs do not pile up
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


@dataclass(frozen=True, slots=True)
class OutboxSweepResult:
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


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The settings the dispatcher reads."""

    phone_number_id: str  # the default business number
    served_numbers: tuple[str, ...] = ()
    eager: bool = True  # send right after a commit (OUTBOX_EAGER_DISPATCH)
    at_least_once: bool = False
    max_attempts: int = 5
    max_jobs_per_run: int = 50
    claim_timeout_ms: int = 30_000
    backoff_base_ms: int = 2_000
    backoff_cap_ms: int = 300_000

    @classmethod
    def from_settings(cls, s: Settings) -> OutboxConfig:
        return cls(s.whatsapp_phone_number_id, tuple(s.served_phone_number_ids), s.outbox_eager_dispatch,
                   s.outbox_at_least_once, s.outbox_max_attempts, s.max_jobs_per_run,
                   s.outbox_claim_timeout_ms, s.outbox_backoff_base_ms, s.outbox_backoff_cap_ms)


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


@dataclass
class _Tally:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    lost: int = 0


class Dispatcher:
    """Sends the outbox's rows through `sender` within each number's send limit. One per process: it
    holds the retry timers of sends waiting out a backoff, cancelled by `aclose`."""

    def __init__(self, db: Database, sender: MessageSender, limits: SendLimits, config: OutboxConfig,
                 clock: Clock, stopping: threading.Event | None = None) -> None:
        self.db = db
        self.sender = sender
        self.limits = limits
        self.config = config
        self.clock = clock
        # Set when the host shuts down: no new retry timers.
        self.stopping = stopping or threading.Event()
        # Sends waiting out a backoff, per recipient: each fires at its row's next due time (the sweep is
        # the fallback when the process is gone).
        self.retry_timers: dict[str, asyncio.Task[None]] = {}

    async def aclose(self) -> None:
        timers = list(self.retry_timers.values())
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)  # a cancelled send writes its row back first
        self.retry_timers.clear()

    def _retry_delay_ms(self, claim: ClaimedSend, error: WhatsAppError | None = None) -> int:
        return backoff_ms(claim.postponements + 1, error, base_ms=self.config.backoff_base_ms,
                          cap_ms=self.config.backoff_cap_ms)

    async def _deliver(self, claim: ClaimedSend) -> Outcome:
        """Send one claimed row and say how it ended; never raises for a send failure."""
        try:
            message = outgoing_from_json(claim.content)
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome(claim, OutboxState.ERROR, error=f"contenido inválido: {type(exc).__name__}: {exc}")
        request_started = False

        def on_request() -> None:
            nonlocal request_started
            request_started = True

        number = claim.business_number or self.config.phone_number_id
        try:
            wamid = await self.sender.send(claim.recipient, message, phone_number_id=number, on_request=on_request)
        except asyncio.CancelledError:
            await asyncio.shield(self._settle_cancelled(claim, request_started))
            raise
        except TransientWhatsAppError as exc:
            delay = self._retry_delay_ms(claim, exc)
            if isinstance(exc, ThrottlingError) and exc.code in APP_LIMIT_CODES | {NUMBER_LIMIT_CODE}:
                # The number (or the whole app) is over its limit: every send from it waits, not only this row.
                try:
                    await self.limits.for_number(number).pause(delay / 1000)
                except Exception:  # the row still backs off; only the number-wide pause is lost
                    log.warning("OUTBOX_PAUSA_NO_REGISTRADA", exc_info=True)
            return Outcome(claim, OutboxState.PENDIENTE, error=str(exc), next_attempt_ms=self.clock() + delay,
                           counts_attempt=exc.counts_attempt)
        except SendOutcomeUnknown as exc:
            if self.config.at_least_once:
                return Outcome(claim, OutboxState.PENDIENTE, error=str(exc),
                               next_attempt_ms=self.clock() + self._retry_delay_ms(claim))
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

    async def _settle_cancelled(self, claim: ClaimedSend, request_started: bool) -> None:
        """Write back a send cancelled mid-way, so its row is never left `procesando` until the claim times out."""
        who = mask_phone(claim.recipient)
        try:
            if not request_started:
                if await release_claim(self.db, claim):
                    outbound_sends_total.labels("liberado").inc()
                    log.warning("OUTBOX_LIBERADO id=%s destinatario=%s: envío cancelado antes de salir; vuelve a "
                                "pendiente", claim.id, who)
                return
            outcome = Outcome(claim, OutboxState.INCIERTO, error="envío cancelado con la petición en curso")
            if (await record_outcomes(self.db, [outcome], now_ms=self.clock(),
                                      max_attempts=self.config.max_attempts))[0]:
                outbound_sends_total.labels("incierto").inc()
                log.error("OUTBOX_INCIERTO id=%s destinatario=%s: envío cancelado con la petición en curso",
                          claim.id, who)
        except Exception:  # the claim timeout settles it later
            log.error("OUTBOX_CANCELADO_SIN_REGISTRAR id=%s destinatario=%s", claim.id, who, exc_info=True)

    async def _write_back(self, outcomes: list[Outcome], tally: _Tally) -> None:
        max_attempts = self.config.max_attempts
        applied = await record_outcomes(self.db, outcomes, now_ms=self.clock(), max_attempts=max_attempts)
        for outcome, ok in zip(outcomes, applied, strict=True):
            claim, who = outcome.claim, mask_phone(outcome.claim.recipient)
            attempts = claim.attempts if outcome.counts_attempt else claim.attempts - 1
            if not ok:
                # Settled as `incierto` (claim timed out) or re-claimed: someone else owns the row now.
                tally.lost += 1
                outbound_sends_total.labels("reclamo_perdido").inc()
                log.warning("OUTBOX_RECLAMO_PERDIDO id=%s destinatario=%s estado=%s: la fila ya no es nuestra; "
                            "se omite", claim.id, who, outcome.state)
            elif outcome.state is OutboxState.ENVIADO:
                tally.sent += 1
                outbound_sends_total.labels("enviado").inc()
                log.info("OUTBOX_ENVIADO id=%s destinatario=%s wamid=%s", claim.id, who, mask_wamid(outcome.wamid))
            elif outcome.state is OutboxState.PENDIENTE and attempts < max_attempts:
                tally.retried += 1
                outbound_sends_total.labels("reintento").inc()
                wait = outcome.next_attempt_ms - self.clock()
                log.warning("OUTBOX_REINTENTO id=%s destinatario=%s intento=%s/%s cuenta=%s espera=%s ms: %s",
                            claim.id, who, attempts, max_attempts, "sí" if outcome.counts_attempt else "no",
                            wait, outcome.error)
                self._schedule_retry(claim.recipient, wait)
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
                log.error("OUTBOX_ERROR id=%s destinatario=%s intento=%s: %s", claim.id, who, claim.attempts,
                          outcome.error)

    def _schedule_retry(self, recipient: str, delay_ms: int) -> None:
        """Dispatch the recipient again when its row is due, instead of waiting for the next sweep. One timer
        per recipient (the earliest wins); the sweep still covers a process that dies before it fires."""
        if delay_ms > RETRY_TIMER_MAX_MS or self.stopping.is_set():
            return
        existing = self.retry_timers.get(recipient)
        if existing is not None and not existing.done():
            return  # already waiting; dispatch_recipient then sends whatever is due, in order

        async def fire() -> None:
            try:
                await asyncio.sleep(max(delay_ms, 0) / 1000 + 0.005)
                self.retry_timers.pop(recipient, None)
                await self.dispatch_recipient(recipient)
            except asyncio.CancelledError:
                raise
            except Exception:  # the sweep retries it
                log.warning("OUTBOX_REINTENTO_PROGRAMADO_FALLIDO destinatario=%s", mask_phone(recipient),
                            exc_info=True)
            finally:
                if self.retry_timers.get(recipient) is asyncio.current_task():
                    self.retry_timers.pop(recipient, None)

        self.retry_timers[recipient] = asyncio.get_running_loop().create_task(fire())

    async def _send_all(self, claims: list[ClaimedSend]) -> list[Outcome]:
        # One claim holds at most one row per recipient, so sending them in parallel keeps each user's order;
        # a claim holds at most SEND_CONCURRENCY rows, so every request starts right away.
        tasks = [asyncio.ensure_future(self._deliver(c)) for c in claims]
        try:
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            # Sends still in flight settled themselves (`_deliver`); record the ones that had finished.
            finished = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
            if finished:
                await asyncio.shield(self._write_back(finished, _Tally()))
            raise

    async def _release_all(self, claiming: asyncio.Future[list[ClaimedSend]]) -> None:
        try:
            claims = await claiming
        except Exception:
            log.warning("OUTBOX_RECLAMO_NO_DEVUELTO", exc_info=True)  # the claim timeout settles them later
            return
        for claim in claims:
            await release_claim(self.db, claim)

    async def _claim_within_limit(self, number: str, claim: Callable[[int], Awaitable[list[ClaimedSend]]],
                                  up_to: int, max_wait_s: float) -> list[ClaimedSend] | None:
        """Take send-limit tokens first, then claim at most that many rows (unused tokens go back): a row is
        claimed only when its request can start at once, so it never waits on the limit as `procesando`.
        None when no token came within `max_wait_s` (the number is paused): nothing was claimed."""
        limiter = self.limits.for_number(number)
        tokens = await limiter.take(up_to, max_wait_s=max_wait_s)
        if tokens == 0:
            return None
        claiming = asyncio.ensure_future(claim(tokens))
        try:
            claims = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            await asyncio.shield(self._release_all(claiming))  # a claim that commits anyway is handed back
            raise
        if len(claims) < tokens:
            await limiter.give_back(tokens - len(claims))
        return claims

    async def send_now(self, recipient: str) -> int:
        """Send what a commit just queued for `recipient`, without waiting for the outbox timer (when
        OUTBOX_EAGER_DISPATCH is on); answers how many went out. A failure only delays them to the sweep."""
        if not self.config.eager:
            return 0
        try:
            return await self.dispatch_recipient(recipient)
        except Exception:
            log.warning("Envío inmediato falló (%s)", mask_phone(recipient), exc_info=True)
            return 0

    async def dispatch_recipient(self, recipient: str) -> int:
        """The eager path: send this recipient's due replies, oldest first; answers how many were sent.

        Claims one row at a time (the head of the recipient's queue) and stops at the first row that
        must wait (retry later, unknown outcome) or that another dispatcher holds.
        """
        tally = _Tally()
        default = self.config.phone_number_id
        for _ in range(EAGER_MAX_ROUNDS):
            claims: list[ClaimedSend] | None = []
            # Tokens are per business number, so take the right one's: usually the recipient has one.
            for number in {n or default for n in await recipient_numbers(self.db, recipient)}:
                claims = await self._claim_within_limit(
                    number, lambda n, number=number: claim_outbound_recipient(  # type: ignore[misc]
                        self.db, recipient, now_ms=self.clock(), limit=min(n, 1), number=number,
                        default_number=default),
                    1, EAGER_LIMIT_WAIT_S)
                if claims is None or claims:
                    break
            if claims is None:  # the number is paused: try again once the pause is likely over
                self._schedule_retry(recipient, int(EAGER_LIMIT_WAIT_S * 1000))
                break
            if not claims:
                break
            outcomes = await self._send_all(claims)
            before = tally.sent + tally.failed
            await self._write_back(outcomes, tally)
            if tally.sent + tally.failed == before:  # retried, uncertain or lost: the queue head must wait
                break
        return tally.sent

    async def _abandon_expired(self) -> int:
        abandoned = await abandon_expired(self.db, now_ms=self.clock())
        for row_id, recipient in abandoned:
            events.outbound_abandoned(row_id, recipient, "plazo", "venció su plazo sin poder enviarse")
        return len(abandoned)

    async def sweep(self, *, budget_s: float = OUTBOX_SWEEP_BUDGET_S) -> OutboxSweepResult:
        """Settle stuck claims, give up rows past their deadline, then send up to MAX_TRABAJOS_POR_EJECUCION
        rows, stopping before the budget ends."""
        config = self.config
        started = time.monotonic()
        deadline = started + budget_s
        settled = await settle_stuck(
            self.db, now_ms=self.clock(), claim_timeout_ms=config.claim_timeout_ms,
            at_least_once=config.at_least_once, max_attempts=config.max_attempts,
        )
        if settled:
            log.warning("OUTBOX_RECLAMOS_VENCIDOS %s filas %s", settled,
                        "devueltas a pendiente" if config.at_least_once else "marcadas incierto")
        abandoned = await self._abandon_expired()
        caught_up = await reconcile_delivery_statuses(self.db, since_ms=self.clock() - STATUS_RECONCILE_WINDOW_MS)
        if caught_up:
            log.warning("OUTBOX_ESTADOS_RECONCILIADOS %s filas: estados de entrega que llegaron antes que su envío",
                        caught_up)
        remaining = config.max_jobs_per_run
        tally, claimed, stopped_early = _Tally(), 0, False
        slowest_batch = 0.0
        default = config.phone_number_id
        # Each served number has its own limit: a number with nothing due or paused by Meta drops out.
        numbers = list(dict.fromkeys((default, *config.served_numbers)))
        while remaining > 0 and numbers:
            # Do not start a batch the budget cannot cover; its rows would finish past the deadline.
            if time.monotonic() + slowest_batch > deadline:
                stopped_early = True
                break
            number = numbers[0]
            batch_started = time.monotonic()
            claims = await self._claim_within_limit(
                number, lambda n: claim_outbound(self.db, limit=n, now_ms=self.clock(), number=number,  # noqa: B023
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
            outcomes = await self._send_all(claims)
            await self._write_back(outcomes, tally)
            slowest_batch = max(slowest_batch, time.monotonic() - batch_started)
        result = OutboxSweepResult(
            settled=settled, claimed=claimed, sent=tally.sent, retried=tally.retried, failed=tally.failed,
            uncertain=tally.uncertain, lost=tally.lost, abandoned=abandoned, stopped_early=stopped_early,
        )
        if claimed or settled or abandoned:
            log.info("OUTBOX_SWEEP_COMPLETE %s en %.0f ms", result.as_dict(), (time.monotonic() - started) * 1000)
        return result
