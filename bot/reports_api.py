"""Maintenance's HTTP API over reports: read one with its history, change its status (the reporter is
told), and give a handed-over conversation back to the bot. Bad input gets a 400 naming the problem and
changes nothing; an unknown report or conversation gets 404."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot import texts
from bot.outbound.campaigns import ApiResponse, parse_recipient
from bot.outbound.dispatcher import Dispatcher
from core.clock import Clock
from core.notify import NotifyConfig
from core.storage.database import Database
from core.storage.reports import (
    REPORT_STATUSES,
    change_report_status,
    get_report_detail,
    normalize_report_number,
    release_handover,
)
from core.storage.text import utf16_units
from core.telemetry import mask_phone

log = logging.getLogger(__name__)
MAX_NOTE_UNITS = 500  # HistorialReportes.Nota: a longer note is refused, not silently cut
MAX_BODY_BYTES = 16 * 1024


def _bad(message: str) -> ApiResponse:
    return ApiResponse(400, {"error": message})


def _not_found(number: str) -> ApiResponse:
    return ApiResponse(404, {"error": f"no existe el reporte {number}"})


def _number(raw: str) -> str | ApiResponse:
    number = normalize_report_number(raw)
    return number if number is not None else _bad(f"número de reporte inválido: {raw[:40]!r} (ejemplo: RPT-000123)")


def _status_request(raw_body: bytes) -> tuple[str, str | None] | ApiResponse:
    if len(raw_body) > MAX_BODY_BYTES:
        return _bad(f"el cuerpo excede {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw_body or b"")
    except (ValueError, UnicodeDecodeError):
        return _bad('el cuerpo debe ser JSON: {"estado": "...", "nota": "..."}')
    if not isinstance(data, dict):
        return _bad('el cuerpo debe ser un objeto {"estado": "...", "nota": "..."}')
    unknown = sorted(set(data) - {"estado", "nota"})
    if unknown:
        return _bad(f"campos desconocidos: {', '.join(unknown)}")
    status = data.get("estado")
    if not isinstance(status, str) or status.strip().lower().replace(" ", "_") not in REPORT_STATUSES:
        return _bad(f"'estado' debe ser uno de: {', '.join(REPORT_STATUSES)}")
    note = data.get("nota")
    if note is not None and not isinstance(note, str):
        return _bad("'nota' debe ser texto")
    if note is not None and utf16_units(note.strip()) > MAX_NOTE_UNITS:
        return _bad(f"'nota' excede {MAX_NOTE_UNITS} caracteres")
    return status.strip().lower().replace(" ", "_"), (note.strip() or None) if note else None


class ReportsApi:
    def __init__(self, db: Database, outbox: Dispatcher, notify: NotifyConfig, clock: Clock) -> None:
        self.db = db
        self.outbox = outbox  # what a change queues for the reporter goes out at once
        self.notify = notify
        self.clock = clock

    async def detail(self, raw_number: str) -> ApiResponse:
        number = _number(raw_number)
        if isinstance(number, ApiResponse):
            return number
        detail = await get_report_detail(self.db, number)
        return ApiResponse(200, detail.as_dict()) if detail else _not_found(number)

    async def change_status(self, raw_number: str, raw_body: bytes) -> ApiResponse:
        number = _number(raw_number)
        if isinstance(number, ApiResponse):
            return number
        request = _status_request(raw_body)
        if isinstance(request, ApiResponse):
            return request
        status, note = request
        report = await change_report_status(self.db, number, status, note, origin="MANTENIMIENTO",
                                            notice=texts.status_notice, notify=self.notify, now_ms=self.clock())
        if report is None:
            return _not_found(number)
        log.info("REPORTE_ESTADO %s -> %s (mantenimiento)", report.number, report.status)
        await self.outbox.send_now(report.phone)
        detail = await get_report_detail(self.db, number)
        body: dict[str, Any] = detail.as_dict() if detail else report.as_dict()
        return ApiResponse(200, body)

    async def release_conversation(self, raw_phone: str) -> ApiResponse:
        phone = parse_recipient(raw_phone)
        if phone is None:
            return _bad("teléfono inválido: usa el número con código de país (8 a 15 dígitos) o el BSUID")
        if not await release_handover(self.db, phone, self.clock(), released_text=texts.HANDOVER_RELEASED,
                                      notify=self.notify):
            return ApiResponse(404, {"error": "esa conversación no está en atención humana", "telefono": phone})
        log.info("ATENCION_HUMANA_LIBERADA %s", mask_phone(phone))
        await self.outbox.send_now(phone)
        return ApiResponse(200, {"telefono": phone, "liberada": True})
