"""`/api/metrics`: Prometheus text that parses, counters that move by exactly what happened, and
database-wide gauges (leases, inbox, outbox, AI runs) read at scrape time.

State is created through the storage queries that exist (enqueue_outbound) and, for tables whose
writers live in other modules (leases, inbox, AI runs), with plain sqlite3 as a test fixture.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import render_metrics
from core import events
from core.metrics_export import fresh_db_stats
from core.storage.database import Database
from core.storage.sqlite import SqliteDatabase
from core.storage.stats import OUTBOX_STATES, read_stats
from tests.conftest import free_port
from tests.test_local_host import start_host, wait_ready

NOW_MS = 1_800_000_000_000  # a fixed "now" in epoch ms, so ages are exact


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by (sample name, sorted labels)."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def get(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def enqueue(db: Database, n: int, now_ms: int) -> None:
    def write(tx) -> None:
        for i in range(n):
            tx.execute("enqueue_outbound", {"destinatario": f"52155{i:08d}", "tipo_envio": "text",
                                            "contenido": '{"text": "hola"}', "ahora": now_ms - i * 1000,
                                            "message_id_origen": f"wamid.src{i}", "vence_en": None})

    await db.write(write)


def seed_other_tables(path: Path, now_ms: int) -> None:
    """Leases, inbox and AI runs as their (not yet merged) writers would leave them."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO BloqueosConversacion (Clave, Propietario, ExpiraEn, Token, AdquiridoEn)"
            " VALUES (?, ?, ?, ?, ?)",
            [("5215500000001", "w1", now_ms + 30_000, 1, now_ms), ("5215500000002", "w2", now_ms + 20_000, 4, now_ms),
             ("MX.100", "w1", now_ms + 29_000, 2, now_ms), ("5215500000003", "w3", now_ms - 1, 9, now_ms - 31_000),
             ("5215500000004", None, now_ms - 5_000, 3, None)],
        )
        rows = [(f"wamid.p{i}", "5215500000001", "pendiente", now_ms - 120_000 + i) for i in range(4)]
        rows += [(f"wamid.e{i}", "5215500000002", "error", now_ms - 900_000) for i in range(2)]
        rows += [(f"wamid.ok{i}", "5215500000003", "procesado", now_ms - 5_000_000) for i in range(3)]
        conn.executemany(
            "INSERT INTO MensajesProcesados (MessageId, Telefono, Tipo, Estado, RecibidoEn)"
            " VALUES (?, ?, 'text', ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO EjecucionesIA (Id, Telefono, Estado, CreadoEn, ActualizadoEn)"
            " VALUES (?, '5215500000001', ?, ?, ?)",
            [("resp_1", "in_progress", now_ms - 420_000, now_ms), ("resp_2", "in_progress", now_ms - 10_000, now_ms),
             ("resp_3", "queued", now_ms - 1_000, now_ms), ("resp_4", "completed", now_ms - 999_000, now_ms)],
        )
    conn.close()


def settle_outbox(path: Path) -> None:
    """What the sender would do: one sent, one failed for good, one with an unknown outcome."""
    conn = sqlite3.connect(path)
    with conn:
        ids = [r[0] for r in conn.execute("SELECT Id FROM ColaEnvios ORDER BY Id")]
        for row_id, state in zip(ids, ("enviado", "error", "incierto"), strict=False):
            conn.execute("UPDATE ColaEnvios SET Estado = ? WHERE Id = ?", (state, row_id))
    conn.close()


async def test_stats_on_a_fresh_database(any_db: Database) -> None:
    stats = await read_stats(any_db, NOW_MS)
    assert stats.leases_active == 0 and stats.leases_expired == 0
    assert dict(stats.outbox) == dict.fromkeys(OUTBOX_STATES, 0)
    assert stats.inbox == (("pendiente", 0), ("error", 0)) and stats.inbox_oldest_pending_ms is None
    await enqueue(any_db, 2, NOW_MS)
    await any_db.write(lambda tx: tx.execute("health_probe_insert", {"clave": "probe-metrics", "ahora": NOW_MS}))
    stats = await read_stats(any_db, NOW_MS)
    assert stats.outbox_count("pendiente") == 2 and stats.outbox_oldest_due_ms == NOW_MS - 1000
    assert stats.leases_active == 0  # a lease row without owner is free, not held


