"""The module graph has no cycles, counting imports inside functions (a lazy import hides a cycle from
the interpreter, not from the reader); every class name is defined once; code names are English;
nothing deployed imports a module or runs a query .funcignore leaves out of the package."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("bot", "core", "local_host")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    found["function_app"] = ROOT / "function_app.py"
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports, anywhere in the file (TYPE_CHECKING blocks excepted: types only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    modules = project_modules()
    known = set(modules)
    graph = {name: imports_of(path, known) - {name} for name, path in modules.items()}
    # A package's __init__ importing its own submodules is not a cycle worth failing on.
    graph = {k: {m for m in v if not (k and m.startswith(k + "."))} for k, v in graph.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_project_cites_only_what_it_contains() -> None:
    """Whoever clones the repository has its files only: no citing outside design documents or trackers."""
    pattern = re.compile(r"DESIGN\.md|\bseeds? 00\d|\bseed-00\d|\bissue \d+\b", re.IGNORECASE)
    suffixes = {".py", ".md", ".sql", ".kql", ".yml", ".json", ".js", ".html", ".bicep", ".toml"}
    offenders = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        skipped = parts & {"node_modules", ".git", ".data"} or any(p.startswith(".venv") for p in parts)
        if path.suffix not in suffixes or skipped:
            continue
        if path.name == "test_architecture.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def runtime_parameters() -> list[str]:
    """Functions outside the composition root that take the whole `Runtime` as a parameter."""
    found = []
    for name, path in project_modules().items():
        if name == "bot.runtime":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                if any(a.annotation is not None and "Runtime" in ast.unparse(a.annotation) for a in args):
                    found.append(f"{name}.{node.name}")
    return sorted(found)


def test_services_receive_what_they_use_not_the_runtime() -> None:
    """bot/runtime.py builds the services and hands each one its own dependencies. Only the triggers
    (bot/functions, which ask for the process runtime) and the local host reach the runtime itself."""
    modules = project_modules()
    known = set(modules)
    importers = sorted(name for name, path in modules.items() if "bot.runtime" in imports_of(path, known))
    assert [m for m in importers if not m.startswith(("bot.functions.", "local_host.")) and m != "bot.runtime"] == []
    taking = runtime_parameters()
    assert [f for f in taking if not f.startswith("local_host.")] == []
    assert len(taking) <= 5, taking


def test_core_never_imports_bot() -> None:
    modules = project_modules()
    known = set(modules)
    reaching = {name: sorted(m for m in imports_of(path, known) if m.split(".")[0] == "bot")
                for name, path in modules.items() if name.split(".")[0] == "core"}
    assert {name: bots for name, bots in reaching.items() if bots} == {}


def unit(module: str) -> str:
    """The box a module is drawn in: a bot module (packages of triggers, webhook and outbound as one box),
    a core package, or `core` for core's top-level modules."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    if parts[0] == "bot":
        return ".".join(parts[:2]) if parts[1] in ("functions", "webhook", "outbound") else module
    if parts[0] == "core":
        return ".".join(parts[:2]) if len(parts) > 2 else "core"
    return parts[0]


def dependency_graph() -> str:
    modules = project_modules()
    known = set(modules)
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name.split(".")[0] not in ("bot", "core", "function_app"):
            continue
        source = unit(name)
        targets = {unit(m) for m in imports_of(path, known)} - {source}
        edges.setdefault(source, set()).update(t for t in targets if t.split(".")[0] in ("bot", "core"))
    edges = {s: t for s, t in edges.items() if t or s not in ("bot", "bot.conversation")}  # empty package inits
    width = max(len(s) for s in edges)
    return "\n".join(f"{s:<{width}} -> {', '.join(sorted(t)) or '(nothing)'}" for s, t in sorted(edges.items()))


