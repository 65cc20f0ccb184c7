"""Report lifecycle storage: status and history, notes, the reporter's and maintenance's views, duplicate
lookups, and the notices (reporter, maintenance) queued in the outbox in the same transaction as the change.

A notice goes as text when its recipient wrote to us within WhatsApp's 24-hour customer-service window,
else as the approved template named in `NotifyConfig` (Meta refuses free text outside the window). The
words are the caller's (a `Notice`, or a function from the report to one, for a notice about a report read
in the same transaction): storage queues them and composes none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.errors import ConcurrencyError
from core.notify import Notice, NotifyConfig
from core.storage.database import Database, Row, Tx
from core.storage.outbox import queue_reply
from core.storage.text import fit_units
from core.whatsapp.outgoing import AnyOutgoing, OutgoingMessage, TemplateMessage

REPORT_STATUSES: tuple[str, ...] = ("abierto", "asignado", "en_proceso", "resuelto", "cancelado")
OPEN_STATUSES: frozenset[str] = frozenset({"abierto", "asignado", "en_proceso"})
ORIGINS: tuple[str, ...] = ("MANTENIMIENTO", "USUARIO", "SISTEMA")
HANDOVER_STATE = "ATENCION_HUMANA"  # the session state in which the bot stays quiet
MAX_NOTE = 500  # Reportes.UltimaNota and HistorialReportes.Nota, in UTF-16 units
MAX_PLATE = 20  # Reportes.Placa
_NUMBER = re.compile(r"^\s*(?:RPT)?[\s\-_#]*0*(\d{1,9})\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ReportView:
    id: int
    number: str
    phone: str
    kind: str
    equipment_id: int | None
    description: str
    status: str
    created: str  # "YYYY-MM-DD HH:MM" UTC, the same text from both dialects
    updated: str | None
    last_note: str | None
    data: Mapping[str, Any]
    attachments: int  # evidence rows; no evidence table exists yet, so 0
    equipment_code: str | None = None  # catalog SAP code, when the report names catalog equipment
    equipment_description: str | None = None
    location: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def equipment_text(self) -> str:
        """How people name the equipment: catalog description and code, or the vehicle's plate."""
        if self.equipment_description:
            return f"{self.equipment_description} ({self.equipment_code})" if self.equipment_code else \
                self.equipment_description
        plate = self.data.get("placa")
        return f"Vehículo {plate}" if plate else self.kind.capitalize()

    def as_dict(self) -> dict[str, Any]:
        return {
            "numero": self.number, "telefono": self.phone, "tipo_equipo": self.kind, "equipo_id": self.equipment_id,
            "equipo": self.equipment_text, "ubicacion": self.location, "descripcion": self.description,
            "estado": self.status, "creado": self.created, "actualizado": self.updated,
            "ultima_nota": self.last_note, "datos": dict(self.data), "evidencias": self.attachments,
        }


# The words of a notice about a report, from the report as the notice's transaction reads it.
NoticeFor = Callable[[ReportView], Notice]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    previous: str | None
    status: str
    note: str | None
    origin: str
    message_id: str | None
    created: str  # "YYYY-MM-DD HH:MM" UTC

    def as_dict(self) -> dict[str, Any]:
        return {"estado_anterior": self.previous, "estado": self.status, "nota": self.note, "origen": self.origin,
                "creado": self.created}


@dataclass(frozen=True, slots=True)
class ReportDetail:
    report: ReportView
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict() | {"historial": [h.as_dict() for h in self.history]}


def normalize_report_number(text: str) -> str | None:
    """"RPT-000123", "rpt 123", "rpt-123", "123" -> "RPT-000123"; None when it is not a report number."""
    match = _NUMBER.match(text or "")
    if not match or int(match.group(1)) == 0:
        return None
    return f"RPT-{int(match.group(1)):06d}"


def normalize_plate(plate: str | None) -> str | None:
    """Plates compare upper case without spaces or dashes ("abc-12-34" is "ABC1234")."""
    if not plate:
        return None
    cleaned = re.sub(r"[\s\-.]+", "", plate).upper()
    return fit_units(cleaned, MAX_PLATE) or None


