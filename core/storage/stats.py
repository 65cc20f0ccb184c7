"""Counts an operator needs that only the database knows: live leases, inbox and outbox backlog.

They span every instance, so they are read at scrape time (never kept in one process's memory),
in one read transaction: one snapshot on SQLite; on SQL Server, where reads run in autocommit and each
statement sees its own committed state, they are a few milliseconds apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.storage.database import Database, Tx
from core.storage.states import InboxState, OutboxState

INBOX_STATES = (InboxState.PENDIENTE, InboxState.ERROR)  # the open rows; processed ones are history
# A finished send is history, not backlog: counting it read every row of the table.
OUTBOX_STATES = tuple(s for s in OutboxState if s is not OutboxState.ENVIADO)
AI_RUN_STATES = ("queued", "in_progress")


@dataclass(frozen=True, slots=True)
class DbStats:
    leases_active: int  # owner set and not expired: a conversation being drained now
    leases_expired: int  # owner set but past expiry: a holder that died, waiting for the sweeper
    inbox: tuple[tuple[str, int], ...]  # (Estado, rows) for pendiente and error, zero-filled
    inbox_oldest_pending_ms: int | None  # RecibidoEn of the oldest pending delivery
    outbox: tuple[tuple[str, int], ...]  # (Estado, rows) for every ColaEnvios state but enviado, zero-filled
    outbox_oldest_due_ms: int | None  # ProximoIntento of the oldest pending send
    ai_runs: tuple[tuple[str, int], ...]  # (Estado, rows) of background AI runs still in flight
    ai_runs_oldest_ms: int | None
    read_at_ms: int

    def inbox_count(self, state: str) -> int:
        return dict(self.inbox).get(state, 0)

    def outbox_count(self, state: str) -> int:
        return dict(self.outbox).get(state, 0)


def _by_state(rows: list[dict[str, object]], states: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    counts = {str(r["estado"]): int(r["filas"]) for r in rows}  # type: ignore[call-overload]
    known = [(s, counts.pop(s, 0)) for s in states]
    return tuple(known + sorted(counts.items()))  # a state added later still shows up


def _oldest(rows: list[dict[str, object]], state: str | None = None) -> int | None:
    """Smallest `mas_antiguo` among the rows (of one `estado` when given)."""
    values = [
        int(r["mas_antiguo"])  # type: ignore[call-overload]
        for r in rows
        if r["mas_antiguo"] is not None and (state is None or r["estado"] == state)
    ]
    return min(values) if values else None


async def read_stats(db: Database, now_ms: int) -> DbStats:
    def read(tx: Tx) -> DbStats:
        leases = tx.fetch_one("stats_leases", {"ahora": now_ms}) or {"activos": 0, "vencidos": 0}
        inbox = tx.fetch_all("stats_inbox")
        outbox = tx.fetch_all("stats_outbox")
        ai_runs = tx.fetch_all("stats_ai_runs")
        return DbStats(
            leases_active=int(leases["activos"] or 0),
            leases_expired=int(leases["vencidos"] or 0),
            inbox=_by_state(inbox, INBOX_STATES),
            inbox_oldest_pending_ms=_oldest(inbox, InboxState.PENDIENTE),
            outbox=_by_state(outbox, OUTBOX_STATES),
            outbox_oldest_due_ms=_oldest(outbox, OutboxState.PENDIENTE),
            ai_runs=_by_state(ai_runs, AI_RUN_STATES),
            ai_runs_oldest_ms=_oldest(ai_runs),
            read_at_ms=now_ms,
        )

    return await db.read(read)
