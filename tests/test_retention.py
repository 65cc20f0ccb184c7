"""Retention deletes old settled rows in bounded batches and never a pending inbox row or an open send."""

from __future__ import annotations

import sqlite3
from contextlib import closing
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


WEEK_OLD_MS = int((NOW - timedelta(days=8)).timestamp() * 1000)


def seed(db_path: Path, old_ledger: int) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        rows = [(f"wamid.OLD{i}", "text", "procesado", OLD_MS) for i in range(old_ledger // 2)]
        rows += [("wamid.OLDPEND", "text", "pendiente", OLD_MS)]  # in the middle of the walk: stepped over
        rows += [(f"wamid.OLD{i}", "text", "procesado", OLD_MS) for i in range(old_ledger // 2, old_ledger)]
        rows += [("wamid.OLDERR", "text", "error", OLD_MS),
                 ("wamid.S1:read", "status", "procesado", WEEK_OLD_MS),  # a status past its 7 days
                 ("wamid.M8", "text", "procesado", WEEK_OLD_MS),  # a message 8 days old: kept 30
                 ("wamid.NEW1", "text", "procesado", NEW_MS), ("wamid.S2:sent", "status", "procesado", NEW_MS)]
        conn.executemany("INSERT INTO MensajesProcesados (MessageId, Telefono, Tipo, Payload, Estado, Reintentos,"
                         " WaTimestamp, RecibidoEn) VALUES (?, '5215500003000', ?, '{}', ?, 0, 1, ?)", rows)
        conn.executemany("INSERT INTO EjecucionesIA (Id, Telefono, Estado, CreadoEn, ActualizadoEn)"
                         " VALUES (?, '5215500003000', ?, ?, ?)", [
                             ("resp_old_done", "completed", OLD_MS, OLD_MS), ("resp_old_live", "in_progress", OLD_MS,
                                                                               OLD_MS),
                             ("resp_new_done", "completed", NEW_MS, NEW_MS)])
        conn.executemany("INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token, AdquiridoEn)"
                         " VALUES (?, ?, ?, ?, ?)", [
                             ("5215500003001", None, 0, 5, WEEK_OLD_MS), ("5215500003002", "vivo", NEW_MS, 9,
                                                                          WEEK_OLD_MS),
                             ("5215500003003", None, 0, 2, NEW_MS)])
        conn.executemany("INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, CreadoEn) VALUES (?, '{}', ?, ?)", [
            ("5215500003000", "enviado", OLD_TEXT), ("5215500003000", "incierto", OLD_TEXT),
            ("5215500003000", "pendiente", OLD_TEXT), ("5215500003000", "enviado",
                                                       NOW.strftime("%Y-%m-%d %H:%M:%S"))])
        conn.executemany("INSERT INTO MensajesChat (Telefono, Origen, Contenido, CreadoEn) VALUES (?, 'USUARIO', ?, ?)",
                         [("5215500003000", "viejo", OLD_TEXT), ("5215500003000", "nuevo",
                                                                 NOW.strftime("%Y-%m-%d %H:%M:%S"))])


def left(db_path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        return conn.execute(sql).fetchall()


async def test_old_settled_rows_go_pending_and_recent_ones_stay(db_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(retention, "PURGE_BATCH_ROWS", 7)  # several batches, the last one partial
    seed(db_path, old_ledger=20)
    rt = build_runtime(load_settings(base_env(db_path)))
    before = retention_purged_total.labels(tabla="MensajesProcesados")._value.get()
    try:
        purged = await run_retention(rt.db, rt.settings)
        again = await run_retention(rt.db, rt.settings)
    finally:
        await rt.aclose()
    assert purged == {"EstadosEntrega": 1, "MensajesProcesados": 21, "ColaEnvios": 2, "MensajesChat": 1,
                      "HistorialSesiones": 0, "EjecucionesIA": 1, "BloqueosConversacion": 1}
    assert set(again.values()) == {0}
    assert left(db_path, "SELECT MessageId FROM MensajesProcesados ORDER BY MessageId") == [
        ("wamid.M8",), ("wamid.NEW1",), ("wamid.OLDPEND",), ("wamid.S2:sent",)]
    assert left(db_path, "SELECT Id FROM EjecucionesIA ORDER BY Id") == [("resp_new_done",), ("resp_old_live",)]
    assert left(db_path, "SELECT Clave FROM BloqueosConversacion ORDER BY Clave") == [
        ("5215500003002",), ("5215500003003",)]  # a held lease stays, however old its acquisition
    assert left(db_path, "SELECT Estado FROM ColaEnvios ORDER BY Id") == [("pendiente",), ("enviado",)]
    assert left(db_path, "SELECT Contenido FROM MensajesChat") == [("nuevo",)]
    assert retention_purged_total.labels(tabla="MensajesProcesados")._value.get() - before == 21


async def test_zero_days_keeps_everything(db_path: Path) -> None:
    seed(db_path, old_ledger=3)
    rt = build_runtime(load_settings(base_env(db_path, RETENTION_LEDGER_DAYS="0", RETENTION_OUTBOX_DAYS="0",
                                              RETENTION_HISTORY_DAYS="0", RETENTION_STATUS_DAYS="0",
                                              RETENTION_AI_RUNS_DAYS="0", RETENTION_LEASE_DAYS="0")))
    try:
        assert set((await run_retention(rt.db, rt.settings)).values()) == {0}
    finally:
        await rt.aclose()


def test_the_timer_is_registered(app_triggers: dict) -> None:
    timer = app_triggers["retencion"]
    assert timer.type == "timerTrigger" and len(timer.schedule.split()) == 6 and not timer.run_on_startup


async def test_the_walk_stops_at_recent_rows_and_when_the_budget_is_spent(sqlite_db) -> None:
    """Id order is arrival order: the first window that holds a recent row ends the walk (caught up),
    whatever follows; a spent budget ends it too and says so, and the next call goes on."""
    from core.storage.retention import Purge, purge

    rule = Purge("purge_chat", "retention_window_chat")

    def fill(tx) -> None:  # 25 old rows (made old below), then 30 recent ones
        for body in ["viejo"] * 25 + ["nuevo"] * 30:
            tx.execute("chat_save_bot", {"telefono": "5215500003000", "contenido": body, "message_id": None})

    await sqlite_db.write(fill)
    with closing(sqlite3.connect(sqlite_db.path)) as conn, conn:
        conn.execute("UPDATE MensajesChat SET CreadoEn = ? WHERE Contenido = 'viejo'", (OLD_TEXT,))
    retention.PURGE_BATCH_ROWS, saved = 10, retention.PURGE_BATCH_ROWS
    try:
        ticks = iter([0.0, 0.0, 0.0, 99.0])  # room for two windows, then the budget is gone
        stopped = await purge(sqlite_db, rule, older_than_days=365, budget_s=1.0, clock=lambda: next(ticks))
        assert (stopped.deleted, stopped.batches, stopped.caught_up) == (20, 2, False)
        done = await purge(sqlite_db, rule, older_than_days=365, budget_s=60.0)
    finally:
        retention.PURGE_BATCH_ROWS = saved
    # The second call walked from the start again: windows 1-2 are gone, window 3 (5 old + 5 recent) is
    # the last, and the 25 recent rows after it were never read.
    assert (done.deleted, done.batches, done.caught_up) == (5, 1, True)
    assert left(sqlite_db.path, "SELECT COUNT(*) FROM MensajesChat WHERE Contenido = 'viejo'") == [(0,)]
    assert left(sqlite_db.path, "SELECT COUNT(*) FROM MensajesChat") == [(30,)]
