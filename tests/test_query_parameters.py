"""Every query parameter has one declared type; bound values are checked against it in both dialects,
and the SQL Server adapter declares the same types to the driver (one plan per query, no describe)."""

from __future__ import annotations

import asyncio
import ctypes.util
import sqlite3

import pytest

from core.storage.database import DeclaredTypes, Tx
from core.storage.parameters import PARAMETER_TYPES
from core.storage.queries import compile_query, load_queries


def test_every_parameter_of_both_dialects_is_declared_once() -> None:
    used = {p for dialect in ("sqlite", "tsql") for q in load_queries(dialect).values() for p in q.params}
    assert used == set(PARAMETER_TYPES)  # nothing undeclared, nothing declared for no query


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("telefono", 5215512345678, "needs text"),
    ("ahora", "1763880000000", "needs an integer"),
    ("ahora", True, "needs an integer"),
    ("equipo_id", 2**31, "out of range for INT"),
    ("telefono", "5" * 65, "holds 64 UTF-16 units, got 65"),
    ("telefono", "😀" * 33, "holds 64 UTF-16 units, got 66"),  # 33 characters, 66 units
    ("descripcion", "x'; DROP TABLE Reportes; --" + "😀" * 1000, "holds 2000 UTF-16 units"),
])
def test_a_value_the_server_would_refuse_is_refused_before_it_is_sent(name: str, value: object, problem: str) -> None:
    query = compile_query("probe", f"SELECT :{name}")
    with pytest.raises(ValueError, match=rf"query probe: parameter :{name}: .*{problem}"):
        query.bind({name: value})


@pytest.mark.parametrize(("name", "value"), [
    ("telefono", None), ("telefono", "😀" * 32), ("telefono", ""), ("contenido", "😀" * 100_000),
    ("ahora", 1_763_880_000_000), ("equipo_id", -(2**31)),
])
def test_values_within_their_type_bind_unchanged(name: str, value: object) -> None:
    assert compile_query("probe", f"SELECT :{name}").bind({name: value}) == (value,)


def test_a_refused_value_changes_nothing(sqlite_db) -> None:
    from core.storage.inspection import get_lease

    def write(tx: Tx) -> None:
        tx.execute("lease_acquire", {"clave": "k-ok", "propietario": "p", "expira": 1, "ahora": 0})
        tx.execute("lease_acquire", {"clave": "k" * 101, "propietario": "p", "expira": 1, "ahora": 0})

    with pytest.raises(ValueError, match=":clave: NVARCHAR\\(100\\) holds 100 UTF-16 units, got 101"):
        sqlite_db.run_sync(write)
    assert asyncio.run(get_lease(sqlite_db, "k-ok")) is None  # the whole transaction rolled back


class _RecordingCursor:
    """A real sqlite3 cursor that also records what the transaction asked of it."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor, self.calls = cursor, []

    def setinputsizes(self, sizes: list) -> None:
        self.calls.append(("setinputsizes", sizes))

    def execute(self, sql: str, params: tuple) -> sqlite3.Cursor:
        self.calls.append(("execute", params))
        return self._cursor.execute(sql, params)

    def __getattr__(self, name: str) -> object:  # description, fetchall, rowcount: the real cursor's
        return getattr(self._cursor, name)


def test_declared_sizes_go_to_the_driver_before_every_statement_with_parameters() -> None:
    cursor = _RecordingCursor(sqlite3.connect(":memory:").cursor())
    typed_null = "<typed NULL>"  # stands in for pyodbc.BinaryNull, which sqlite3 cannot bind
    tx = Tx(cursor, {"probe": compile_query("probe", "SELECT :telefono AS t, :ahora AS a"),
                     "plain": compile_query("plain", "SELECT 1 AS one")}, "sqlite",
            DeclaredTypes(sizes={"probe": ["NVARCHAR(64)", "BIGINT"], "plain": []}, null=typed_null))
    assert tx.fetch_one("probe", {"telefono": None, "ahora": 5}) == {"t": typed_null, "a": 5}
    assert tx.fetch_one("plain") == {"one": 1}
    assert cursor.calls == [("setinputsizes", ["NVARCHAR(64)", "BIGINT"]), ("execute", (typed_null, 5)),
                            ("execute", ())]


@pytest.mark.skipif(ctypes.util.find_library("odbc") is None, reason="unixODBC is not installed (.ci/run installs it)")
def test_the_sqlserver_adapter_declares_each_parameter_to_pyodbc() -> None:
    import pyodbc

    from core.storage.sqlserver import SqlServerDatabase

    db = SqlServerDatabase("Driver={ODBC Driver 18 for SQL Server};Server=tcp:127.0.0.1,1;Database=x", pool_size=1)
    try:
        assert db._declared is not None and db._declared.null is pyodbc.BinaryNull  # bound without a describe
        sizes = db._declared.sizes
        for name, query in db.queries.items():
            assert len(sizes[name]) == len(query.params), name
        claim = db.queries["claim_outbound"]
        declared = dict(zip(claim.params, sizes["claim_outbound"], strict=True))
        assert declared["token_reclamo"] == (pyodbc.SQL_WVARCHAR, 64, 0)
        assert declared["ahora"] == (pyodbc.SQL_BIGINT, 0, 0)
        assert declared["n"] == (pyodbc.SQL_INTEGER, 0, 0)
        save = dict(zip(db.queries["chat_save_bot"].params, sizes["chat_save_bot"], strict=True))
        assert save["contenido"] == (pyodbc.SQL_WVARCHAR, 0, 0)  # NVARCHAR(MAX), never NTEXT
    finally:
        db.close()
