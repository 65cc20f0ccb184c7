"""The storage contract, run against every configured backend (SQLite always, SQL Server opt-in)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from pathlib import Path

import pytest

from core.errors import DatabaseUnavailable, SchemaOutdated
from core.storage.database import Database
from core.storage.migrate import LATEST_VERSION, migrate_sqlite, schema_version_sync
from core.storage.sqlite import SqliteDatabase


async def test_ping_and_schema_version(any_db: Database) -> None:
    assert await any_db.read(lambda tx: tx.fetch_one("ping")) == {"ok": 1}
    version = await any_db.read(lambda tx: tx.fetch_one("schema_version")["version"])
    assert version == LATEST_VERSION


async def test_failed_transaction_leaves_nothing(any_db: Database) -> None:
    def half_then_fail(tx):
        tx.execute("health_probe_insert", {"clave": "probe", "ahora": 1})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await any_db.write(half_then_fail)
    assert await any_db.read(lambda tx: tx.fetch_one("health_probe_get", {"clave": "probe"})) is None


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "m.sqlite3"), pool_size=1)
    assert migrate_sqlite(db) == LATEST_VERSION
    assert migrate_sqlite(db) == LATEST_VERSION
    db.close()


def _migrate_and_seed(paths: list[str]) -> list[int]:
    """What every local host does at start, on each file in turn."""
    from core.storage.migrate import seed_sqlite

    versions = []
    for path in paths:
        db = SqliteDatabase(path, pool_size=1)
        try:
            versions.append(migrate_sqlite(db))
            seed_sqlite(db)
        finally:
            db.close()
    return versions


def test_concurrent_migrations_from_processes(tmp_path: Path) -> None:
    """Four processes start on the same new files at once (a new file's switch to WAL, the version table,
    each migration, the seed): each one waits for the others, none fails."""
    paths = [str(tmp_path / f"race{i}.sqlite3") for i in range(6)]
    with mp.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_migrate_and_seed, [paths] * 4)
    assert versions == [[LATEST_VERSION] * len(paths)] * 4
    for path in paths:
        db = SqliteDatabase(path, pool_size=1)
        rows = db.run_sync(lambda tx: tx.fetch_one("schema_version"), write=False)
        assert rows == {"version": LATEST_VERSION}
        db.close()


def test_unmigrated_database_is_reported(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "empty.sqlite3"), pool_size=1)
    with pytest.raises(SchemaOutdated):
        schema_version_sync(db)
    db.close()


def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    db = SqliteDatabase(str(tmp_path / "dir"), pool_size=1)  # a directory is not a database
    with pytest.raises(DatabaseUnavailable):
        schema_version_sync(db)
    db.close()


async def test_health_reports_503_reason_when_database_is_down(tmp_path: Path) -> None:
    from bot.health import check_health

    (tmp_path / "dir").mkdir()
    db = SqliteDatabase(str(tmp_path / "dir"), pool_size=1)
    health = await check_health(db)
    assert not health.ok and "unavailable" in health.reason
    db.close()
    db = SqliteDatabase(str(tmp_path / "empty.sqlite3"), pool_size=1)
    health = await check_health(db)
    assert not health.ok and "sin migrar" in health.reason
    db.close()


async def test_emoji_heavy_text_fits_its_columns_in_utf16_units(any_db: Database) -> None:
    """NVARCHAR(n) counts UTF-16 units and an emoji takes two: cutting by characters overflowed (Msg 2628)."""
    from core.storage.conversations import (
        MAX_DESCRIPTION,
        MAX_HISTORY_DESCRIPTION,
        ReportWrite,
        TransitionWrite,
        commit_transition,
    )
    from core.storage.text import fit_units, utf16_units

    assert fit_units("a🧊", 2) == "a" and fit_units("🧊🧊", 3) == "🧊" and fit_units("ñ" * 5, 5) == "ñ" * 5
    description = "🧊🚚" * 1_500 + "fin"  # 6,003 UTF-16 units, 3,003 characters
    write = TransitionWrite(
        key="5215500000777", expected_version=0, state_from="INICIO", state_to="FINALIZADO", data={},
        equipment_id=None, origin="USUARIO", description="🧊" * 400, now_ms=1,
        message_id="wamid.EMOJI1", report=ReportWrite("VEHICULO", None, description, {}), replies=(),
    )
    report_id = await commit_transition(any_db, write, None)
    stored = await any_db.read(lambda tx: tx.fetch_one("console_reports", {"telefono": "5215500000777", "limite": 5}))
    assert report_id is not None and stored is not None
    text = stored["Descripcion"]
    assert utf16_units(text) <= MAX_DESCRIPTION and text == fit_units(description, MAX_DESCRIPTION)
    assert text.encode("utf-8")  # no lone surrogate: it is valid text
    assert MAX_HISTORY_DESCRIPTION < utf16_units(write.description)  # the history line was cut as well


async def test_a_retried_claim_gets_its_own_rows_back(any_db: Database) -> None:
    """A claim whose commit answer was lost is retried with the same token: it must not claim more."""
    from core.storage.outbox import claim_outbound
    from tests.outbox_support import queue_texts

    queue_texts(any_db, [("5215500001001", "a"), ("5215500001002", "b"), ("5215500001003", "c")])
    first = await claim_outbound(any_db, limit=2, now_ms=10, token="tok-retry")
    again = await claim_outbound(any_db, limit=2, now_ms=11, token="tok-retry")  # the retry
    assert [c.id for c in again] == [c.id for c in first] and [c.attempts for c in again] == [1, 1]
    other = await claim_outbound(any_db, limit=5, now_ms=12, token="tok-other")
    assert len(other) == 1 and other[0].id not in {c.id for c in first}


async def test_a_retried_lease_acquire_recognises_its_own_lease(any_db: Database) -> None:
    from core.storage.leases import acquire_lease

    first = await acquire_lease(any_db, "5215500001009", "owner-1", 30_000, 100)
    again = await acquire_lease(any_db, "5215500001009", "owner-1", 30_000, 101)  # the retry
    thief = await acquire_lease(any_db, "5215500001009", "owner-2", 30_000, 102)
    assert first is not None and again is not None and again.token == first.token and thief is None


async def test_identifiers_that_differ_only_in_case_are_different(any_db: Database) -> None:
    """Base64 wamids and usernames are case-sensitive: a case-insensitive comparison would take a new
    message for a redelivery (and lose it) and give two users one lease."""
    import time

    from bot.messages import InboundMessage, MessageKind
    from core.storage.inbox import register_delivery
    from core.storage.leases import acquire_lease

    now = int(time.time() * 1000)
    upper, lower = (InboundMessage(wamid=w, conversation_key=k, kind=MessageKind.TEXT, timestamp=1763880000,
                                   phone=None, text="hola")
                    for w, k in (("wamid.HBgLNTIxNTUAbC==", "MX.AbCdEf"), ("wamid.HBgLNTIxNTUaBc==", "MX.aBcDeF")))
    first, second = await register_delivery(any_db, upper, now), await register_delivery(any_db, lower, now)
    assert not first.is_duplicate and not second.is_duplicate
    assert await acquire_lease(any_db, "MX.AbCdEf", "owner-1", 30_000, now) is not None
    assert await acquire_lease(any_db, "MX.aBcDeF", "owner-2", 30_000, now) is not None


async def test_a_status_that_beat_its_send_is_applied_by_the_sweep(any_db: Database) -> None:
    """Under read-committed snapshot a `failed` status can be registered while the send's wamid is not yet
    visible, and the send's commit cannot see the status either: neither applies it. Played here in that
    order on purpose; the outbox sweep's reconcile pass must catch the row up."""
    from core.storage.inbox import register_status_tx
    from core.storage.outbox import claim_outbound, get_outbound, reconcile_delivery_statuses
    from core.whatsapp.status import StatusUpdate
    from tests.outbox_support import queue_texts

    queue_texts(any_db, [("5215500002001", "hola")])
    failed = StatusUpdate(wamid="wamid.RACE1", status="failed", timestamp=1, recipient="5215500002001",
                          error_code=131026, error_title="Message undeliverable")
    await any_db.write(lambda tx: register_status_tx(tx, failed, 5))  # finds no row with that wamid yet
    # The send's mark, without the catch-up (what a snapshot read would have seen):
    (claim,) = await claim_outbound(any_db, limit=1, now_ms=6)
    marked = {"id": claim.id, "token_reclamo": claim.token, "wamid": "wamid.RACE1", "ahora": 7}
    assert await any_db.write(lambda tx: tx.execute("mark_outbound_sent", marked)) == 1
    assert await reconcile_delivery_statuses(any_db, since_ms=0) == 1
    row = await get_outbound(any_db, claim.id)
    assert row is not None and row.delivery_state == "failed" and "131026" in (row.last_error or "")
    assert await reconcile_delivery_statuses(any_db, since_ms=0) == 0  # once


