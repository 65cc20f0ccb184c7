"""Conversation storage: versioned sessions, the inbox read side, and the one-transaction commit of a transition."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import AlreadyProcessed, ConcurrencyError, LeaseLost, StorageError
from core.storage.database import Database, Tx
from core.storage.leases import Lease
from core.storage.outbox import queue_reply
from core.storage.text import fit_units

# Column sizes in UTF-16 code units, as NVARCHAR counts them (core/storage/text.py).
MAX_DESCRIPTION = 2000  # Reportes.Descripcion
MAX_HISTORY_DESCRIPTION = 500  # HistorialSesiones.Descripcion
MAX_ERROR = 1000  # MensajesProcesados.UltimoError
# Flows are pure and run before the report exists, so they write this placeholder wherever the report's
# number goes (reply, session data, history); the commit puts the real number in, from the row's Id.
REPORT_NUMBER = "{{NUMERO_REPORTE}}"
# Likewise for the report's id in session data: the JSON string "{{ID_REPORTE}}" becomes the number.
REPORT_ID = "{{ID_REPORTE}}"


def format_report_number(report_id: int) -> str:
    return f"RPT-{report_id:06d}"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A `SesionesChat` row, as the conversation's `Session` is built from it (bot/conversation/model.py)."""

    state: str
    data: Mapping[str, Any]
    equipment_id: int | None
    version: int
    last_activity_ms: int
    ai_conversation_id: str | None


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    message_id: str
    payload: str
    wa_timestamp: int
    attempts: int
    received_ms: int = 0  # when the webhook registered it (RecibidoEn): the start of its reply latency


@dataclass(frozen=True, slots=True)
class EquipmentRow:
    """An `Equipos` row."""

    id: int
    sap_code: str
    kind: str
    description: str
    location: str


@dataclass(frozen=True, slots=True)
class ReportWrite:
    kind: str
    equipment_id: int | None
    description: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyWrite:
    recipient: str
    kind: str  # text / buttons / list
    content: str  # OutgoingMessage JSON
    text: str  # what goes into MensajesChat


@dataclass(frozen=True, slots=True)
class TransitionWrite:
    """Everything one transition changes; committed whole by `commit_transition` or not at all."""

    key: str
    expected_version: int
    state_from: str
    state_to: str
    data: Mapping[str, Any]
    equipment_id: int | None
    origin: str  # BOT / USUARIO / SISTEMA
    description: str
    now_ms: int
    inbox_ids: Sequence[int] = ()  # the inbox rows this turn handles (none for sweeper transitions)
    message_id: str | None = None  # the turn's last message
    earlier_message_ids: Sequence[str] = ()  # the turn's other messages: one history row each, too
    user_messages: Sequence[tuple[str, str]] = ()  # (wamid, text) of the turn, kept in MensajesChat
    report: ReportWrite | None = None
    replies: Sequence[ReplyWrite] = ()
    effects: Sequence[TxEffect] = ()  # more writes of the same transaction (evidence, report notes, notices)


class TxEffect(Protocol):
    """A write that belongs to a transition's transaction; `report_id` is the report it filed, if any."""

    def __call__(self, tx: Tx, report_id: int | None) -> object: ...


def _session(row: Mapping[str, Any] | None) -> SessionRow | None:
    if row is None:
        return None
    return SessionRow(
        state=row["estado"],
        data=json.loads(row["datos"] or "{}"),
        equipment_id=row["equipo_id"],
        version=int(row["version"]),
        last_activity_ms=int(row["ultima_actividad"]),
        ai_conversation_id=row["conversacion_ia"],
    )


async def get_session_with_version(db: Database, key: str) -> SessionRow | None:
    """The conversation's session row (None: no row yet)."""
    return _session(await db.read(lambda tx: tx.fetch_one("session_get", {"telefono": key})))


