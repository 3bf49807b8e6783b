"""Every benchmark and drill in `bench/` is a working command: it imports against the current
code and answers ``--help`` (their full runs take minutes and live in bench/README.md)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import bench

HELPERS = {"common", "ray_cluster", "loopback_guard", "no_dns", "dead_ends"}
"""Modules the commands share; everything else in bench/ is a command."""
COMMANDS = sorted(info.name for info in pkgutil.iter_modules(bench.__path__)
                  if info.name not in HELPERS)


def test_the_readme_lists_every_command():
    text = (Path(bench.__path__[0]) / "README.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"python -m bench.{name}" not in text]
    assert not missing, f"bench/README.md does not give the command of {missing}"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_answers_help(name, capsys):
    module = importlib.import_module(f"bench.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert f"python -m bench.{name}" in (module.__doc__ or "")
    assert capsys.readouterr().out.startswith("usage:")
