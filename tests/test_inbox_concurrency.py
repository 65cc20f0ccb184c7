"""One wamid delivered 100 times at once, from threads of this process and from two other OS
processes, each on its own connection: exactly one ledger row, Reintentos = 99, one pending message,
and every delivery got a distinct retry number (the statement is atomic, not read-then-write)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.messages import InboundMessage, MessageKind
from core.errors import StorageError
from core.storage.database import Database
from core.storage.inbox import register_delivery
from core.storage.inspection import get_inbox_row, register_status
from core.whatsapp.status import StatusUpdate
from tests.conversation_helpers import SqlServer, Target, open_db, query

WAMID = "wamid.STORM0001"
IN_PROCESS = 40
PER_CHILD = 30
CHILDREN = 2


def _message(wamid: str = WAMID) -> InboundMessage:
    return InboundMessage(wamid=wamid, conversation_key="5215512345678", kind=MessageKind.TEXT,
                          timestamp=1763880000, phone="5215512345678", text="no enfría")


async def _storm(db: Database, n: int) -> list[tuple[bool, int]]:
    now = int(time.time() * 1000)
    regs = await asyncio.gather(*(register_delivery(db, _message(), now) for _ in range(n)))
    return [(r.is_duplicate, r.retry_count) for r in regs]


def _child(target: Target, n: int, barrier: Any, results: Any) -> None:
    db = open_db(target, pool_size=n)  # n worker threads, one connection each
    try:
        barrier.wait(timeout=60)
        results.put(asyncio.run(_storm(db, n)))
    except BaseException as exc:
        results.put(repr(exc))
        raise
    finally:
        db.close()


@pytest.mark.timeout(120)
def test_hundred_concurrent_deliveries_from_threads_and_processes(process_target: Target) -> None:
    """Insert first, a racing copy's duplicate key counted as a redelivery: on SQL Server (opt-in) the
    copies really race past NOT EXISTS and meet at the unique key."""
    target = process_target if isinstance(process_target, SqlServer) else str(process_target)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(CHILDREN + 1)
    results = ctx.Queue()
    children = [ctx.Process(target=_child, args=(target, PER_CHILD, barrier, results)) for _ in range(CHILDREN)]
    for child in children:
        child.start()
    db = open_db(target, pool_size=IN_PROCESS)
    try:
        barrier.wait(timeout=60)  # everyone starts together once the children have imported
        outcomes = asyncio.run(_storm(db, IN_PROCESS))
        for _ in children:
            got = results.get(timeout=60)
            assert isinstance(got, list), got
            outcomes += got
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        row = asyncio.run(get_inbox_row(db, WAMID))
    finally:
        db.close()
        for child in children:
            if child.is_alive():
                child.kill()

    assert len(outcomes) == 100
    assert sum(not dup for dup, _ in outcomes) == 1
    assert sorted(n for _, n in outcomes) == list(range(100))  # each delivery saw its own increment
    assert query(target, "SELECT COUNT(*) FROM MensajesProcesados") == [(1,)]
    assert query(target, "SELECT COUNT(*) FROM MensajesProcesados WHERE Estado = 'pendiente'") == [(1,)]
    assert row is not None and row.redeliveries == 99 and row.state == "pendiente" and row.last_redelivery_ms


async def test_register_contract(any_db: Database) -> None:
    """The same answers from both dialects (SQL Server when SQLSERVER_TEST_CONNECTION_STRING is set)."""
    now = int(time.time() * 1000)
    wamid = f"wamid.CONTRACT{now}"
    first = await register_delivery(any_db, _message(wamid), now)
    second = await register_delivery(any_db, _message(wamid), now + 5)
    assert (first.is_duplicate, first.retry_count) == (False, 0)
    assert (second.is_duplicate, second.retry_count) == (True, 1)
    row = await get_inbox_row(any_db, wamid)
    assert row is not None and (row.state, row.redeliveries, row.last_redelivery_ms) == ("pendiente", 1, now + 5)
    assert InboundMessage.from_json(row.payload or "") == _message(wamid)

    status = StatusUpdate(wamid=wamid, status="delivered", timestamp=1763880011, recipient="5215512345678")
    s1 = await register_status(any_db, status, now)
    s2 = await register_status(any_db, status, now)
    assert (s1.is_duplicate, s1.retry_count, s1.outbound_updated) == (False, 0, False)  # no outbound row
    assert (s2.is_duplicate, s2.retry_count) == (True, 1)
    srow = await get_inbox_row(any_db, f"{wamid}:delivered")
    assert srow is not None and srow.state == "procesado" and srow.kind == "status" and srow.processed_ms == now


async def test_group_commit_answers_each_post_its_own_registrations(sqlite_db: Database) -> None:
    """Concurrent POSTs share transactions in the registrar; each still gets exactly its own answers."""
    from core.storage.inbox import InboxRegistrar

    registrar = InboxRegistrar(sqlite_db, max_posts=7, max_in_flight=3)  # small groups, flushed side by side
    now = int(time.time() * 1000)
    posts = [[_message(f"wamid.G{i % 20}"), _message(f"wamid.H{i}")] for i in range(60)]
    results = await asyncio.gather(*(registrar.register(p, [], now) for p in posts))
    firsts = [r.messages[0] for r in results]
    assert sum(not r.is_duplicate for r in firsts) == 20  # 20 distinct G wamids, each new exactly once
    for g in range(20):
        counts = sorted(firsts[i].retry_count for i in range(60) if i % 20 == g)
        assert counts == [0, 1, 2]
    assert all(not r.messages[1].is_duplicate and r.messages[1].retry_count == 0 for r in results)
    row = await get_inbox_row(sqlite_db, "wamid.G5")
    assert row is not None and row.redeliveries == 2


class _Broken:
    """A message whose serialisation fails: a programming error inside a shared transaction."""

    wamid, conversation_key, kind, timestamp = "wamid.BROKEN", "5215512345678", "text", 1

    def to_json(self) -> str:
        raise RuntimeError("cannot serialise")


async def test_one_failing_post_does_not_fail_its_group(sqlite_db: Database) -> None:
    from core.storage.inbox import InboxRegistrar

    registrar = InboxRegistrar(sqlite_db)
    now = int(time.time() * 1000)
    good = [registrar.register([_message(f"wamid.OK{i}")], [], now) for i in range(5)]
    bad = registrar.register([_message("wamid.WITHBAD"), _Broken()], [], now)
    outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(outcomes[-1], RuntimeError)
    assert all(not isinstance(o, BaseException) and not o.messages[0].is_duplicate for o in outcomes[:-1])
    for i in range(5):
        assert await get_inbox_row(sqlite_db, f"wamid.OK{i}") is not None
    assert await get_inbox_row(sqlite_db, "wamid.WITHBAD") is None  # its POST rolled back whole


async def test_a_duplicate_key_fails_only_its_statement(any_db: Database) -> None:
    """What the dedup relies on, in both dialects: the duplicate insert answers None and the same
    transaction goes on and commits its other writes."""
    now = int(time.time() * 1000)

    def run(tx) -> tuple[object, object]:
        first = tx.insert_unless_duplicate("health_probe_insert", {"clave": "probe-dup", "ahora": now})
        second = tx.insert_unless_duplicate("health_probe_insert", {"clave": "probe-dup", "ahora": now})
        tx.execute("health_probe_insert", {"clave": "probe-after", "ahora": now})
        return first, second

    assert await any_db.write(run) == (None, None)  # an INSERT without OUTPUT answers no row either way
    found = await any_db.read(lambda tx: [tx.fetch_one("health_probe_get", {"clave": k}) for k in
                                          ("probe-dup", "probe-after")])
    assert all(found)
    with pytest.raises(StorageError, match=r"(?i)unique|2627|2601"):  # outside the helper it still raises
        await any_db.write(lambda tx: tx.execute("health_probe_insert", {"clave": "probe-dup", "ahora": now}))


def test_merge_keeps_its_terminating_semicolon() -> None:
    """SQL Server rejects a MERGE without `;` (error 10713); the loader strips it from everything else."""
    from core.storage.queries import load_queries

    assert load_queries("tsql")["lease_acquire"].sql.rstrip().endswith(";")
    assert not load_queries("tsql")["record_delivery_status"].sql.rstrip().endswith(";")
    assert not load_queries("tsql")["register_delivery"].sql.rstrip().endswith(";")
    assert not load_queries("sqlite")["register_delivery"].sql.rstrip().endswith(";")


async def test_caller_arriving_as_a_flusher_finishes_is_not_stranded(sqlite_db: Database) -> None:
    """Probe every loop step around the end of a flush: no registration may wait forever."""
    from core.storage.inbox import InboxRegistrar

    registrar = InboxRegistrar(sqlite_db)
    now = int(time.time() * 1000)

    async def late(i: int, steps: int) -> None:
        for _ in range(steps):
            await asyncio.sleep(0)
        await registrar.register([_message(f"wamid.LATE{i}")], [], now)

    async with asyncio.timeout(20):
        for i in range(120):
            await asyncio.gather(registrar.register([_message(f"wamid.EARLY{i}")], [], now), late(i, i % 12))
    assert await get_inbox_row(sqlite_db, "wamid.LATE119") is not None


async def test_status_that_beat_the_send_is_applied_when_the_wamid_is_stored(sqlite_db: Database,
                                                                             db_path: Path) -> None:
    """`delivered` arrives before the send's answer is committed; storing the wamid catches it up."""
    from core.storage.inbox import apply_recorded_status_tx

    now = int(time.time() * 1000)
    for name in ("sent", "delivered"):
        reg = await register_status(sqlite_db, StatusUpdate("wamid.EARLY", name, 1763880011), now)
        assert not reg.outbound_updated  # no outbound row names that wamid yet
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("INSERT INTO ColaEnvios (Destinatario, Contenido, Estado, WamidEnviado) "
                     "VALUES ('5215512345678', '{}', 'enviado', 'wamid.EARLY')")
    assert await sqlite_db.write(lambda tx: apply_recorded_status_tx(tx, "wamid.EARLY")) == "delivered"
    assert await sqlite_db.write(lambda tx: apply_recorded_status_tx(tx, "wamid.NONE")) is None
    with closing(sqlite3.connect(db_path)) as conn, conn:
        assert conn.execute("SELECT EstadoEntrega FROM ColaEnvios WHERE WamidEnviado = 'wamid.EARLY'"
                            ).fetchone()[0] == "delivered"


