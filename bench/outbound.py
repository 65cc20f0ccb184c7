"""Outbound throughput: claim + send + mark against the local fake Graph API, with 1, 2 and 4 dispatcher processes.

    .venv/bin/python -m bench.outbound [--messages 2000] [--dispatchers 1,2,4]

Prints one table: jobs/s and duplicates (must be 0) per dispatcher count, beside two ceilings measured
in the same run on the same disk: SQLite's bare commit rate (one-row write transactions) and the
claim + mark rate with no HTTP at all. For scale, pgqueuer publishes 6.4k-18k jobs/s on PostgreSQL.
Bounded: every dispatcher process has a time cap and the whole run takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from core.storage.migrate import migrate_sqlite  # noqa: E402
from core.storage.outbox import Outcome, claim_outbound, record_outcomes  # noqa: E402
from core.storage.sqlite import SqliteDatabase  # noqa: E402
from core.storage.states import OutboxState  # noqa: E402
from local_host import fake_graph  # noqa: E402
from tests.outbox_support import queue_texts, worker_env  # noqa: E402

WORKER_CAP_S = 60.0


def _fresh_db(path: Path, messages: int) -> None:
    db = SqliteDatabase(str(path), pool_size=1)
    migrate_sqlite(db)
    queue_texts(db, [(f"52155{i:08d}", f"m{i}") for i in range(messages)])
    db.close()


def bare_commit_rate(directory: Path, seconds: float = 1.5) -> float:
    """One-row `BEGIN IMMEDIATE; INSERT; COMMIT` transactions, with the adapter's pragmas."""
    conn = sqlite3.connect(str(directory / "bare.sqlite3"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('x')")
        conn.execute("COMMIT")
        done += 1
    conn.close()
    return done / (time.perf_counter() - start)


async def claim_mark_rate(path: Path, messages: int) -> float:
    """The storage side alone: claim 50, mark them sent in one transaction, no HTTP."""
    db = SqliteDatabase(str(path), pool_size=1)
    start, done = time.perf_counter(), 0
    while True:
        claims = await claim_outbound(db, limit=50, now_ms=int(time.time() * 1000))
        if not claims:
            break
        outcomes = [Outcome(c, OutboxState.ENVIADO, wamid=f"wamid.BARE{c.id}") for c in claims]
        await record_outcomes(db, outcomes, now_ms=int(time.time() * 1000), max_attempts=5)
        done += len(claims)
    elapsed = time.perf_counter() - start
    db.close()
    return done / elapsed


async def client_rate(graph_port: int, client: str, concurrency: int, requests: int = 1500) -> float:
    """The HTTP client alone against the fake (no database): where an end-to-end ceiling comes from."""
    url = f"http://127.0.0.1:{graph_port}/v23.0/106540352242922/messages"
    body = {"messaging_product": "whatsapp", "to": "5215500000001", "type": "text", "text": {"body": "x"}}
    gate = asyncio.Semaphore(concurrency)
    if client == "httpx":
        async with httpx.AsyncClient() as session:

            async def one() -> None:
                async with gate:
                    (await session.post(url, json=body)).json()

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
    else:
        import aiohttp

        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                async with gate, session.post(url, json=body) as response:
                    await response.json()

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
    return requests / (time.perf_counter() - start)


async def whatsapp_client_rate(graph_port: int, concurrency: int, requests: int = 3000) -> float:
    """The app's own WhatsApp client (GraphApi; the send limit is the dispatcher's) against the fake, no database."""
    from core.whatsapp.client import WhatsAppClient
    from core.whatsapp.graph import GraphApi
    from core.whatsapp.outgoing import OutgoingMessage

    client = WhatsAppClient(GraphApi(f"http://127.0.0.1:{graph_port}/v23.0", "bench-token"), "106540352242922")
    message = OutgoingMessage(body="x")
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await client.send("5215500000001", message)

    await client.send("5215500000001", message)  # warm: the session and its first connection
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    rate = requests / (time.perf_counter() - start)
    await client.aclose()
    return rate


def worker_main(go_file: str, concurrency: int) -> None:
    """One dispatcher process: wait for the start signal, sweep until the queue is drained."""
    from bot.outbound import dispatcher
    from bot.runtime import build_runtime
    from core.storage.inspection import count_by_state

    async def run() -> dict[str, float]:
        rt = build_runtime()
        dispatcher.SEND_CONCURRENCY = concurrency
        go = Path(go_file)
        while not go.exists():  # noqa: ASYNC110, ASYNC240 - a file is the cross-process start signal
            await asyncio.sleep(0.002)
        started, sent, deadline = time.time(), 0, time.monotonic() + WORKER_CAP_S
        while time.monotonic() < deadline:
            result = await rt.outbox.sweep(budget_s=WORKER_CAP_S)
            sent += result.sent
            if result.claimed == 0:
                counts = await count_by_state(rt.db)
                if counts.get("pendiente") + counts.get("procesando") == 0:
                    break
                await asyncio.sleep(0.005)
        return {"sent": sent, "start": started, "end": time.time()}

    print(json.dumps(asyncio.run(run())), flush=True)


def run_dispatchers(
    path: Path, graph_port: int, count: int, messages: int, concurrency: int
) -> tuple[float, int, int]:
    httpx.post(f"http://127.0.0.1:{graph_port}/_reset", timeout=10)
    env = worker_env({
        "WHATSAPP_APP_SECRET": "bench", "WHATSAPP_VERIFY_TOKEN": "bench", "WHATSAPP_ACCESS_TOKEN": "bench-token",
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922", "SQLITE_PATH": str(path), "AI_PROVIDER": "offline",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}/v23.0",
        # The client-side limit (80/s by default, Meta's) would be the whole story; lift it to see the queue.
        "OUTBOX_RATE_PER_SECOND": "1000000", "MAX_TRABAJOS_POR_EJECUCION": str(messages),
        "LOG_LEVEL": "WARNING",
    })
    go = path.with_suffix(".go")
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.outbound", "--worker", str(go),
                          "--send-concurrency", str(concurrency)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(count)
    ]
    time.sleep(1.5)  # let every process import and connect before the clock starts
    go.touch()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=WORKER_CAP_S + 30)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    sent = httpx.get(f"http://127.0.0.1:{graph_port}/_sent", timeout=30).json()
    bodies = Counter(s["payload"]["text"]["body"] for s in sent)
    duplicates = sum(n - 1 for n in bodies.values())
    marked = sum(int(r["sent"]) for r in reports)
    return marked / elapsed, duplicates, len(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--dispatchers", default="1,2,4")
    parser.add_argument("--send-concurrency", default="16",
                        help="sends in flight per dispatcher, comma list (the app uses 16)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, int(args.send_concurrency))
        return
    concurrencies = [int(c) for c in args.send_concurrency.split(",") if c.strip()]
    messages = min(max(args.messages, 100), 20_000)
    counts = [int(c) for c in args.dispatchers.split(",") if c.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    from tests.conftest import free_port

    port = free_port()
    graph = fake_graph.spawn(port)
    rows: list[tuple[str, str, str, str]] = []
    try:
        bare = bare_commit_rate(work)
        rows.append(("SQLite bare commit (1-row write tx)", f"{bare:,.0f} tx/s", "-", "-"))
        _fresh_db(work / "storage.sqlite3", messages)
        rate = asyncio.run(claim_mark_rate(work / "storage.sqlite3", messages))
        rows.append(("claim + mark, no HTTP (1 process)", f"{rate:,.0f} jobs/s", "-", "-"))
        for concurrency in concurrencies:
            for client in ("httpx", "aiohttp"):
                rate = asyncio.run(client_rate(port, client, concurrency))
                rows.append((f"{client} client alone -> fake, {concurrency} in flight", f"{rate:,.0f} req/s",
                             "-", "-"))
            rate = asyncio.run(whatsapp_client_rate(port, concurrency))
            rows.append((f"the app's WhatsAppClient (limit lifted) -> fake, {concurrency} in flight",
                         f"{rate:,.0f} sends/s", "-", "-"))
            for count in counts:
                path = work / f"d{count}c{concurrency}.sqlite3"
                _fresh_db(path, messages)
                jobs, duplicates, received = run_dispatchers(path, port, count, messages, concurrency)
                rows.append((f"claim + send + mark, {count} dispatcher(s), {concurrency} in flight",
                             f"{jobs:,.0f} jobs/s", str(duplicates), f"{received}/{messages}"))
    finally:
        graph.terminate()
        graph.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nOutbound bench: {messages} messages, {platform.machine()} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {time.strftime('%Y-%m-%d')}")
    print("pgqueuer (PostgreSQL) publishes 6.4k-18k jobs/s for scale.\n")
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | {'rate':>14} | duplicates | received |")
    print(f"|{'-' * (width + 2)}|{'-' * 16}|------------|----------|")
    for what, rate, dup, got in rows:
        print(f"| {what:<{width}} | {rate:>14} | {dup:>10} | {got:>8} |")


if __name__ == "__main__":
    main()
