"""What Azure installs is requirements.txt only: the deployed code (function_app.py, bot/, core/) must not
import the local host's or the tests' tools (aiohttp, croniter, pytest, ...), nor local_host itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import ROOT

# Import names provided by requirements.txt (and their own dependencies that we use on purpose).
DEPLOYED = {"azure", "pyodbc", "openai", "google", "tenacity", "httpx", "aiohttp", "prometheus_client", "opentelemetry"}
OWN = {"bot", "core", "function_app"}


def deployed_sources() -> list[Path]:
    return [ROOT / "function_app.py", *sorted((ROOT / "bot").rglob("*.py")), *sorted((ROOT / "core").rglob("*.py"))]


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_deployed_code_imports_only_what_azure_installs() -> None:
    allowed = DEPLOYED | OWN | set(sys.stdlib_module_names) | {"__future__"}
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) - allowed) for p in deployed_sources()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_never_imports_bot() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "core").rglob("*.py")) if "bot" in imported_roots(p)]
    assert offenders == []


def test_requirements_are_pinned() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{name}: {line} is not pinned"


def test_the_python_check_accepts_311_to_313_and_names_the_fix() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    ok = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_python.py")], capture_output=True, text=True)
    assert ok.returncode == 0
    for version, accepted in (((3, 10, 14), False), ((3, 12, 1), True), ((3, 13, 0), True), ((3, 14, 0), False)):
        script = str(ROOT / "scripts" / "check_python.py")
        code = f"import runpy, sys; sys.version_info = {version!r}; runpy.run_path({script!r})"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert (out.returncode == 0) is accepted, (version, out.stderr)
        if not accepted:
            assert "use 3.11, 3.12 or 3.13" in out.stderr
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.11,<3.14"' in pyproject


def test_each_supported_python_gets_exactly_one_pin_of_each_package() -> None:
    """Environment markers choose azure-functions 1.x below 3.13 and 2.x on 3.13: every supported version
    must get one pin of every package, never two and never none."""
    from packaging.requirements import Requirement

    requirements = [Requirement(line.split("#")[0].strip()) for line in (ROOT / "requirements.txt").read_text()
                    .splitlines() if line.split("#")[0].strip()]
    names = {r.name for r in requirements}
    for version in ("3.11", "3.12", "3.13"):
        chosen = [r for r in requirements if r.marker is None or r.marker.evaluate({"python_version": version})]
        assert sorted(r.name for r in chosen) == sorted(names), version
    functions = {v: next(str(r.specifier) for r in requirements if r.name == "azure-functions"
                         and (r.marker is None or r.marker.evaluate({"python_version": v}))) for v in ("3.12", "3.13")}
    assert functions["3.12"].startswith("==1.") and functions["3.13"].startswith("==2.")
