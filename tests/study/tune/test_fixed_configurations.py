"""`python -m study.run --presets ... --cv`: fixed configurations on every fold through the
same trial machinery, and the report that puts the published table beside them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

# About a minute of Ray and training: out of the default run; .ci/run runs it in its slow step.
pytestmark = pytest.mark.slow

FIXED = ["--dataset", "synthetic", "--synthetic-records", "40", "--smoke", "--max-epochs", "1",
         "--folds", "2", "--concurrency", "1", "--wandb-mode", "disabled"]


@pytest.fixture
def fixed_study(tmp_path, run_study_cli, driver_output):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = run_study_cli(["--presets", "cnn4_gap,cnn7_gmp", "--cv", "--name", "table", *FIXED],
                         cwd)
    out = driver_output(proc, timeout=400)
    assert proc.returncode == 0, out[-4000:]
    return cwd / "runs" / "table", out


def test_every_preset_trains_on_every_fold_and_the_report_skips_the_search(fixed_study,
                                                                           tmp_path):
    study_dir, out = fixed_study
    record = json.loads((study_dir / "study.json").read_text())
    assert record["plan"]["presets"] == ["cnn4_gap", "cnn7_gmp"]
    assert record["plan"]["space"] == "cnn" and record["plan"]["test"] == "none"
    cv = pd.read_parquet(study_dir / "cv.parquet")
    assert sorted(set(zip(cv["config/candidate"], cv["fold"], strict=True))) == [
        ("cnn4_gap", 0), ("cnn4_gap", 1), ("cnn7_gmp", 0), ("cnn7_gmp", 1)]
    assert (cv["config/model/depth"].groupby(cv["config/candidate"]).first()
            == pd.Series({"cnn4_gap": 4, "cnn7_gmp": 7})).all()
    assert not (study_dir / "trials.parquet").exists()
    assert not (study_dir / "final_test.json").exists()
    assert "fixed configurations cnn4_gap, cnn7_gmp on folds 0, 1, 1 epochs" in out
    assert "test set: none: fixed configurations select nothing, so every fold is scored" in out
    assert "Configuration for experiment" not in out and "tensorboard" not in out.lower()
    assert "Optuna" not in out and not (study_dir / "optuna.db").exists()  # samples nothing
    assert f"Ray Tune experiment: {study_dir}/table-cv\n" in out  # its only Tune experiment
    assert (study_dir / "table-cv").is_dir() and not (study_dir / "table-tune").exists()
    assert "study table: 2 fixed configurations on folds 0, 1, 1 epochs" in out
    for name in ("cnn4_gap", "cnn7_gmp"):
        score = cv.loc[cv["config/candidate"] == name, "val/f1_cinc"]
        assert f"  {name}: val/f1_cinc {score.mean():.4f} +- {score.std(ddof=1):.4f} over 2 " \
               "folds" in out
    # --explain-top 1 (the default): the best preset on the study's fold is explained.
    on_fold = cv[(cv["fold"] == 0) & (cv["epoch"] == 1)].set_index("config/candidate")
    (best,) = [p.name for p in (study_dir / "trials").iterdir()]
    assert on_fold.loc[best, "val/f1_cinc"] == on_fold["val/f1_cinc"].max()
    assert f"writing predictions and explanation arrays of trial {best} ..." in out
    for name in ("predictions.parquet", "explanations.npz", "scored_explanations.npz"):
        assert (study_dir / "trials" / best / name).is_file(), name
    _the_report_skips_the_search_analyses(study_dir, out=tmp_path / "report")


def _the_report_skips_the_search_analyses(study_dir, *, out):
    from reports.build import SEARCH_ANALYSES, build

    _, drawn = build([study_dir], out=out, static=False, n_bootstrap=20)
    ((_, sections),) = drawn
    by_title = {s.title.lower(): s for s in sections}
    for title in SEARCH_ANALYSES:
        (note,) = by_title[title].notes
        assert note.startswith("Not computed: this study trained fixed configurations "
                               "(cnn4_gap, cnn7_gmp)")
    cv_tables = [t for s in sections if s.title.lower().startswith("cross-validation")
                 for t in s.tables]
    assert cv_tables and any({"cnn4_gap", "cnn7_gmp"} <= set(t.frame.astype(str).stack())
                             for t in cv_tables)
    assert not any("could not be computed" in n for s in sections for n in s.notes)
    (board,) = by_title["leaderboard"].tables  # the presets ranked on their CV means
    assert sorted(board.frame["Configuration"]) == ["cnn4_gap", "cnn7_gmp"]
    assert all(cell.endswith("(2 folds)") for cell in board.frame["CinC F1 CV mean ± sd"])
    answer = by_title["summary"].notes[0]
    assert answer.startswith("A study of fixed configurations, no search: CinC F1 in "
                             "cross-validation") and "cnn4_gap" in answer and "cnn7_gmp" in answer
    summary = by_title["summary"].tables[0].frame.set_index("Item")["Value"]
    assert summary["Runs (configuration x fold)"].startswith("4: 4 completed")
    (curves,) = by_title["learning curves"].figures  # every preset on every fold
    assert "every configuration on every fold" in curves.title
    assert sum(t.mode == "lines" for t in curves.figure.data) == 4
    assert "no early stopping" in by_title["learning curves"].notes[0]
    best = by_title["best configuration: per-class scores and confusion matrix"]
    (table,) = best.tables
    assert table.title.split(" on the ")[0] in ("Trial cnn4_gap", "Trial cnn7_gmp")
    assert "cross-validation folds 0, 1" in table.title
    (matrix,) = best.figures
    assert matrix.name.endswith("best-confusion")
    assert by_title["explanation galleries"].figures  # the explained preset's records
    assert by_title["explanation scores"].tables
