"""Static rule: every named T-SQL query reads each table through an index the migrations build, or says
why it scans (a `-- scan: <reason>` line in the query). No SQL Server runs here, so this is the check a
DBA makes by eye, done by sqlglot on every query: a predicate on the leading key of an index whose
filter (if any) the query implies, or an index whose filter selects only rows in flight (a small set
by design); and an ORDER BY the index already returns in order, or a sort of that small set.
"""

from __future__ import annotations

import re
from contextlib import closing
from dataclasses import dataclass

import pytest
import sqlglot
from sqlglot import exp

from tests.test_tsql_static import _INDEX, _TABLE, MIGRATIONS, TSQL, _schema

# Filtered indexes over rows in flight only (pending, claimed, open, held): small by design, so a
# scan of the whole index or a sort of its rows is fine. Not here: IX_ColaEnvios_Enviados,
# UX_ColaEnvios_Wamid, UX_ColaEnvios_Campana and IX_MensajesChat_MessageId select history.
BOUNDED = {"IX_MensajesProcesados_Pendientes", "IX_MensajesProcesados_Abiertos", "IX_ColaEnvios_Destinatario",
           "IX_ColaEnvios_Reclamables", "IX_ColaEnvios_Reclamo", "IX_ColaEnvios_Abiertos",
           "IX_BloqueosConversacion_Vencimiento"}
# Tables of one or a handful of rows.
TINY = {"SondaSalud", "SchemaVersion"}
# Queries in files other engineers are changing right now (the outbox, the conversation engine): their
# scans and sorts are known and listed here with the reason, until their owner marks them in the .sql file.
SCANS_OWNED_ELSEWHERE = {
    "sessions_idle": "Estado NOT IN (...) seeks IX_SesionesChat_Estado_Actividad in several ranges, then sorts the "
                     "idle sessions by UltimaActividad; one row per user (conversation.sql, lead)",
}
_SCAN_MARK = re.compile(r"^--\s*scan:\s*(\S.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    keys: tuple[str, ...]
    filter: tuple[str, ...]  # normalized predicates, all of which a query must imply


def _norm(node: exp.Expression) -> str:
    bare = node.transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n)
    return bare.sql(dialect="tsql").upper()


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _indexes() -> dict[str, list[Index]]:
    """Every index the migrations leave, by table: keys, unique constraints, CREATE INDEX, minus drops."""
    found: dict[tuple[str, str], Index] = {}
    clustered: dict[str, str] = {}
    for path in MIGRATIONS:
        text = path.read_text(encoding="utf-8")
        steps: list[tuple[int, str, str, Index | None]] = []  # (position, table, name, index or None = drop)
        for table_match in _TABLE.finditer(text):
            table, body = table_match.groups()
            for column, name, kind in re.findall(r"^\s+(\w+)\s[^\n]*CONSTRAINT (\w+) (PRIMARY KEY|UNIQUE)", body,
                                                 re.MULTILINE):
                steps.append((table_match.start(), table, name, Index(name, table, (column,), ())))
                if kind == "PRIMARY KEY":
                    clustered[table] = column
        for m in re.finditer(r"ALTER TABLE dbo\.(\w+) ADD CONSTRAINT (\w+) (?:PRIMARY KEY|UNIQUE) \((\w+)\)", text):
            table, name, column = m.groups()
            steps.append((m.start(), table, name, Index(name, table, (column,), ())))
        for m in _INDEX.finditer(text):
            name, table, keys, _include, where = m.groups()
            filt = tuple(_norm(c) for c in _conjuncts(sqlglot.parse_one(where, read="tsql"))) if where else ()
            steps.append((m.start(), table, name, Index(name, table, tuple(k.strip() for k in keys.split(",")), filt)))
        for m in re.finditer(r"DROP INDEX IF EXISTS (\w+) ON dbo\.(\w+);", text):
            steps.append((m.start(), m.group(2), m.group(1), None))
        for m in re.finditer(r"ALTER TABLE dbo\.(\w+) DROP CONSTRAINT IF EXISTS (\w+);", text):
            steps.append((m.start(), m.group(1), m.group(2), None))
        for _, table, name, index in sorted(steps, key=lambda step: step[0]):
            if index is None:
                found.pop((table, name), None)
            else:
                found[(table, name)] = index
    by_table: dict[str, list[Index]] = {}
    for (table, _), index in found.items():
        by_table.setdefault(table, []).append(index)
    _CLUSTERED.update(clustered)
    return by_table