def _apply(tx: Tx, t: TransitionWrite, lease: Lease | None) -> int | None:
    if lease is not None:
        check = {"clave": lease.key, "propietario": lease.owner, "token": lease.token, "ahora": t.now_ms}
        if tx.execute("lease_check", check) != 1:
            raise LeaseLost(lease.key, lease.token)
    for inbox_id in t.inbox_ids:
        if tx.execute("inbox_mark_processed", {"id": inbox_id, "ahora": t.now_ms}) != 1:
            raise AlreadyProcessed(t.message_id or str(inbox_id))
    for wamid, text in t.user_messages:
        tx.execute("chat_save_user", {"telefono": t.key, "contenido": text, "message_id": wamid})
    report_id = None
    number = ""
    if t.report is not None:
        origin = t.message_id or f"sin-mensaje:{uuid.uuid4().hex}"
        row = tx.fetch_one(
            "report_insert",
            {
                "numero": f"TMP-{uuid.uuid4().hex[:16]}",  # unique until the row's Id gives the real one
                "telefono": t.key,
                "tipo_equipo": t.report.kind,
                "equipo_id": t.report.equipment_id,
                "descripcion": fit_units(t.report.description, MAX_DESCRIPTION),
                "datos": json.dumps(dict(t.report.data), ensure_ascii=False, sort_keys=True),
                "mensaje_origen": origin,
            },
        )
        if row is None:
            raise StorageError("report_insert returned no id")
        report_id = int(row["id"])
        number = format_report_number(report_id)
        tx.execute("report_set_number", {"numero": number, "id": report_id})

    def fill(text: str) -> str:
        if not number:
            return text
        return text.replace(f'"{REPORT_ID}"', str(report_id)).replace(REPORT_NUMBER, number)

    session = {
        "telefono": t.key,
        "estado_sesion": t.state_to,
        "datos": fill(json.dumps(dict(t.data), ensure_ascii=False, sort_keys=True)),
        "equipo_id": t.equipment_id,
        "ahora": t.now_ms,
    }
    if t.expected_version == 0:
        changed = tx.execute("session_insert", session)
    else:
        changed = tx.execute("session_update_versioned", {**session, "version_esperada": t.expected_version})
    if changed != 1:
        raise ConcurrencyError(t.key, t.expected_version, "updateSession")
    for earlier in t.earlier_message_ids:
        tx.execute("history_insert", {
            "telefono": t.key, "estado_anterior": t.state_from, "estado_nuevo": t.state_from, "origen": t.origin,
            "descripcion_historial": "Leído en el mismo turno que el mensaje siguiente", "reporte_id": None,
            "message_id": earlier,
        })
    tx.execute(
        "history_insert",
        {
            "telefono": t.key,
            "estado_anterior": t.state_from,
            "estado_nuevo": t.state_to,
            "origen": t.origin,
            "descripcion_historial": fit_units(fill(t.description), MAX_HISTORY_DESCRIPTION),
            "reporte_id": report_id,
            "message_id": t.message_id,
        },
    )
    for reply in t.replies:
        queue_reply(tx, reply.recipient, kind=reply.kind, content=fill(reply.content), now_ms=t.now_ms,
                    origin_message_id=t.message_id)
        tx.execute("chat_save_bot", {"telefono": t.key, "contenido": fill(reply.text), "message_id": t.message_id})
    for effect in t.effects:
        effect(tx, report_id)
    return report_id


async def commit_transition(db: Database, transition: TransitionWrite, lease: Lease | None) -> int | None:
    """One transaction: lease still ours, inbox row processed, versioned session, report, history, replies.

    Raises `LeaseLost`, `AlreadyProcessed` or `ConcurrencyError` (retryable) with nothing written.
    Answers the report id when a report was filed.
    """
    return await db.write(lambda tx: _apply(tx, transition, lease))


async def touch_last_activity(db: Database, key: str, now_ms: int) -> None:
    await db.write(lambda tx: tx.execute("session_touch", {"telefono": key, "ahora": now_ms}))


@dataclass(frozen=True, slots=True)
class TurnRead:
    """What the worker reads before a turn, in one read transaction."""

    rows: list[PendingMessage]
    session: SessionRow | None  # None: no session row yet (or no pending rows, so it was not read)
    ai_run_active: bool


def _inbox_rows(tx: Tx, key: str, limit: int) -> list[PendingMessage]:
    rows = tx.fetch_all("inbox_pending", {"telefono": key, "n": limit})
    return [PendingMessage(r["id"], r["message_id"], r["payload"] or "", int(r["wa_timestamp"]), r["intentos"],
                     int(r["recibido_en"] or 0)) for r in rows]