def _view(row: Row) -> ReportView:
    try:
        data = json.loads(row["Datos"] or "{}")
    except ValueError:
        data = {}
    return ReportView(
        id=int(row["Id"]),
        number=str(row["Numero"]),
        phone=str(row["Telefono"]),
        kind=str(row["TipoEquipo"]),
        equipment_id=None if row["EquipoId"] is None else int(row["EquipoId"]),
        description=str(row["Descripcion"]),
        status=str(row["Estado"]),
        created=str(row["Creado"]),
        updated=None if row["Actualizado"] is None else str(row["Actualizado"]),
        last_note=row["UltimaNota"],
        data=data if isinstance(data, dict) else {},
        attachments=0,
        equipment_code=row["CodigoSAP"],
        equipment_description=row["EquipoDescripcion"],
        location=row["Ubicacion"],
    )


def _check_status(status: str) -> None:
    if status not in REPORT_STATUSES:
        raise ValueError(f"estado de reporte desconocido: {status!r} (válidos: {', '.join(REPORT_STATUSES)})")


def _check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise ValueError(f"origen desconocido: {origin!r} (válidos: {', '.join(ORIGINS)})")


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    return fit_units(note, MAX_NOTE) if note else None


# -- reads -------------------------------------------------------------------------------------------

def report_by_id_tx(tx: Tx, report_id: int) -> ReportView | None:
    row = tx.fetch_one("report_by_id", {"reporte_id": report_id})
    return None if row is None else _view(row)


def _by_number(tx: Tx, number: str) -> ReportView | None:
    normalized = normalize_report_number(number)
    if normalized is None:
        return None
    row = tx.fetch_one("report_by_number", {"numero": normalized})
    return None if row is None else _view(row)


def _history(tx: Tx, report_id: int) -> tuple[HistoryEntry, ...]:
    return tuple(
        HistoryEntry(r["EstadoAnterior"], str(r["EstadoNuevo"]), r["Nota"], str(r["Origen"]), r["MessageId"],
                     str(r["Creado"]))
        for r in tx.fetch_all("report_history", {"reporte_id": report_id})
    )


def _detail(tx: Tx, number: str) -> ReportDetail | None:
    report = _by_number(tx, number)
    return None if report is None else ReportDetail(report, _history(tx, report.id))


async def get_report_detail(db: Database, number: str) -> ReportDetail | None:
    """The report and its history, oldest change first, read together."""
    return await db.read(lambda tx: _detail(tx, number))


async def reports_for_phone(db: Database, phone: str, limit: int = 5) -> list[ReportView]:
    """This person's reports, newest first."""
    rows = await db.read(lambda tx: tx.fetch_all("reports_for_phone", {"telefono": phone, "n": max(limit, 1)}))
    return [_view(r) for r in rows]


def open_report_for_tx(tx: Tx, *, equipment_id: int | None, plate: str | None) -> ReportView | None:
    if equipment_id is not None:
        row = tx.fetch_one("report_open_for_equipment", {"equipo_id": equipment_id})
    elif (normalized := normalize_plate(plate)) is not None:
        row = tx.fetch_one("report_open_for_plate", {"placa": normalized})
    else:
        return None
    return None if row is None else _view(row)


async def open_report_for(db: Database, *, equipment_id: int | None, plate: str | None) -> ReportView | None:
    """The newest open report (abierto, asignado, en_proceso) of this refrigerator or this vehicle plate."""
    return await db.read(lambda tx: open_report_for_tx(tx, equipment_id=equipment_id, plate=plate))


# -- writes inside the caller's transaction ---------------------------------------------------------

def _history_row(tx: Tx, *, report_id: int, previous: str | None, status: str, note: str | None, origin: str,
                 message_id: str | None) -> None:
    tx.execute("report_history_insert", {
        "reporte_id": report_id, "estado_reporte_anterior": previous, "estado_reporte": status, "nota": note,
        "origen_reporte": origin, "message_id": message_id,
    })


