"""Retention: delete what is no longer needed, in bounded batches, the same way in both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.storage.database import Database

BATCH = 1_000  # rows per statement: short transactions, small lock footprints
MAX_BATCHES = 20  # per table per run; the next run takes the rest


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")  # CreadoEn's own format and zone


async def purge(db: Database, query: str, *, older_than_days: int, now: datetime | None = None) -> int:
    """Delete rows older than `older_than_days` with the named query, batch by batch; answers the count.
    0 days keeps everything."""
    if older_than_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    params = {"antes_ms": int(cutoff.timestamp() * 1000), "antes_fecha": _utc_text(cutoff), "n": BATCH}
    total = 0
    for _ in range(MAX_BATCHES):
        deleted = await db.write(lambda tx: tx.execute(query, params))
        total += deleted
        if deleted < BATCH:
            break
    return total