def test_the_documented_dependency_graph_is_the_code_s() -> None:
    """docs/architecture.md shows this graph; regenerate it with `python -m tests.test_architecture`."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = doc.index("<!-- dependency graph -->\n```\n") + len("<!-- dependency graph -->\n```\n")
    assert doc[start:doc.index("```", start)].rstrip("\n") == dependency_graph()


def _top_level_classes() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for name, path in sorted(project_modules().items()):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(name)
    return where


def test_every_class_name_is_defined_once() -> None:
    """Two classes with one name (two `SweepResult`s, three `InboxRow`s) make every import a guess."""
    assert {name: mods for name, mods in _top_level_classes().items() if len(mods) > 1} == {}


# Spanish words that have been used as identifiers; the words alone, so `tipo_equipo` and `ahoraMs` match.
SPANISH_WORDS = frozenset({
    "actualizado", "ahora", "clave", "codigo", "confianza", "conversacion", "conversaciones", "creado", "datos",
    "descripcion", "desde", "detalle", "ejecucion", "empleado", "enviado", "equipo", "espera", "estado", "etiqueta",
    "fallos", "funciona", "hasta", "intencion", "intento", "intentos", "mensaje", "metricas", "muestreo", "numero",
    "operacion", "origen", "placa", "pregunta", "problema", "procesado", "propietario", "proveedor", "razon",
    "recibido", "reintento", "reintentos", "reporte", "respuesta", "resultado", "retencion", "sesion", "tabla",
    "telefono", "tienda", "tipo", "trabajos", "ubicacion", "ultima", "ultimo", "unidad", "urgente",
})
# Deployed Azure Functions names (operators and the runbook know them by these); a rename redeploys them.
DEPLOYED_NAMES = frozenset({"muestreo_metricas", "retencion"})
# Dataclasses serialised as the local console's JSON: their fields are the keys its page reads.
JSON_VIEW_MODULES = frozenset({"core.storage.inspection"})


def _words(identifier: str) -> list[str]:
    spaced = "".join(f"_{c}" if c.isupper() else c for c in identifier)
    return [w for w in spaced.lower().split("_") if w]


def spanish_identifiers(source: str, json_view: bool = False) -> list[str]:
    tree = ast.parse(source)
    exempt: set[int] = set()
    if json_view:
        exempt = {id(t) for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                  for s in c.body if isinstance(s, ast.AnnAssign) for t in ast.walk(s.target)}
    out = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            line, name = node.lineno, node.name
        elif isinstance(node, ast.arg):
            line, name = node.lineno, node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            line, name = node.lineno, node.id
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            line, name = node.lineno, node.attr
        else:
            continue
        if name in DEPLOYED_NAMES:
            continue
        # UPPER_CASE names (enum members, reply texts) are named after the stored value or the text they hold.
        if not name.isascii() or (not name.isupper() and SPANISH_WORDS & set(_words(name))):
            out.append(f"{line}: {name}")
    return out


def test_identifiers_are_english() -> None:
    """Code names are English; Spanish stays in SQL names, log text, replies and JSON keys (strings)."""
    offenders = []
    for name, path in sorted(project_modules().items()):
        found = spanish_identifiers(path.read_text(encoding="utf-8"), name in JSON_VIEW_MODULES)
        offenders += [f"{path.relative_to(ROOT)}:{hit}" for hit in found]
    assert offenders == []


def test_the_spanish_check_sees_each_kind_of_name() -> None:
    source = (
        "class TipoEquipo: ...\n"
        "def f(telefono, x): ahora_ms = 1\n"
        "class V:\n    intencion: str\n"
        "def g(self): self.ultimoError = 1\n"
        "año = 2\n"
        "REFRI_ESPERA_SAP = 'x'\n"
        "def h(phone): log(telefono=phone, text='tipo de equipo')\n"
        "def retencion(): ...\n"
    )
    expected = {"1: TipoEquipo", "2: telefono", "2: ahora_ms", "4: intencion", "5: ultimoError", "6: año"}
    assert set(spanish_identifiers(source)) == expected
    assert set(spanish_identifiers(source, json_view=True)) == expected - {"4: intencion"}


# -- what the deployed package holds ---------------------------------------------------------------

DEV_ONLY_IMPORTERS = ("local_host", "tests", "bench")


def funcignore_patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def funcignored(relative: Path, patterns: list[str]) -> bool:
    """Whether `func azure functionapp publish` leaves the file out. .funcignore takes .gitignore
    patterns; ours use two forms: a path with a slash (from the root, a file or a folder) and a bare
    name or glob (any path component)."""
    parts = relative.parts
    for pattern in patterns:
        if "/" in pattern:
            if any(fnmatch(str(Path(*parts[:i])), pattern) for i in range(1, len(parts) + 1)):
                return True
        elif any(fnmatch(part, pattern) for part in parts):
            return True
    return False


def python_files() -> list[Path]:
    """Every Python file of the repository, relative to its root (virtualenvs and node_modules aside)."""
    found = [ROOT / "function_app.py"]
    for top in ("bot", "core", "local_host", "tests", "bench", "scripts", "tools"):
        found += [p for p in (ROOT / top).rglob("*.py") if "node_modules" not in p.parts]
    return [p.relative_to(ROOT) for p in found]


def test_funcignore_leaves_out_the_dev_only_storage_and_keeps_the_app() -> None:
    patterns = funcignore_patterns()
    for left_out in ("core/storage/inspection.py", "core/storage/sql/sqlite/inspection.sql",
                     "core/storage/sql/tsql/inspection.sql", "local_host/console.py", "tests/conftest.py",
                     "bench/outbound.py", "core/__pycache__/x.cpython-312.pyc", ".venv/bin/python", ".ci/run",
                     ".coverage", ".coverage.host.1", "htmlcov/index.html", "test-output/console.png",
                     ".mypy_cache/3.12/core/x.json"):
        assert funcignored(Path(left_out), patterns), left_out
    for kept in ("function_app.py", "host.json", "requirements.txt", "bot/webhook/ingest.py",
                 "core/storage/outbox.py", "core/storage/sql/tsql/outbox.sql", "core/storage/schema/sqlite"):
        assert not funcignored(Path(kept), patterns), kept


def test_nothing_deployed_imports_a_dev_only_module_or_runs_its_queries() -> None:
    patterns = funcignore_patterns()
    modules = project_modules()
    known = set(modules)
    dev_only = {name for name, path in modules.items() if funcignored(path.relative_to(ROOT), patterns)}
    assert "core.storage.inspection" in dev_only and "local_host.console" in dev_only
    dev_queries = {
        name
        for sql in (ROOT / "core/storage/sql").rglob("*.sql")
        if funcignored(sql.relative_to(ROOT), patterns)
        for name in re.findall(r"^-- name: (\w+)", sql.read_text(encoding="utf-8"), re.MULTILINE)
    }
    assert {"console_session", "inbox_get", "lease_get"} <= dev_queries
    offenders = []
    for name, path in modules.items():
        if name in dev_only:
            continue
        offenders += [f"{name} imports {m}" for m in sorted(imports_of(path, known) & dev_only)]
        text = path.read_text(encoding="utf-8")
        offenders += [f"{name} runs dev-only query {q}" for q in sorted(dev_queries) if f'"{q}"' in text]
    assert offenders == []


def test_dev_only_modules_are_imported_only_by_local_host_tests_and_bench() -> None:
    patterns = funcignore_patterns()
    modules = project_modules()
    known = set(modules)
    dev_only_in_app = {
        name for name, path in modules.items()
        if funcignored(path.relative_to(ROOT), patterns) and not name.startswith(DEV_ONLY_IMPORTERS)
    }
    assert dev_only_in_app == {"core.storage.inspection"}
    offenders = [
        f"{relative} imports {m}"
        for relative in python_files()
        if relative.parts[0] not in DEV_ONLY_IMPORTERS
        for m in sorted(imports_of(ROOT / relative, known) & dev_only_in_app)
    ]
    assert offenders == []


if __name__ == "__main__":
    print(dependency_graph())
