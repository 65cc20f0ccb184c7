"""The SQL Server adapter's edges that can be checked without an engine: pyodbc loads, errors translate."""

from __future__ import annotations

import ctypes.util

import pytest

from core.errors import DatabaseUnavailable, QueryTimeout, SchemaOutdated, StorageError, TransientDatabaseError

pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("odbc") is None, reason="unixODBC is not installed (.ci/run installs it)"
)


def adapter():
    from core.storage.sqlserver import SqlServerDatabase

    return SqlServerDatabase("Driver={ODBC Driver 18 for SQL Server};Server=tcp:127.0.0.1,1;Database=x", pool_size=1)


def test_pyodbc_really_imports() -> None:
    import pyodbc

    assert pyodbc.version.startswith("5.")


@pytest.mark.parametrize(
    ("args", "expected", "reconnect"),
    [
        (("40001", "[40001] Transaction was deadlocked ... victim. (1205) (SQLExecDirectW)"), TransientDatabaseError,
         False),
        (("42000", "[42000] Database is not currently available. (40613)"), TransientDatabaseError, True),
        (("08S01", "[08S01] Communication link failure"), TransientDatabaseError, True),
        # A statement past its query timeout: the connection still works, nothing to reconnect or retry now.
        (("HYT00", "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Query timeout expired (0) (SQLExecDirectW)"),
         QueryTimeout, False),
        (("HYT01", "[HYT01] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0)"),
         TransientDatabaseError, True),
        (("42S02", "[42S02] Invalid object name 'dbo.SesionesChat'. (208)"), SchemaOutdated, False),
        (("23000", "[23000] Violation of UNIQUE KEY constraint (2627)"), StorageError, False),
        # A value inside the message that looks like a code is data: this is a duplicate key, not a deadlock.
        (("23000", "[23000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Violation of PRIMARY KEY "
                   "constraint 'PK_x'. The duplicate key value is (1205). (2627) (SQLExecDirectW); [01000] "
                   "[Microsoft][ODBC Driver 18 for SQL Server][SQL Server]The statement has been terminated. (3621)"),
         StorageError, False),
        (("42000", "[42000] [SQL Server]Cannot open database \"(40613)\" requested by the login. (4060) "
                   "(SQLDriverConnect)"), TransientDatabaseError, True),
    ],
)
def test_driver_errors_are_translated(args: tuple[str, str], expected: type, reconnect: bool) -> None:
    import pyodbc

    db = adapter()
    try:
        mapped = db._translate(pyodbc.Error(*args))
        assert type(mapped) is expected
        if isinstance(mapped, TransientDatabaseError):
            assert mapped.reconnect is reconnect
        assert db._translate(ValueError("not a driver error")) is None
    finally:
        db.close()


def test_native_codes_come_from_each_record_of_a_real_driver_error() -> None:
    """The format is pyodbc's own: an error raised by the real driver manager parses to its native code."""
    import pyodbc

    from core.storage.sqlserver import native_codes

    with pytest.raises(pyodbc.Error) as caught:
        pyodbc.connect("DSN=no-such-dsn-(1205)", timeout=1)
    assert caught.value.args[1].endswith("(SQLDriverConnect)")
    assert native_codes(caught.value) == {0}
    two_records = pyodbc.Error("40001", "[40001] deadlocked (1205) (SQLExecDirectW); [01000] terminated. (3621)")
    assert native_codes(two_records) == {1205, 3621}
    assert native_codes(pyodbc.Error("08S01", "[08S01] Communication link failure")) == set()


def test_unreachable_server_is_reported_clearly() -> None:
    db = adapter()
    try:
        with pytest.raises(DatabaseUnavailable, match="no se puede conectar"):
            db.run_sync(lambda tx: tx.fetch_one("ping"), write=False)
    finally:
        db.close()
