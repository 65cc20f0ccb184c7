"""SQL Server / Azure SQL adapter through pyodbc (production).

pyodbc needs the system ODBC library, so it is imported only when this adapter is built: the app and
its tests start where it is missing. Values always travel as parameters. Deadlock victims, Azure SQL's
transient codes and dropped connections become `TransientDatabaseError`, and the whole transaction
is retried with backoff by `Database.run_sync`.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import DatabaseUnavailable, QueryTimeout, SchemaOutdated, StorageError, TransientDatabaseError
from core.storage.database import Database, DeclaredTypes
from core.storage.parameters import ParameterType

# Azure SQL transient errors (learn.microsoft.com: "Troubleshoot transient connection errors") and
# SQL Server's deadlock victim (1205) and lock timeout (1222).
TRANSIENT_CODES = {
    1205, 1222, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 18401, 40143, 40197, 40501, 40540,
    40613, 42108, 42109, 49918, 49919, 49920, 233, 64, 121, 258,
}
# Contention, not availability: retried quickly (1205 deadlock victim, 1222 lock timeout).
CONTENTION_CODES = {1205, 1222}
# SQLSTATEs the driver reports in a structured field: 40001 serialization failure (deadlock), HYT00
# query timeout. Read before the native code, which pyodbc only gives inside the message text.
CONTENTION_STATES = {"40001"}
# Unique constraint (2627) and unique index (2601) violations: a racing copy committed the key first.
DUPLICATE_KEY_CODES = {2627, 2601}
# A blocked statement gives up after this (SET LOCK_TIMEOUT, ms), and any statement after the query
# timeout (s): a pool thread is never held forever.
LOCK_TIMEOUT_MS = 10_000
QUERY_TIMEOUT_S = 30
# ODBC states of a connection that is gone: reconnect before retrying. HYT01 is the login timeout.
BROKEN_CONNECTION_STATES = {"08S01", "08001", "08003", "08004", "08007", "HYT01"}
# A statement that ran past QUERY_TIMEOUT_S: the driver cancelled it and the connection still works. Not a
# lost connection (reconnecting and retrying for 30 s stalled a whole timer run behind one slow query) and
# not retried at once (it would time out again): `QueryTimeout`, which the caller logs; its next run retries.
QUERY_TIMEOUT_STATE = "HYT00"
# pyodbc gives no structured field for the native error: it writes each ODBC diagnostic record as
# `[SQLSTATE] message (native) (SQLFunction)`, later records joined with `; ` and without the function.
# Only the number in that position is the engine's; a number in parentheses inside the message text
# (a duplicate key value, a user's text echoed back) is data and must never select a retry policy.
_NATIVE = re.compile(r"\((-?\d+)\)(?: \(SQL\w+\))?$")
_RECORD = re.compile(r"(?:^|; )\[[0-9A-Z]{5}\] ")


def native_codes(exc: Exception) -> set[int]:
    """The native error numbers of a pyodbc error, one per diagnostic record."""
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    codes = set()
    for record in _RECORD.split(message):
        found = _NATIVE.search(record.rstrip())
        if found:
            codes.add(int(found.group(1)))
    return codes


class SqlServerDatabase(Database):
    dialect = "tsql"

    def __init__(self, connection_string: str, pool_size: int = 8, connect_timeout_s: int = 15) -> None:
        try:
            import pyodbc
        except ImportError as exc:  # the ODBC driver manager (unixODBC) is missing
            raise DatabaseUnavailable(f"pyodbc no se puede cargar: {exc}") from exc
        self._pyodbc = pyodbc
        self._connection_string = connection_string
        self._connect_timeout_s = connect_timeout_s
        super().__init__(pool_size)
        # pyodbc describes every None with SQLDescribeParam (a server round trip on SQL Server) before it
        # looks at setinputsizes; its BinaryNull is bound without a describe, and the declared type
        # then replaces its SQL type, so a NULL costs nothing and still has the right type.
        self._declared = DeclaredTypes(
            sizes={name: [self._input_size(t) for t in query.types] for name, query in self.queries.items()},
            null=pyodbc.BinaryNull,
        )

    def _input_size(self, declared: ParameterType | None) -> tuple[int, int, int]:
        """pyodbc's (SQL type, column size, decimal digits) for a declared parameter type."""
        if declared is None:
            raise ValueError("every parameter of a loaded query has a declared type")
        if declared.is_text:  # size 0 binds NVARCHAR(MAX), not the deprecated NTEXT of a long value
            return (self._pyodbc.SQL_WVARCHAR, declared.units or 0, 0)
        return (self._pyodbc.SQL_BIGINT if declared.sql == "BIGINT" else self._pyodbc.SQL_INTEGER, 0, 0)

    def describe(self) -> str:
        from core.storage.sql_connection import sql_authentication

        server = re.search(r"(?i)server=([^;]+)", self._connection_string)
        return f"sqlserver:{server.group(1) if server else '?'} ({sql_authentication(self._connection_string)})"

    def _connect_for_reads(self) -> Any:
        """Read-only work runs in autocommit on its own connection: no COMMIT round trip. It loses nothing:
        under read committed (snapshot or locking) each statement already sees its own committed state
        and holds no locks after it, inside a transaction or not."""
        return self._connect(autocommit=True)

    def _connect(self, autocommit: bool = False) -> Any:
        try:
            conn = self._pyodbc.connect(self._connection_string, autocommit=autocommit,
                                        timeout=self._connect_timeout_s)
            conn.timeout = QUERY_TIMEOUT_S  # per statement; HYT00 when it passes
            cursor = conn.cursor()
            cursor.execute(f"SET LOCK_TIMEOUT {LOCK_TIMEOUT_MS}")  # error 1222 instead of waiting forever
            cursor.close()
            conn.commit()
            return conn
        except self._pyodbc.Error as exc:
            mapped = self._translate(exc)
            if isinstance(mapped, TransientDatabaseError):
                raise mapped from exc
            # A missing ODBC driver, a wrong server or login: nothing a retry fixes.
            raise DatabaseUnavailable(f"sqlserver: no se puede conectar ({exc.args[-1] if exc.args else exc})") from exc

    def _begin(self, connection: Any, write: bool) -> Any:
        return connection.cursor()  # implicit: the first statement opens the transaction, no round trip

    def _commit(self, connection: Any, cursor: Any) -> None:
        if connection.autocommit:  # the reads' connection: every statement committed itself
            return
        self.counts.round_trips += 1  # SQLEndTran is a round trip
        connection.commit()

    def _rollback(self, connection: Any, cursor: Any) -> None:
        if connection.autocommit:
            return
        self.counts.round_trips += 1
        connection.rollback()

    def _translate(self, exc: Exception) -> Exception | None:
        if not isinstance(exc, self._pyodbc.Error):
            return None
        state = str(exc.args[0]) if exc.args else ""
        codes = native_codes(exc)
        if state in CONTENTION_STATES or codes & CONTENTION_CODES:
            return TransientDatabaseError(f"sqlserver: contención ({state} {sorted(codes & CONTENTION_CODES)})")
        if state == QUERY_TIMEOUT_STATE:
            return QueryTimeout(f"sqlserver: tiempo de consulta agotado ({QUERY_TIMEOUT_S} s)")
        if state in BROKEN_CONNECTION_STATES:
            return TransientDatabaseError(f"sqlserver: conexión perdida ({state})", reconnect=True, availability=True)
        if codes & TRANSIENT_CODES:
            return TransientDatabaseError(f"sqlserver: error transitorio {sorted(codes & TRANSIENT_CODES)}",
                                          reconnect=True, availability=True)
        if 208 in codes or 207 in codes:  # invalid object / column name
            return SchemaOutdated(f"sqlserver: esquema sin migrar: {exc}")
        if isinstance(exc, self._pyodbc.InterfaceError | self._pyodbc.OperationalError):
            return DatabaseUnavailable(f"sqlserver: no disponible ({state})")
        return StorageError(f"sqlserver: error ({state}): {exc}")

    def _is_duplicate_key(self, exc: Exception) -> bool:
        return isinstance(exc, self._pyodbc.IntegrityError) and bool(native_codes(exc) & DUPLICATE_KEY_CODES)

    def execute_batch(self, batch: str) -> None:
        """Run one T-SQL batch (a migration script split on GO) and commit it."""
        conn = self._connection()
        with self._translated():
            cursor = conn.cursor()
            cursor.execute(batch)
            while cursor.nextset():
                pass
            conn.commit()

    def run_script_like_sqlcmd(self, batches: list[str]) -> None:
        """Run one migration script the way classic `sqlcmd -i` does: on a fresh connection whose
        QUOTED_IDENTIFIER is OFF (the script must set what it needs itself), batch by batch."""
        conn = self._pyodbc.connect(self._connection_string, autocommit=True, timeout=self._connect_timeout_s)
        try:
            with self._translated():
                cursor = conn.cursor()
                cursor.execute("SET QUOTED_IDENTIFIER OFF")
                for batch in batches:
                    cursor.execute(batch)
                    while cursor.nextset():
                        pass
        finally:
            conn.close()
