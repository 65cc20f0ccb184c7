"""Retention purge rate on the SQLite twin, and what the webhook's registrations wait meanwhile.

Seeds a migrated SQLite file with old rows in every table retention covers (in the proportions of one
text message with one reply: a ledger message, three delivery statuses, a send, two chat lines, a
transition) plus recent rows it must keep, then runs the real retention pass (`bot.retention`) with
the real batch size. Meanwhile a loop registers new deliveries the way the webhook does (the urgent
writer) and times each one; the same loop runs once before the purge as the baseline.
Bounded: --messages rows per table kind, and the pass's own time budget.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import bench_env, fresh_database, machine, pct, print_table
from bot.messages import InboundMessage, MessageKind
from bot.retention import run_retention
from bot.runtime import build_runtime
from core.settings import load_settings
from core.storage import retention
from core.storage.inbox import register_message_tx

PHONE = "5215500009000"


def seed(path: Path, messages: int) -> dict[str, int]:
    now = datetime.now(UTC)
    old_ms = int((now - timedelta(days=400)).timestamp() * 1000)
    new_ms = int(now.timestamp() * 1000)
    old_text = (now - timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S")
    recent = max(1, messages // 10)
    with closing(sqlite3.connect(path)) as conn, conn:
        ledger = [(f"wamid.B{i}", "text", old_ms) for i in range(messages)]
        ledger += [(f"wamid.B{i}:{s}", "status", old_ms) for i in range(messages) for s in ("sent", "delivered",
                                                                                              "read")]
        ledger += [(f"wamid.N{i}", "text", new_ms) for i in range(recent)]
        conn.executemany("INSERT INTO MensajesProcesados (MessageId, Telefono, Tipo, Payload, Estado, WaTimestamp,"
                         " RecibidoEn) VALUES (?, '" + PHONE + "', ?, '{}', 'procesado', 1, ?)", ledger)
        conn.executemany("INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, CreadoEn) VALUES (?, '{}', "
                         "'enviado', ?)", [(PHONE, old_text)] * messages)
        conn.executemany("INSERT INTO MensajesChat (Telefono, Origen, Contenido, CreadoEn) VALUES (?, 'BOT', 'x', ?)",
                         [(PHONE, old_text)] * (2 * messages))
        conn.executemany("INSERT INTO HistorialSesiones (Telefono, EstadoAnterior, EstadoNuevo, Origen, CreadoEn)"
                         " VALUES (?, 'INICIO', 'FINALIZADO', 'BOT', ?)", [(PHONE, old_text)] * messages)
    return {"EstadosEntrega": 3 * messages, "MensajesProcesados": messages, "ColaEnvios": messages,
            "MensajesChat": 2 * messages, "HistorialSesiones": messages}


async def registrations(rt, stop: asyncio.Event, prefix: str, pause_s: float = 0.005) -> list[float]:
    """Register new deliveries on the webhook's urgent writer until `stop`; answers each one's ms."""
    waits, i = [], 0
    while not stop.is_set():
        msg = InboundMessage(wamid=f"wamid.{prefix}{i}", conversation_key=PHONE, kind=MessageKind.TEXT,
                             timestamp=1, phone=PHONE, text="hola")
        started = time.perf_counter()
        await rt.db.write_urgent(lambda tx, m=msg: register_message_tx(tx, m, int(time.time() * 1000)))
        waits.append((time.perf_counter() - started) * 1000)
        i += 1
        await asyncio.sleep(pause_s)
    return waits


async def run(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = fresh_database(Path(tmp) / "retention.sqlite3")
        seeded = seed(path, messages)
        rt = build_runtime(load_settings(bench_env(path)))
        try:
            stop = asyncio.Event()
            baseline = asyncio.create_task(registrations(rt, stop, "BASE"))
            await asyncio.sleep(2.0)
            stop.set()
            base = await baseline

            stop = asyncio.Event()
            during = asyncio.create_task(registrations(rt, stop, "DUR"))
            started = time.perf_counter()
            purged = await run_retention(rt.db, rt.settings, budget_s=600.0)
            elapsed = time.perf_counter() - started
            stop.set()
            waits = await during
        finally:
            await rt.aclose()
    total = sum(purged.values())
    print(f"SQLite retention purge, {machine()}, batch {retention.PURGE_BATCH_ROWS} rows, "
          f"{messages} messages' worth of old rows per kind")
    print_table("Purge", ["table", "seeded old rows", "deleted"],
                [[t, seeded.get(t, 0), purged.get(t, 0)] for t in purged])
    print_table("Rate", ["rows deleted", "seconds", "rows/s"], [[total, f"{elapsed:.1f}", f"{total / elapsed:,.0f}"]])
    print_table("Webhook registration (urgent writer) while purging", ["phase", "registrations", "p50 ms", "p99 ms",
                                                                       "max ms"],
                [["before the purge", len(base), f"{pct(base, 50):.2f}", f"{pct(base, 99):.2f}", f"{max(base):.2f}"],
                 ["during the purge", len(waits), f"{pct(waits, 50):.2f}", f"{pct(waits, 99):.2f}",
                  f"{max(waits):.2f}"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    asyncio.run(run(args.messages))


if __name__ == "__main__":
    main()