async def read_turn(db: Database, key: str, limit: int, *, check_ai_run: bool) -> TurnRead:
    """The conversation's pending rows (oldest first), its session and, if asked, whether an assistant
    response is running on it: one read instead of three."""

    def work(tx: Tx) -> TurnRead:
        rows = _inbox_rows(tx, key, limit)
        if not rows:
            return TurnRead(rows, None, False)
        active = check_ai_run and tx.fetch_one("has_active_ai_run", {"telefono": key}) is not None
        return TurnRead(rows, _session(tx.fetch_one("session_get", {"telefono": key})), active)

    return await db.read(work)


async def release_and_peek(db: Database, lease: Lease) -> bool:
    """Release the conversation's lease and answer whether messages are pending, in one write: a message
    registered while the lease was held found it busy and relies on this look (the lost-wakeup gap)."""
    params = {"clave": lease.key, "propietario": lease.owner, "token": lease.token}

    def work(tx: Tx) -> bool:
        tx.execute("lease_release", params)
        return bool(tx.fetch_all("inbox_pending", {"telefono": lease.key, "n": 1}))

    return await db.write(work)


async def pending_messages(db: Database, key: str, limit: int) -> list[PendingMessage]:
    rows = await db.read(lambda tx: tx.fetch_all("inbox_pending", {"telefono": key, "n": limit}))
    return [PendingMessage(r["id"], r["message_id"], r["payload"] or "", int(r["wa_timestamp"]), r["intentos"],
                     int(r["recibido_en"] or 0)) for r in rows]


async def record_inbox_failure(db: Database, inbox_id: int, error: str, max_attempts: int) -> str | None:
    """Count a failed attempt; answers the row's new state ('error' once attempts are exhausted)."""
    params = {"id": inbox_id, "error": fit_units(error, MAX_ERROR), "max_intentos": max_attempts}
    row = await db.write(lambda tx: tx.fetch_one("inbox_record_failure", params))
    return row["estado"] if row else None


async def stalled_conversations(db: Database, now_ms: int, received_before_ms: int, limit: int) -> list[str]:
    """Conversation keys with pending inbox rows and no live lease (their drain died or ran out of time)."""
    params = {"ahora": now_ms, "recibido_antes": received_before_ms, "n": limit}
    return [r["telefono"] for r in await db.read(lambda tx: tx.fetch_all("inbox_stalled_keys", params))]


async def idle_sessions(db: Database, idle_before_ms: int, limit: int) -> list[str]:
    params = {"limite": idle_before_ms, "n": limit}
    return [r["telefono"] for r in await db.read(lambda tx: tx.fetch_all("sessions_idle", params))]


def _equipment(row: Mapping[str, Any]) -> EquipmentRow:
    return EquipmentRow(row["id"], row["codigo_sap"], row["tipo_equipo"], row["descripcion"], row["ubicacion"])


async def equipment_at(db: Database, place: str, limit: int = 9) -> list[EquipmentRow]:
    """Active catalog equipment whose location contains `place` ("centro" finds "Tienda Centro")."""
    words = place.strip()
    for prefix in ("tienda ", "sucursal ", "store ", "local "):
        if words.lower().startswith(prefix):
            words = words[len(prefix):]
    words = words.replace("[", "").replace("%", "").replace("_", " ").strip()
    if not words:
        return []
    params = {"patron": f"%{words[:99]}%", "n": limit}
    return [_equipment(r) for r in await db.read(lambda tx: tx.fetch_all("equipos_by_location", params))]


async def recent_chat(db: Database, key: str, limit: int = 20) -> list[tuple[str, str]]:
    """(origin, text) of the conversation's last messages, oldest first."""
    rows = await db.read(lambda tx: tx.fetch_all("chat_recent", {"telefono": key, "n": limit}))
    return [(r["origen"], r["contenido"]) for r in reversed(rows)]


async def find_equipment(db: Database, sap_code: str) -> EquipmentRow | None:
    row = await db.read(lambda tx: tx.fetch_one("equipo_by_sap", {"codigo": sap_code}))
    return None if row is None else _equipment(row)
