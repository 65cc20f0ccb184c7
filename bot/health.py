"""`GET /api/health`: the database backend and schema version, or 503 with the reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import BotError
from core.storage.database import Database
from core.storage.migrate import LATEST_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    backend: str
    schema_version: int | None
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ok" if self.ok else "unavailable",
            "backend": self.backend,
            "schema_version": self.schema_version,
            "expected_schema_version": LATEST_VERSION,
        }
        if self.reason:
            body["reason"] = self.reason
        return body


async def check_health(db: Database) -> Health:
    try:
        version = await db.read(lambda tx: int(tx.fetch_one("schema_version")["version"]))  # type: ignore[index]
    except BotError as exc:
        log.warning("Health: base de datos no disponible: %s", exc)
        return Health(False, db.dialect, None, str(exc))
    if version < LATEST_VERSION:
        return Health(False, db.dialect, version, f"schema version {version} < {LATEST_VERSION}: run migrations")
    return Health(True, db.dialect, version)
