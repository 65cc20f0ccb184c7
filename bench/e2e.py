"""End-to-end bench, offline AI: N conversations through full flows, 20 % redeliveries, several processes.

Each process is one Function instance sharing the SQLite file, with its own queue-triggered worker
in process. A simulated user sends the steps of a conversation one after another (each waits only
for the webhook's ack, like a person typing quickly); many users run at once. Every delivery goes
through the real webhook handler (signature, parsing, atomic registration, hand-off) and every
message through the real worker (lease, flow, one-transaction commit, send). The clock stops when
the last message is handled.

    python -m bench.e2e --conversations 600 --processes 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

import httpx

from bench.common import Stopwatch, bench_env, fresh_database, pct, print_table, sign, start_fake_graph, text_payload

SCRIPTS = (
    ["Hola, el refrigerador no enfría", "10004512", "sí"],
    ["Buenos días", "1", "10004513", "si", "hace mucho ruido"],
    ["el camión no arranca", "48213", "XYZ-987-A"],
)


def phone_for(i: int) -> str:
    return f"52155{i:08d}"


def run_process(db_path: str, graph_url: str, conversations: list[int], concurrency: int, redelivery: float,
                seed: int) -> dict:
    return asyncio.run(_run(db_path, graph_url, conversations, concurrency, redelivery, seed))


async def _run(db_path: str, graph_url: str, conversations: list[int], concurrency: int, redelivery: float,
               seed: int) -> dict:
    from bot.runtime import build_runtime
    from core.settings import load_settings
    from local_host.queues import serving_worker, settle, worker_queue

    extra = {k: v for k, v in os.environ.items() if k == "OUTBOX_EAGER_DISPATCH"}
    rt = build_runtime(load_settings(bench_env(Path(db_path), WHATSAPP_API_BASE_URL=graph_url, **extra)),
                       handoff=worker_queue())
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0
    deliveries = 0

    async def post(body: bytes) -> int:
        nonlocal deliveries
        deliveries += 1
        status, _ = await rt.webhook.post({"X-Hub-Signature-256": sign(body)}, body)
        return status

    async def converse(i: int) -> None:
        nonlocal errors
        script = SCRIPTS[i % len(SCRIPTS)]
        async with gate:
            for step, text in enumerate(script):
                body = text_payload(phone_for(i), f"wamid.E2E.{i}.{step}", text, 1_763_880_000 + step)
                started = time.perf_counter()
                status = await post(body)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += status != 200
                if rng.random() < redelivery:
                    errors += await post(body) != 200  # Meta redelivers the same event

    async with serving_worker(rt) as queue:
        clock = Stopwatch()
        await asyncio.gather(*(converse(i) for i in conversations))
        await settle(queue, 600)
        elapsed = clock.elapsed()
    result = {"latencies": latencies, "errors": errors, "deliveries": deliveries, "elapsed": elapsed,
              "writes": rt.db.transactions, "reads": rt.db.reads}
    await rt.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=600)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="users talking at once per process")
    parser.add_argument("--redelivery", type=float, default=0.2)
    parser.add_argument("--no-eager-send", action="store_true",
                        help="leave replies queued (OUTBOX_EAGER_DISPATCH=false): the conversation path alone")
    args = parser.parse_args()
    if args.no_eager_send:
        os.environ["OUTBOX_EAGER_DISPATCH"] = "false"  # inherited by the spawned instances

    db_path = fresh_database(Path(tempfile.mkdtemp(prefix="bench-e2e-")) / "bot.sqlite3")
    ids = list(range(args.conversations))
    shares = [ids[p:: args.processes] for p in range(args.processes)]
    graph, graph_url = start_fake_graph()  # replies really go out, to a fake Graph API on loopback
    try:
        with mp.get_context("spawn").Pool(args.processes) as pool:
            results = pool.starmap(run_process, [
                (str(db_path), graph_url, share, args.concurrency, args.redelivery, p) for p, share in enumerate(shares)
            ])
        sends = len(httpx.get(graph_url.rsplit("/", 1)[0] + "/_sent", timeout=30).json())
    finally:
        graph.terminate()
        graph.wait(10)

    with closing(sqlite3.connect(db_path)) as conn, conn:
        messages = conn.execute("SELECT COUNT(*) FROM MensajesProcesados").fetchone()[0]
        handled = conn.execute("SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'procesado'").fetchone()[0]
        reports = conn.execute("SELECT COUNT(*) FROM Reportes").fetchone()[0]
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT MessageId FROM HistorialSesiones GROUP BY MessageId HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        replies = conn.execute("SELECT COUNT(*) FROM ColaEnvios").fetchone()[0]
        double_reports = conn.execute(
            "SELECT COUNT(*) FROM (SELECT Telefono FROM Reportes GROUP BY Telefono HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    latencies = [v for r in results for v in r["latencies"]]
    deliveries = sum(r["deliveries"] for r in results)
    writes = sum(r["writes"] for r in results)
    reads = sum(r["reads"] for r in results)
    busy = max(r["elapsed"] for r in results)  # the instances' own time, without process start-up
    print_table(
        f"End to end, offline AI: {args.conversations} conversations, {args.processes} processes, "
        f"{args.redelivery:.0%} redeliveries, replies {'left queued' if args.no_eager_send else 'sent eagerly'}",
        ["messages", "deliveries", "busy s", "messages/s", "ack p50 ms", "ack p99 ms", "reports", "duplicates",
         "lost", "errors", "replies sent", "write tx/msg", "read tx/msg"],
        [[messages, deliveries, busy, handled / busy, pct(latencies, 50), pct(latencies, 99), reports,
          duplicates + double_reports, messages - handled, sum(r["errors"] for r in results),
          f"{sends}/{replies}", writes / max(messages, 1), reads / max(messages, 1)]],
    )


if __name__ == "__main__":
    main()
