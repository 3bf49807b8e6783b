"""`python -m reports.build` end to end on a real small study, opened in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.build import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(finished_study, tmp_path_factory) -> Path:
    study_dir, _ = finished_study
    out = tmp_path_factory.mktemp("report") / "r"
    assert main(["--study", str(study_dir), "--out", str(out)]) == 0
    return out


def test_report_has_every_part(report):
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["studies"] == ["small"]
    names = [f["name"] for f in manifest["figures"]]
    assert any(n.startswith("small-importance") for n in names)
    assert any(n.startswith("small-gallery") for n in names)
    assert manifest["tables"], "no tables"
    for entry in manifest["tables"]:
        assert (report / entry["files"]["csv"]).is_file()
        assert "\\toprule" in (report / entry["files"]["tex"]).read_text()
    index = (report / "index.html").read_text()
    assert '<script src="http' not in index  # offline: no CDN or other remote script
    assert index.count("Plotly.newPlot") == len(names)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chrome/Chromium for static export")
def test_every_figure_has_a_pdf_and_an_svg(report):
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["static_export"] is True
    for entry in manifest["figures"]:
        pdf = report / entry["files"]["pdf"]
        assert pdf.read_bytes().startswith(b"%PDF")
        assert (report / entry["files"]["svg"]).read_text().lstrip().startswith("<svg")


def test_rebuilding_gives_the_same_files(finished_study, report, tmp_path):
    study_dir, _ = finished_study
    again = tmp_path / "again"
    assert main(["--study", str(study_dir), "--out", str(again)]) == 0
    first = sorted(p.relative_to(report) for p in report.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    differing = [p for p in first if (report / p).read_bytes() != (again / p).read_bytes()]
    assert differing == []


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chrome/Chromium")
def test_index_renders_in_a_real_browser_without_script_errors(report, tmp_path):
    manifest = json.loads((report / "manifest.json").read_text())
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=20000", "--dump-dom", (report / "index.html").as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rendered = result.stdout.count('class="main-svg"')
    assert rendered >= len(manifest["figures"]), (rendered, len(manifest["figures"]))
    console_errors = [line for line in result.stderr.splitlines()
                      if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert console_errors == []


def test_missing_study_is_a_clear_error(tmp_path, capsys):
    assert main(["--study", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