# One plausible value per parameter name used by any named query (a new name must be added here).
SAMPLE_PARAMS: dict[str, object] = {
    "vence_en": 1800086400000, "descontar": 0, "numero_negocio": "106540352242922", "mili_tokens": 20000,
    "numero_predeterminado": "106540352242922",
    "pausa_hasta": 0,
    "ahora": 1800000000000, "antes_fecha": "2000-01-01 00:00:00", "antes_ms": 1, "campana": "prueba",
    "clave": "5215500009999", "clave_delivered": "wamid.X:delivered", "clave_failed": "wamid.X:failed",
    "clave_read": "wamid.X:read", "clave_sent": "wamid.X:sent", "codigo": "10004512", "contenido": '{"body":"x"}',
    "conversacion_id": "conv_1", "datos": "{}", "descripcion": "prueba", "descripcion_historial": "prueba", "desde": 0,
    "desde_id": 0, "hasta_id": 10,
    "destinatario": "5215500009999", "ejecucion_id": "run_contract", "equipo_id": None, "error": "prueba",
    "estado": "pendiente", "estado_anterior": "INICIO", "estado_entrega": "sent", "estado_nuevo": "INICIO",
    "estado_sesion": "INICIO", "expira": 1800000030000, "id": 1, "limite": 10, "max_intentos": 5,
    "mensaje_origen": "wamid.CONTRACT", "message_id": "wamid.CONTRACT", "message_id_origen": None, "n": 10,
    "numero": "RPT-999999", "origen": "SISTEMA", "patron": "%", "payload": "{}", "procesado_en": None,
    "propietario": "contract", "proximo_intento": 0, "rango": 1, "recibido_antes": 1, "reporte_id": None,
    "resultado": None, "telefono": "5215500009999", "tipo": "text", "tipo_envio": "text", "tipo_equipo": "VEHICULO",
    "token": 1, "token_reclamo": "tok-contract", "ultimo_error": None, "version_esperada": 1, "wa_timestamp": 1,
    "wamid": "wamid.X", "estado_reporte": "asignado", "estado_reporte_anterior": "abierto", "nota": "prueba",
    "origen_reporte": "MANTENIMIENTO", "placa": "ABC1234",
}
SAMPLE_PARAMS.update({  # evidence.sql
    "media_id": "1234567890", "tipo_evidencia": "image", "mime": "image/jpeg", "sha256": "abc",
    "nombre_archivo": None, "ruta": "evidencias/x.jpg", "tamano": 10, "transcripcion": "prueba",
})


