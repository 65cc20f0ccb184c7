"""Multi-process storm and crash tests: real OS processes sharing one SQLite file, as Function instances do."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from bot.conversation.sweeper import sweep_conversations
from bot.runtime import build_runtime
from core.settings import load_settings
from tests import storm_worker as sw
from tests.conftest import base_env
from tests.conversation_helpers import put_in_inbox, query, text_message

CONVERSATIONS = 210
PROCESSES = 4

pytestmark = pytest.mark.slow


def test_storm_every_conversation_ends_with_exactly_one_report(db_path: Path) -> None:
    ctx = mp.get_context("spawn")
    per_process = sw.shuffled_rounds(CONVERSATIONS, PROCESSES, seed=20261123)
    barrier = ctx.Manager().Barrier(PROCESSES)
    with ctx.Pool(PROCESSES) as pool:
        results = [pool.apply_async(sw.run_instance, (str(db_path), rounds, barrier)) for rounds in per_process]
        delivered = [r.get(timeout=240) for r in results]
    total_deliveries = sum(len(steps) for rounds in per_process for items in rounds for _, steps in items)
    assert sum(delivered) == total_deliveries

    # Whatever a drain's budget left behind, the sweeper finishes (the invariant is "no message lost").
    async def sweep() -> None:
        rt = build_runtime(load_settings(base_env(db_path)))
        for _ in range(20):
            if not query(db_path, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente'")[0][0]:
                break
            query(db_path, "UPDATE MensajesProcesados SET RecibidoEn = 0 WHERE Estado = 'pendiente'")
            await sweep_conversations(rt)
        await rt.aclose()

    asyncio.run(sweep())

    unique_messages = sum(len(sw.script_for(i)) for i in range(CONVERSATIONS))
    assert query(db_path, "SELECT COUNT(*) FROM MensajesProcesados") == [(unique_messages,)]
    assert query(db_path, "SELECT Estado, COUNT(*) FROM MensajesProcesados GROUP BY Estado") == [
        ("procesado", unique_messages)]
    retries = query(db_path, "SELECT SUM(Reintentos) FROM MensajesProcesados")[0][0]
    assert retries == total_deliveries - unique_messages  # every redelivery was counted, none re-handled
    # Each message handled exactly once.
    assert query(db_path, "SELECT COUNT(*), COUNT(DISTINCT MessageId) FROM HistorialSesiones") == [
        (unique_messages, unique_messages)]
    # Every conversation finished with exactly one report.
    assert query(db_path, "SELECT COUNT(*) FROM SesionesChat WHERE Estado = 'FINALIZADO'") == [(CONVERSATIONS,)]
    per_phone = query(db_path, "SELECT Telefono, COUNT(*) FROM Reportes GROUP BY Telefono")
    assert len(per_phone) == CONVERSATIONS and {n for _, n in per_phone} == {1}
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
    # One reply per handled message (no duplicate sends queued).
    assert query(db_path, "SELECT COUNT(*) FROM ColaEnvios") == [(unique_messages,)]


def test_instance_killed_holding_a_lease_mid_message(db_path: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    phone = "5215599990000"
    script = ["Hola, el refrigerador no enfría", "10004512", "sí"]
    messages = [text_message(phone, body, 100 + i, wamid=f"wamid.CRASH.{i}") for i, body in enumerate(script)]
    for msg in messages:
        put_in_inbox(db_path, msg)
    ready = tmp_path / "ready"
    lock_timeout_ms = 1500
    proc = mp.get_context("spawn").Process(
        target=sw.hold_lease_and_hang, args=(str(db_path), phone, str(ready), lock_timeout_ms)
    )
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and proc.is_alive(), "worker never reached the confirmation step"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # dies holding the lease, mid-message, nothing committed for step 3
    proc.join(10)

    assert query(db_path, "SELECT Estado FROM MensajesProcesados ORDER BY WaTimestamp") == [
        ("procesado",), ("procesado",), ("pendiente",)]
    assert query(db_path, "SELECT Propietario IS NOT NULL FROM BloqueosConversacion WHERE Clave = ?", phone) == [(1,)]

    async def recover() -> tuple[int, int]:
        rt = build_runtime(load_settings(base_env(db_path, LOCK_TIMEOUT=str(lock_timeout_ms))))
        query(db_path, "UPDATE MensajesProcesados SET RecibidoEn = 0")
        early = await sweep_conversations(rt)  # the dead instance's lease is still live: hands off
        await asyncio.sleep(lock_timeout_ms / 1000 + 0.2)
        late = await sweep_conversations(rt)  # expired: taken over, message handled
        put_in_inbox(db_path, messages[2])  # Meta redelivers the same message afterwards
        from bot.conversation.drain import drain_conversation

        await drain_conversation(rt, phone, time.monotonic() + 10)
        await rt.aclose()
        return early.messages, late.messages

    early, late = asyncio.run(recover())
    assert (early, late) == (0, 1)
    assert query(db_path, "SELECT COUNT(*) FROM Reportes") == [(1,)]
    assert query(db_path, "SELECT COUNT(*) FROM HistorialSesiones WHERE MessageId = 'wamid.CRASH.2'") == [(1,)]
    assert query(db_path, "SELECT Reintentos FROM MensajesProcesados WHERE MessageId = 'wamid.CRASH.2'") == [(1,)]
    assert query(db_path, "SELECT Estado FROM SesionesChat") == [("FINALIZADO",)]
    assert "THREAD_LOCK_TIMEOUT" in caplog.text and "*********0000" in caplog.text and phone not in caplog.text
