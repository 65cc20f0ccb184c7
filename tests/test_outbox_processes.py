"""The outbound queue under real concurrency: several OS processes, one database (the test's SQLite file; SQL
Server too when SQLSERVER_TEST_CONNECTION_STRING is set), a fake Graph server process.

Each test is bounded (message count and a per-process time cap) and asserts outcomes, never timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bot.runtime import Runtime
from core.settings import load_settings
from core.storage.inspection import count_by_state, list_recipient
from core.storage.outbox import count_campaign
from local_host import fake_graph
from tests.conftest import ROOT, base_env, free_port
from tests.conversation_helpers import Target, open_db, target_env
from tests.outbox_support import queue_texts, sent_by_graph, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture
def graph_port() -> int:
    port = free_port()
    proc = fake_graph.spawn(port)
    yield port
    proc.terminate()
    proc.wait(10)


def _env(db_path: Path, target: Target, graph_port: int, **extra: str) -> dict[str, str]:
    settings = {"WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}/v23.0", "OUTBOX_RATE_PER_SECOND": "100000"}
    return worker_env(base_env(db_path, **(settings | target_env(target) | extra)))


async def _worker(env: dict[str, str], *args: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.outbox_worker", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def _runtime(env: dict[str, str], target: Target) -> Runtime:
    return Runtime(settings=load_settings(env), db=open_db(target, pool_size=2))


async def test_thousand_messages_four_dispatchers_and_the_sweep_send_each_once(
    db_path: Path, process_target: Target, graph_port: int, tmp_path: Path
) -> None:
    recipients = [f"52155{i:08d}" for i in range(250)]
    # 4 replies per user, queued interleaved as several conversations would queue them.
    queue_texts(open_db(process_target), [(r, f"{r}#{k}") for k in range(4) for r in recipients])
    listing = tmp_path / "recipients.txt"
    listing.write_text("\n".join(recipients), encoding="utf-8")
    env = _env(db_path, process_target, graph_port, MAX_TRABAJOS_POR_EJECUCION="100")
    rt = _runtime(env, process_target)

    async def in_process_sweeps() -> int:
        sent = 0
        for _ in range(2000):
            result = await rt.outbox.sweep()
            sent += result.sent
            counts = await count_by_state(rt.db)
            if counts.get("pendiente") + counts.get("procesando") == 0:
                break
            await asyncio.sleep(0.02)
        return sent

    try:
        results = await asyncio.gather(
            _worker(env, "eager", "--recipients", str(listing), "--seconds", "40"),
            _worker(env, "eager", "--recipients", str(listing), "--seconds", "40"),
            _worker(env, "sweep", "--seconds", "40"),
            _worker(env, "sweep", "--seconds", "40"),
            in_process_sweeps(),
        )
        counts = await count_by_state(rt.db)
    finally:
        await rt.aclose()

    sent = sent_by_graph(graph_port)
    bodies = Counter(s["payload"]["text"]["body"] for s in sent)
    assert len(sent) == 1000 and max(bodies.values()) == 1, bodies.most_common(3)
    assert counts.get("enviado") == 1000 and counts.total == 1000
    # Every dispatcher did some of the work, and together exactly all of it.
    per_worker = [r["sent"] for r in results[:4]] + [results[4]]
    assert sum(per_worker) == 1000
    # Per-recipient order: each user's replies reached Meta in the order they were queued.
    for recipient in recipients:
        order = [s["payload"]["text"]["body"] for s in sent if s["recipient"] == recipient]
        assert order == [f"{recipient}#{k}" for k in range(4)], order


async def test_dispatcher_killed_after_meta_accepted_leaves_the_row_incierto(
    db_path: Path, process_target: Target, graph_port: int
) -> None:
    queue_texts(open_db(process_target), [("5215500000001", "a1"), ("5215500000002", "b1"), ("5215500000001", "a2")])
    env = _env(db_path, process_target, graph_port, MAX_TRABAJOS_POR_EJECUCION="1", OUTBOX_CLAIM_TIMEOUT_MS="1000")
    hang = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.outbox_worker", "hang", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(hang.stdout.readline(), timeout=30)).decode()  # type: ignore[union-attr]
        assert line.startswith("ACEPTADO wamid."), line
        os.kill(hang.pid, signal.SIGKILL)  # after Meta accepted, before the row was marked
    finally:
        if hang.returncode is None:
            hang.kill()
        await hang.wait()
    assert hang.returncode == -signal.SIGKILL
    assert [s["payload"]["text"]["body"] for s in sent_by_graph(graph_port)] == ["a1"]
    # Meta has a1, our database does not know it: it stays 'procesando' until the claim times out.
    rt = _runtime(env, process_target)
    try:
        [a1, a2] = await list_recipient(rt.db, "5215500000001")
        assert a1.state == "procesando" and a2.state == "pendiente"
        await asyncio.sleep(1.1)
        more = _env(db_path, process_target, graph_port, OUTBOX_CLAIM_TIMEOUT_MS="1000")
        await asyncio.gather(*(_worker(more, "sweep", "--seconds", "20") for _ in range(3)))
        [a1, a2] = await list_recipient(rt.db, "5215500000001")
        [b1] = await list_recipient(rt.db, "5215500000002")
    finally:
        rt.db.close()
    assert a1.state == "incierto" and a1.wamid is None and "desconocido" in (a1.last_error or "")
    assert (a2.state, b1.state) == ("enviado", "enviado")
    sent = [s["payload"]["text"]["body"] for s in sent_by_graph(graph_port)]
    assert Counter(sent) == {"a1": 1, "b1": 1, "a2": 1}
    assert sent.index("a1") < sent.index("a2")


def _start_host(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local_host", "--port", str(port), "--no-timers"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


async def _wait_up(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"host exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            await client.get(url)
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise AssertionError("host did not start")


async def test_seed_004_three_instances_queue_and_sweep_a_campaign_once(
    db_path: Path, process_target: Target, graph_port: int
) -> None:
    """27 companies, three instances sending at once: a naive outbox made 90+ sends. Here: exactly 27."""
    env = _env(db_path, process_target, graph_port)
    ports = [free_port() for _ in range(3)]
    hosts = [_start_host(env, port) for port in ports]
    recipients = [f"5255{i:08d}" for i in range(27)]
    body = {"mensaje": "Recordatorio: su pago vence mañana", "destinatarios": recipients}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(_wait_up(client, f"http://127.0.0.1:{p}/api/health", h)
                                   for p, h in zip(ports, hosts, strict=True)))
            answers = await asyncio.gather(*(client.post(f"http://127.0.0.1:{p}/api/campanas/sesion-28", json=body)
                                             for p in ports))
            assert [a.status_code for a in answers] == [202, 202, 202]
            assert sorted(a.json()["encolados"] for a in answers) == [0, 0, 27]
            await asyncio.gather(*(_worker(env, "sweep", "--seconds", "20") for _ in range(3)))
            # Calling it again after the sends queues nothing and sends nothing.
            again = await asyncio.gather(*(client.post(f"http://127.0.0.1:{p}/api/campanas/sesion-28", json=body)
                                           for p in ports))
            assert [a.json()["encolados"] for a in again] == [0, 0, 0]
            await asyncio.gather(*(_worker(env, "sweep", "--seconds", "5") for _ in range(3)))
            status = await client.get(f"http://127.0.0.1:{ports[0]}/api/campanas/sesion-28")
            bad = await client.post(f"http://127.0.0.1:{ports[1]}/api/campanas/sesion-28", content=b"{")
    finally:
        for host in hosts:
            host.terminate()
        for host in hosts:
            host.wait(10)
    sent = sent_by_graph(graph_port)
    assert len(sent) == 27 and sorted(s["recipient"] for s in sent) == recipients
    assert status.status_code == 200 and status.json()["estados"]["enviado"] == 27
    assert status.json()["estados"]["total"] == 27
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    db = open_db(process_target)
    try:
        assert (await count_campaign(db, "sesion-28")).get("enviado") == 27
    finally:
        db.close()


async def _kill_while_waiting_on_the_limit(env: dict[str, str], graph_port: int, *args: str) -> int:
    """Start a dispatcher process, SIGKILL it while it waits for its next send-limit token (300 ms after a
    send reached the fake; at 1 send/s the next token is 700 ms away); answers how many sends it made."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.outbox_worker", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        seen = 0
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(1500):  # bounded: 30 s
                now = len((await client.get(f"http://127.0.0.1:{graph_port}/_sent")).json())
                if now != seen and now >= 3:
                    await asyncio.sleep(0.3)
                    break
                seen = now
                await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return len(sent_by_graph(graph_port))


