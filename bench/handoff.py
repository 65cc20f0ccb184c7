"""The hand-off budgets, measured from outside: ack throughput, reply latency, a burst, memory.

    .venv/bin/python -m bench.handoff [--count 3000] [--rounds 3] [--users 16] [--turns 15]
                                      [--burst-users 1200] [--burst-senders 200] [--azurite]

`--azurite` starts Azurite (tools/azurite) and sets AzureWebJobsStorage: the webhook then writes the
hand-off through the Storage SDK and the local host's listener polls the queue with the Functions host's
semantics, as on Azure; without it the queue is in process.

The local host runs as its own process with DEFAULT settings (send limit 80/s, offline AI, the
queue-triggered worker in the same process). This process is the outside world: an aiohttp load
generator and a fake Graph API that timestamps every reply it receives. Three phases, each on a
fresh host and database:

1. ack: signed new-message deliveries (20 % redeliveries) at 16 concurrent senders, alternating
   rounds with a no-op function and `GET /api/health` on the same host;
2. reply latency: users who each wait for the bot's answer before sending the next message,
   POST -> reply received by the fake Graph API;
3. burst: N new users from M concurrent senders; ack latency, then every reply counted per user,
   the database checked for `incierto`, and the host's peak RSS.

Loopback only, bounded by counts and time. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.ingest import SECRET, Delivery, Host, Result, drive, free_port, make_deliveries, merge
from bot.webhook.signature import sign_body
from local_host.fake_graph import FakeGraph

FRIDGE = ["Hola, el refrigerador no enfría", "10004512", "sí"]


@dataclass
class WatchedGraph(FakeGraph):
    """The fake Graph API, telling waiters the moment a reply for their user arrives."""

    waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    per_recipient: dict[str, int] = field(default_factory=dict)

    async def handle_send(self, request: web.Request) -> web.Response:
        response = await super().handle_send(request)
        if response.status == 200 and self.sent:
            recipient = self.sent[-1]["recipient"]
            self.per_recipient[recipient] = self.per_recipient.get(recipient, 0) + 1
            waiter = self.waiters.pop(recipient, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())
        return response


async def serve_graph(graph: WatchedGraph) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(graph.build_app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v23.0"


def text_body(phone: str, wamid: str, text: str, ts: int) -> tuple[bytes, dict[str, str]]:
    import json

    payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}],
        }}]}]}
    body = json.dumps(payload, ensure_ascii=False).encode()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign_body(SECRET, body)}


def health_deliveries(n: int) -> list[Delivery]:
    return [Delivery(b"", {}, "", False) for _ in range(n)]


async def drive_get(name: str, url: str, count: int, concurrency: int, max_seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    remaining = count
    deadline = time.monotonic() + max_seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                start = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        errors += response.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(name, len(latencies), elapsed, latencies, errors)


# -- phase 1: ack --------------------------------------------------------------------------------


async def phase_ack(host: Host, args: argparse.Namespace) -> list[Result]:
    deliveries = make_deliveries(args.count * args.rounds, 0.2, args.senders, seed=2, prefix="BENCH")
    warm = make_deliveries(300, 0.2, args.senders, seed=1, prefix="WARM")
    webhook, noop, health = (f"{host.base}/api/whatsapp/webhook", f"{host.base}/api/bench/noop",
                             f"{host.base}/api/health")
    await drive("warm-up", noop, warm, args.concurrency, 10)
    await drive("warm-up", webhook, warm, args.concurrency, 10)
    rows: dict[str, list[Result]] = {"GET /api/health": [], "POST no-op function": [], "POST webhook": []}
    for i in range(args.rounds):
        part = deliveries[i * args.count:(i + 1) * args.count]
        order = ["health", "noop", "webhook"] if i % 2 == 0 else ["webhook", "noop", "health"]
        for target in order:
            if target == "health":
                rows["GET /api/health"].append(await drive_get("health", health, args.count, args.concurrency, 30))
            elif target == "noop":
                rows["POST no-op function"].append(await drive("noop", noop, part, args.concurrency, 30))
            else:
                rows["POST webhook"].append(await drive("webhook", webhook, part, args.concurrency, 30))
    return [merge(name, results) for name, results in rows.items()]


# -- phase 2: reply latency ----------------------------------------------------------------------


async def phase_latency(host: Host, graph: WatchedGraph, args: argparse.Namespace) -> tuple[list[float], list[float],
                                                                                           int]:
    replies_ms: list[float] = []
    acks_ms: list[float] = []
    missing = 0
    url = f"{host.base}/api/whatsapp/webhook"
    async with aiohttp.ClientSession() as session:

        async def user(u: int, turns: int) -> None:
            nonlocal missing
            phone = f"52157{u:08d}"
            for turn in range(turns):
                body, headers = text_body(phone, f"wamid.LAT.{u}.{turn}", FRIDGE[turn % 3], 1_763_880_000 + turn)
                waiter = asyncio.get_running_loop().create_future()
                graph.waiters[phone] = waiter
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                acks_ms.append((time.perf_counter() - started) * 1000)
                try:
                    async with asyncio.timeout(15):
                        arrived = await waiter
                except TimeoutError:
                    missing += 1
                    continue
                replies_ms.append((arrived - started) * 1000)

        # Warm-up (the first message after start builds the HTTP clients and caches): 2 turns of other
        # users, then the samples are cleared.
        await asyncio.gather(*(user(u, 2) for u in range(1000, 1000 + args.users)))
        replies_ms.clear()
        acks_ms.clear()
        missing = 0
        await asyncio.gather(*(user(u, args.turns) for u in range(args.users)))
    return replies_ms, acks_ms, missing


# -- phase 3: burst ------------------------------------------------------------------------------


async def phase_burst(host: Host, graph: WatchedGraph, args: argparse.Namespace) -> dict[str, float]:
    url = f"{host.base}/api/whatsapp/webhook"
    phones = [f"52158{u:08d}" for u in range(args.burst_users)]
    bodies = [text_body(p, f"wamid.BURST.{i}", FRIDGE[0], 1_763_880_000) for i, p in enumerate(phones)]
    acks: list[float] = []
    errors = 0
    next_index = 0
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.burst_senders)) as session:

        async def sender() -> None:
            nonlocal next_index, errors
            while next_index < len(bodies):
                body, headers = bodies[next_index]
                next_index += 1
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    errors += response.status != 200
                acks.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(sender() for _ in range(args.burst_senders)))
    ack_s = time.perf_counter() - started
    for _ in range(int(args.burst_wait * 10)):  # bounded: at most `burst_wait` seconds
        if len(graph.per_recipient) >= len(phones):
            break
        await asyncio.sleep(0.1)
    all_replied_s = time.perf_counter() - started
    await asyncio.sleep(2)  # late duplicates, if any, would show up now
    counts = [graph.per_recipient.get(p, 0) for p in phones]
    return {"ack_s": ack_s, "acks": acks, "errors": errors, "all_replied_s": all_replied_s,
            "answered": sum(1 for c in counts if c >= 1), "exactly_one": sum(1 for c in counts if c == 1),
            "more_than_one": sum(1 for c in counts if c > 1)}


def outbox_states(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return dict(conn.execute("SELECT Estado, COUNT(*) FROM ColaEnvios GROUP BY Estado").fetchall())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    graph = WatchedGraph()
    runner, graph_url = await serve_graph(graph)
    print(f"\nHand-off bench — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; local host with default settings "
          f"(send limit 80/s, offline AI, worker in process); client and fake Graph API in a separate process")
    phases = set(args.only or ["ack", "latency", "burst"])
    emulator = None
    args.host_env = {}
    if args.azurite:
        from local_host.azurite import Azurite

        emulator = Azurite(tmp / "azurite")
        emulator.start()
        args.host_env = {"AzureWebJobsStorage": emulator.connection_string}
    queue = "Azure Storage queue on Azurite (SDK writer, polling listener)" if emulator else "in process"
    print(f"hand-off queue: {queue}")
    try:
        if "ack" in phases:
            await ack_phase(tmp, graph_url, args)
        if "latency" in phases:
            await latency_phase(tmp, graph, graph_url, args)
        if "burst" in phases:
            await burst_phase(tmp, graph, graph_url, args)
        print(f"\nhost logs and databases: {tmp}")
    finally:
        await runner.cleanup()
        if emulator is not None:
            emulator.stop()


async def ack_phase(tmp: Path, graph_url: str, args: argparse.Namespace) -> None:
    host = Host(tmp, "ack", WHATSAPP_API_BASE_URL=graph_url, **args.host_env)
    try:
        ack_rows = await phase_ack(host, args)
    finally:
        await asyncio.to_thread(host.stop)  # the fake Graph API in this loop must keep answering
    print(f"\n1. Ack: concurrency {args.concurrency}, {args.rounds} alternating rounds of {args.count}, "
          f"20 % redeliveries\n")
    print("| target | requests | requests/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in ack_rows:
        print(f"| {r.name} | {r.sent} | {r.rate:.0f} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | "
              f"{max(r.latencies_ms, default=float('nan')):.1f} | {r.errors} |")
    print(f"\nack host peak RSS {host.peak_mb:.0f} MB; outbox after the run: {outbox_states(host.db)}")


async def latency_phase(tmp: Path, graph: WatchedGraph, graph_url: str, args: argparse.Namespace) -> None:
    host = Host(tmp, "latency", WHATSAPP_API_BASE_URL=graph_url, **args.host_env)
    try:
        replies, acks, missing = await phase_latency(host, graph, args)
    finally:
        await asyncio.to_thread(host.stop)  # the fake Graph API in this loop must keep answering
    print(f"\n2. Reply latency: {args.users} users x {args.turns} turns, each waits for the answer\n")
    print("| measure | samples | p50 ms | p95 ms | p99 ms | max ms | no reply in 15 s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| POST -> reply at Graph | {len(replies)} | {pct(replies, 0.5):.1f} | {pct(replies, 0.95):.1f} | "
          f"{pct(replies, 0.99):.1f} | {max(replies, default=float('nan')):.1f} | {missing} |")
    print(f"| ack | {len(acks)} | {pct(acks, 0.5):.1f} | {pct(acks, 0.95):.1f} | {pct(acks, 0.99):.1f} | "
          f"{max(acks, default=float('nan')):.1f} | |")


async def burst_phase(tmp: Path, graph: WatchedGraph, graph_url: str, args: argparse.Namespace) -> None:
    graph.per_recipient.clear()
    host = Host(tmp, "burst", WHATSAPP_API_BASE_URL=graph_url, **args.host_env)
    try:
        burst = await phase_burst(host, graph, args)
    finally:
        await asyncio.to_thread(host.stop)  # the fake Graph API in this loop must keep answering
    states = outbox_states(host.db)
    acks = burst["acks"]
    print(f"\n3. Burst: {args.burst_users} new users from {args.burst_senders} concurrent senders\n")
    print("| acks | ack p50 ms | ack p99 ms | ack max ms | errors | all acked s | all replied s | answered | "
          "exactly one reply | more than one | incierto | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(acks)} | {pct(acks, 0.5):.1f} | {pct(acks, 0.99):.1f} | {max(acks):.1f} | {burst['errors']} | "
          f"{burst['ack_s']:.1f} | {burst['all_replied_s']:.1f} | {burst['answered']} | {burst['exactly_one']} | "
          f"{burst['more_than_one']} | {states.get('incierto', 0)} | {host.peak_mb:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="requests per target and round (ack phase)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--senders", type=int, default=300, help="distinct users in the ack phase")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--turns", type=int, default=15)
    parser.add_argument("--burst-users", type=int, default=1200)
    parser.add_argument("--burst-senders", type=int, default=200)
    parser.add_argument("--burst-wait", type=float, default=90, help="seconds to wait for every burst reply")
    parser.add_argument("--azurite", action="store_true", help="hand off through a Storage queue on Azurite")
    parser.add_argument("--only", choices=["ack", "latency", "burst"], action="append",
                        help="run only these phases (repeatable); default: all three")
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
