"""The listings of `python -m study.run`: what they print, and that they answer without
importing the study stack (torch, Ray, the data readers), which is what keeps them fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data_io.datasets import dataset_names
from models.listing import parameter_count
from models.presets import load_preset
from search_spaces import space_names
from study.run import main

HEAVY = ("torch", "ray", "wfdb", "scipy.signal", "pandas", "captum")


def _imported_after(argv: list[str]) -> dict:
    """Run ``study.run.main(argv)`` in a fresh interpreter; its exit code and which of
    `HEAVY` it imported."""
    code = (
        "import json, sys\n"
        "from study.run import main\n"
        f"status = main({argv!r})\n"
        f"print(json.dumps({{'status': status, 'heavy': [m for m in {HEAVY!r} "
        "if m in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--list-spaces"], ["--list-datasets"],
                                  ["--show-dataset", "cinc2017"]])
def test_listings_import_nothing_heavy(argv):
    found = _imported_after(argv)
    assert found == {"status": 0, "heavy": []}


def test_show_space_imports_torch_for_the_counts_but_not_ray():
    found = _imported_after(["--show-space", "cnn"])
    assert found["status"] == 0
    assert "torch" in found["heavy"] and "ray" not in found["heavy"]


def test_list_spaces_names_every_space_once(capsys):
    assert main(["--list-spaces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(space_names())


def test_list_datasets_names_every_data_set(capsys):
    assert main(["--list-datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == dataset_names()


def test_show_space_counts_the_family_presets_for_cinc2017(capsys):
    assert main(["--show-space", "cnn"]) == 0
    out = capsys.readouterr().out
    assert "presets of the cnn family, parameters for cinc2017 (4 classes, 1 lead)" in out
    row = next(line for line in out.splitlines() if line.split()[:1] == ["cnn7_gmp"])
    expected = parameter_count(load_preset("cnn7_gmp"), n_classes=4, n_leads=1)
    assert row.split()[2] == f"{expected / 1e6:.2f}"
    assert "A new study created" not in out


def test_show_space_json_is_the_description_with_presets(capsys):
    assert main(["--show-space", "convlstm", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "convlstm" and shown["parameters"]
    assert {row["family"] for row in shown["presets"]} == {"convlstm"}


def test_unknown_space_is_one_error_line(capsys):
    assert main(["--show-space", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nosuch" in err[0]
