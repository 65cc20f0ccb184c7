"""EjecucionesIA (assistant background responses in flight) and SesionesChat.ConversacionIA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.storage.database import Database, Row, Tx

ACTIVE = ("queued", "in_progress")


@dataclass(frozen=True, slots=True)
class AiRun:
    id: str
    phone: str
    conversation_id: str | None
    state: str
    message_id: str | None
    result: str | None
    created_ms: int
    updated_ms: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @classmethod
    def from_row(cls, row: Row) -> AiRun:
        return cls(
            id=row["Id"],
            phone=row["Telefono"],
            conversation_id=row["ConversacionId"],
            state=row["Estado"],
            message_id=row["MessageId"],
            result=row["Resultado"],
            created_ms=int(row["CreadoEn"]),
            updated_ms=int(row["ActualizadoEn"]),
        )


async def record_ai_run(
    db: Database,
    run_id: str,
    phone: str,
    conversation_id: str | None,
    state: str,
    message_id: str | None,
    now_ms: int,
) -> None:
    params = {
        "ejecucion_id": run_id,
        "telefono": phone,
        "conversacion_id": conversation_id,
        "estado": state,
        "message_id": message_id,
        "ahora": now_ms,
    }
    await db.write(lambda tx: tx.execute("insert_ai_run", params))


async def get_ai_run(db: Database, run_id: str) -> AiRun | None:
    row = await db.read(lambda tx: tx.fetch_one("get_ai_run", {"ejecucion_id": run_id}))
    return AiRun.from_row(row) if row else None


async def has_active_ai_run(db: Database, phone: str) -> bool:
    return await db.read(lambda tx: tx.fetch_one("has_active_ai_run", {"telefono": phone})) is not None


async def list_active_ai_runs(db: Database, limit: int = 100) -> list[AiRun]:
    rows = await db.read(lambda tx: tx.fetch_all("list_active_ai_runs", {"limite": limit}))
    return [AiRun.from_row(r) for r in rows]


async def list_active_ai_runs_for_phone(db: Database, phone: str) -> list[AiRun]:
    rows = await db.read(lambda tx: tx.fetch_all("list_active_ai_runs_for_phone", {"telefono": phone}))
    return [AiRun.from_row(r) for r in rows]


async def update_active_ai_run_status(db: Database, run_id: str, state: str, now_ms: int) -> bool:
    """Follow the provider's status while active (queued -> in_progress); False if already settled."""
    params = {"ejecucion_id": run_id, "estado": state, "ahora": now_ms}
    return await db.write(lambda tx: tx.execute("update_active_ai_run_status", params)) == 1


def settle_ai_run_tx(tx: Tx, run_id: str, state: str, result: str | None, now_ms: int) -> bool:
    """Mark an active run settled; True for exactly one caller, the one that must deliver its outcome."""
    params = {"ejecucion_id": run_id, "estado": state, "resultado": result, "ahora": now_ms}
    return tx.execute("settle_ai_run", params) == 1


async def settle_ai_run(
    db: Database,
    run_id: str,
    state: str,
    result: str | None,
    now_ms: int,
    then: Callable[[Tx], None] | None = None,
) -> bool:
    """Settle and, only if this caller won, run `then(tx)` in the SAME transaction (e.g. queue the reply)."""

    def work(tx: Tx) -> bool:
        won = settle_ai_run_tx(tx, run_id, state, result, now_ms)
        if won and then is not None:
            then(tx)
        return won

    return await db.write(work)


async def get_ai_conversation(db: Database, phone: str) -> str | None:
    row = await db.read(lambda tx: tx.fetch_one("get_ai_conversation", {"telefono": phone}))
    return row["ConversacionIA"] if row else None


async def set_ai_conversation(db: Database, phone: str, conversation_id: str) -> bool:
    """Keep the AI conversation id on the session; False when the session row does not exist yet."""
    params = {"telefono": phone, "conversacion_id": conversation_id}
    return await db.write(lambda tx: tx.execute("set_ai_conversation", params)) == 1
