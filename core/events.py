"""The operational events, each logged and counted in one call.

Every module that meets one of these situations calls the function here instead of writing its own
line, so the token the KQL and the alerts search for (monitoring/queries.kql), the masked phone, the
custom dimensions and the Prometheus counter can never drift apart.
"""

from __future__ import annotations

import logging
import re

from core import metrics
from core.telemetry import log_event, mask_phone, mask_wamid

log = logging.getLogger("reportes_bot.eventos")

QUEUE_WAIT_LOG_MS = 5_000  # a wait this long means the worker is behind: worth a line, not every time
BREAKER_STATES = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
_OPERATION_PART = re.compile(r"\w*")


# -- conversation leases ------------------------------------------------------------------------


def lock_acquired(key: str, timeout_ms: int, fencing: int) -> None:
    log_event(log, logging.INFO, "THREAD_LOCK_ACQUIRED", "Lock adquirido para conversación",
              telefono=key, timeoutMs=timeout_ms, fencing=fencing)


def lock_busy(key: str) -> None:
    """The lease is held by another drain: that holder will handle this message too. Normal in a burst, so
    it has its own counter and never feeds the race alert."""
    metrics.lease_busy_total.inc()
    log_event(log, logging.WARNING, "THREAD_LOCK_BUSY", "Conversación ya está siendo procesada", telefono=key)


def lock_timeout(key: str, timeout_ms: int, fencing: int, reason: str = "expirado") -> None:
    """A lease ran out before its holder released it (holder died, or a heartbeat came too late)."""
    metrics.race_errors_total.inc()
    log_event(log, logging.WARNING, "THREAD_LOCK_TIMEOUT", "Lock liberado por timeout",
              telefono=key, timeoutMs=timeout_ms, fencing=fencing, motivo=reason)


# -- orphaned AI runs ---------------------------------------------------------------------------


def orphaned_runs_recovery_start(max_age_ms: int) -> None:
    log_event(log, logging.INFO, "ORPHANED_RUNS_RECOVERY_START", "Iniciando recuperación de runs huérfanos",
              maxAgeMs=max_age_ms)


