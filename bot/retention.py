"""The retention pass: what the bot keeps, and for how long (docs/operations.md, "Retention";
the arithmetic at 1,000 deliveries/s is in docs/sqlserver.md, "Retention").

- `MensajesProcesados` (the dedup ledger): handled and failed messages after RETENTION_LEDGER_DAYS
  (30); delivery statuses after RETENTION_STATUS_DAYS (7). Meta redelivers for up to 7 days, so a
  wamid older than that cannot come back. Pending rows are never deleted: they are the inbox.
- `ColaEnvios`: settled sends (`enviado`, `error`, `incierto`) after RETENTION_OUTBOX_DAYS (30).
- `MensajesChat` and `HistorialSesiones`: after RETENTION_HISTORY_DAYS (365; 0 keeps them).
- `EjecucionesIA`: settled AI runs after RETENTION_AI_RUNS_DAYS (30).
- `BloqueosConversacion`: lease rows nobody took for RETENTION_LEASE_DAYS (7).
- `Reportes`, `SesionesChat`, `Equipos`: kept; they are the business records and the current state.

One run has RUN_BUDGET_S; each table gets an equal share of what is left, so a table with a backlog
cannot starve the others, and the next run (every 10 minutes) goes on where this one stopped.
"""

from __future__ import annotations

import logging
import time

from core.errors import BotError
from core.metrics import retention_purged_total
from core.settings import Settings
from core.storage.database import Database
from core.storage.retention import Purge, purge

log = logging.getLogger(__name__)

RUN_BUDGET_S = 240.0  # of the 10 minutes between runs


async def run_retention(db: Database, settings: Settings, budget_s: float = RUN_BUDGET_S) -> dict[str, int]:
    plan = (
        ("EstadosEntrega", Purge("purge_statuses"), settings.retention_status_days),
        ("MensajesProcesados", Purge("purge_ledger", "retention_window_ledger"), settings.retention_ledger_days),
        ("ColaEnvios", Purge("purge_outbox", "retention_window_outbox"), settings.retention_outbox_days),
        ("MensajesChat", Purge("purge_chat", "retention_window_chat"), settings.retention_history_days),
        ("HistorialSesiones", Purge("purge_transitions", "retention_window_transitions"),
         settings.retention_history_days),
        ("EjecucionesIA", Purge("purge_ai_runs"), settings.retention_ai_runs_days),
        ("BloqueosConversacion", Purge("purge_leases"), settings.retention_lease_days),
    )
    deadline = time.monotonic() + budget_s
    purged: dict[str, int] = {}
    for position, (table, rule, days) in enumerate(plan):
        share = max(0.0, deadline - time.monotonic()) / (len(plan) - position)
        try:
            result = await purge(db, rule, older_than_days=days, budget_s=share)
        except BotError:  # one table's failure does not stop the others
            log.warning("RETENCION_FALLO tabla=%s", table, exc_info=True)
            continue
        purged[table] = result.deleted
        if result.deleted:
            retention_purged_total.labels(tabla=table).inc(result.deleted)
            log.info("RETENCION_PURGA tabla=%s filas=%d lotes=%d antiguedad_dias=%d", table, result.deleted,
                     result.batches, days)
        if not result.caught_up:
            log.warning("RETENCION_ATRASADA tabla=%s filas=%d: se acabó el tiempo; la próxima ejecución sigue",
                        table, result.deleted)
    return purged
