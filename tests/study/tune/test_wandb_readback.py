"""The W&B runs of a finished study, read back from their offline files with wandb's own
reader (no network): what the team sees once they are synced."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from ray.air.integrations.wandb import WandbLoggerCallback
from wandb_log import Run, logged_media, read_run

from reports.build import main as build_report
from study.tune.plan import load_plan
from study.wandb_report import main as log_report

RAY_CONFIG_KEYS = {*WandbLoggerCallback.AUTO_CONFIG_KEYS, "trial_log_path", "_wandb"}
"""Run config keys Ray's logging actor and wandb add beside the trial's own config."""


def _runs(study_dir: Path, experiment: str) -> dict[str, Run]:
    runs = [read_run(d) for d in sorted(study_dir.glob(f"{experiment}/*/wandb/offline-run-*"))]
    return {run.run_id: run for run in runs}


@pytest.fixture(scope="module")
def trial_runs(finished_study) -> dict[str, Run]:
    study_dir, _ = finished_study
    return _runs(study_dir, "small-tune")


@pytest.fixture(scope="module")
def trials(finished_study) -> pd.DataFrame:
    study_dir, _ = finished_study
    return pd.read_parquet(study_dir / "trials.parquet")


def _nested_to_flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_nested_to_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_one_finished_run_per_trial_grouped_by_study_and_tagged(finished_study, trial_runs,
                                                               trials):
    study_dir, _ = finished_study
    plan = load_plan(study_dir)
    assert set(trial_runs) == set(trials["trial_id"]) and len(trial_runs) == 6
    for trial_id, run in trial_runs.items():
        assert run.name == f"run_trial_{trial_id}" and run.group == plan.name
        assert run.tags == [plan.space, plan.dataset] and run.job_type == "search"
        assert run.exit_code == 0, f"run {trial_id} did not finish"


def test_each_run_holds_the_config_its_trial_trained_with(finished_study, trial_runs, trials):
    """Sampled values, then the space's smoke settings over them, then the study's budget,
    rate and seed: what `best_config.json` holds for the best trial."""
    study_dir, _ = finished_study
    plan = load_plan(study_dir)
    record = json.loads((study_dir / "study.json").read_text())
    smoke = _nested_to_flat(record["space"]["smoke"]) if plan.smoke else {}
    assert smoke  # the check below covers overridden values too
    for trial_id, rows in trials.groupby("trial_id"):
        sampled = {k.removeprefix("config/"): v for k, v in rows.iloc[0].items()
                   if k.startswith("config/")}
        expected = {**sampled, **smoke, "data/fs_hz": plan.fs_hz, "epochs": plan.max_epochs,
                    "seed": plan.seed}
        config = trial_runs[trial_id].flat_config
        assert set(config) - set(expected) <= RAY_CONFIG_KEYS
        assert {k: config[k] for k in expected} == pytest.approx(expected), trial_id
    best = json.loads((study_dir / "best_trial.json").read_text())["trial_id"]
    best_config = _nested_to_flat(json.loads((study_dir / "best_config.json").read_text()))
    assert {k: v for k, v in trial_runs[best].flat_config.items()
            if k not in RAY_CONFIG_KEYS} == best_config


def test_each_run_logs_every_epoch_at_the_epoch_step(trial_runs, trials):
    for trial_id, rows in trials.groupby("trial_id"):
        history = trial_runs[trial_id].history
        assert [row["epoch"] for row in history] == rows["epoch"].tolist()
        assert [row["_step"] for row in history] == rows["epoch"].tolist()
        for metric in ("val/f1_cinc", "val/loss", "train/loss", "lr"):
            assert [row[metric] for row in history] == pytest.approx(rows[metric].tolist())
        assert not any(key.startswith("config/") for row in history for key in row)


def test_each_run_ends_with_its_trials_outcome(trial_runs, trials):
    last = trials.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    assert {"completed", "early_stopped"} <= set(last["stop_reason"])
    for trial_id, row in last.iterrows():
        summary = trial_runs[trial_id].summary
        assert summary["trial/stop_reason"] == row["stop_reason"]
        assert summary["trial/rung"] == row["max_rung"]
        assert summary["trial/epochs_completed"] == row["epochs_completed"]
        assert summary["trial/message"] == ""
        assert summary["epoch"] == row["epoch"] == summary["_step"]
        assert summary["val/f1_cinc"] == pytest.approx(row["val/f1_cinc"])


def test_cross_validation_runs_name_their_candidate_and_fold(finished_study):
    study_dir, _ = finished_study
    plan = load_plan(study_dir)
    cv = pd.read_parquet(study_dir / "cv.parquet")
    runs = {(run.config["candidate"], run.config["fold"]): run
            for run in _runs(study_dir, "small-cv").values()}
    assert set(runs) == set(cv.groupby(["config/candidate", "fold"]).groups) and len(runs) == 4
    for (candidate, fold), rows in cv.groupby(["config/candidate", "fold"]):
        run = runs[(candidate, fold)]
        assert run.group == plan.name and run.job_type == "cv" and run.exit_code == 0
        assert run.config["epochs"] == plan.max_epochs
        assert [row["_step"] for row in run.history] == rows["epoch"].tolist()
        assert [row["val/f1_cinc"] for row in run.history] == pytest.approx(
            rows["val/f1_cinc"].tolist())
        assert run.summary["trial/stop_reason"] == "completed"


@pytest.fixture(scope="module")
def report_run(finished_study, tmp_path_factory) -> tuple[Run, Path, Path]:
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
    assert run.config["optuna_study"] == plan.optuna_study_name and run.exit_code == 0
    manifest = json.loads((report / "manifest.json").read_text())
    (logged,) = run.history
    media = logged_media(logged)
    figures = {k.removeprefix("figures/"): v for k, v in media.items()
               if k.startswith("figures/")}
    tables = {k.removeprefix("tables/"): v for k, v in media.items() if k.startswith("tables/")}
    assert set(figures) == {f["name"] for f in manifest["figures"]} and figures
    assert set(tables) == {t["name"] for t in manifest["tables"]} and tables
    assert {v["_type"] for v in figures.values()} == {"plotly-file"}
    assert {v["_type"] for v in tables.values()} == {"table-file"}
    table_files = {t["name"]: t["files"]["csv"] for t in manifest["tables"]}
    for name, entry in tables.items():
        logged_table = json.loads((run_dir / "files" / entry["path"]).read_text())
        csv = pd.read_csv(report / table_files[name])
        assert logged_table["columns"] == list(csv.columns)
        assert len(logged_table["data"]) == len(csv)
    figure_files = {f["name"]: f["files"]["json"] for f in manifest["figures"]}
    for name, entry in figures.items():
        logged_figure = json.loads((run_dir / "files" / entry["path"]).read_text())
        drawn = json.loads((report / figure_files[name]).read_text())
        assert len(logged_figure["data"]) == len(drawn["data"]) > 0, name
    assert media["report/index"]["_type"] == "html-file"
    assert (run_dir / "files" / media["report/index"]["path"]).is_file()
    assert set(run.files) >= {entry["path"] for entry in media.values()}
    assert run.summary["report/figures"] == len(figures)
    assert run.summary["report/tables"] == len(tables)


@pytest.mark.slow
def test_runs_reach_a_uri_storage_complete(tmp_path, run_study_cli, driver_output,
                                           small_study_args):
    """On a URI storage (here ``file://``) each run is written under Ray's staging directory
    and uploaded once it has finished: the last trial's run arrives complete too."""
    store = tmp_path / "store"
    proc = run_study_cli([*small_study_args, "--space", "cnn", "--num-samples", "2",
                          "--concurrency", "1", "--cv-top-k", "0", "--explain-top", "0",
                          "--name", "uri", "--storage-path", f"file://{store}"], tmp_path)
    out = driver_output(proc, timeout=400)
    assert proc.returncode == 0, out[-4000:]
    frame = pd.read_parquet(tmp_path / "runs" / "uri" / "trials.parquet")
    runs = _runs(store, "uri-tune")
    assert set(runs) == set(frame["trial_id"]) and len(runs) == 2
    for trial_id, rows in frame.groupby("trial_id"):
        run = runs[trial_id]
        assert run.exit_code == 0 and run.job_type == "search"
        assert [row["_step"] for row in run.history] == rows["epoch"].tolist()
        assert run.summary["trial/stop_reason"] == rows["stop_reason"].iloc[-1]