def record_report_created(tx: Tx, *, report_id: int, plate: str | None, message_id: str | None, now_ms: int) -> None:
    """History row #1 ('abierto', from the worker) and the vehicle's plate, in the filing transaction."""
    normalized = normalize_plate(plate)
    if normalized is not None:
        tx.execute("report_set_plate", {"placa": normalized, "reporte_id": report_id})
    _history_row(tx, report_id=report_id, previous=None, status="abierto", note=None, origin="USUARIO",
                 message_id=message_id)


def _current_status(tx: Tx, report_id: int) -> str:
    row = tx.fetch_one("report_status_for_update", {"reporte_id": report_id})
    if row is None:
        raise LookupError(f"reporte {report_id} no existe")
    return str(row["Estado"])


def add_report_note(tx: Tx, *, report_id: int, note: str, origin: str, message_id: str | None, now_ms: int) -> None:
    """Information added after filing ("también gotea"): a history row that keeps the status, and the
    report's last note. An empty note changes nothing."""
    _check_origin(origin)
    text = _note(note)
    if text is None:
        return
    status = _current_status(tx, report_id)
    tx.execute("report_set_note", {"nota": text, "reporte_id": report_id})
    _history_row(tx, report_id=report_id, previous=status, status=status, note=text, origin=origin,
                 message_id=message_id)


def set_report_status_tx(tx: Tx, *, report_id: int, status: str, note: str | None, origin: str,
                         message_id: str | None, now_ms: int) -> str:
    """Move the report to `status` with a history row; answers the previous status. Raises ValueError on an
    unknown status or origin, LookupError on an unknown report."""
    _check_status(status)
    _check_origin(origin)
    previous = _current_status(tx, report_id)
    text = _note(note)
    tx.execute("report_set_status", {"estado_reporte": status, "nota": text, "reporte_id": report_id})
    _history_row(tx, report_id=report_id, previous=previous, status=status, note=text, origin=origin,
                 message_id=message_id)
    return previous


# -- notices ----------------------------------------------------------------------------------------

