"""Retention deletes old settled rows in bounded batches and never a pending inbox row or an open send."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.retention import run_retention
from bot.runtime import build_runtime
from core.metrics import retention_purged_total
from core.settings import load_settings
from core.storage import retention
from tests.conftest import base_env

NOW = datetime.now(UTC)
OLD_MS = int((NOW - timedelta(days=40)).timestamp() * 1000)
NEW_MS = int((NOW - timedelta(days=1)).timestamp() * 1000)
OLD_TEXT = (NOW - timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S")


def seed(db_path: Path, old_ledger: int) -> None:
    with sqlite3.connect(db_path) as conn:
        rows = [(f"wamid.OLD{i}", "procesado", OLD_MS) for i in range(old_ledger)]
        rows += [("wamid.OLDPEND", "pendiente", OLD_MS), ("wamid.NEW1", "procesado", NEW_MS),
                 ("wamid.OLDERR", "error", OLD_MS)]
        conn.executemany("INSERT INTO MensajesProcesados (MessageId, Telefono, Tipo, Payload, Estado, Reintentos,"
                         " WaTimestamp, RecibidoEn) VALUES (?, '5215500003000', 'text', '{}', ?, 0, 1, ?)", rows)
        conn.executemany("INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, CreadoEn) VALUES (?, '{}', ?, ?)", [
            ("5215500003000", "enviado", OLD_TEXT), ("5215500003000", "incierto", OLD_TEXT),
            ("5215500003000", "pendiente", OLD_TEXT), ("5215500003000", "enviado",
                                                       NOW.strftime("%Y-%m-%d %H:%M:%S"))])
        conn.executemany("INSERT INTO MensajesChat (Telefono, Origen, Contenido, CreadoEn) VALUES (?, 'USUARIO', ?, ?)",
                         [("5215500003000", "viejo", OLD_TEXT), ("5215500003000", "nuevo",
                                                                 NOW.strftime("%Y-%m-%d %H:%M:%S"))])


def left(db_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


async def test_old_settled_rows_go_pending_and_recent_ones_stay(db_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 7)  # several batches, the last one partial
    seed(db_path, old_ledger=20)
    rt = build_runtime(load_settings(base_env(db_path)))
    before = retention_purged_total.labels(tabla="MensajesProcesados")._value.get()
    try:
        purged = await run_retention(rt)
        again = await run_retention(rt)
    finally:
        await rt.aclose()
    assert purged == {"MensajesProcesados": 21, "ColaEnvios": 2, "MensajesChat": 1, "HistorialSesiones": 0}
    assert set(again.values()) == {0}
    assert left(db_path, "SELECT MessageId FROM MensajesProcesados ORDER BY MessageId") == [
        ("wamid.NEW1",), ("wamid.OLDPEND",)]
    assert left(db_path, "SELECT Estado FROM ColaEnvios ORDER BY Id") == [("pendiente",), ("enviado",)]
    assert left(db_path, "SELECT Contenido FROM MensajesChat") == [("nuevo",)]
    assert retention_purged_total.labels(tabla="MensajesProcesados")._value.get() - before == 21


async def test_zero_days_keeps_everything(db_path: Path) -> None:
    seed(db_path, old_ledger=3)
    rt = build_runtime(load_settings(base_env(db_path, RETENTION_LEDGER_DAYS="0", RETENTION_OUTBOX_DAYS="0",
                                              RETENTION_HISTORY_DAYS="0")))
    try:
        assert set((await run_retention(rt)).values()) == {0}
    finally:
        await rt.aclose()


def test_the_timer_is_registered(app_triggers: dict) -> None:
    timer = app_triggers["retencion"]
    assert timer.type == "timerTrigger" and len(timer.schedule.split()) == 6 and not timer.run_on_startup
