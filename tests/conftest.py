"""Shared fixtures: a fresh SQLite database per test copied from a migrated template, settings, runtime."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from core.clock import system_clock
from core.settings import Settings, load_settings
from core.storage.database import Database
from core.storage.migrate import apply_tsql_scripts, migrate_sqlite, seed_sqlite
from core.storage.sqlite import SqliteDatabase

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "whatsapp"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
SQLSERVER_ENV = "SQLSERVER_TEST_CONNECTION_STRING"


def base_env(db_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_ACCESS_TOKEN": "test-access-token",
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "SQLITE_PATH": str(db_path),
        "AI_PROVIDER": "offline",
        # Loopback only, nothing listening (discard port): tests that send start their own fake Graph API.
        "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9/v23.0",
    }
    env.update(extra)
    return env


class ShiftedClock:
    """The system clock moved by `offset_ms`: a test runs the app at a later time by setting it."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def __call__(self) -> int:
        return system_clock() + self.offset_ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_triggers() -> dict[str, object]:
    """Each registered function's trigger. Computed once: azure-functions' `get_functions()` registers the
    blueprints again on every call, so a second call on the same app raises 'not a unique function name'."""
    from function_app import app

    return {f.get_function_name(): f.get_trigger() for f in app.get_functions()}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    db = SqliteDatabase(str(path), pool_size=1)
    migrate_sqlite(db)
    seed_sqlite(db)
    db._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def db_path(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "bot.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return load_settings(base_env(db_path))


@pytest.fixture
def sqlite_db(db_path: Path) -> Iterator[SqliteDatabase]:
    db = SqliteDatabase(str(db_path), pool_size=4)
    yield db
    db.close()


# Every table a test writes, children before parents; the catalog (Equipos) and SchemaVersion stay.
_SQLSERVER_DATA_TABLES = ("HistorialSesiones", "HistorialReportes", "Evidencias", "Reportes", "SesionesChat",
                          "MensajesChat",
                          "MensajesProcesados", "ColaEnvios", "BloqueosConversacion", "EjecucionesIA", "SondaSalud")


def _clear_sqlserver_data(connection_string: str) -> None:
    """A test starts from empty tables, as on its fresh SQLite copy; report numbers start at 1 again."""
    import pyodbc

    with closing(pyodbc.connect(connection_string, autocommit=True)) as conn:
        for table in _SQLSERVER_DATA_TABLES:
            conn.execute(f"DELETE FROM dbo.{table}")
        conn.execute("IF EXISTS (SELECT 1 FROM sys.identity_columns WHERE object_id = OBJECT_ID(N'dbo.Reportes')"
                     " AND last_value IS NOT NULL) DBCC CHECKIDENT (N'dbo.Reportes', RESEED, 0) WITH NO_INFOMSGS")


def _sqlserver_db() -> Database:
    from core.storage.sqlserver import SqlServerDatabase

    db = SqlServerDatabase(os.environ[SQLSERVER_ENV], pool_size=4)
    apply_tsql_scripts(db, seed=True)
    _clear_sqlserver_data(os.environ[SQLSERVER_ENV])
    return db


@pytest.fixture(params=["sqlite", "sqlserver"])
def any_db(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Database]:
    """The storage contract runs on SQLite always and on SQL Server when a connection string is given."""
    if request.param == "sqlserver":
        if not os.environ.get(SQLSERVER_ENV):
            pytest.skip(f"SQL Server contract run is opt-in: set {SQLSERVER_ENV}")
        db = _sqlserver_db()
    else:
        db = SqliteDatabase(str(db_path), pool_size=4)
    yield db
    db.close()


@pytest.fixture(params=["sqlite", "sqlserver"])
def process_target(request: pytest.FixtureRequest, db_path: Path) -> object:
    """Where the OS processes of a storm or outbox test keep their data: the test's SQLite file always,
    and a migrated, emptied SQL Server database when a connection string is given."""
    from tests.conversation_helpers import SqlServer

    if request.param == "sqlite":
        return db_path
    if not os.environ.get(SQLSERVER_ENV):
        pytest.skip(f"SQL Server process run is opt-in: set {SQLSERVER_ENV}")
    _sqlserver_db().close()
    return SqlServer(os.environ[SQLSERVER_ENV])


@pytest.fixture
async def graph() -> AsyncIterator[object]:
    """A fake Graph API (enforcing WhatsApp's limits) served on loopback in the test's own event loop."""
    from tests.outbox_support import InProcessGraph

    served = await InProcessGraph(free_port()).start()
    yield served
    await served.stop()
