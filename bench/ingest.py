"""Webhook ingest benchmark: the local host as a subprocess, driven over loopback by a concurrent load
generator, next to a no-op HTTP function measured the same way in the same run.

    .venv/bin/python -m bench.ingest [--count 3000] [--rounds 3] [--max-seconds 30] [--concurrency 16]

Signed, realistic text deliveries from a few hundred senders, 20 % of them redeliveries of earlier
bodies (same bytes, same signature, possibly still in flight), with default settings: the queue-
triggered worker runs in the same process and sends to a fake Graph API at 80/s. Prints
deliveries/s, p50/p99/max ack latency, errors, and what the ledger holds afterwards (rows, lost,
duplicate rows, Reintentos).
Bounded by count and by time (per target and round). Not a test: nothing is asserted, figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import start_fake_graph
from bot.webhook.signature import sign_body

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-app-secret"
TEXTS = [
    "Hola, el refrigerador no enfría", "10004512", "sí", "Quiero reportar un vehículo", "12345678", "ABC-123-D",
    "La camioneta no arranca desde ayer", "cancelar", "no", "La nevera hace ruido y gotea agua 💧",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    wamid: str
    redelivery: bool


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    sent: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_deliveries(count: int, redelivery_share: float, senders: int, seed: int, prefix: str) -> list[Delivery]:
    rng = random.Random(seed)
    phones = [f"52155{rng.randrange(10**7, 10**8)}" for _ in range(senders)]
    out: list[Delivery] = []
    originals: list[Delivery] = []
    for i in range(count):
        if originals and rng.random() < redelivery_share:
            d = rng.choice(originals[-500:])  # recent ones: redeliveries often overlap the original
            out.append(Delivery(d.body, d.headers, d.wamid, True))
            continue
        phone = rng.choice(phones)
        wamid = f"wamid.{prefix}{i:08d}{rng.randrange(16**6):06x}"
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Ana López"}, "wa_id": phone, "user_id": f"MX.{phone}"}],
                "messages": [{"from": phone, "from_user_id": f"MX.{phone}", "id": wamid,
                              "timestamp": str(1763880000 + i), "type": "text",
                              "text": {"body": rng.choice(TEXTS)}}],
            },
        }]}]}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        d = Delivery(body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign_body(SECRET, body)},
                     wamid, False)
        originals.append(d)
        out.append(d)
    return out


async def drive(name: str, url: str, deliveries: list[Delivery], concurrency: int, max_seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.monotonic() + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < len(deliveries) and time.monotonic() < deadline:
                d = deliveries[next_index]
                next_index += 1
                start = time.perf_counter()
                try:
                    async with session.post(url, data=d.body, headers=d.headers) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - start) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(name, len(latencies), elapsed, latencies, errors)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"local host exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("local host did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(name: str, rounds: list[Result]) -> Result:
    return Result(name, sum(r.sent for r in rounds), sum(r.seconds for r in rounds),
                  [ms for r in rounds for ms in r.latencies_ms], sum(r.errors for r in rounds))


def ledger_summary(db: Path, sent: list[Delivery]) -> dict[str, int]:
    expected = {d.wamid for d in sent}
    with closing(sqlite3.connect(db)) as conn, conn:
        rows = conn.execute("SELECT MessageId, Reintentos FROM MensajesProcesados WHERE MessageId LIKE 'wamid.BENCH%'")
        stored = list(rows)
    ids = [m for m, _ in stored]
    return {
        "rows": len(ids),
        "duplicate_rows": len(ids) - len(set(ids)),
        "lost": len(expected - set(ids)),
        "reintentos": sum(r for _, r in stored),
        "redeliveries_sent": len(sent) - len(expected),
    }


class Host:
    """`python -m bench.noop_host` on a free port with a fresh SQLite file (and its log) under `tmp`."""

    def __init__(self, tmp: Path, name: str, **env_extra: str) -> None:
        self.db = tmp / f"{name}.sqlite3"
        self.log = tmp / f"{name}.log"
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SQL", "BENCH_"))}
        env.update({"WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": "bench", "SQLITE_PATH": str(self.db),
                    "AI_PROVIDER": "offline", "WHATSAPP_ACCESS_TOKEN": "bench-token"}, **env_extra)
        with open(self.log, "wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.noop_host", "--port", str(port), "--no-timers"],
                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        wait_ready(self.base, self.proc)

    def peak_rss_mb(self) -> float:
        """VmHWM: the host process's peak resident set size so far (Linux)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        return kb / 1024

    def stop(self) -> None:
        self.peak_mb = self.peak_rss_mb()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def measure(host: Host, deliveries: list[Delivery], warm: list[Delivery], args: argparse.Namespace,
                  with_noop: bool) -> tuple[list[Result], list[Result]]:
    webhook, noop = f"{host.base}/api/whatsapp/webhook", f"{host.base}/api/bench/noop"
    await drive("warm-up", noop, warm, args.concurrency, 10)
    await drive("warm-up", webhook, warm, args.concurrency, 10)
    noops: list[Result] = []
    hooks: list[Result] = []
    for i in range(args.rounds):
        # Rounds alternate which target goes first, so both see the same share of machine noise.
        part = deliveries[i * args.count:(i + 1) * args.count]
        order = ("noop", "webhook") if i % 2 == 0 else ("webhook", "noop")
        for target in order:
            if target == "noop" and with_noop:
                noops.append(await drive("no-op function", noop, part, args.concurrency, args.max_seconds))
            elif target == "webhook":
                hooks.append(await drive("webhook", webhook, part, args.concurrency, args.max_seconds))
    return noops, hooks


