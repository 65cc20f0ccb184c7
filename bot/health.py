"""`GET /api/health`: the database backend and schema version, or 503 with the reason."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from core.clock import system_clock
from core.errors import BotError, SchemaOutdated
from core.metrics import database_wait_exceeded_total
from core.storage.database import Database, Tx
from core.storage.migrate import LATEST_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    backend: str
    schema_version: int | None
    reason: str = ""
    snapshot_reads: bool | None = None  # READ_COMMITTED_SNAPSHOT (SQLite's WAL reads are snapshots too)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ok" if self.ok else "unavailable",
            "backend": self.backend,
            "schema_version": self.schema_version,
            "expected_schema_version": LATEST_VERSION,
        }
        if self.snapshot_reads is not None:
            body["read_committed"] = "snapshot" if self.snapshot_reads else "locking"
        if self.reason:
            body["reason"] = self.reason
        return body


# What anonymous callers read. The driver's own text (paths, server names, users) goes to the log only.
REASON_UNAVAILABLE = "database unavailable"
REASON_READ_ONLY = "database does not accept writes"
# Served, and said: every claim already reads with READCOMMITTEDLOCK, so the locking mode keeps every
# guarantee; plain reads then wait for writers and readers and writers can deadlock (1205, retried).
REASON_LOCKING_READS = ("lecturas con bloqueo: READ_COMMITTED_SNAPSHOT está OFF; el bot funciona con las "
                        "variantes con bloqueo, con más esperas; actívalo: ALTER DATABASE CURRENT SET "
                        "READ_COMMITTED_SNAPSHOT ON")


DEFAULT_WAIT_MS = 5_000


async def check_health(db: Database, *, wait_ms: int = DEFAULT_WAIT_MS) -> Health:
    """Read the schema version, then prove a write lands in the real database (a read-only, full or
    replaced database still answers reads); 503 unless both hold within `wait_ms` (a held write lock
    answers 503 with the reason instead of hanging, then "ok")."""
    try:
        async with asyncio.timeout(wait_ms / 1000):
            return await _check(db)
    except TimeoutError:
        database_wait_exceeded_total.labels(route="health").inc()
        reason = f"base de datos ocupada: sin respuesta en {wait_ms} ms (bloqueo de escritura retenido o base saturada)"
        log.error("Health: %s", reason)
        return Health(False, db.dialect, None, reason)


async def _check(db: Database) -> Health:
    def read(tx: Tx) -> tuple[int, bool]:
        version = int(tx.fetch_one("schema_version")["version"])  # type: ignore[index]
        return version, bool(tx.fetch_one("read_committed_snapshot")["rcsi"])  # type: ignore[index]

    try:
        version, snapshot = await db.read(read)
    except SchemaOutdated as exc:
        log.warning("Health: esquema sin migrar: %s", exc)
        return Health(False, db.dialect, None, "esquema sin migrar: aplica las migraciones")
    except BotError as exc:
        log.warning("Health: base de datos no disponible: %s", exc)
        return Health(False, db.dialect, None, REASON_UNAVAILABLE)
    if version < LATEST_VERSION:
        return Health(False, db.dialect, version, f"schema version {version} < {LATEST_VERSION}: run migrations")
    try:
        await db.write(lambda tx: tx.execute("health_probe", {"ahora": system_clock()}))
        db.check_identity()
    except BotError as exc:
        log.error("Health: la base de datos no acepta escrituras: %s", exc)
        return Health(False, db.dialect, version, REASON_READ_ONLY)
    return Health(True, db.dialect, version, "" if snapshot else REASON_LOCKING_READS, snapshot)
