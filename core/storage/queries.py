"""Named queries, one folder of `.sql` files per dialect (procrastinate's habit).

Each query sits under a `-- name: some_query` header. Queries take named parameters written
`:name`; the loader turns them into the `?` placeholders both sqlite3 and pyodbc understand and
remembers the order, so callers always pass a dict and both dialects bind the same names. Every
parameter name has one declared type (`parameters.py`), checked when a value is bound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.storage.parameters import ParameterType, parameter_type

SQL_DIR = Path(__file__).parent / "sql"
DIALECTS = ("sqlite", "tsql")

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MERGE = re.compile(r"^(?:\s*--[^\n]*\n)*\s*MERGE\b", re.IGNORECASE)
# A `:name` parameter outside comments and string literals; `--` comments (where an apostrophe is
# just English), `'...'` literals and `::` casts are skipped.
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    text: str  # as written, with :name parameters (what a DBA reads)
    sql: str  # with ? placeholders (what the driver runs)
    params: tuple[str, ...]
    types: tuple[ParameterType | None, ...]  # None: undeclared (refused by load_queries)

    def bind(self, values: Mapping[str, object] | None) -> tuple[object, ...]:
        values = values or {}
        missing = [p for p in self.params if p not in values]
        if missing:
            raise KeyError(f"query {self.name} needs parameters {missing}")
        bound = []
        for param, declared in zip(self.params, self.types, strict=True):
            value = values[param]
            if isinstance(value, str) and type(value) is not str:
                value = str(value)  # a StrEnum member travels as its text
            problem = declared.problem(value) if declared is not None else None
            if problem:
                raise ValueError(f"query {self.name}: parameter :{param}: {problem}")
            bound.append(value)
        return tuple(bound)


def compile_query(name: str, text: str) -> Query:
    params: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)
        params.append(match.group(1))
        return "?"

    sql = _TOKEN.sub(replace, text)
    return Query(name=name, text=text, sql=sql, params=tuple(params), types=tuple(parameter_type(p) for p in params))


def parse_queries(source: str) -> dict[str, Query]:
    parts = _HEADER.split(source)
    queries: dict[str, Query] = {}
    for i in range(1, len(parts), 2):
        name, body = parts[i], parts[i + 1].strip()
        # SQL Server rejects a MERGE without its terminating semicolon (error 10713); others lose it.
        if not _MERGE.match(body):
            body = body.rstrip(";").strip()
        if name in queries:
            raise ValueError(f"query {name} defined twice")
        queries[name] = compile_query(name, body)
    return queries


@cache
def load_queries(dialect: str) -> dict[str, Query]:
    """All named queries of one dialect, read once."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    queries: dict[str, Query] = {}
    for path in sorted((SQL_DIR / dialect).glob("*.sql")):
        for name, query in parse_queries(path.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name} defined twice ({path.name})")
            undeclared = [p for p, t in zip(query.params, query.types, strict=True) if t is None]
            if undeclared:
                raise ValueError(f"query {name} ({path.name}): declare the type of {undeclared} in parameters.py")
            queries[name] = query
    return queries