def sent_part(deliveries: list[Delivery], rounds: list[Result], count: int) -> list[Delivery]:
    return [d for i, r in enumerate(rounds) for d in deliveries[i * count:i * count + r.sent]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="deliveries per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=30, help="time bound per target and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redeliveries", type=float, default=0.2)
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    warm = make_deliveries(args.warmup, args.redeliveries, args.senders, seed=1, prefix="WARM")
    deliveries = make_deliveries(args.count * args.rounds, args.redeliveries, args.senders, seed=2, prefix="BENCH")

    # The production path: the webhook registers and hands off; the queue-triggered worker runs in the
    # same process against a fake Graph API, at the default send limit (80/s).
    graph, graph_url = start_fake_graph()
    host = Host(tmp, "ingest", WHATSAPP_API_BASE_URL=graph_url)
    try:
        noop_rounds, ingest_rounds = asyncio.run(measure(host, deliveries, warm, args, with_noop=True))
    finally:
        host.stop()
        graph.terminate()
        graph.wait(10)
    ingest_summary = ledger_summary(host.db, sent_part(deliveries, ingest_rounds, args.count))

    noop_result = merge("no-op function", noop_rounds)
    rows = [noop_result, merge("webhook", ingest_rounds)]
    print(f"\nWebhook ingest benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, SQLite (WAL), "
          f"concurrency {args.concurrency}, {int(args.redeliveries * 100)} % redeliveries, loopback HTTP, "
          f"{args.rounds} alternating rounds of {args.count}")
    header = f"| {'target':<20} | {'deliveries':>10} | {'deliveries/s':>12} | {'vs no-op':>8} | {'p50 ms':>7} | " \
             f"{'p99 ms':>7} | {'max ms':>7} | {'errors':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        ratio = r.rate / noop_result.rate if noop_result.rate else float("nan")
        print(f"| {r.name:<20} | {r.sent:>10} | {r.rate:>12.0f} | {ratio:>8.2f} | {r.pct(0.5):>7.1f} | "
              f"{r.pct(0.99):>7.1f} | {max(r.latencies_ms, default=float('nan')):>7.1f} | {r.errors:>6} |")
    per_round = ", ".join(f"{w.rate / n.rate:.2f}" for n, w in zip(noop_rounds, ingest_rounds, strict=True))
    print(f"\nwebhook / no-op throughput ratio per round: {per_round}")
    summary = ingest_summary
    print(f"ledger: {summary['rows']} rows for {summary['rows'] + summary['lost']} distinct wamids "
          f"sent, {summary['duplicate_rows']} duplicate rows, {summary['lost']} lost; Reintentos total "
          f"{summary['reintentos']} for {summary['redeliveries_sent']} redeliveries sent")
    print(f"local host peak RSS (VmHWM): {host.peak_mb:.0f} MB")
    print(f"host logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
