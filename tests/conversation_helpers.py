"""Helpers for conversation tests: build messages, put them in the inbox, read what happened."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

from bot.messages import InboundMessage, MessageKind

_seq = itertools.count(1)


def text_message(phone: str, body: str, ts: int, *, wamid: str | None = None, bsuid: str | None = None,
                 choice_id: str | None = None) -> InboundMessage:
    kind = MessageKind.BUTTON_REPLY if choice_id else MessageKind.TEXT
    return InboundMessage(
        wamid=wamid or f"wamid.TEST{next(_seq):08d}.{phone}.{ts}",
        conversation_key=phone,
        kind=kind, timestamp=ts, phone=None if bsuid else phone, bsuid=bsuid, text=body, choice_id=choice_id,
    )


def put_in_inbox(db_path: Path | str, msg: InboundMessage) -> None:
    """Register a delivery exactly as the webhook does (the real atomic statement), on its own connection."""
    from core.storage.inbox import register_message_tx
    from core.storage.sqlite import SqliteDatabase

    db = SqliteDatabase(str(db_path), pool_size=1)
    try:
        db.run_sync(lambda tx: register_message_tx(tx, msg, int(time.time() * 1000)))
    finally:
        db.close()


def query(db_path: Path | str, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def session_state(db_path: Path | str, key: str) -> tuple[str, int] | None:
    rows = query(db_path, "SELECT Estado, Version FROM SesionesChat WHERE Telefono = ?", key)
    return rows[0] if rows else None


def replies(db_path: Path | str, recipient: str) -> list[str]:
    import json

    rows = query(db_path, "SELECT Contenido FROM ColaEnvios WHERE Destinatario = ? ORDER BY Id", recipient)
    return [json.loads(r[0])["body"] for r in rows]
