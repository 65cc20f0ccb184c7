"""Maintenance's HTTP API over reports: read one with its history, change its status (the reporter is
told), and give a handed-over conversation back to the bot. Bad input gets a 400 naming the problem and
changes nothing; an unknown report or conversation gets 404."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.outbound.campaigns import ApiResponse, parse_recipient
from bot.outbound.dispatcher import dispatch_recipient
from bot.runtime import Runtime
from core.notify import NotifyConfig
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


async def _send_now(rt: Runtime, recipient: str) -> None:
    """Send what was just queued without waiting for the outbox timer; a failure is left to the timer."""
    if not rt.settings.outbox_eager_dispatch:
        return
    try:
        await dispatch_recipient(rt, recipient)
    except Exception as exc:
        log.warning("Envío inmediato falló (%s): %s", mask_phone(recipient), exc, exc_info=True)


async def report_detail(rt: Runtime, raw_number: str) -> ApiResponse:
    number = _number(raw_number)
    if isinstance(number, ApiResponse):
        return number
    detail = await get_report_detail(rt.db, number)
    return ApiResponse(200, detail.as_dict()) if detail else _not_found(number)


async def change_status(rt: Runtime, raw_number: str, raw_body: bytes, *, now_ms: int) -> ApiResponse:
    number = _number(raw_number)
    if isinstance(number, ApiResponse):
        return number
    request = _status_request(raw_body)
    if isinstance(request, ApiResponse):
        return request
    status, note = request
    report = await change_report_status(rt.db, number, status, note, origin="MANTENIMIENTO",
                                        notify=NotifyConfig.from_settings(rt.settings), now_ms=now_ms)
    if report is None:
        return _not_found(number)
    log.info("REPORTE_ESTADO %s -> %s (mantenimiento)", report.number, report.status)
    await _send_now(rt, report.phone)
    detail = await get_report_detail(rt.db, number)
    body: dict[str, Any] = detail.as_dict() if detail else report.as_dict()
    return ApiResponse(200, body)


async def release_conversation(rt: Runtime, raw_phone: str, *, now_ms: int) -> ApiResponse:
    phone = parse_recipient(raw_phone)
    if phone is None:
        return _bad("teléfono inválido: usa el número con código de país (8 a 15 dígitos) o el BSUID")
    notify = NotifyConfig.from_settings(rt.settings)
    if not await release_handover(rt.db, phone, now_ms, notify=notify):
        return ApiResponse(404, {"error": "esa conversación no está en atención humana", "telefono": phone})
    log.info("ATENCION_HUMANA_LIBERADA %s", mask_phone(phone))
    await _send_now(rt, phone)
    return ApiResponse(200, {"telefono": phone, "liberada": True})
