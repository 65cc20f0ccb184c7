"""The retention pass: what the bot keeps, and for how long (docs/operations.md, "Retention").

- `MensajesProcesados` (the dedup ledger): handled and failed rows after RETENTION_LEDGER_DAYS (30).
  Meta redelivers for up to 7 days, so a wamid older than that cannot come back. Pending rows are
  never deleted: they are the inbox.
- `ColaEnvios`: settled sends (`enviado`, `error`, `incierto`) after RETENTION_OUTBOX_DAYS (30).
- `MensajesChat` and `HistorialSesiones`: after RETENTION_HISTORY_DAYS (365; 0 keeps them).
- `Reportes`, `SesionesChat`, `Equipos`: kept; they are the business records and the current state.
"""

from __future__ import annotations

import logging

from bot.runtime import Runtime
from core.errors import BotError
from core.metrics import retention_purged_total
from core.storage.retention import purge

log = logging.getLogger(__name__)


async def run_retention(rt: Runtime) -> dict[str, int]:
    settings = rt.settings
    plan = (
        ("MensajesProcesados", "purge_ledger", settings.retention_ledger_days),
        ("ColaEnvios", "purge_outbox", settings.retention_outbox_days),
        ("MensajesChat", "purge_chat", settings.retention_history_days),
        ("HistorialSesiones", "purge_transitions", settings.retention_history_days),
    )
    purged: dict[str, int] = {}
    for table, query, days in plan:
        try:
            purged[table] = await purge(rt.db, query, older_than_days=days)
        except BotError as exc:  # one table's failure does not stop the others
            log.warning("RETENCION_FALLO tabla=%s: %s", table, exc)
            continue
        if purged[table]:
            retention_purged_total.labels(tabla=table).inc(purged[table])
            log.info("RETENCION_PURGA tabla=%s filas=%d antiguedad_dias=%d", table, purged[table], days)
    return purged
