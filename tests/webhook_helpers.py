"""Helpers shared by the webhook tests: signing, payload builders, reading the ledger back."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from bot.webhook.signature import sign_body
from tests.conftest import APP_SECRET


def signed_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign_body(secret, body),
            "Content-Length": str(len(body))}


def text_payload(wamid: str, phone: str | None, text: str, *, bsuid: str | None = None, ts: int = 1763880000,
                 name: str = "Ana López") -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {"name": name}}
    message: dict[str, Any] = {"id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}
    if phone:
        contact["wa_id"] = phone
        message["from"] = phone
    if bsuid:
        contact["user_id"] = bsuid
        message["from_user_id"] = bsuid
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                  "contacts": [contact], "messages": [message]},
    }]}]}


def encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def ledger(db_path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM MensajesProcesados ORDER BY Id")]


def outbound(db_path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM ColaEnvios ORDER BY Id")]


def add_sent_outbound(db_path: Path, wamid: str, delivery_state: str | None = None) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, WamidEnviado, EstadoEntrega, EnviadoEn) "
            "VALUES ('5215512345678', '{\"body\":\"hola\"}', 'enviado', ?, ?, 1)", (wamid, delivery_state))