_CLUSTERED: dict[str, str] = {}
INDEXES = _indexes()
SCHEMA = _schema()


@dataclass(frozen=True)
class Predicate:
    column: str
    seek: bool  # usable to seek an index on this column (=, IN, <, >, LIKE, <>)
    equality: bool
    text: str


def _predicates(node: exp.Expression, alias: str, table: str, tables_in_scope: set[str]) -> list[Predicate]:
    found = []
    for conjunct in _conjuncts(node):
        inner = conjunct.this if isinstance(conjunct, exp.Not) else conjunct
        if not isinstance(inner, exp.EQ | exp.NEQ | exp.LT | exp.LTE | exp.GT | exp.GTE | exp.In | exp.Like | exp.Is):
            continue
        column = inner.this
        if not isinstance(column, exp.Column):
            continue
        if column.table:
            if column.table != alias:
                continue
        elif column.name not in SCHEMA.get(table, {}) or sum(column.name in SCHEMA.get(t, {})
                                                             for t in tables_in_scope) > 1:
            continue
        equality = isinstance(inner, exp.EQ | exp.In) and not isinstance(conjunct, exp.Not)
        seek = not isinstance(inner, exp.Is)
        found.append(Predicate(column.name, seek, equality, _norm(conjunct)))
    return found


def _implies(index: Index, predicates: list[Predicate]) -> bool:
    texts = {p.text for p in predicates}
    for condition in index.filter:
        not_null = re.fullmatch(r"NOT (\w+) IS NULL", condition)
        if condition in texts or (not_null and any(p.column.upper() == not_null.group(1) and p.seek
                                                    for p in predicates)):
            continue
        return False
    return True


def _scopes(tree: exp.Expression) -> list[tuple[exp.Expression, exp.Expression | None, list[exp.Table]]]:
    """(scope, its condition, tables it reads) for every SELECT, UPDATE, DELETE and MERGE in the statement."""
    scopes = []
    for node in tree.walk():
        if isinstance(node, exp.Select):
            tables = [t for t in [node.args.get("from_") and node.args["from_"].this,
                                  *[j.this for j in node.args.get("joins") or []]] if isinstance(t, exp.Table)]
            condition = node.args.get("where") and node.args["where"].this
            joins = [j.args.get("on") for j in node.args.get("joins") or [] if j.args.get("on") is not None]
            for on in joins:
                condition = exp.and_(condition, on) if condition is not None else on
            scopes.append((node, condition, tables))
        elif isinstance(node, exp.Update | exp.Delete):
            target = node.this
            where = node.args.get("where")
            if isinstance(target, exp.Table) and target.db:
                scopes.append((node, where.this if where else None, [target]))
        elif isinstance(node, exp.Merge):
            scopes.append((node, node.args.get("on"), [node.this]))
    return scopes


