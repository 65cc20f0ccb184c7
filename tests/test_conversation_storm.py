"""Multi-process storm and crash tests: real OS processes sharing one database, as Function instances do
(the test's SQLite file; and SQL Server too when SQLSERVER_TEST_CONNECTION_STRING is set)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.runtime import build_runtime
from core.settings import load_settings
from local_host import fake_graph
from local_host.queues import serving_worker, settle, worker_queue
from tests import storm_worker as sw
from tests.conftest import ROOT, base_env, free_port
from tests.conversation_helpers import SqlServer, Target, put_in_inbox, query, target_env, text_message
from tests.outbox_support import sent_by_graph

CONVERSATIONS = 210
PROCESSES = 4

pytestmark = pytest.mark.slow


def seed_storm_catalog(db_path: Path, conversations: int, env: dict[str, str]) -> None:
    """Migrate, then add one refrigerator per storm conversation to the catalog."""
    rt = build_runtime(load_settings(base_env(db_path, **env)))
    asyncio.run(rt.aclose())
    target: Target = db_path
    if "SQL_CONNECTION_STRING" in env:
        target = SqlServer(env["SQL_CONNECTION_STRING"])
    for code, description, location in sw.storm_catalog(conversations):
        if not query(target, "SELECT 1 FROM Equipos WHERE CodigoSAP = ?", code):
            query(target, "INSERT INTO Equipos (CodigoSAP, TipoEquipo, Descripcion, Ubicacion) "
                          "VALUES (?, 'REFRIGERADOR', ?, ?)", code, description, location)


def run_storm(db_path: Path, conversations: int, env: dict[str, str]) -> list[dict]:
    """4 OS processes (4 Function instances) post the shuffled rounds through the real, signed webhook."""
    seed_storm_catalog(db_path, conversations, env)
    ctx = mp.get_context("spawn")
    per_process = sw.shuffled_rounds(conversations, PROCESSES, seed=20261123)
    barrier = ctx.Manager().Barrier(PROCESSES)
    with ctx.Pool(PROCESSES) as pool:
        results = [pool.apply_async(sw.run_instance, (str(db_path), rounds, barrier, env)) for rounds in per_process]
        outcomes = [r.get(timeout=300) for r in results]
    total = sum(len(steps) for rounds in per_process for items in rounds for _, steps in items)
    assert sum(o["delivered"] for o in outcomes) == total
    assert {s for o in outcomes for s in o["statuses"]} == {200}  # every signed delivery answered 200
    return outcomes


def finish_with_sweepers(db_path: Path, target: Target, env: dict[str, str]) -> int:
    """Whatever the instances left behind, the sweepers finish (the invariant is "no message lost").
    Answers how many sweep rounds found work left."""

    async def sweep() -> int:

        rt = build_runtime(load_settings(base_env(db_path, **env)), handoff=worker_queue())
        busy_rounds = 0
        async with serving_worker(rt) as queue:
            for _ in range(60):
                open_rows = query(target, "SELECT (SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente')"
                                          " + (SELECT COUNT(*) FROM ColaEnvios WHERE Estado <> 'enviado')")[0][0]
                if not open_rows:
                    break
                busy_rounds += 1
                query(target, "UPDATE MensajesProcesados SET RecibidoEn = 0 WHERE Estado = 'pendiente'")
                await rt.sweeper.sweep()
                await settle(queue)
                query(target, "UPDATE ColaEnvios SET ProximoIntento = 0 WHERE Estado = 'pendiente'")
                await rt.outbox.sweep()
        await rt.aclose()
        return busy_rounds

    return asyncio.run(sweep())


def assert_every_conversation_done(db_path: Target, conversations: int) -> int:
    unique_messages = sum(len(sw.script_for(i)) for i in range(conversations))
    assert query(db_path, "SELECT Estado, COUNT(*) FROM MensajesProcesados GROUP BY Estado") == [
        ("procesado", unique_messages)]
    # Each message handled exactly once.
    assert query(db_path, "SELECT COUNT(*), COUNT(DISTINCT MessageId) FROM HistorialSesiones") == [
        (unique_messages, unique_messages)]
    # Every conversation finished with exactly one report.
    assert query(db_path, "SELECT COUNT(*) FROM SesionesChat WHERE Estado = 'FINALIZADO'") == [(conversations,)]
    per_phone = query(db_path, "SELECT Telefono, COUNT(*) FROM Reportes GROUP BY Telefono")
    assert len(per_phone) == conversations and {n for _, n in per_phone} == {1}
    # Each phone's messages were handled in WhatsApp-timestamp order.
    rows = query(
        db_path,
        "SELECT h.Telefono, m.WaTimestamp FROM HistorialSesiones h JOIN MensajesProcesados m"
        " ON m.MessageId = h.MessageId ORDER BY h.Id",
    )
    last: dict[str, int] = {}
    for phone, ts in rows:
        assert ts >= last.get(phone, 0), f"out of order for {phone}"
        last[phone] = ts
    return unique_messages


def test_storm_every_conversation_ends_with_exactly_one_report(db_path: Path, process_target: Target) -> None:
    port = free_port()
    graph = fake_graph.spawn(port)
    target = process_target
    env = {"WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{port}/v23.0", "OUTBOX_RATE_PER_SECOND": "100000",
           **target_env(target)}
    try:
        run_storm(db_path, CONVERSATIONS, env)
        finish_with_sweepers(db_path, target, env)
        unique_messages = assert_every_conversation_done(target, CONVERSATIONS)
        sent = sent_by_graph(port)
    finally:
        graph.terminate()
        graph.wait(10)
    deliveries = query(target, "SELECT SUM(Reintentos) + COUNT(*) FROM MensajesProcesados")[0][0]
    assert deliveries > unique_messages  # redeliveries happened, were counted, and were not re-handled
    # One reply per handled message, each sent exactly once, in order per recipient.
    assert query(target, "SELECT Estado, COUNT(*) FROM ColaEnvios GROUP BY Estado") == [("enviado", unique_messages)]
    assert len(sent) == unique_messages and len({s["wamid"] for s in sent}) == unique_messages
    stored = query(target, "SELECT Destinatario, WamidEnviado FROM ColaEnvios ORDER BY Id")
    assert {w for _, w in stored} == {s["wamid"] for s in sent}
    by_recipient: dict[str, list[str]] = {}
    for s in sent:
        by_recipient.setdefault(s["recipient"], []).append(s["wamid"])
    for recipient, wamids in by_recipient.items():
        assert wamids == [w for r, w in stored if r == recipient], f"replies out of order for {recipient}"


def test_storm_with_an_ai_provider_that_hangs_on_every_call(db_path: Path, process_target: Target) -> None:
    """Every AI call hangs: conversations still complete on fallbacks, and the acks never wait for the AI."""
    ai_port, gemini_port = free_port(), free_port()
    fake_ai = subprocess.Popen(
        [sys.executable, "-m", "local_host.fake_ai", "--openai-port", str(ai_port), "--gemini-port",
         str(gemini_port), "--behavior", "hang"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {"AI_PROVIDER": "openai,offline", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL":
           f"http://127.0.0.1:{ai_port}/v1", **target_env(process_target)}
    try:
        wait_for_port(ai_port)
        run_storm(db_path, 40, env)
        finish_with_sweepers(db_path, process_target, env)
        state = httpx.get(f"http://127.0.0.1:{ai_port}/_state", timeout=5).json()
    finally:
        fake_ai.kill()
        fake_ai.wait(10)
    assert_every_conversation_done(process_target, 40)
    assert state["calls"] >= PROCESSES and state["disconnects"] >= PROCESSES  # it was asked, and hung up on
    # Every delivery was answered 200 (run_storm) while every AI call hung. That the request itself never
    # waits on the AI is checked without a clock (test_webhook_ingest: the request takes no lease, reads no
    # session, queues no reply); how fast the acks are is measured in bench/handoff.py, not asserted here.


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def test_instance_killed_holding_a_lease_mid_message(db_path: Path, process_target: Target, tmp_path: Path,
                                                      caplog) -> None:
    target = process_target
    caplog.set_level(logging.INFO)
    phone = "5215599990000"
    script = ["Hola, el refrigerador no enfría", "10004512", "sí"]
    # 10 s apart: three separate turns (messages sent within TURN_GAP_SECONDS would be read as one)
    messages = [text_message(phone, body, 100 + 10 * i, wamid=f"wamid.CRASH.{i}") for i, body in enumerate(script)]
    for msg in messages:
        put_in_inbox(target, msg)
    ready = tmp_path / "ready"
    lock_timeout_ms = 1500
    proc = mp.get_context("spawn").Process(
        target=sw.hold_lease_and_hang, args=(str(db_path), phone, str(ready), lock_timeout_ms, target_env(target))
    )
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and proc.is_alive(), "worker never reached the confirmation step"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # dies holding the lease, mid-message, nothing committed for step 3
    proc.join(10)

    assert query(target, "SELECT Estado FROM MensajesProcesados ORDER BY WaTimestamp") == [
        ("procesado",), ("procesado",), ("pendiente",)]
    assert query(target, "SELECT COUNT(*) FROM BloqueosConversacion WHERE Clave = ? AND Propietario IS NOT NULL",
                 phone) == [(1,)]

    async def recover() -> tuple[int, int]:
        from tests.webhook_helpers import encode, signed_headers, text_payload

        rt = build_runtime(load_settings(base_env(db_path, LOCK_TIMEOUT=str(lock_timeout_ms), **target_env(target))),
                           handoff=worker_queue())
        async with serving_worker(rt) as queue:
            query(target, "UPDATE MensajesProcesados SET RecibidoEn = 0")
            early = await rt.sweeper.sweep()  # the dead instance's lease is still live: not stalled
            await settle(queue)
            await asyncio.sleep(lock_timeout_ms / 1000 + 0.2)
            late = await rt.sweeper.sweep()  # expired: handed to the worker, taken over, handled
            await settle(queue)
            # Meta redelivers the same message afterwards, through the webhook: counted, not handled again.
            body = encode(text_payload("wamid.CRASH.2", phone, script[2], ts=120))
            assert (await rt.webhook.post(signed_headers(body), body))[0] == 200
            await settle(queue)
        await rt.aclose()
        return early.handed_off, late.handed_off

    early, late = asyncio.run(recover())
    assert (early, late) == (0, 1)
    assert query(target, "SELECT COUNT(*) FROM Reportes") == [(1,)]
    assert query(target, "SELECT COUNT(*) FROM HistorialSesiones WHERE MessageId = 'wamid.CRASH.2'") == [(1,)]
    assert query(target, "SELECT Reintentos FROM MensajesProcesados WHERE MessageId = 'wamid.CRASH.2'") == [(1,)]
    assert query(target, "SELECT Estado FROM SesionesChat") == [("FINALIZADO",)]
    assert "THREAD_LOCK_TIMEOUT" in caplog.text and "*********0000" in caplog.text and phone not in caplog.text