def orphaned_run_cancelled(phone: str, run_id: str, status: str, age_ms: int, conversation_id: str = "") -> None:
    metrics.orphaned_runs_cancelled_total.inc()
    log_event(log, logging.WARNING, "ORPHANED_RUN_CANCELLED", "Run huérfano cancelado",
              telefono=phone, threadId=conversation_id or None, runId=run_id, status=status,
              ageMinutes=age_ms // 60_000)


def orphaned_runs_recovery_complete(checked: int, cancelled: int) -> None:
    log_event(log, logging.INFO, "ORPHANED_RUNS_RECOVERY_COMPLETE", "Recuperación completada",
              runsChecked=checked, runsCancelled=cancelled)


# -- optimistic concurrency -------------------------------------------------------------------


def concurrency_retry(operation: str, phone: str, attempt: int, max_attempts: int, delay_ms: int) -> None:
    """A versioned write lost the race and will be retried; `attempt` is the one that failed (1-based)."""
    metrics.concurrency_retries_total.labels(operation=operation).inc()
    log_event(
        log, logging.WARNING,
        f"[ConcurrencyRetry] {operation}({mask_phone(phone)}) - Intento {attempt}/{max_attempts} falló,"
        f" reintentando en {delay_ms}ms",
        telefono=phone, operacion=operation, error="ConcurrencyError",
    )


def concurrency_exhausted(operation: str, phone: str, attempts: int, expected_version: int) -> None:
    """Every retry lost: the message stays pending and the next drain tries again."""
    log_event(log, logging.ERROR, "ConcurrencyError",
              f"{operation}({mask_phone(phone)}) perdió {attempts} intentos; versión esperada {expected_version}",
              telefono=phone, operacion=operation, intentos=attempts, version=expected_version)


# -- AI timeouts and breaker ----------------------------------------------------------------------


def ai_timeout(operation: str, timeout_ms: int, provider: str = "") -> None:
    # The KQL reads the operation back with `Timeout\] (\w+)`: one word (detectIntent.openai -> detectIntent).
    operation = _OPERATION_PART.match(operation).group(0) or "operacion"  # type: ignore[union-attr]
    metrics.ai_timeouts_total.labels(operation=operation).inc()
    log_event(log, logging.WARNING, f"[Timeout] {operation} excedió {timeout_ms}ms, usando fallback",
              operacion=operation, timeoutMs=timeout_ms, proveedor=provider or None)


def breaker_state_changed(provider: str, old: str, new: str, failures: int = 0) -> None:
    if old not in BREAKER_STATES or new not in BREAKER_STATES:
        raise ValueError(f"breaker states are {sorted(BREAKER_STATES)}, got {old!r} -> {new!r}")
    metrics.breaker_state.labels(provider=provider).set(BREAKER_STATES[new])
    log_event(log, logging.WARNING, f"[CircuitBreaker] State changed {old} -> {new}",
              proveedor=provider, desde=old, hacia=new, fallos=failures)


# -- webhook redeliveries -------------------------------------------------------------------------


def duplicate_delivery(wamid: str, redelivery: int, phone: str | None = None) -> None:
    """Meta redelivered a message the ledger already holds (MERGE matched); `redelivery` = Reintentos."""
    metrics.duplicate_deliveries_total.inc()
    masked = mask_wamid(wamid)  # a wamid is base64 of a payload holding the sender's number
    log_event(log, logging.INFO, "Mensaje duplicado detectado (MERGE)", f"{masked}, reintento #{redelivery}",
              wamid=masked, reintento=redelivery, telefono=phone)


# -- hand-off and reply latency -------------------------------------------------------------------


def reply_sent(phone: str, latency_ms: int) -> None:
    """A reply reached Meta: `latency_ms` from the webhook receiving the message that caused it."""
    metrics.reply_latency_seconds.observe(latency_ms / 1000)
    log_event(log, logging.INFO, "REPLY_LATENCY", f"Respuesta aceptada por Meta en {latency_ms}ms",
              telefono=phone, latenciaMs=latency_ms)


def queue_wait(phone: str, wait_ms: int, dequeue_count: int) -> None:
    """The worker picked up a conversation `wait_ms` after it was queued (its `dequeue_count`-th try)."""
    metrics.queue_wait_seconds.observe(wait_ms / 1000)
    if wait_ms >= QUEUE_WAIT_LOG_MS or dequeue_count > 1:
        log_event(log, logging.WARNING, "QUEUE_WAIT", f"Conversación esperó {wait_ms}ms en la cola",
                  telefono=phone, esperaColaMs=wait_ms, intentoCola=dequeue_count)


def handoff_failed(origin: str, conversations: int, error: str) -> None:
    """The queue refused conversation keys; their inbox rows are durable and the sweep redrives them."""
    metrics.handoff_total.labels(origin=origin, outcome="fallo").inc(conversations)
    log_event(log, logging.ERROR, "HANDOFF_FALLIDO",
              f"no se pudieron encolar {conversations} conversaciones; quedan pendientes para el barrido",
              origen=origin, conversaciones=conversations, error=error)


def worker_unavailable(key: str, reason: str, error: str, exc: BaseException | None = None) -> None:
    """The worker could not even start (bad settings, no database). The message is acknowledged anyway: its
    inbox rows stay pending in SQL and the sweep redrives them once the app can run, so nothing is lost
    and nothing lands in the poison queue."""
    metrics.worker_failures_total.labels(reason=reason).inc()
    log_event(log, logging.ERROR, "WORKER_NO_DISPONIBLE",
              "el worker no pudo arrancar; los mensajes quedan pendientes para el barrido",
              conversacion=key, motivo=reason, error=error, exc_info=exc)
def outbound_abandoned(row_id: int, recipient: str, reason: str, detail: str | None) -> None:
    """An outbound row was given up unsent: past its deadline (`plazo`) or out of attempts (`intentos`).
    Someone got no answer; the alert `envios-abandonados` fires on this line."""
    metrics.outbound_abandoned_total.labels(reason).inc()
    log_event(log, logging.ERROR, "OUTBOX_ABANDONADO", f"envío {row_id} abandonado sin enviar ({reason})",
              telefono=recipient, motivo=reason, detalle=detail or "")
