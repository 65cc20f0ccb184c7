"""Helpers for conversation tests: build messages, put them in the inbox, read what happened."""

from __future__ import annotations

import itertools
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bot.messages import InboundMessage, MessageKind
from core.storage.database import Database


@dataclass(frozen=True)
class SqlServer:
    """The opt-in SQL Server database a multi-process test runs against instead of its SQLite file."""

    connection_string: str


# Where a test's instances keep their data: a SQLite file, or SQL Server.
Target = Path | str | SqlServer


def open_db(target: Target, pool_size: int = 1) -> Database:
    if isinstance(target, SqlServer):
        from core.storage.sqlserver import SqlServerDatabase

        return SqlServerDatabase(target.connection_string, pool_size=pool_size)
    from core.storage.sqlite import SqliteDatabase

    return SqliteDatabase(str(target), pool_size=pool_size)


def target_env(target: Target) -> dict[str, str]:
    """The settings that point an instance (a process built from the environment) at `target`."""
    return {"SQL_CONNECTION_STRING": target.connection_string} if isinstance(target, SqlServer) else {}

_seq = itertools.count(1)


def text_message(phone: str, body: str, ts: int, *, wamid: str | None = None, bsuid: str | None = None,
                 choice_id: str | None = None) -> InboundMessage:
    kind = MessageKind.BUTTON_REPLY if choice_id else MessageKind.TEXT
    return InboundMessage(
        wamid=wamid or f"wamid.TEST{next(_seq):08d}.{phone}.{ts}",
        conversation_key=phone,
        kind=kind, timestamp=ts, phone=None if bsuid else phone, bsuid=bsuid, text=body, choice_id=choice_id,
    )


def put_in_inbox(target: Target, msg: InboundMessage) -> None:
    """Register a delivery exactly as the webhook does (the real atomic statement), on its own connection."""
    from core.storage.inbox import register_message_tx

    db = open_db(target)
    try:
        db.run_sync(lambda tx: register_message_tx(tx, msg, int(time.time() * 1000)))
    finally:
        db.close()


def query(target: Target, sql: str, *params: object) -> list[tuple]:
    """Test-side SQL for assertions, in the subset both dialects read alike (`?` parameters)."""
    if isinstance(target, SqlServer):
        import pyodbc

        with closing(pyodbc.connect(target.connection_string, autocommit=True)) as conn:
            conn.execute("SET LOCK_TIMEOUT 30000")  # a blocked assertion fails instead of hanging the run
            cursor = conn.execute(sql, *params)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    with closing(sqlite3.connect(target, timeout=30)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def session_state(db_path: Path | str, key: str) -> tuple[str, int] | None:
    rows = query(db_path, "SELECT Estado, Version FROM SesionesChat WHERE Telefono = ?", key)
    return rows[0] if rows else None


def replies(db_path: Path | str, recipient: str) -> list[str]:
    import json

    rows = query(db_path, "SELECT Contenido FROM ColaEnvios WHERE Destinatario = ? ORDER BY Id", recipient)
    return [json.loads(r[0])["body"] for r in rows]
