"""Report lifecycle costs on SQLite with a realistic backlog: lookups the conversation makes on every
status question or duplicate check, and maintenance's status change (status + history + the reporter's
notice, window check included) in one transaction.

    .venv/bin/python -m bench.reports [--reports 20000] [--ops 500]

Prints one table: p50 / p99 latency (ms) and operations per second, one caller at a time.
Bounded: the backlog is built in a few transactions and each operation runs `--ops` times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import fresh_database, pct, print_table  # noqa: E402
from bot.texts import status_notice  # noqa: E402
from core.notify import NotifyConfig  # noqa: E402
from core.storage.conversations import format_report_number  # noqa: E402
from core.storage.database import Tx  # noqa: E402
from core.storage.reports import (  # noqa: E402
    REPORT_STATUSES,
    change_report_status,
    get_report_detail,
    open_report_for,
    record_report_created,
    reports_for_phone,
)
from core.storage.sqlite import SqliteDatabase  # noqa: E402

PHONES = 2_000
CHUNK = 2_000


def _fill(tx: Tx, start: int, count: int) -> None:
    for i in range(start, start + count):
        phone = f"52155{i % PHONES:08d}"
        plate = f"ABC{i:05d}" if i % 3 == 0 else None
        row = tx.fetch_one("report_insert", {
            "numero": f"TMP-{i}", "telefono": phone, "tipo_equipo": "VEHICULO" if plate else "REFRIGERADOR",
            "equipo_id": None if plate else 1 + i % 5, "descripcion": "No enfría", "datos": json.dumps(
                {"placa": plate} if plate else {}), "mensaje_origen": f"wamid.BENCH{i}"})
        assert row is not None
        report_id = int(row["id"])
        tx.execute("report_set_number", {"numero": format_report_number(report_id), "id": report_id})
        record_report_created(tx, report_id=report_id, plate=plate, message_id=f"wamid.BENCH{i}", now_ms=0)
        if i % PHONES == 0:  # some reporters wrote recently: their notices go as text
            tx.execute("chat_save_user", {"telefono": phone, "contenido": "hola", "message_id": f"wamid.U{i}"})


async def _measure(ops: int, fn: Callable[[int], Awaitable[object]]) -> tuple[float, float, float]:
    latencies = []
    started = time.perf_counter()
    for i in range(ops):
        t0 = time.perf_counter()
        await fn(i)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return pct(latencies, 50), pct(latencies, 99), ops / elapsed


async def run(reports: int, ops: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = fresh_database(Path(tmp) / "reports.sqlite3")
        db = SqliteDatabase(str(path), pool_size=4)
        try:
            t0 = time.perf_counter()
            for start in range(0, reports, CHUNK):
                await db.write(lambda tx, s=start: _fill(tx, s, min(CHUNK, reports - s)))  # type: ignore[misc]
            fill_s = time.perf_counter() - t0
            notify = NotifyConfig(numbers=("5215598760001",))
            now = int(time.time() * 1000)
            rows = []
            cases: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
                ("get_report_detail (by number, with history)",
                 lambda i: get_report_detail(db, format_report_number(1 + i * 37 % reports))),
                ("reports_for_phone (5 newest)", lambda i: reports_for_phone(db, f"52155{i % PHONES:08d}")),
                ("open_report_for (equipment id)", lambda i: open_report_for(db, equipment_id=1 + i % 5, plate=None)),
                ("open_report_for (plate)", lambda i: open_report_for(db, equipment_id=None,
                                                                     plate=f"abc-{3 * (i * 7 % (reports // 3)):05d}")),
                ("change_report_status (+ history + notice)", lambda i: change_report_status(
                    db, format_report_number(1 + i * 41 % reports), REPORT_STATUSES[1 + i % 4], f"nota {i}",
                    origin="MANTENIMIENTO", notice=status_notice, notify=notify, now_ms=now)),
            ]
            for name, fn in cases:
                p50, p99, rate = await _measure(ops, fn)
                rows.append([name, p50, p99, rate])
        finally:
            db.close()
    print_table(f"Report lifecycle on SQLite: {reports} reports, {PHONES} reporters, {ops} operations each, "
                f"one caller (backlog built in {fill_s:.1f} s)",
                ["operation", "p50 ms", "p99 ms", "ops/s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--ops", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(max(args.reports, 10), max(args.ops, 1)))


if __name__ == "__main__":
    main()