def _parse_utc(text: str) -> int | None:
    try:
        return int(datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        return None


def in_service_window(tx: Tx, phone: str, *, now_ms: int, window_ms: int) -> bool:
    """Whether `phone` wrote to us within the last `window_ms` (so free-form text is delivered)."""
    row = tx.fetch_one("last_user_message_at", {"telefono": phone})
    last = _parse_utc(str(row["Creado"])) if row and row["Creado"] else None
    return last is not None and now_ms - last < window_ms


def _queue(tx: Tx, recipient: str, message: AnyOutgoing, *, chat_text: str, now_ms: int) -> None:
    queue_reply(tx, recipient, kind=message.kind, content=message.to_json(), now_ms=now_ms, origin_message_id=None)
    tx.execute("chat_save_bot", {"telefono": recipient, "contenido": chat_text, "message_id": None})


def _notice(tx: Tx, recipient: str, notice: Notice, *, template: str, notify: NotifyConfig, now_ms: int) -> str:
    """Queue the notice's text inside the window, else the template; answers the kind queued."""
    if in_service_window(tx, recipient, now_ms=now_ms, window_ms=notify.window_ms):
        _queue(tx, recipient, OutgoingMessage(body=notice.text), chat_text=notice.text, now_ms=now_ms)
        return "text"
    message = TemplateMessage(template, notify.language, notice.parameters)
    _queue(tx, recipient, message, chat_text=f"[plantilla {template}] " + " | ".join(message.parameters),
           now_ms=now_ms)
    return "template"


def queue_status_notice(tx: Tx, report: ReportView, notice: Notice, *, notify: NotifyConfig, now_ms: int) -> str:
    """Tell the reporter the report's current status and last note (`notice`, worded from `report`)."""
    return _notice(tx, report.phone, notice, template=notify.template_status_change, notify=notify, now_ms=now_ms)


def queue_new_report_notices(tx: Tx, *, report_id: int, notice: NoticeFor, notify: NotifyConfig,
                             now_ms: int) -> int:
    """One notice per maintenance number for a report just filed (same transaction); answers how many."""
    if not notify.numbers:
        return 0
    report = report_by_id_tx(tx, report_id)
    if report is None:
        raise LookupError(f"reporte {report_id} no existe")
    worded = notice(report)
    for number in notify.numbers:
        _notice(tx, number, worded, template=notify.template_new_report, notify=notify, now_ms=now_ms)
    return len(notify.numbers)


def queue_handover_notices(tx: Tx, *, notice: Notice, notify: NotifyConfig, now_ms: int) -> int:
    """A worker asked for a person: every maintenance number gets `notice` (the conversation so far)."""
    for number in notify.numbers:
        _notice(tx, number, notice, template=notify.template_handover, notify=notify, now_ms=now_ms)
    return len(notify.numbers)


# -- maintenance's actions --------------------------------------------------------------------------

def _change(tx: Tx, number: str, status: str, note: str | None, origin: str, notice: NoticeFor,
            notify: NotifyConfig, now_ms: int) -> ReportView | None:
    report = _by_number(tx, number)
    if report is None:
        return None
    if status == report.status and _note(note) is None:
        return report  # nothing new to record or to tell
    set_report_status_tx(tx, report_id=report.id, status=status, note=note, origin=origin, message_id=None,
                         now_ms=now_ms)
    updated = report_by_id_tx(tx, report.id)
    assert updated is not None  # read in the transaction that just changed it
    queue_status_notice(tx, updated, notice(updated), notify=notify, now_ms=now_ms)
    return updated


async def change_report_status(db: Database, number: str, status: str, note: str | None, *, origin: str,
                               notice: NoticeFor, notify: NotifyConfig, now_ms: int) -> ReportView | None:
    """Maintenance's path, in one transaction: status, history row, and the reporter's notice in the outbox
    (`notice` words it from the report as changed).

    None for an unknown number; ValueError (nothing written) for an unknown status or origin. The same
    status again without a note changes nothing and tells no one.
    """
    _check_status(status)
    _check_origin(origin)
    return await db.write(lambda tx: _change(tx, number, status, note, origin, notice, notify, now_ms))


def _release(tx: Tx, phone: str, text: str, notify: NotifyConfig, now_ms: int) -> bool:
    session = tx.fetch_one("session_get", {"telefono": phone})
    if session is None or session["estado"] != HANDOVER_STATE:
        return False
    # A draft the handover interrupted comes back as it was (the flows park it under "borrador").
    data = json.loads(session["datos"] or "{}")
    draft = data.get("borrador") if isinstance(data, dict) else None
    state, kept = "INICIO", {}
    if isinstance(draft, dict) and isinstance(draft.get("estado"), str) and isinstance(draft.get("datos"), dict):
        state, kept = draft["estado"], draft["datos"]
    changed = tx.execute("session_update_versioned", {
        "telefono": phone, "estado_sesion": state, "datos": json.dumps(kept, ensure_ascii=False, sort_keys=True),
        "equipo_id": None, "ahora": now_ms, "version_esperada": int(session["version"]),
    })
    if changed != 1:
        raise ConcurrencyError(phone, int(session["version"]), "releaseHandover")
    tx.execute("history_insert", {
        "telefono": phone, "estado_anterior": HANDOVER_STATE, "estado_nuevo": state, "origen": "SISTEMA",
        "descripcion_historial": "Mantenimiento liberó la conversación", "reporte_id": None, "message_id": None,
    })
    if in_service_window(tx, phone, now_ms=now_ms, window_ms=notify.window_ms):
        _queue(tx, phone, OutgoingMessage(body=text), chat_text=text, now_ms=now_ms)
    return True


async def release_handover(db: Database, phone: str, now_ms: int, *, released_text: str,
                           notify: NotifyConfig | None = None, attempts: int = 5) -> bool:
    """Give a conversation in ATENCION_HUMANA back to the bot (INICIO, versioned like every session
    change); answers whether anything changed. Inside the window the worker is told the bot is back
    (`released_text`)."""
    config = notify or NotifyConfig()
    for attempt in range(attempts):
        try:
            return await db.write(lambda tx: _release(tx, phone, released_text, config, now_ms))
        except ConcurrencyError:
            if attempt == attempts - 1:
                raise
    return False
