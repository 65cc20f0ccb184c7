"""One send limit per business number, across instances: N dispatcher processes share one number.

    .venv/bin/python -m bench.send_limit [--messages 800] [--instances 1,2,4] [--rate 80]

Each instance is a real OS process sweeping the same SQLite file; the fake Graph API records when each
send arrived. The table shows the highest count in any 5 s window (divided by 5) against the number's
rate, the mean rate, and duplicates (must be 0). Budget: at most rate * 1.1 over any 5 s window.
Bounded: each dispatcher stops after 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import bench_env, fresh_database, print_table, start_fake_graph  # noqa: E402
from core.storage.sqlite import SqliteDatabase  # noqa: E402
from tests.outbox_support import queue_texts, worker_env  # noqa: E402

WINDOW_S = 5.0


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _dispatcher(env: dict[str, str]) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.outbox_worker", "sweep", "--seconds", "60", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


async def run(instances: int, messages: int, rate: int, directory: Path) -> list[object]:
    db_path = fresh_database(directory / f"limit-{instances}.sqlite3")
    db = SqliteDatabase(str(db_path), pool_size=1)
    queue_texts(db, [(f"52155{i:08d}", f"m{i}") for i in range(messages)])
    db.close()
    graph, base_url = start_fake_graph()
    try:
        env = worker_env(bench_env(db_path, WHATSAPP_API_BASE_URL=base_url, OUTBOX_RATE_PER_SECOND=str(rate),
                                   MAX_TRABAJOS_POR_EJECUCION="100000", LOG_LEVEL="WARNING"))
        results = await asyncio.gather(*(_dispatcher(env) for _ in range(instances)))
        async with httpx.AsyncClient(timeout=30) as client:
            sent = (await client.get(base_url.rsplit("/v23.0", 1)[0] + "/_sent")).json()
    finally:
        graph.terminate()
        graph.wait(10)
    times = [s["at"] for s in sent]
    per_user = Counter(s["recipient"] for s in sent)
    span = max(times) - min(times) if len(times) > 1 else float("nan")
    peak = max_in_window(times, WINDOW_S) / WINDOW_S
    return [instances, len(sent), sum(1 for c in per_user.values() if c > 1), rate, peak,
            (len(sent) - 1) / span if span else float("nan"), "yes" if peak <= rate * 1.1 else "NO",
            " / ".join(str(r["sent"]) for r in results)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--rate", type=int, default=80)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.instances.split(",") if x.strip()):
            rows.append(asyncio.run(run(n, args.messages, args.rate, Path(tmp))))
    print_table(f"Shared send limit: {args.messages} replies to distinct users, one business number",
                ["instances", "sent", "duplicates", "limit/s", "peak 5 s window /s", "mean /s", "within +10 %",
                 "sent per instance"], rows)
    return 0 if all(r[2] == 0 and r[6] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