async def test_metrics_parse_and_move_under_a_duplicate_and_lock_storm(db_path: Path) -> None:
    db = SqliteDatabase(str(db_path), pool_size=4)
    try:
        before = parse((await render_metrics(db, NOW_MS)).decode())
        assert get(before, "metrics_db_up") == 1
        assert get(before, "thread_locks_active") == 0 and get(before, "outbox_backlog", estado="pendiente") == 0

        await enqueue(db, 5, NOW_MS)
        settle_outbox(db_path)
        seed_other_tables(db_path, NOW_MS)

        # The storm: redeliveries and lease conflicts from many threads at once, as webhook instances do.
        def storm(i: int) -> None:
            events.duplicate_delivery(f"wamid.storm{i % 3}", i, "5215500000001")
            if i % 2 == 0:
                events.lock_busy("5215500000001")
            if i % 5 == 0:
                events.lock_timeout("5215500000002", 30_000, i)
                events.concurrency_retry("commit_transition", "5215500000002", 1, 3, 50)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(storm, range(40)))
        await asyncio.gather(*(asyncio.to_thread(events.ai_timeout, "detectIntent", 3000) for _ in range(3)))

        after = parse((await render_metrics(db, NOW_MS)).decode())
    finally:
        db.close()

    def delta(name: str, **labels: str) -> float:
        return get(after, name, **labels) - get(before, name, **labels)

    assert delta("duplicate_deliveries_total") == 40
    assert delta("race_errors_total") == 8  # the timeouts
    assert delta("lease_busy_total") == 20  # busy leases: normal in bursts, not a race
    assert delta("concurrency_retries_total", operation="commit_transition") == 8
    assert delta("ai_timeouts_total", operation="detectIntent") == 3
    # database-wide gauges, exact
    assert get(after, "thread_locks_active") == 3
    assert get(after, "thread_locks_expired") == 1
    assert get(after, "inbox_backlog", estado="pendiente") == 4
    assert get(after, "inbox_backlog", estado="error") == 2
    assert get(after, "inbox_oldest_pending_age_seconds") == 120
    assert {e: get(after, "outbox_backlog", estado=e) for e in OUTBOX_STATES} == {
        "pendiente": 2, "procesando": 0, "error": 1, "incierto": 1}
    assert ("outbox_backlog", (("estado", "enviado"),)) not in after  # history, not backlog
    assert get(after, "ai_runs_in_flight", estado="in_progress") == 2
    assert get(after, "ai_runs_in_flight", estado="queued") == 1
    assert get(after, "ai_runs_oldest_age_seconds") == 420
    # the same numbers wait for the next Application Insights export
    fresh = {(s.name, s.labels): s.value for s in fresh_db_stats()}
    assert fresh[("outbox_backlog", (("estado", "incierto"),))] == 1 and fresh[("thread_locks_active", ())] == 3


async def test_database_down_still_answers_process_counters(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "never-migrated.sqlite3"), pool_size=1)
    try:
        samples = parse((await render_metrics(db, NOW_MS)).decode())
    finally:
        db.close()
    assert get(samples, "metrics_db_up") == 0
    assert ("race_errors_total", ()) in samples
    assert not any(name == "outbox_backlog" for name, _ in samples)


def test_metrics_endpoint_on_the_local_host(tmp_path: Path) -> None:
    path = tmp_path / "host" / "bot.sqlite3"
    port = free_port()
    proc: subprocess.Popen[str] = start_host(path, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}/api/health", proc)
        now = int(time.time() * 1000)
        seed_other_tables(path, now)
        response = httpx.get(f"http://127.0.0.1:{port}/api/metrics", timeout=10)  # no function key locally
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = parse(response.text)
        assert get(samples, "metrics_db_up") == 1
        assert get(samples, "thread_locks_active") == 3 and get(samples, "thread_locks_expired") == 1
        assert get(samples, "inbox_backlog", estado="pendiente") == 4
        assert get(samples, "outbox_backlog", estado="pendiente") == 0
        assert ("race_errors_total", ()) in samples
    finally:
        proc.terminate()
        proc.wait(10)
