"""The module graph has no cycles, counting imports inside functions (a lazy import hides a cycle from
the interpreter, not from the reader)."""

from __future__ import annotations

import ast
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
    import re

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


if __name__ == "__main__":
    print(dependency_graph())
