"""EjecucionesIA (assistant background responses in flight) and SesionesChat.ConversacionIA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.storage.database import Database, Row, Tx

ACTIVE = ("queued", "in_progress")


@dataclass(frozen=True, slots=True)
class AiRun:
    id: str
    telefono: str
    conversacion_id: str | None
    estado: str
    message_id: str | None
    resultado: str | None
    creado_en: int
    actualizado_en: int

    @property
    def active(self) -> bool:
        return self.estado in ACTIVE

    @classmethod
    def from_row(cls, row: Row) -> AiRun:
        return cls(
            id=row["Id"],
            telefono=row["Telefono"],
            conversacion_id=row["ConversacionId"],
            estado=row["Estado"],
            message_id=row["MessageId"],
            resultado=row["Resultado"],
            creado_en=int(row["CreadoEn"]),
            actualizado_en=int(row["ActualizadoEn"]),
        )


async def record_ai_run(
    db: Database,
    run_id: str,
    telefono: str,
    conversacion_id: str | None,
    estado: str,
    message_id: str | None,
    ahora: int,
) -> None:
    params = {
        "ejecucion_id": run_id,
        "telefono": telefono,
        "conversacion_id": conversacion_id,
        "estado": estado,
        "message_id": message_id,
        "ahora": ahora,
    }
    await db.write(lambda tx: tx.execute("insert_ai_run", params))


async def get_ai_run(db: Database, run_id: str) -> AiRun | None:
    row = await db.read(lambda tx: tx.fetch_one("get_ai_run", {"ejecucion_id": run_id}))
    return AiRun.from_row(row) if row else None


async def has_active_ai_run(db: Database, telefono: str) -> bool:
    return await db.read(lambda tx: tx.fetch_one("has_active_ai_run", {"telefono": telefono})) is not None


async def list_active_ai_runs(db: Database, limit: int = 100) -> list[AiRun]:
    rows = await db.read(lambda tx: tx.fetch_all("list_active_ai_runs", {"limite": limit}))
    return [AiRun.from_row(r) for r in rows]


async def list_active_ai_runs_for_phone(db: Database, telefono: str) -> list[AiRun]:
    rows = await db.read(lambda tx: tx.fetch_all("list_active_ai_runs_for_phone", {"telefono": telefono}))
    return [AiRun.from_row(r) for r in rows]


async def update_active_ai_run_status(db: Database, run_id: str, estado: str, ahora: int) -> bool:
    """Follow the provider's status while active (queued -> in_progress); False if already settled."""
    params = {"ejecucion_id": run_id, "estado": estado, "ahora": ahora}
    return await db.write(lambda tx: tx.execute("update_active_ai_run_status", params)) == 1


def settle_ai_run_tx(tx: Tx, run_id: str, estado: str, resultado: str | None, ahora: int) -> bool:
    """Mark an active run settled; True for exactly one caller, the one that must deliver its outcome."""
    params = {"ejecucion_id": run_id, "estado": estado, "resultado": resultado, "ahora": ahora}
    return tx.execute("settle_ai_run", params) == 1


async def settle_ai_run(
    db: Database,
    run_id: str,
    estado: str,
    resultado: str | None,
    ahora: int,
    then: Callable[[Tx], None] | None = None,
) -> bool:
    """Settle and, only if this caller won, run `then(tx)` in the SAME transaction (e.g. queue the reply)."""

    def work(tx: Tx) -> bool:
        won = settle_ai_run_tx(tx, run_id, estado, resultado, ahora)
        if won and then is not None:
            then(tx)
        return won

    return await db.write(work)


async def get_ai_conversation(db: Database, telefono: str) -> str | None:
    row = await db.read(lambda tx: tx.fetch_one("get_ai_conversation", {"telefono": telefono}))
    return row["ConversacionIA"] if row else None


async def set_ai_conversation(db: Database, telefono: str, conversacion_id: str) -> bool:
    """Keep the AI conversation id on the session; False when the session row does not exist yet."""
    params = {"telefono": telefono, "conversacion_id": conversacion_id}
    return await db.write(lambda tx: tx.execute("set_ai_conversation", params)) == 1
