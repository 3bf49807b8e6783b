"""The private Ray / Optuna / W&B members the study relies on are listed, checked at start-up
and touched nowhere else."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from study import library_internals
from study.library_internals import LibraryInternalsError, check_internals, missing_members

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("ray", "optuna", "wandb")


def test_every_listed_member_is_on_the_installed_libraries():
    assert missing_members() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_internals()  # installed versions lie in the checked ranges: no warning


def _table_with(member: dict) -> dict:
    table = library_internals.internals()
    table["ray"]["members"].append(member)
    return table


def test_a_missing_member_stops_the_study_naming_the_version(monkeypatch):
    gone = {"object": "ray.tune.schedulers:ASHAScheduler", "names": ["_no_such_member"],
            "why": "test"}
    table = _table_with(gone)
    monkeypatch.setattr(library_internals, "internals", lambda: table)
    with pytest.raises(LibraryInternalsError,
                       match=r"ray \d+\.\d+\.\d+ lacks ray\.tune\.schedulers:ASHAScheduler"
                             r"\._no_such_member \(checked on ray>=2\.40,<2\.61\)"):
        check_internals(features=())


def test_a_missing_module_is_reported_with_each_member():
    gone = {"object": "ray.no_such_module:Thing", "names": ["a", "b"], "why": "test"}
    assert missing_members(table=_table_with(gone)) == {
        "ray": ["ray.no_such_module:Thing.a", "ray.no_such_module:Thing.b"]}


def test_members_of_an_unused_feature_are_not_required():
    gone = {"object": "ray.tune.schedulers:ASHAScheduler", "names": ["_gone"],
            "feature": "wandb", "why": "test"}
    assert missing_members(features=(), table=_table_with(gone)) == {}
    assert missing_members(features=("wandb",), table=_table_with(gone)) == {
        "ray": ["ray.tune.schedulers:ASHAScheduler._gone"]}


def test_a_version_outside_the_checked_range_warns(monkeypatch):
    table = library_internals.internals()
    table["optuna"]["checked"] = [">=99"]
    monkeypatch.setattr(library_internals, "internals", lambda: table)
    with pytest.warns(UserWarning, match=r"optuna \S+ is outside .*>=99"):
        check_internals(features=())


def test_no_other_module_touches_a_private_member_of_the_libraries():
    found = []
    for package in ("study", "reports", "data_io", "models", "search_spaces"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "library_internals.py":
                continue
            found += [f"{path.relative_to(ROOT)}:{line}: {what}"
                      for line, what in _private_touches(ast.parse(path.read_text()))]
    assert not found, "\n".join(found)


def _private_touches(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            if "._" in node.module or any(a.name.startswith("_") for a in node.names):
                yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES and "._" in alias.name:
                    yield node.lineno, f"import {alias.name}"
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__")
              and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
              and node.value.func.id == "super"):
            yield node.lineno, f"super().{node.attr}"