def unserved(name: str, text: str) -> list[str]:
    """Why each table the query reads is not served by an index (empty when all are)."""
    problems = []
    tree = sqlglot.parse_one(text, read="tsql")
    for scope, condition, tables in _scopes(tree):
        in_scope = {t.name for t in tables}
        order = scope.args.get("order")
        for table in tables:
            if table.name in TINY or table.db != "dbo":  # CTEs, and catalog views (sys.*) are not ours to index
                continue
            predicates = _predicates(condition, table.alias_or_name, table.name, in_scope) if condition else []
            bound = {p.column for p in predicates if p.equality}
            served = None
            for index in INDEXES.get(table.name, []):
                if not _implies(index, predicates):
                    continue
                leading = any(p.column == index.keys[0] and p.seek for p in predicates)
                if leading or (index.name in BOUNDED and index.filter):
                    served = index
                    break
            if served is None:
                wanted = [p.text for p in predicates] or "no predicate"
                problems.append(f"{name}: {table.name} has no index for {wanted}")
                continue
            if order is not None and served.name not in BOUNDED:
                columns = [o.this.name for o in order.expressions if isinstance(o.this, exp.Column)
                           and o.this.name in SCHEMA.get(table.name, {})
                           and (not o.this.table or o.this.table == table.alias_or_name)]
                rest = [c for c in columns if c not in bound]
                prefix = 0
                while prefix < len(served.keys) and served.keys[prefix] in bound:
                    prefix += 1
                first = rest[0] if rest else None
                in_order = first is None or (prefix < len(served.keys) and served.keys[prefix] == first) or (
                    first == _CLUSTERED.get(table.name) and (prefix == len(served.keys) or served.keys[0] == first))
                if not in_order:
                    problems.append(f"{name}: {served.name} does not return {table.name} in {columns} order")
    return problems


def _marked(text: str) -> str | None:
    found = _SCAN_MARK.search(text)
    return found.group(1) if found else None


@pytest.mark.parametrize("name", sorted(TSQL), ids=str)
def test_every_query_is_served_by_an_index_or_says_why_it_scans(name: str) -> None:
    text = TSQL[name].text
    if _marked(text) or name in SCANS_OWNED_ELSEWHERE:
        return
    assert unserved(name, text) == []


@pytest.mark.parametrize("name", sorted(n for n in TSQL if _marked(TSQL[n].text)), ids=str)
def test_a_query_marked_as_a_scan_does_scan(name: str) -> None:
    """A mark that no longer applies is removed, so the marks stay a list of the real scans."""
    assert unserved(name, TSQL[name].text), f"{name} is served by an index: remove its scan mark"


def test_the_rule_sees_a_scan_an_ordered_top_and_a_filter_the_query_does_not_imply() -> None:
    assert unserved("q", "SELECT Estado, COUNT(*) FROM dbo.ColaEnvios GROUP BY Estado")
    assert unserved("q", "SELECT TOP (5) Telefono FROM dbo.SesionesChat ORDER BY UltimaActividad DESC")
    # IX_ColaEnvios_Enviados holds Estado = 'enviado' only: a query for errors cannot use it.
    assert unserved("q", "SELECT Id FROM dbo.ColaEnvios WHERE Estado = N'error' AND EnviadoEn >= :desde")
    assert not unserved("q", "SELECT Id FROM dbo.ColaEnvios AS c WHERE c.Estado = N'enviado' AND c.EnviadoEn >= 1")
    assert not unserved("q", "SELECT Clave FROM dbo.BloqueosConversacion WHERE Propietario IS NOT NULL "
                             "AND ExpiraEn <= 5")
    assert unserved("q", "SELECT Clave FROM dbo.BloqueosConversacion WHERE ExpiraEn <= 5")


@pytest.mark.parametrize(("name", "index"), [
    ("outbound_status_behind", "IX_ColaEnvios_Enviados"),
    ("stats_outbox", "IX_ColaEnvios_Abiertos"),
    ("stats_leases", "IX_BloqueosConversacion_Vencimiento"),
    ("leases_clear_expired", "IX_BloqueosConversacion_Vencimiento"),
])
def test_the_sqlite_twin_plans_the_timer_queries_on_their_index(name: str, index: str, db_path) -> None:
    """The same indexes exist in SQLite (migration 008), and its planner really picks them."""
    import sqlite3

    from core.storage.queries import load_queries

    query = load_queries("sqlite")[name]
    with closing(sqlite3.connect(db_path)) as conn, conn:
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + query.sql, [0] * len(query.params)))
    assert index in plan, plan
