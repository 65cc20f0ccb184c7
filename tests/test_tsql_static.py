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
    for guard in re.finditer(r"FROM SYS\.INDEXES WHERE NAME =[^\n]*", _code(path.read_text(encoding="utf-8"))):
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
                                   "IX_MensajesProcesados_Abiertos", "IX_ColaEnvios_Enviados", "IX_ColaEnvios_Abiertos",
                                   "IX_BloqueosConversacion_Vencimiento"])
def test_hot_path_indexes_exist_in_both_dialects(index: str) -> None:
    from core.storage.migrate import SQLITE_SCHEMA_DIR

    assert any(index in p.read_text(encoding="utf-8") for p in MIGRATIONS)
    assert any(index in p.read_text(encoding="utf-8") for p in SQLITE_SCHEMA_DIR.glob("*.sql"))


def test_the_adapter_bounds_every_statement() -> None:
    source = (Path(__file__).resolve().parents[1] / "core" / "storage" / "sqlserver.py").read_text(encoding="utf-8")
    assert "conn.timeout = QUERY_TIMEOUT_S" in source and "SET LOCK_TIMEOUT" in source


# --- Identifier columns compare byte for byte (005) ------------------------------------------------
BINARY = "Latin1_General_100_BIN2"
COLLATION_SCRIPT = TSQL_SCRIPTS_DIR / "005_identificadores_binarios.sql"
# Columns that hold ids from Meta, the AI provider or the bot itself: phones and usernames, wamids,
# lease keys and owners, claim tokens, campaign names, run and conversation ids.
_IDENTIFIER = re.compile(r"^(Telefono|Destinatario|Clave|Propietario\w*|TokenReclamo|Campana|MensajeOrigen|"
                         r"WamidEnviado|\w*MessageId\w*|Conversacion(IA|Id))$")
_COLUMN = re.compile(r"^\s+(\w+)\s+(NVARCHAR\(\d+\))(?:\s+COLLATE\s+(\w+))?\s+(NOT NULL|NULL)(.*)$", re.MULTILINE)
_TABLE = re.compile(r"CREATE TABLE dbo\.(\w+) \((.*?)\n    \);", re.DOTALL)
_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX (\w+) ON dbo\.(\w+) \(([^)]*)\)(?: INCLUDE \(([^)]*)\))?"
                    r"(?:\s+WHERE ([^;]*?))?(?:\s+WITH \([^)]*\))?;", re.DOTALL)


