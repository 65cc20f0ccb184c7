"""The storage contract, run against every configured backend (SQLite always, SQL Server opt-in)."""

from __future__ import annotations

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


def _migrate_in_process(path: str) -> int:
    db = SqliteDatabase(path, pool_size=1)
    try:
        return migrate_sqlite(db)
    finally:
        db.close()


def test_concurrent_migrations_from_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "race.sqlite3")
    with mp.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_migrate_in_process, [path] * 4)
    assert versions == [LATEST_VERSION] * 4
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
    assert not health.ok and "not migrated" in health.reason
    db.close()
