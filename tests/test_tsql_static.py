"""No SQL Server engine runs on the build machines, so the T-SQL is checked statically with sqlglot:
every statement parses as T-SQL, every MERGE holds HOLDLOCK, every READPAST comes with UPDLOCK and
READCOMMITTEDLOCK, and both dialects define the same named queries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from core.storage.migrate import TSQL_SCRIPTS_DIR, tsql_batches
from core.storage.queries import load_queries, parse_queries

SCRIPTS = sorted(TSQL_SCRIPTS_DIR.rglob("*.sql"))
TSQL = load_queries("tsql")
# Statements sqlglot 30.x cannot read although they are the right T-SQL :
# `UPDATE TOP (n)` and `DELETE ... OUTPUT`. None is used today; list any here with the reason.
UNPARSEABLE: dict[str, str] = {}


def _parse(sql: str) -> list[exp.Expression]:
    return [e for e in sqlglot.parse(sql, read="tsql", error_level=sqlglot.ErrorLevel.RAISE) if e is not None]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_migration_scripts_parse_as_tsql(path: Path) -> None:
    for batch in tsql_batches(path.read_text(encoding="utf-8")):
        _parse(batch)


@pytest.mark.parametrize("name", sorted(TSQL), ids=str)
def test_adapter_queries_parse_as_tsql(name: str) -> None:
    if name in UNPARSEABLE:
        pytest.skip(UNPARSEABLE[name])
    assert _parse(TSQL[name].sql), f"{name} parsed to nothing"


def _all_tsql_texts() -> list[tuple[str, str]]:
    texts = [(q.name, q.text) for q in TSQL.values()]
    texts += [(p.name, p.read_text(encoding="utf-8")) for p in SCRIPTS]
    return texts


@pytest.mark.parametrize(("name", "text"), _all_tsql_texts(), ids=lambda v: v if len(v) < 60 else "")
def test_locking_hints(name: str, text: str) -> None:
    code = re.sub(r"--[^\n]*", "", text).upper()
    for merge in re.finditer(r"\bMERGE\b[^;]*?\bUSING\b", code, re.DOTALL):
        assert "HOLDLOCK" in merge.group(0) or "SERIALIZABLE" in merge.group(0), f"{name}: MERGE without HOLDLOCK"
    for hint in re.finditer(r"WITH\s*\(([^)]*READPAST[^)]*)\)", code):
        hints = {h.strip() for h in hint.group(1).split(",")}
        assert {"UPDLOCK", "READCOMMITTEDLOCK"} <= hints, f"{name}: READPAST needs UPDLOCK and READCOMMITTEDLOCK"
    assert "READPAST" not in re.sub(r"WITH\s*\([^)]*\)", "", code), f"{name}: READPAST outside a hint list"


def test_both_dialects_define_the_same_queries() -> None:
    sqlite, tsql = load_queries("sqlite"), load_queries("tsql")
    assert sorted(sqlite) == sorted(tsql)
    for name in sqlite:
        assert sorted(set(sqlite[name].params)) == sorted(set(tsql[name].params)), name


def test_parameters_become_placeholders_outside_literals() -> None:
    q = parse_queries("-- name: q\nSELECT ':no' AS a, x::int FROM t WHERE a = :a AND b = :b AND c = :a")["q"]
    assert q.params == ("a", "b", "a")
    assert q.sql == "SELECT ':no' AS a, x::int FROM t WHERE a = ? AND b = ? AND c = ?"
    assert q.bind({"a": 1, "b": 2}) == (1, 2, 1)
    with pytest.raises(KeyError):
        q.bind({"a": 1})


def test_an_apostrophe_in_a_comment_does_not_hide_parameters() -> None:
    """A comment like "the claim's attempt" must not open a string literal that swallows `:id`."""
    q = parse_queries("-- name: q\n-- the claim's attempt :nope\nUPDATE t SET a = 1\nWHERE Id = :id AND b = :b")["q"]
    assert q.params == ("id", "b")
    assert q.sql.endswith("WHERE Id = ? AND b = ?")


MIGRATIONS = sorted(TSQL_SCRIPTS_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def _code(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text).upper()


@pytest.mark.parametrize("path", [*MIGRATIONS, TSQL_SCRIPTS_DIR / "seed" / "equipos_muestra.sql"],
                         ids=lambda p: p.name)
def test_every_script_sets_its_own_options_before_anything_else(path: Path) -> None:
    """Classic sqlcmd connects with QUOTED_IDENTIFIER OFF: a filtered index then fails (Msg 1934)."""
    first = _code(tsql_batches(path.read_text(encoding="utf-8"))[0])
    assert "SET ANSI_NULLS ON" in first and "SET QUOTED_IDENTIFIER ON" in first, path.name
    assert "CREATE" not in first and "INSERT" not in first, f"{path.name}: SET options go in a batch of their own"


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_index_guards_name_their_table(path: Path) -> None:
    """An index name is unique per table, not per database: a guard must say which table."""
    for guard in re.finditer(r"FROM SYS\.INDEXES[^\n]*", _code(path.read_text(encoding="utf-8"))):
        assert "OBJECT_ID" in guard.group(0), f"{path.name}: {guard.group(0)}"


def test_the_same_migration_versions_exist_in_both_dialects() -> None:
    from core.storage.migrate import SQLITE_SCHEMA_DIR, migrations

    tsql = {v for v, _, _ in migrations(TSQL_SCRIPTS_DIR)} - {0}  # 000 creates SchemaVersion; SQLite does it in code
    sqlite = {v for v, _, _ in migrations(SQLITE_SCHEMA_DIR)}
    assert tsql == sqlite


@pytest.mark.parametrize("name", sorted(n for n, q in TSQL.items() if "READPAST" in q.text.upper()))
def test_claims_read_earlier_rows_with_a_locking_read(name: str) -> None:
    """Under read-committed snapshot a plain read cannot see an uncommitted earlier reply: every table a
    claim reads carries READCOMMITTEDLOCK."""
    code = _code(TSQL[name].text)
    reads = re.findall(r"FROM\s+DBO\.\w+\s+AS\s+\w+(\s+WITH\s*\([^)]*\))?", code)
    assert reads and all("READCOMMITTEDLOCK" in hints for hints in reads), name


@pytest.mark.parametrize("index", ["IX_MensajesChat_MessageId", "IX_ColaEnvios_Reclamables",
                                   "IX_MensajesProcesados_Abiertos"])
def test_hot_path_indexes_exist_in_both_dialects(index: str) -> None:
    from core.storage.migrate import SQLITE_SCHEMA_DIR

    assert any(index in p.read_text(encoding="utf-8") for p in MIGRATIONS)
    assert any(index in p.read_text(encoding="utf-8") for p in SQLITE_SCHEMA_DIR.glob("*.sql"))


def test_the_adapter_bounds_every_statement() -> None:
    source = (Path(__file__).resolve().parents[1] / "core" / "storage" / "sqlserver.py").read_text(encoding="utf-8")
    assert "conn.timeout = QUERY_TIMEOUT_S" in source and "SET LOCK_TIMEOUT" in source