def _identifier_columns() -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (type, nullability) of every identifier column the scripts before 005 create,
    plus every NVARCHAR primary key."""
    found = {}
    for path in MIGRATIONS:
        if path.name >= COLLATION_SCRIPT.name:
            continue
        for table, body in _TABLE.findall(path.read_text(encoding="utf-8")):
            for column, sql_type, _, nullability, rest in _COLUMN.findall(body):
                if _IDENTIFIER.match(column) or "PRIMARY KEY" in rest:
                    found[(table, column)] = (sql_type, nullability)
    return found


def _indexes_before_005() -> dict[str, tuple[str, str, str, str]]:
    """The last definition of every index the earlier scripts build: name -> (table, keys, include, where)."""
    indexes = {}
    for path in MIGRATIONS:
        if path.name >= COLLATION_SCRIPT.name:
            continue
        for name, table, keys, include, where in _INDEX.findall(path.read_text(encoding="utf-8")):
            indexes[name] = (table, " ".join(keys.split()), " ".join(include.split()), " ".join(where.split()))
    return indexes


def test_every_identifier_column_becomes_binary_with_its_size_and_nullability() -> None:
    script = COLLATION_SCRIPT.read_text(encoding="utf-8")
    altered = {(t, c): (ty, n) for t, c, ty, n in re.findall(
        rf"ALTER TABLE dbo\.(\w+) ALTER COLUMN (\w+) (NVARCHAR\(\d+\)) COLLATE {BINARY} (NOT NULL|NULL);", script)}
    checked = set(re.findall(r"\(N'dbo\.(\w+)', N'(\w+)'\)", script))
    expected = _identifier_columns()
    assert ("MensajesProcesados", "MessageId") in expected and ("EjecucionesIA", "Id") in expected
    assert altered == expected  # same columns, same sizes, nullability restated (ALTER COLUMN forgets it)
    assert checked == set(expected)  # the guard looks at exactly the columns the script changes


def test_every_index_on_an_identifier_column_is_dropped_and_rebuilt_the_same() -> None:
    script = COLLATION_SCRIPT.read_text(encoding="utf-8")
    columns = _identifier_columns()
    rebuilt = {name: (table, " ".join(k.split()), " ".join(i.split()), " ".join(w.split()))
               for name, table, k, i, w in _INDEX.findall(script)}
    touching = {name: spec for name, spec in _indexes_before_005().items()
                if any((spec[0], col.strip()) in columns for col in f"{spec[1]},{spec[2]}".split(",") if col.strip())}
    assert "IX_ColaEnvios_Reclamables" in touching  # an INCLUDE column counts too
    # Nonclustered indexes of a table whose clustered key is rebuilt are dropped first and built last, so
    # they are built once instead of twice (to the heap and back).
    locators = {name: spec for name, spec in _indexes_before_005().items()
                if spec[0] in {"SesionesChat", "EjecucionesIA"} and name not in touching}
    assert set(locators) == {"IX_SesionesChat_Estado_Actividad", "IX_EjecucionesIA_Estado"}
    assert rebuilt == touching | locators
    for name, (table, *_) in touching.items():
        assert f"DROP INDEX IF EXISTS {name} ON dbo.{table};" in script
    for (table, column) in columns:
        for constraint in re.findall(rf"CREATE TABLE dbo\.{table} \(.*?\n\s+{column}\s[^\n]*CONSTRAINT (\w+) "
                                     rf"(?:PRIMARY KEY|UNIQUE)", "".join(p.read_text(encoding="utf-8")
                                                                         for p in MIGRATIONS), re.DOTALL):
            assert f"DROP CONSTRAINT IF EXISTS {constraint};" in script
            assert re.search(rf"ADD CONSTRAINT {constraint} (PRIMARY KEY|UNIQUE) \({column}\);", script), constraint


def test_indexes_the_script_does_not_know_stop_it_before_anything_changes() -> None:
    """The guard lists exactly the indexes and keys the script drops and rebuilds."""
    script = COLLATION_SCRIPT.read_text(encoding="utf-8")
    dropped = set(re.findall(r"DROP (?:INDEX|CONSTRAINT) IF EXISTS (\w+)", script))
    (known,) = re.findall(r"i\.name COLLATE DATABASE_DEFAULT NOT IN \(([^)]*)\)", script)
    assert set(re.findall(r"N'(\w+)'", known)) == dropped
    code = _code(script)
    assert code.index("RAISERROR(N'005: UNKNOWN INDEXES") < code.index("RETURN;") < code.index("BEGIN TRANSACTION")


def test_the_collation_change_is_one_transaction_per_table_that_aborts_whole() -> None:
    code = _code(COLLATION_SCRIPT.read_text(encoding="utf-8"))
    assert "SET XACT_ABORT ON" in code and "SET LOCK_TIMEOUT" in code and "SET DEADLOCK_PRIORITY LOW" in code
    tables = {t for t, _ in re.findall(r"\(N'DBO\.(\w+)', N'(\w+)'\)", code)}
    blocks = re.findall(r"BEGIN TRY\s+BEGIN TRANSACTION;(.*?)COMMIT TRANSACTION;.*?END TRY\s+BEGIN CATCH\s+"
                        r"IF @@TRANCOUNT > 0\s+ROLLBACK TRANSACTION;\s+THROW;\s+END CATCH;", code, re.DOTALL)
    assert len(blocks) == len(tables)
    for block in blocks:  # each transaction changes exactly one table
        assert len(set(re.findall(r"ALTER TABLE DBO\.(\w+) ALTER COLUMN", block))) == 1


def test_the_version_row_is_written_only_when_every_column_is_binary() -> None:
    """Without `sqlcmd -b` every batch runs even after an error: the last batch checks the result."""
    batches = tsql_batches(COLLATION_SCRIPT.read_text(encoding="utf-8"))
    (recording,) = [b for b in batches if "INSERT INTO dbo.SchemaVersion" in b]
    assert "ALTER " not in recording and "collation_name <> N'Latin1_General_100_BIN2'" in recording
    assert recording.index("RAISERROR") < recording.index("ELSE IF NOT EXISTS") < recording.index("INSERT INTO")


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_catalog_names_compare_in_the_database_collation(path: Path) -> None:
    """sys.* names carry the catalog's collation; a table (variable) of names the database's: without
    COLLATE DATABASE_DEFAULT the comparison fails with Msg 468 where the two differ."""
    code = _code(path.read_text(encoding="utf-8"))
    bare = re.findall(r"\b\w+\.NAME\s*(?:=|<>)\s*[@#]?\w+\.\w+", code)
    assert bare == [], f"{path.name}: {bare}"
    assert not re.findall(r"\b\w+\.NAME\s*(?:=|<>)\s*[@#]?\w+\.\w+", "JOIN #K AS K ON C.NAME = K.COLUMNNAME") == []


_ADDED_COLUMN = re.compile(r"\bADD\s+(\w+)\s+NVARCHAR\(\d+\)(?:\s+COLLATE\s+(\w+))?", re.IGNORECASE)


def _non_binary_identifiers(script: str) -> list[str]:
    """Identifier columns a script creates (in CREATE TABLE or ALTER TABLE ... ADD) without the binary collation."""
    created = [(column, collation) for column, _, collation, _, _ in _COLUMN.findall(script)]
    added = _ADDED_COLUMN.findall(script)
    return [column for column, collation in created + added if _IDENTIFIER.match(column) and collation != BINARY]


@pytest.mark.parametrize("path", [p for p in MIGRATIONS if p.name >= COLLATION_SCRIPT.name], ids=lambda p: p.name)
def test_identifier_columns_created_from_005_on_say_binary(path: Path) -> None:
    assert _non_binary_identifiers(path.read_text(encoding="utf-8")) == [], path.name
    later = "    CREATE TABLE dbo.X (\n        Telefono NVARCHAR(64) NOT NULL,\n        Nota NVARCHAR(10) NULL\n    );"
    assert _non_binary_identifiers(later) == ["Telefono"]  # the rule sees a column that forgot
    added = "ALTER TABLE dbo.X ADD MessageId NVARCHAR(200) NULL;\nALTER TABLE dbo.Y ADD Clave NVARCHAR(100) COLLATE " \
            f"{BINARY} NULL;"
    assert _non_binary_identifiers(added) == ["MessageId"]


# --- Declared parameter types match the columns they meet ------------------------------------------
_ANY_COLUMN = re.compile(r"^\s+(\w+)\s+(NVARCHAR\((?:\d+|MAX)\)|BIGINT|INT|BIT|DATETIME2\(\d\))(?=[\s,])", re.MULTILINE)
_INT_BITS = {"INT": 32, "BIGINT": 64}


_ALTER_ADD = re.compile(
    r"ALTER TABLE dbo\.(\w+) ADD (\w+) (NVARCHAR\((?:\d+|MAX)\)|BIGINT|INT|BIT|DATETIME2\(\d\))(?=[\s;])")


def _schema() -> dict[str, dict[str, str]]:
    """table -> column -> T-SQL type, as the migrations create them (CREATE TABLE and ALTER TABLE ... ADD)."""
    schema: dict[str, dict[str, str]] = {}
    for path in MIGRATIONS:
        text = path.read_text(encoding="utf-8")
        for table, body in _TABLE.findall(text):
            schema.setdefault(table, {}).update(_ANY_COLUMN.findall(body))
        for table, column, sql_type in _ALTER_ADD.findall(text):
            schema.setdefault(table, {})[column] = sql_type
    return schema


def _placeholder(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Cast):
        node = node.this
    return node.name if isinstance(node, exp.Placeholder) else None


def _meetings(tree: exp.Expression, schema: dict[str, dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """(how, table, column, parameter) for each parameter written to or compared with a column."""
    tables = {}
    for table in tree.find_all(exp.Table):
        tables[table.alias_or_name] = tables[table.name] = table.name

    def owners(column: exp.Column) -> list[str]:
        if column.table:
            return [tables[column.table]]
        return sorted(t for t in set(tables.values()) if column.name in schema.get(t, {}))

    found = []
    for node in tree.walk():
        if isinstance(node, exp.Insert) and isinstance(node.this, exp.Schema):
            names = [i.name for i in node.this.expressions]
            source = node.expression
            rows = [r.expressions for r in source.expressions] if isinstance(source, exp.Values) else (
                [source.expressions] if isinstance(source, exp.Select) else [])
            for row in rows:
                found += [("write", node.this.this.name, c, p) for c, v in zip(names, row, strict=False)
                          if (p := _placeholder(v))]
        elif isinstance(node, exp.EQ):
            for column, value in ((node.this, node.expression), (node.expression, node.this)):
                if isinstance(column, exp.Column) and (p := _placeholder(value)):
                    how = "write" if node.arg_key == "expressions" else "compare"  # UPDATE ... SET col = :p
                    found += [(how, t, column.name, p) for t in owners(column)]
        elif isinstance(node, exp.Alias) and (p := _placeholder(node.this)):  # MERGE ... USING (SELECT :p AS Col)
            found += [("compare", t, node.alias, p) for t in set(tables.values()) if node.alias in schema.get(t, {})]
    return found


def test_every_declared_parameter_type_is_the_type_of_the_columns_it_meets() -> None:
    """A value too long for its column must be refused on SQLite too, and a valid one never refused: a
    text parameter has its column's exact size, an integer fits the column it is written to."""
    from core.storage.parameters import PARAMETER_TYPES

    schema = _schema()
    problems, seen = [], set()
    for name, query in sorted(TSQL.items()):
        for how, table, column, param in _meetings(sqlglot.parse_one(query.text, read="tsql"), schema):
            seen.add((table, column, param))
            column_type, declared = schema[table].get(column), PARAMETER_TYPES[param]
            if column_type is None:
                problems.append(f"{name}: :{param} meets {table}.{column}, which no migration creates")
            elif column_type in _INT_BITS and declared in _INT_BITS:
                if how == "write" and _INT_BITS[declared] > _INT_BITS[column_type]:
                    problems.append(f"{name}: :{param} {declared} is written to {table}.{column} {column_type}")
            elif column_type != declared:
                problems.append(f"{name}: :{param} {declared} meets {table}.{column} {column_type}")
    assert problems == []
    # The walk sees writes (INSERT, UPDATE SET), comparisons and MERGE sources, not just a few of them.
    assert {("HistorialSesiones", "Descripcion", "descripcion_historial"), ("SesionesChat", "Estado", "estado_sesion"),
            ("MensajesProcesados", "MessageId", "message_id"), ("BloqueosConversacion", "Clave", "clave"),
            ("ColaEnvios", "TokenReclamo", "token_reclamo"), ("Reportes", "Estado", "estado_reporte")} <= seen
    assert len(seen) > 60
