"""Shared bench helpers: a fresh migrated SQLite file, signed Meta-shaped payloads, percentiles, tables."""

from __future__ import annotations

import hashlib
import hmac
import json
import platform
import socket
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from core.storage.migrate import migrate_sqlite, seed_sqlite
from core.storage.sqlite import SqliteDatabase
from local_host import fake_graph

BENCH_SECRET = "bench-app-secret"


def bench_env(db_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "WHATSAPP_APP_SECRET": BENCH_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "bench-verify",
        "WHATSAPP_ACCESS_TOKEN": "bench-token",
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "SQLITE_PATH": str(db_path),
        "AI_PROVIDER": "offline",
        "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9/v23.0",  # loopback only; benches that send start a fake
        "OUTBOX_RATE_PER_SECOND": "100000",
    }
    env.update(extra)
    return env


def fresh_database(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = SqliteDatabase(str(path), pool_size=1)
    migrate_sqlite(db)
    seed_sqlite(db)
    db.close()
    return path


def text_payload(phone: str, wamid: str, body: str, ts: int, bsuid: str | None = None) -> bytes:
    contact: dict[str, object] = {"profile": {"name": "Bench"}, "user_id": bsuid or f"MX.{abs(hash(phone)) % 10**16}"}
    message: dict[str, object] = {"id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": body}}
    if phone:
        contact["wa_id"] = phone
        message["from"] = phone
    message["from_user_id"] = contact["user_id"]
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [contact], "messages": [message]}}]}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(body: bytes, secret: str = BENCH_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite " \
           f"{__import__('sqlite3').sqlite_version}, {datetime.now(UTC):%Y-%m-%d}"


def print_table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(f"\nmachine: {machine()}")


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def start_fake_graph() -> tuple[subprocess.Popen[bytes], str]:
    """A fake Graph API in its own process on a free loopback port; answers (process, base URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return fake_graph.spawn(port), f"http://127.0.0.1:{port}/v23.0"
