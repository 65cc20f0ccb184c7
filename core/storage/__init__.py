"""Storage: one interface, two dialects. Everything above this package speaks in domain values."""

from __future__ import annotations

from core.settings import Settings
from core.storage.database import Database


def open_database(settings: Settings) -> Database:
    """SQL Server when `SQL_CONNECTION_STRING` is set, else the embedded SQLite file."""
    if settings.sql_connection_string:
        from core.storage.sqlserver import SqlServerDatabase

        return SqlServerDatabase(settings.sql_connection_string, pool_size=settings.db_pool_size)
    from core.storage.sqlite import SqliteDatabase

    return SqliteDatabase(settings.sqlite_path, pool_size=settings.db_pool_size)
