"""The W&B runs of a finished study, read back from their offline files (no network): what
the team sees once they are synced."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from wandb_log import read_run

from reports.build import main as build_report
from study.plan import load_plan
from study.wandb_report import main as log_report

pytestmark = pytest.mark.skip(
    reason="known broken (issue 12 stays open): on 2026-11-29 the offline-log decoder read one "
           "run's id as '' (that run's file not yet complete when read) and the report run's "
           "files differed from the report's; fix the reader, then remove this mark")


@pytest.fixture(scope="module")
def trial_runs(finished_study):
    study_dir, _ = finished_study
    runs = [read_run(d) for d in sorted(study_dir.glob("small-tune/*/wandb/offline-run-*"))]
    return {run.run_id: run for run in runs}


def test_one_run_per_trial_grouped_by_study_and_tagged(finished_study, trial_runs):
    study_dir, _ = finished_study
    plan = load_plan(study_dir)
    frame = pd.read_parquet(study_dir / "trials.parquet")
    assert set(trial_runs) == set(frame["trial_id"])
    for run in trial_runs.values():
        assert run.group == plan.name and run.tags == [plan.space, plan.dataset]
        assert run.exit_code == 0 and run.name.startswith("run_trial_")


def _flat(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_each_run_holds_config_epochs_and_outcome(finished_study, trial_runs):
    study_dir, _ = finished_study
    frame = pd.read_parquet(study_dir / "trials.parquet")
    for trial_id, rows in frame.groupby("trial_id"):
        run = trial_runs[trial_id]
        config = {k.removeprefix("config/"): v for k, v in rows.iloc[0].items()
                  if k.startswith("config/")}
        assert {k: v for k, v in _flat(run.config).items() if k in config} == config
        assert set(config) <= set(_flat(run.config))
        epochs = [row for row in run.history if "epoch" in row]
        assert [row["epoch"] for row in epochs] == rows["epoch"].tolist()
        assert all(row["_step"] == row["epoch"] for row in epochs)  # the epoch is the step
        assert [row["val/f1_cinc"] for row in epochs] == pytest.approx(
            rows["val/f1_cinc"].tolist())
        last = rows.iloc[-1]
        assert run.summary["trial/stop_reason"] == last["stop_reason"]
        assert run.summary["trial/rung"] == last["max_rung"]
        assert run.summary["trial/epochs_completed"] == last["epochs_completed"]
        assert run.summary["epoch"] == last["epoch"]


@pytest.fixture(scope="module")
def report_run(finished_study, tmp_path_factory):
    study_dir, _ = finished_study
    report = tmp_path_factory.mktemp("report")
    assert build_report(["--study", str(study_dir), "--out", str(report), "--no-static"]) == 0
    assert log_report(["--study-dir", str(study_dir), "--report", str(report),
                       "--wandb-mode", "offline"]) == 0
    (run_dir,) = study_dir.glob("wandb/offline-run-*")
    return read_run(run_dir), run_dir, report


def test_the_report_run_holds_every_figure_and_table(finished_study, report_run):
    study_dir, _ = finished_study
    run, run_dir, report = report_run
    plan = load_plan(study_dir)
    assert run.group == plan.name and run.job_type == "report" and "report" in run.tags
    assert run.config["optuna_study"] == plan.optuna_study_name
    manifest = json.loads((report / "manifest.json").read_text())
    (logged,) = run.history
    figures = {k.removeprefix("figures/"): v for k, v in logged.items()
               if k.startswith("figures/")}
    tables = {k.removeprefix("tables/"): v for k, v in logged.items() if k.startswith("tables/")}
    assert set(figures) == {f["name"] for f in manifest["figures"]} and figures
    assert set(tables) == {t["name"] for t in manifest["tables"]} and tables
    assert {v["_type"] for v in figures.values()} == {"plotly-file"}
    assert {v["_type"] for v in tables.values()} == {"table-file"}
    for name, entry in tables.items():
        logged_table = json.loads((run_dir / "files" / entry["path"]).read_text())
        csv = pd.read_csv(report / "tables" / f"{name}.csv")
        assert logged_table["columns"] == list(csv.columns)
        assert len(logged_table["data"]) == len(csv)
    for entry in figures.values():
        assert json.loads((run_dir / "files" / entry["path"]).read_text())["data"]
    assert logged["report/index"]["_type"] == "html-file"
    assert run.summary["report/figures"] == len(figures)
    assert Path(run_dir / "files" / logged["report/index"]["path"]).is_file()
