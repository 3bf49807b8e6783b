"""Module boundaries from STYLE.md, checked by importing in a process where a package is banned.

import-linter (run in CI) checks the static import graph; this test checks what actually gets
imported at run time, including imports hidden inside functions called at import time.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BANNED = {
    "data_io": ("ray", "optuna", "plotly", "models", "study", "reports"),
    "models": ("ray", "optuna", "data_io", "study", "reports"),
    "search_spaces": ("ray", "torch", "data_io", "models", "study", "reports"),
    "reports": ("ray", "torch", "study", "models", "data_io"),
}
ALLOWED = {"reports": ("study", "study.folder_format", "study.explanation_specs")}
"""Modules of a banned package a package may import: reports reads the study folder's
format (plain names) and the explanation method specs from study."""

_PROBE = """
import importlib, pkgutil, sys
banned = {banned!r}
allowed = {allowed!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in banned and name not in allowed:
            raise ImportError(f"{{name}} must not be imported by {package}")
sys.meta_path.insert(0, Refuse())
pkg = importlib.import_module({package!r})
for info in pkgutil.walk_packages(pkg.__path__, prefix={package!r} + "."):
    if not info.name.rsplit(".", 1)[-1].startswith("__"):
        importlib.import_module(info.name)
print("ok", len(sys.modules))
"""


@pytest.mark.parametrize("package", sorted(BANNED))
def test_package_imports_without_its_banned_dependencies(package):
    code = _PROBE.format(banned=BANNED[package], allowed=ALLOWED.get(package, ()),
                         package=package)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")



PACKAGES = ("study", "data_io", "models", "search_spaces", "reports")


def _module_imports() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int]]]]:
    """Per project module: the project modules it imports at its top level, and those it
    imports inside a function (with the line)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for package in PACKAGES for p in (root / package).rglob("*.py")}

    def project_module(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    def targets(node: ast.AST, importer: str) -> list[str]:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                 if node.module and node.level == 0 else [])
        return [m for m in map(project_module, names) if m and m != importer]

    top: dict[str, set[str]] = {}
    lazy: dict[str, list[tuple[str, int]]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        top[name] = {m for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
                     for m in targets(node, name)}
        lazy[name] = [(m, sub.lineno) for node in ast.walk(tree)
                      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                      for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
                      for m in targets(sub, name)]
    return top, lazy


def test_no_import_inside_a_function_hides_a_cycle():
    # An import kept inside a function for start-up speed is fine; one that would close a
    # cycle if it stood at the top hides a design problem.
    top, lazy = _module_imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                parent = module.rpartition(".")[0]  # importing a module runs its package
                todo.extend([*top.get(module, ()), *([parent] if parent else [])])
        return False

    assert sum(map(len, lazy.values())) > 0  # the scan sees the imports it judges
    hidden = [f"{module}:{line} imports {target}" for module, found in lazy.items()
              for target, line in found if reaches(target, module)]
    assert not hidden, "\n".join(hidden)