async def test_cancelled_caller_does_not_cancel_its_group(sqlite_db: Database) -> None:
    from core.storage.inbox import InboxRegistrar

    registrar = InboxRegistrar(sqlite_db)
    now = int(time.time() * 1000)
    first = asyncio.ensure_future(registrar.register([_message("wamid.CAN1")], [], now))
    second = asyncio.ensure_future(registrar.register([_message("wamid.CAN2")], [], now))
    await asyncio.sleep(0)
    first.cancel()
    assert not (await second).messages[0].is_duplicate
    assert first.cancelled()
    for _ in range(50):  # the shared transaction commits the cancelled caller's row too: it was queued
        if await get_inbox_row(sqlite_db, "wamid.CAN1") is not None:
            break
        await asyncio.sleep(0.01)
    assert await get_inbox_row(sqlite_db, "wamid.CAN1") is not None


def _hold_write_lock(path: Path, started: Any, release: Any, outcome: list[bool]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    outcome.append(release.wait(20))  # False: nobody released us, i.e. the caller blocked on the lock
    conn.execute("COMMIT")
    conn.close()


async def test_inline_write_never_waits_for_another_writer(sqlite_db: Database, db_path: Path) -> None:
    """`try_write_now` runs on the loop thread only when the lock is free; else the pool path waits instead."""
    import threading

    from core.storage.inbox import InboxRegistrar, register_message_tx

    now = int(time.time() * 1000)
    done, reg = sqlite_db.try_write_now(lambda tx: register_message_tx(tx, _message("wamid.INL1"), now))
    assert done and reg is not None and not reg.is_duplicate

    started, release, outcome = threading.Event(), threading.Event(), []
    holder = threading.Thread(target=_hold_write_lock, args=(db_path, started, release, outcome))
    holder.start()
    try:
        assert started.wait(10)
        # Returns while the other writer still holds the lock (it is released only afterwards).
        done, reg = sqlite_db.try_write_now(lambda tx: register_message_tx(tx, _message("wamid.INL2"), now))
        assert (done, reg) == (False, None)
        # The registrar falls back to the pool, which waits for the lock and then registers.
        pending = asyncio.ensure_future(InboxRegistrar(sqlite_db).register([_message("wamid.INL2")], [], now))
        await asyncio.sleep(0.05)
        assert not pending.done()
        release.set()
        result = await pending
        assert not result.messages[0].is_duplicate
    finally:
        release.set()
        holder.join()
    assert outcome == [True]
    assert await get_inbox_row(sqlite_db, "wamid.INL2") is not None
