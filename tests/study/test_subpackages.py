"""study's subpackages: each facade's names resolve to their modules' objects, the layers hold
and the documented entry points still run."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

SUBPACKAGES = ("study.engine", "study.explain", "study.tune")
ENTRY_POINTS = ("study.run", "study.train", "study.dashboard", "study.check_cluster",
                "study.wandb_report", "study.explain_benchmark")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_facade_name_is_its_modules_object(name):
    package = importlib.import_module(name)
    assert package.__doc__ and len(package.__doc__.split()) > 20
    for export in package.__all__:
        module = importlib.import_module(f"{name}.{package._EXPORTS[export]}")
        assert getattr(package, export) is getattr(module, export)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018


def test_the_study_flags_load_neither_ray_nor_torch():
    code = ("import sys, study.tune.cli, study.tune.listing; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_documented_entry_points_answer_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
