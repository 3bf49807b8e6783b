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
ALLOWED = {"reports": ("study", "study.folder_format")}
"""Modules of a banned package a package may import: reports reads the study folder's
format (plain names) from study."""

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