NEEDS_A_REPORT = {"report_history_insert"}


class _RolledBack(Exception):
    pass


async def test_every_named_query_runs(any_db: Database) -> None:
    """Each named query of the dialect executes against the real schema (rolled back afterwards): a typo,
    a missing column or a parameter the SQL does not declare fails here, in both dialects."""
    failures: list[str] = []
    for name, query in sorted(any_db.queries.items()):
        missing = [p for p in query.params if p not in SAMPLE_PARAMS]
        assert not missing, f"{name}: add sample values for {missing}"

        def run(tx, name: str = name) -> None:
            params = SAMPLE_PARAMS
            if name in NEEDS_A_REPORT:  # a NOT NULL foreign key: the parent row first, in the same transaction
                params = {**SAMPLE_PARAMS, "reporte_id": int(tx.fetch_one("report_insert", SAMPLE_PARAMS)["id"])}
            tx.fetch_all(name, params)  # statements without rows answer []
            raise _RolledBack

        try:
            await any_db.write(run)
        except _RolledBack:
            continue
        except Exception as exc:  # collected, so one run names every broken query
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert failures == []



async def test_a_timed_out_lease_sweep_frees_nothing_and_does_not_raise(db_path: Path, caplog) -> None:
    """The statement is really cancelled (SQLite's progress handler interrupts it, as SQL Server's query
    timeout does): the sweep logs it and goes on, and the next run frees the lease."""
    from core.storage.leases import acquire_lease, clear_expired_leases
    from core.storage.sqlite import SqliteDatabase

    db = SqliteDatabase(str(db_path), pool_size=1)
    try:
        assert await acquire_lease(db, "5215500000009", "muerto", 1_000, 1_000) is not None
        loop = asyncio.get_running_loop()

        def interrupt_every_statement(on: bool) -> None:  # on the pool's only thread, whose connection it is
            db._connection().set_progress_handler((lambda: 1) if on else None, 1)

        await loop.run_in_executor(db._executor, interrupt_every_statement, True)
        assert await clear_expired_leases(db, 10_000) == []
        assert "BLOQUEOS_VENCIDOS_SIN_LIBERAR" in caplog.text
        await loop.run_in_executor(db._executor, interrupt_every_statement, False)
        assert [key for key, _ in await clear_expired_leases(db, 10_000)] == ["5215500000009"]
    finally:
        db.close()


