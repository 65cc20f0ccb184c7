"""The inbound ledger (`MensajesProcesados`): every webhook delivery registered, inserted first.

A first delivery is inserted (messages as `pendiente`: the durable inbox; statuses directly as
`procesado`) by one statement that answers no row when the wamid is already there; a redelivery then
bumps `Reintentos` and `UltimoReintento` with a second, atomic statement. On SQL Server two copies
racing past the insert's NOT EXISTS meet at the unique key and the loser's duplicate-key error is a
redelivery too, so N concurrent deliveries of one wamid leave one row with `Reintentos = N-1` whatever
the interleaving, without the key-range locks (and deadlocks) of a MERGE with HOLDLOCK.

`core/` never imports `bot/`: messages arrive as anything shaped like `bot.messages.InboundMessage`
(the `InboxMessage` protocol below). Logs and metrics about duplicates are emitted only after the
transaction commits, because SQL Server can hand back OUTPUT rows of a statement later rolled back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core import events
from core.errors import StorageError
from core.metrics import webhook_deliveries_total
from core.storage.database import Database, Tx
from core.storage.states import InboxState
from core.whatsapp.status import STATUS_RANK, StatusUpdate

log = logging.getLogger(__name__)

STATUS_KIND = "status"  # MensajesProcesados.Tipo of a delivery status


class InboxMessage(Protocol):
    @property
    def wamid(self) -> str: ...
    @property
    def conversation_key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def timestamp(self) -> int: ...
    def to_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Registration:
    is_duplicate: bool
    retry_count: int  # Reintentos after this delivery: 0 for a first delivery
    state: str = InboxState.PENDIENTE  # Estado after this delivery: a redelivery may find it still pending

    @property
    def needs_handling(self) -> bool:
        """New, or redelivered while still pending: its conversation must be handed to the worker."""
        return self.state == InboxState.PENDIENTE


@dataclass(frozen=True, slots=True)
class StatusRegistration:
    is_duplicate: bool
    retry_count: int
    outbound_updated: bool  # a ColaEnvios row named by the wamid moved forward


@dataclass(frozen=True, slots=True)
class BatchRegistration:
    messages: tuple[Registration, ...]  # in the order given
    statuses: tuple[StatusRegistration, ...]


def _register(tx: Tx, message_id: str, phone: str | None, kind: str, payload: str, state: str,
              wa_timestamp: int, now_ms: int) -> Registration:
    # Insert first: no row when the wamid is already there (committed before, or by a racing copy whose
    # insert won the unique key): then it is a redelivery, counted in the same transaction.
    row = tx.insert_unless_duplicate("register_delivery", {
        "message_id": message_id,
        "telefono": phone,
        "tipo": kind,
        "payload": payload,
        "estado": state,
        "wa_timestamp": wa_timestamp,
        "ahora": now_ms,
        "procesado_en": now_ms if state == InboxState.PROCESADO else None,
    })
    if row is None:
        row = tx.fetch_one("register_redelivery", {"message_id": message_id, "ahora": now_ms})
    if row is None:  # neither inserted nor found: only a broken schema does that
        raise StorageError(f"register_delivery: sin fila para {message_id}")
    return Registration(is_duplicate=str(row["Accion"]).upper() != "INSERT", retry_count=int(row["Reintentos"]),
                        state=str(row["Estado"]))


def register_message_tx(tx: Tx, msg: InboxMessage, now_ms: int) -> Registration:
    return _register(tx, msg.wamid, msg.conversation_key, str(msg.kind), msg.to_json(), InboxState.PENDIENTE,
                     msg.timestamp, now_ms)


def register_status_tx(tx: Tx, status: StatusUpdate, now_ms: int) -> StatusRegistration:
    reg = _register(tx, status.dedup_key, status.recipient, STATUS_KIND, status.to_json(), InboxState.PROCESADO,
                    status.timestamp, now_ms)
    updated = False
    # Only a first delivery touches the outbound row, so a redelivered old `sent` cannot race a `read`.
    if not reg.is_duplicate and status.rank is not None:
        updated = tx.execute("record_delivery_status", {
            "estado_entrega": status.status,
            "ultimo_error": status.error_text if status.status == "failed" else None,
            "wamid": status.wamid,
            "rango": status.rank,
        }) > 0
    return StatusRegistration(reg.is_duplicate, reg.retry_count, updated)


def apply_recorded_status_tx(tx: Tx, wamid: str) -> str | None:
    """Catch an outbound row up with statuses that arrived before its wamid was stored.

    Meta can POST `sent` (even `delivered`) before the send call's answer is committed; then
    `record_delivery_status` found no row. The outbound side calls this in the same transaction that
    sets `ColaEnvios.WamidEnviado`; it applies the furthest registered status. Answers the status applied.
    """
    keys = {f"clave_{name}": f"{wamid}:{name}" for name in STATUS_RANK}
    rows = tx.fetch_all("recorded_delivery_statuses", keys)
    statuses = [StatusUpdate.from_json(r["Payload"]) for r in rows if r["Payload"]]
    if not statuses:
        return None
    best = max(statuses, key=lambda st: st.rank or 0)
    tx.execute("record_delivery_status", {
        "estado_entrega": best.status,
        "ultimo_error": best.error_text if best.status == "failed" else None,
        "wamid": wamid,
        "rango": best.rank,
    })
    return best.status


def _after_commit(wamid: str, reg: Registration | StatusRegistration, kind: str) -> None:
    if reg.is_duplicate:
        events.duplicate_delivery(wamid, reg.retry_count)
    else:
        webhook_deliveries_total.labels(kind=kind).inc()


async def register_delivery(db: Database, msg: InboxMessage, now_ms: int) -> Registration:
    """Register one inbound message: inserted as pending, or counted as a redelivery."""
    reg = await db.write(lambda tx: register_message_tx(tx, msg, now_ms))
    _after_commit(msg.wamid, reg, str(msg.kind))
    return reg


def _register_posts_tx(tx: Tx, posts: Sequence[tuple[Sequence[InboxMessage], Sequence[StatusUpdate], int]]
                       ) -> list[BatchRegistration]:
    """Register several POSTs in one transaction, each item in arrival order.

    Arrival order is kept on purpose (not, say, MessageId order, which would give every transaction
    one lock order): the inbox `Id` breaks WaTimestamp ties when a conversation is drained. SQL Server
    deadlocks between overlapping batches are transient errors, retried whole by `Database`.
    """
    return [
        BatchRegistration(
            messages=tuple(register_message_tx(tx, m, now_ms) for m in messages),
            statuses=tuple(register_status_tx(tx, st, now_ms) for st in statuses),
        )
        for messages, statuses, now_ms in posts
    ]


def _report(messages: Sequence[InboxMessage], statuses: Sequence[StatusUpdate], result: BatchRegistration) -> None:
    for msg, reg in zip(messages, result.messages, strict=True):
        _after_commit(msg.wamid, reg, str(msg.kind))
    for status, sreg in zip(statuses, result.statuses, strict=True):
        _after_commit(status.dedup_key, sreg, STATUS_KIND)


async def register_batch(db: Database, messages: Sequence[InboxMessage], statuses: Sequence[StatusUpdate],
                         now_ms: int) -> BatchRegistration:
    """Register every delivery of one webhook POST in one transaction (still one statement each)."""
    if not messages and not statuses:
        return BatchRegistration((), ())
    (result,) = await db.write(lambda tx: _register_posts_tx(tx, [(messages, statuses, now_ms)]))
    _report(messages, statuses, result)
    return result


@dataclass(slots=True)
class _Pending:
    messages: Sequence[InboxMessage]
    statuses: Sequence[StatusUpdate]
    now_ms: int
    future: asyncio.Future[BatchRegistration]


class InboxRegistrar:
    """Group commit for webhook POSTs: the registrations of concurrent requests share one transaction.

    SQLite has one writer: a transaction per one-row write would make concurrent requests queue for the
    write lock, each paying its own BEGIN and COMMIT. A flusher takes everything queued, runs it as one
    transaction (each delivery still ONE atomic statement, each POST's items together), then answers
    every caller after the commit. If that shared transaction fails, each POST is retried in its own
    transaction, so one bad delivery cannot fail its neighbours. `max_in_flight` flushers run at once:
    1 for SQLite (one writer anyway); more for SQL Server, where round trips, not the lock, bound a batch.
    """

    def __init__(self, db: Database, *, max_posts: int = 256, max_in_flight: int = 1, inline: bool = True) -> None:
        self._db = db
        self._inline = inline
        self._max_posts = max_posts
        self._max_in_flight = max(1, max_in_flight)
        self._queue: list[_Pending] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def register(self, messages: Sequence[InboxMessage], statuses: Sequence[StatusUpdate],
                       now_ms: int) -> BatchRegistration:
        if not messages and not statuses:
            return BatchRegistration((), ())
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests, a restarted worker): nothing queued survives it
            self._loop, self._queue, self._flushers = loop, [], set()
        pending = _Pending(messages, statuses, now_ms, loop.create_future())
        self._queue.append(pending)
        if len(self._flushers) < self._max_in_flight:
            task = loop.create_task(self._flush(), name="inbox-group-commit")
            self._flushers.add(task)
        # Each caller owns its future: a cancelled caller cancels only its own wait; the shared
        # transaction still commits for everyone and `_settle` skips the cancelled future.
        return await pending.future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_posts], self._queue[self._max_posts:]
                await self._commit(batch)
        finally:
            # In the same step as the last empty-queue check: a caller arriving later starts a new flusher.
            self._flushers.discard(asyncio.current_task())

    async def _commit(self, batch: list[_Pending]) -> None:
        def work(tx: Tx) -> list[BatchRegistration]:
            return _register_posts_tx(tx, [(p.messages, p.statuses, p.now_ms) for p in batch])

        try:
            # Inline when the write lock is free right now (SQLite): a few statements, no thread hop.
            done, inline = self._db.try_write_now(work) if self._inline else (False, None)
            # One flusher (SQLite): its own thread, ahead of the worker's writes. Several (SQL Server): the pool.
            write = self._db.write_urgent if self._max_in_flight == 1 else self._db.write
            results = inline if done else await write(work)
        except asyncio.CancelledError:
            for pending in batch + self._queue:
                pending.future.cancel()
            self._queue = []
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
            else:
                log.warning("Registro agrupado de %d entregas falló (%s); se reintenta una por una",
                            len(batch), type(exc).__name__, exc_info=True)
                await self._one_by_one(batch)
            return
        assert results is not None  # try_write_now answered done, or write returned
        for pending, result in zip(batch, results, strict=True):
            _report(pending.messages, pending.statuses, result)
            _settle(pending, result)

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                result = await register_batch(self._db, pending.messages, pending.statuses, pending.now_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _settle(pending, exc)
            else:
                _settle(pending, result)


def _settle(pending: _Pending, outcome: BatchRegistration | Exception) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
