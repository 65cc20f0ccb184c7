"""What the operational frame costs: a log line with and without secret redaction, one event call
(log + counter), and one `/api/metrics` render against a database with a realistic backlog.

    .venv/bin/python -m bench.telemetry_overhead

Prints a table; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

N = 20_000


def per_call_us(fn, n: int = N) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.INFO)
    log = logging.getLogger("bench")
    rows: list[tuple[str, str]] = []

    plain = per_call_us(lambda i: log.info("mensaje %s procesado para %s", i, "*********5678"))
    rows.append(("log line, no redaction", f"{plain:.1f} µs"))

    from core import events
    from core.settings import load_settings
    from core.storage.migrate import migrate_sqlite
    from core.storage.sqlite import SqliteDatabase
    from core.telemetry import configure_telemetry

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        settings = load_settings({
            "WHATSAPP_APP_SECRET": "bench-app-secret-0001", "WHATSAPP_VERIFY_TOKEN": "bench-verify-0002",
            "WHATSAPP_ACCESS_TOKEN": "EAAbenchAccessToken000000000000003",
            "OPENAI_API_KEY": "sk-bench0000000000000004",
            "GEMINI_API_KEY": "AIzaBench00000000000000000000000005", "SQLITE_PATH": str(path),
        })
        os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        configure_telemetry(settings)
        root.handlers[:] = [logging.NullHandler()]
        root.setLevel(logging.INFO)  # configure_telemetry applies LOG_LEVEL; measure INFO lines either way
        redacted = per_call_us(lambda i: log.info("mensaje %s procesado para %s", i, "*********5678"))
        rows.append(("log line, redaction on (5 secrets + patterns)", f"{redacted:.1f} µs"))
        event = per_call_us(lambda i: events.lock_busy("5215512345678"))
        rows.append(("events.lock_busy (log + counter)", f"{event:.1f} µs"))

        db = SqliteDatabase(str(path), pool_size=2)
        migrate_sqlite(db)
        conn = sqlite3.connect(path)
        with conn:
            conn.executemany(
                "INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, ProximoIntento) VALUES (?, '{}', ?, ?)",
                [(f"52155{i:08d}", "error" if i % 50 == 0 else "pendiente" if i % 10 == 0 else "enviado", i)
                 for i in range(100_000)],
            )
            conn.executemany(
                "INSERT INTO MensajesProcesados (MessageId, Telefono, Tipo, Estado, RecibidoEn)"
                " VALUES (?, ?, 'text', ?, ?)",
                [(f"wamid.{i}", f"52155{i % 500:08d}", "procesado" if i % 100 else "pendiente", i)
                 for i in range(100_000)],
            )
        conn.close()
        from bot.metrics import render_metrics

        async def renders(n: int) -> float:
            start = time.perf_counter()
            for _ in range(n):
                await render_metrics(db)
            return (time.perf_counter() - start) / n * 1000

        ms = asyncio.run(renders(50))
        rows.append(("/api/metrics render, 100k outbox + 100k inbox rows (SQLite)", f"{ms:.2f} ms"))
        db.close()

    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"| {'what':<62} | {'cost':>10} |")
    print(f"|{'-' * 64}|{'-' * 12}|")
    for what, cost in rows:
        print(f"| {what:<62} | {cost:>10} |")


if __name__ == "__main__":
    main()
