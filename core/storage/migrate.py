"""Ordered, idempotent migrations for both dialects, recorded in `SchemaVersion`.

SQLite: the app applies `core/storage/schema/sqlite/NNN_*.sql` itself (`python -m core.storage.migrate`,
also run by the local host at start). SQL Server: a DBA runs `sql-scripts/NNN_*.sql` in order with
`sqlcmd -b -i`; `apply_tsql_scripts` does the same through pyodbc for the opt-in test run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path

from core.errors import BotError
from core.storage.database import Database
from core.storage.sqlite import SqliteDatabase, begin_immediate
from core.storage.sqlserver import SqlServerDatabase

ROOT = Path(__file__).resolve().parents[2]
SQLITE_SCHEMA_DIR = Path(__file__).parent / "schema" / "sqlite"
TSQL_SCRIPTS_DIR = ROOT / "sql-scripts"
_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_GO = re.compile(r"^\s*GO\s*$", re.MULTILINE | re.IGNORECASE)
log = logging.getLogger(__name__)

LATEST_VERSION = max(int(m.group(1)) for p in SQLITE_SCHEMA_DIR.glob("*.sql") if (m := _MIGRATION.match(p.name)))


def migrations(directory: Path) -> list[tuple[int, str, Path]]:
    found = [(int(m.group(1)), m.group(2), p) for p in directory.glob("*.sql") if (m := _MIGRATION.match(p.name))]
    return sorted(found)


def split_sqlite_statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip() and not all(
                ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
            ):
                statements.append(current.strip())
            current = ""
    return statements


def migrate_sqlite(db: SqliteDatabase) -> int:
    """Apply pending SQLite migrations, each in its own write transaction; safe to run concurrently."""
    conn = db._connection()
    begin_immediate(conn)  # other processes may be migrating too
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS SchemaVersion (Version INTEGER PRIMARY KEY, Nombre TEXT NOT NULL,"
            " AplicadoEn TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for version, name, path in migrations(SQLITE_SCHEMA_DIR):
        begin_immediate(conn)  # other processes may be migrating too
        try:
            done = conn.execute("SELECT 1 FROM SchemaVersion WHERE Version = ?", (version,)).fetchone()
            if not done:
                for statement in split_sqlite_statements(path.read_text(encoding="utf-8")):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO SchemaVersion (Version, Nombre) VALUES (?, ?)", (version, f"{version:03d}_{name}")
                )
                log.info("Migración aplicada: %03d_%s", version, name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version_sync(db)


def seed_sqlite(db: SqliteDatabase) -> None:
    db.executescript((SQLITE_SCHEMA_DIR / "seed" / "equipos_muestra.sql").read_text(encoding="utf-8"))


def tsql_batches(script: str) -> list[str]:
    return [b.strip() for b in _GO.split(script) if b.strip()]


def apply_tsql_scripts(db: SqlServerDatabase, *, seed: bool = False) -> int:
    """What `sqlcmd -b -i` does for each script, in order (used by the opt-in SQL Server tests): each
    script on its own fresh connection, starting with QUOTED_IDENTIFIER OFF like classic sqlcmd."""
    paths = [p for _, _, p in migrations(TSQL_SCRIPTS_DIR)]
    if seed:
        paths.append(TSQL_SCRIPTS_DIR / "seed" / "equipos_muestra.sql")
    for path in paths:
        db.run_script_like_sqlcmd(tsql_batches(path.read_text(encoding="utf-8")))
    return schema_version_sync(db)


def schema_version_sync(db: Database) -> int:
    return int(db.run_sync(lambda tx: tx.fetch_one("schema_version")["version"], write=False))  # type: ignore[index]


def migration_env(env: Mapping[str, str]) -> dict[str, str]:
    """Migrating reads only the database settings: the WhatsApp secrets the app requires are not needed."""
    unused = {name: "no-se-usa-al-migrar" for name in ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN")
              if not env.get(name, "").strip()}
    return {**env, **unused}


def main(argv: list[str] | None = None) -> int:
    from core.settings import load_settings
    from core.storage import open_database
    from core.telemetry import configure_logging

    parser = argparse.ArgumentParser(description="Apply database migrations")
    parser.add_argument("--seed", action="store_true", help="also load the sample equipment catalog")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        db = open_database(load_settings(migration_env(os.environ)))
        if isinstance(db, SqliteDatabase):
            version = migrate_sqlite(db)
            if args.seed:
                seed_sqlite(db)
        else:
            version = apply_tsql_scripts(db, seed=args.seed)  # type: ignore[arg-type]
    except BotError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    print(f"migrate: {db.describe()} at schema version {version}")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
