"""One cheap read that tells a recovery timer whether it has anything to do.

An idle app's timers then cost one query each run instead of the sweep's several (a lease update among
them), and nothing is written while nobody writes to the bot: an Azure SQL serverless database can pause.
The checks are supersets of what the sweeps act on, so a sweep is never skipped when it had work.
"""

from __future__ import annotations

from core.storage.database import Database


async def conversation_sweep_due(db: Database, now_ms: int, idle_before_ms: int) -> bool:
    row = await db.read(lambda tx: tx.fetch_one("conversation_sweep_due", {"ahora": now_ms, "limite": idle_before_ms}))
    return bool(row and row["hay_trabajo"])


async def outbox_sweep_due(db: Database, sent_since_ms: int) -> bool:
    row = await db.read(lambda tx: tx.fetch_one("outbox_sweep_due", {"desde": sent_since_ms}))
    return bool(row and row["hay_trabajo"])
