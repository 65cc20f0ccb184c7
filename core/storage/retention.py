"""Retention: delete what is no longer needed in short batches, until caught up or out of time.

Identity tables (ledger, sends, chat, transitions) are walked in Id order, which is arrival order: a
window query reads the next PURGE_BATCH_ROWS Ids after the last one seen (a clustered seek) and says whether all
of them are older than the cutoff; the purge deletes the settled, old rows of that Id range. The walk
stops at the first window that reaches recent rows (caught up), or when the time budget is spent (the
next run goes on). Tables without an identity (AI runs, lease rows) and the delivery statuses, which
expire sooner than the rows around them, are deleted through an index, TOP (PURGE_BATCH_ROWS) at a time. Each
batch is its own short transaction: the webhook's registrations get the database between any two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from core.storage.database import Database, Row, Tx

PURGE_BATCH_ROWS = 1_000  # rows per statement: short transactions, far below SQL Server's 5,000-lock escalation


@dataclass(frozen=True, slots=True)
class Purge:
    """One table's rule: walk its Ids with `window` (None: delete through an index, TOP PURGE_BATCH_ROWS at a time)."""

    purge: str
    window: str | None = None


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: int
    batches: int
    caught_up: bool  # False: the budget ran out first; the next run continues


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")  # CreadoEn's own format and zone


def _fetch_one(tx: Tx, *, name: str, params: dict[str, object]) -> Row | None:
    return tx.fetch_one(name, params)


def _execute(tx: Tx, *, name: str, params: dict[str, object]) -> int:
    return tx.execute(name, params)


def cutoff_params(older_than_days: int, now: datetime | None = None) -> dict[str, object]:
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    return {"antes_ms": int(cutoff.timestamp() * 1000), "antes_fecha": _utc_text(cutoff), "n": PURGE_BATCH_ROWS}


async def purge(db: Database, rule: Purge, *, older_than_days: int, budget_s: float, now: datetime | None = None,
                clock: Callable[[], float] = time.monotonic) -> PurgeResult:
    """Delete the rows `rule` selects that are older than `older_than_days`, batch by batch, for at most
    `budget_s` seconds. 0 days keeps everything."""
    if older_than_days <= 0:
        return PurgeResult(0, 0, True)
    params = cutoff_params(older_than_days, now)
    deadline = clock() + budget_s
    deleted = batches = 0
    after_id = 0
    while clock() < deadline:
        if rule.window is None:
            count = await db.write(partial(_execute, name=rule.purge, params=params))
            deleted, batches = deleted + count, batches + 1
            if count < PURGE_BATCH_ROWS:
                return PurgeResult(deleted, batches, True)
            continue
        bounds = {**params, "desde_id": after_id}
        window = await db.read(partial(_fetch_one, name=rule.window, params=bounds))
        if window is None or window["hasta"] is None:  # no rows after after_id
            return PurgeResult(deleted, batches, True)
        up_to_id = int(window["hasta"])
        count = await db.write(partial(_execute, name=rule.purge, params={**bounds, "hasta_id": up_to_id}))
        deleted, batches, after_id = deleted + count, batches + 1, up_to_id
        if not window["todo_viejo"]:  # this window reached recent rows: nothing older lies beyond
            return PurgeResult(deleted, batches, True)
    return PurgeResult(deleted, batches, False)