async def test_health_says_how_plain_reads_behave(any_db: Database) -> None:
    """READ_COMMITTED_SNAPSHOT is read at every health check: the bot serves either way and says which."""
    from bot.health import REASON_LOCKING_READS, Health, check_health

    health = await check_health(any_db)
    assert health.ok and isinstance(health.snapshot_reads, bool)
    assert health.as_dict()["read_committed"] == ("snapshot" if health.snapshot_reads else "locking")
    assert (health.reason == "") is health.snapshot_reads
    if any_db.dialect == "sqlite":
        assert health.snapshot_reads  # WAL readers read the last committed snapshot
    locking = Health(True, "tsql", LATEST_VERSION, REASON_LOCKING_READS, False).as_dict()
    assert locking["status"] == "ok" and "READ_COMMITTED_SNAPSHOT" in str(locking["reason"])


async def test_a_purged_lease_row_comes_back_with_a_higher_token(any_db: Database) -> None:
    """Retention deletes idle lease rows; the fencing token of the row that replaces one starts at the
    clock, above every token the deleted row reached."""
    from core.storage.inspection import get_lease
    from core.storage.leases import acquire_lease, release_lease

    day = 86_400_000
    first = await acquire_lease(any_db, "5215500007777", "a", 30_000, 1_000 * day)
    assert first is not None and first.token == 1_000 * day
    again = await acquire_lease(any_db, "5215500007777", "b", 30_000, 1_000 * day + 60_000)  # first expired
    assert again is not None and again.token == first.token + 1
    await release_lease(any_db, again)
    purged = await any_db.write(lambda tx: tx.execute("purge_leases", {"antes_ms": 1_008 * day, "n": 10}))
    assert purged == 1 and await get_lease(any_db, "5215500007777") is None
    back = await acquire_lease(any_db, "5215500007777", "c", 30_000, 1_008 * day)
    assert back is not None and back.token > again.token