@pytest.mark.parametrize("mode", ["sweep", "eager"])
async def test_kill_9_while_replies_wait_on_the_send_limit_loses_none(
    db_path: Path, process_target: Target, graph_port: int, tmp_path: Path, mode: str
) -> None:
    """A dispatcher took its rows before it waited on the limit: a SIGKILL left them all 'procesando' and
    the claim timeout made them 'incierto', unsent (16 of 16 users without an answer). Now the limit is
    taken first, so waiting rows are still 'pendiente' and the next dispatcher sends each exactly once."""
    recipients = [f"52155{i:08d}" for i in range(40)]
    queue_texts(open_db(process_target), [(r, f"hola {r}") for r in recipients])
    listing = tmp_path / "recipients.txt"
    listing.write_text("\n".join(recipients), encoding="utf-8")
    slow = _env(db_path, process_target, graph_port, OUTBOX_RATE_PER_SECOND="1", OUTBOX_CLAIM_TIMEOUT_MS="1000")
    extra = ("--recipients", str(listing)) if mode == "eager" else ()
    sent_before_kill = await _kill_while_waiting_on_the_limit(slow, graph_port, mode, "--seconds", "60", *extra)
    assert 3 <= sent_before_kill < len(recipients)
    rt = _runtime(slow, process_target)
    try:
        counts = await count_by_state(rt.db)
        # Nothing was claimed while it waited: every unsent row is still plainly 'pendiente'.
        assert counts.get("procesando") == 0 and counts.get("incierto") == 0, counts.as_dict()
        assert counts.get("pendiente") == len(recipients) - sent_before_kill
        await asyncio.sleep(1.1)  # past the claim timeout: a settle now would catch any stuck claim
        await _worker(_env(db_path, process_target, graph_port, OUTBOX_CLAIM_TIMEOUT_MS="1000"), "sweep",
                      "--seconds", "30")
        counts = await count_by_state(rt.db)
    finally:
        rt.db.close()
    sent = Counter(s["recipient"] for s in sent_by_graph(graph_port))
    assert sorted(sent) == recipients and max(sent.values()) == 1  # every user one reply, none twice
    assert counts.get("enviado") == len(recipients) and counts.get("incierto") == 0, counts.as_dict()


def max_in_window(times: list[float], window_s: float) -> int:
    """The most events inside any `window_s`-long window (every window that starts at an event)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_two_instances_share_one_send_limit_per_number(
    db_path: Path, process_target: Target, graph_port: int
) -> None:
    """Each instance used to keep its own bucket: two of them sent 125/s from one number against Meta's 80.
    Now the bucket is a database row both take from: at most 80/s together over any 5 s window (+10 %)."""
    recipients = [f"52155{i:08d}" for i in range(600)]
    queue_texts(open_db(process_target), [(r, f"hola {r}") for r in recipients])
    env = _env(db_path, process_target, graph_port, OUTBOX_RATE_PER_SECOND="80", MAX_TRABAJOS_POR_EJECUCION="1000")
    results = await asyncio.gather(*(_worker(env, "sweep", "--seconds", "40") for _ in range(2)))
    sent = sent_by_graph(graph_port)
    per_user = Counter(s["recipient"] for s in sent)
    assert sorted(per_user) == recipients and max(per_user.values()) == 1  # every user exactly one reply
    assert all(r["sent"] > 0 for r in results), results  # both instances really sent
    assert max_in_window([s["at"] for s in sent], 5.0) <= 80 * 5 * 1.1
