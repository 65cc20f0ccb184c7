"""Storage: one interface, two dialects. Everything above this package speaks in domain values."""

from __future__ import annotations

from core.errors import SettingsError
from core.settings import Settings
from core.storage.database import Database


class SqliteOnAzure(SettingsError):
    """On Azure the embedded file is never the database: each instance would hold its own, lost on restart.
    Its reason names no secret, so health shows it to anonymous callers."""

    def __init__(self) -> None:
        super().__init__("SQL_CONNECTION_STRING", "es obligatoria en Azure (WEBSITE_INSTANCE_ID definido): "
                         "SQLite no se usa allí, cada instancia tendría su propio archivo")


def open_database(settings: Settings) -> Database:
    """SQL Server when `SQL_CONNECTION_STRING` is set, else the embedded SQLite file (never on Azure)."""
    if settings.on_azure and not settings.sql_connection_string:
        raise SqliteOnAzure
    if settings.sql_connection_string:
        from core.storage.sql_connection import sql_authentication
        from core.storage.sqlserver import SqlServerDatabase

        sql_authentication(settings.sql_connection_string)  # a malformed sign-in fails here, naming the setting

        return SqlServerDatabase(settings.sql_connection_string, pool_size=settings.db_pool_size)
    from core.storage.sqlite import SqliteDatabase

    return SqliteDatabase(settings.sqlite_path, pool_size=settings.db_pool_size)
