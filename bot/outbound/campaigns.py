"""Broadcast campaigns: one message queued to many recipients, once per (campaign, recipient).

The unique index `UX_ColaEnvios_Campana` makes the insert idempotent in the database itself, so the
same call repeated, retried or run on several instances at once queues each recipient once.
Bad input gets a 400 naming the problem and queues nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core.storage.database import Database
from core.storage.outbox import count_campaign, enqueue_campaign
from core.whatsapp.outgoing import MAX_TEXT_BODY, OutgoingMessage, is_bsuid

CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PHONE = re.compile(r"^\+?([0-9]{8,15})$")
MAX_RECIPIENTS = 10_000  # one request, one transaction; bigger lists go in several calls


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)


def _bad(message: str, **extra: Any) -> ApiResponse:
    return ApiResponse(400, {"error": message, **extra})


def parse_recipient(raw: object) -> str | None:
    """A WhatsApp id as `ColaEnvios` stores it: digits only (no +), or a BSUID."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if is_bsuid(text):
        return text
    match = PHONE.match(text)
    return match.group(1) if match else None


def _parse(campaign: str, raw_body: bytes) -> tuple[str, list[str]] | ApiResponse:
    if not CAMPAIGN_NAME.match(campaign or ""):
        return _bad("nombre de campaña inválido: 1 a 100 caracteres A-Z a-z 0-9 _ . - (empezando por letra o dígito)")
    try:
        data = json.loads(raw_body or b"")
    except (ValueError, UnicodeDecodeError):
        return _bad("el cuerpo debe ser JSON")
    if not isinstance(data, dict):
        return _bad('el cuerpo debe ser un objeto {"mensaje": "...", "destinatarios": [...]}')
    unknown = sorted(set(data) - {"mensaje", "destinatarios"})
    if unknown:
        return _bad(f"campos desconocidos: {', '.join(unknown)}")
    message = data.get("mensaje")
    if not isinstance(message, str) or not message.strip():
        return _bad("'mensaje' es obligatorio y debe ser texto no vacío")
    if len(message) > MAX_TEXT_BODY:
        return _bad(f"'mensaje' excede {MAX_TEXT_BODY} caracteres")
    recipients = data.get("destinatarios")
    if not isinstance(recipients, list) or not recipients:
        return _bad("'destinatarios' es obligatorio y debe ser una lista no vacía")
    if len(recipients) > MAX_RECIPIENTS:
        return _bad(f"'destinatarios' admite como máximo {MAX_RECIPIENTS} por llamada")
    parsed = [parse_recipient(r) for r in recipients]
    invalid = [r for r, p in zip(recipients, parsed, strict=True) if p is None]
    if invalid:
        return _bad("destinatarios inválidos: usa el número con código de país (8 a 15 dígitos) o el BSUID",
                    invalidos=invalid[:20], total_invalidos=len(invalid))
    unique = list(dict.fromkeys(p for p in parsed if p is not None))  # a list naming someone twice sends once
    return message, unique


async def queue_campaign(db: Database, campaign: str, raw_body: bytes, *, now_ms: int) -> ApiResponse:
    parsed = _parse(campaign, raw_body)
    if isinstance(parsed, ApiResponse):
        return parsed
    text, recipients = parsed
    message = OutgoingMessage(body=text)
    result = await enqueue_campaign(
        db, campaign, recipients, kind=message.kind, content=message.to_json(), now_ms=now_ms
    )
    return ApiResponse(
        202,
        {"campana": campaign, "destinatarios": len(recipients), "encolados": result.queued,
         "ya_encolados": result.existing},
    )


async def campaign_status(db: Database, campaign: str) -> ApiResponse:
    if not CAMPAIGN_NAME.match(campaign or ""):
        return _bad("nombre de campaña inválido")
    counts = await count_campaign(db, campaign)
    if counts.total == 0:
        return ApiResponse(404, {"error": f"campaña desconocida: {campaign}"})
    return ApiResponse(200, {"campana": campaign, "estados": counts.as_dict()})
