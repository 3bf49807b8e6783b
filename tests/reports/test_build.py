"""`python -m reports.build` end to end on a real small study, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import plotly.io as pio
import pytest
from opening_study import final_test_record, make_study, write_storage

from reports.build import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FEW_RESAMPLES = ["--bootstrap", "20"]


@pytest.fixture(scope="module")
def report(finished_study, tmp_path_factory) -> Path:
    study_dir, _ = finished_study
    out = tmp_path_factory.mktemp("report") / "r"
    # 20 resamples keep the suite fast (200 importance refits per budget take a minute)
    assert main(["--study", str(study_dir), "--out", str(out), *FEW_RESAMPLES]) == 0
    return out


OPENING = ["Summary", "Leaderboard", "Published results beside this study", "Learning curves",
           "Optimisation history", "Best configuration: per-class scores and confusion matrix"]


def section_titles(index: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", index)


def drawn_figures(report: Path) -> dict[str, object]:
    """Every figure of a report, read back from its plotly JSON."""
    manifest = json.loads((report / "manifest.json").read_text())
    return {f["name"]: pio.read_json(report / f["files"]["json"]) for f in manifest["figures"]}


def assert_no_empty_figure(report: Path) -> None:
    for name, figure in drawn_figures(report).items():
        points = sum(len(getattr(t, "y", None) if getattr(t, "y", None) is not None
                         else getattr(t, "z", None) or []) for t in figure.data)
        assert points > 0, f"{name} draws nothing"
        assert "epoch None" not in figure.to_json(), name


def test_report_has_every_part(report, finished_study):
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["studies"] == ["small"]
    names = [f["name"] for f in manifest["figures"]]
    # the answer first, in this order, then the analyses behind it
    titles = section_titles((report / "index.html").read_text())
    assert titles[:len(OPENING)] == OPENING
    assert titles[len(OPENING):] == [
        "Parameter importance by budget", "Marginal effects and interactions",
        "Early-stopping audit (ASHA)", "Per-class scores",
        "Cross-validation of the best configurations", "Explanation galleries",
        "Explanation scores", "Explanation sanity checks", "Explanation figures for publication"]
    assert names[:3] == ["small-learning-curves", "small-optimisation-history",
                         "small-best-confusion"]
    tables = [t["name"] for t in manifest["tables"]]
    assert tables[:2] == ["small-summary", "small-leaderboard"]
    summary = (report / "tables" / "small-summary.csv").read_text()
    assert "6: " in summary and "without early stopping" in summary and "CPU-hours" in summary
    leaderboard = (report / "tables" / "small-leaderboard.csv").read_text().splitlines()
    assert leaderboard[0].startswith("Rank,Trial,CNN depth,")  # parameters in words
    assert "CinC F1 CV mean ± sd" in leaderboard[0]  # the study ran --cv-top-k 1
    assert "(2 folds)" in leaderboard[1]  # fold 2 is the held-out test set
    board = pd.read_csv(report / "tables" / "small-leaderboard.csv")
    final = json.loads((finished_study[0] / "final_test.json").read_text())["candidates"][0]
    assert board.loc[0, "Trial"] == final["trial_id"]  # the best, retrained, scored once
    assert float(board.loc[0, "CinC F1 test"]) == pytest.approx(
        final["metrics"]["test/f1_cinc"], abs=5e-4)
    baseline = board.set_index("Trial").loc["cnn4_gap"]  # --baseline, under the search's rows
    assert baseline["Rank"] == "baseline" and baseline["CinC F1 CV mean ± sd"].endswith(
        "(2 folds)")
    assert any(n.startswith("small-importance") for n in names)
    assert any(n.startswith("small-gallery") for n in names)
    assert_no_empty_figure(report)
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


def test_rebuilding_gives_the_same_files(finished_study, tmp_path):
    study_dir, _ = finished_study
    # Two builds without the static export (40 s of Chromium each); every file byte-identical.
    builds = [tmp_path / "first", tmp_path / "again"]
    for out in builds:
        args = ["--study", str(study_dir), "--out", str(out), *FEW_RESAMPLES, "--no-static"]
        assert main(args) == 0
    first, second = (sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
                     for out in builds)
    assert first == second and len(first) > 20
    differing = [p for p in first if (builds[0] / p).read_bytes() != (builds[1] / p).read_bytes()]
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
    # the page the browser built opens with the answer
    assert section_titles(result.stdout)[:len(OPENING)] == OPENING
    console_errors = [line for line in result.stderr.splitlines()
                      if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert console_errors == []


def test_missing_study_is_a_clear_error(tmp_path, capsys):
    assert main(["--study", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def three_trials(tmp_path_factory) -> Path:
    """A study directory of five trials of which two completed (one stopped early, one
    diverged, one failed), with a final_test.json, as a study writes them."""
    directory = tmp_path_factory.mktemp("three")
    study = make_study(directory, final_test=final_test_record())
    (directory / "study.json").write_text(json.dumps(study.record))
    study.trials.to_parquet(directory / "trials.parquet")
    (directory / "final_test.json").write_text(json.dumps(study.final_test))
    write_storage(directory)
    return directory


def test_a_small_study_explains_in_one_line_what_it_cannot_compute(three_trials, tmp_path):
    out = tmp_path / "r"
    assert main(["--study", str(three_trials), "--out", str(out), "--no-static",
                 "--bootstrap", "50"]) == 0
    index = (out / "index.html").read_text()
    assert section_titles(index)[:len(OPENING)] == OPENING
    # the diverged trial is left out: 3 trials scored at epoch 1
    assert "Not computed: needs at least 4 trials scored at one ASHA milestone; this study " \
           "has 3." in index
    assert "Not computed: needs at least 10 trials scored at one budget; this study has 3 " \
           "(at epoch 1)." in index
    assert "Rungs cannot be judged" in index
    assert "0.660 on the held-out test set" in index  # the answer, from final_test.json
    assert "Trial aaa on the held-out test set (fold 3, 80 records)" in index
    figures = drawn_figures(out)
    assert sorted(figures) == ["s-best-confusion", "s-learning-curves",
                               "s-optimisation-history"]
    assert_no_empty_figure(out)
    summary = (out / "tables" / "s-summary.csv").read_text()
    assert "5: 2 completed, 1 stopped early, 1 failed, 1 diverged" in summary


def test_bootstrap_option_must_be_a_positive_number(three_trials, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--study", str(three_trials), "--out", str(tmp_path / "o"), "--bootstrap", "0"])
    assert exit_.value.code == 2
    assert "'0' is not a positive whole number of resamples" in capsys.readouterr().err


def test_without_a_browser_static_export_is_off_with_a_warning_not_a_hang(monkeypatch):
    from reports import export

    monkeypatch.setattr(export, "browser_path", lambda: None)
    with pytest.warns(UserWarning, match="static export .* is off: no Chrome or Chromium"), \
            export.static_exporter(True) as static:
        assert static is False


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chrome/Chromium for static export")
def test_png_export_is_a_real_image_at_twice_the_layout_size(tmp_path):
    import plotly.graph_objects as go

    from reports import export
    from reports.artifact import Figure, Sources

    drawn = go.Figure(go.Scatter(y=[1, 3, 2]), layout={"width": 300, "height": 200})
    figure = Figure(name="curve", title="a curve", figure=drawn, sources=Sources(study="s"))
    with export.static_exporter(True) as static:
        entry = export.write_figure(figure, out=tmp_path, static=static,
                                    formats=(*export.STATIC_FORMATS, "png"))
    png = (tmp_path / entry["files"]["png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (300 * export.RASTER_SCALE, 200 * export.RASTER_SCALE)
    assert set(entry["files"]) == {"json", "pdf", "svg", "png"}
