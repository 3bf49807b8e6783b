"""`python -m study.run` end to end: a real local Ray Tune + Optuna + ASHA study on synthetic
data, resume after the driver is SIGKILLed, dry runs and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from search_spaces import space_names
from study.run import main


def test_study_writes_every_artefact(finished_study):
    study_dir, out = finished_study
    for name in ("study.json", "folds.csv", "optuna.db", "trials.parquet", "best_config.json"):
        assert (study_dir / name).is_file(), name
    record = json.loads((study_dir / "study.json").read_text())
    assert record["plan"]["space"] == "cnn" and record["folds"]["n_folds"] == 3
    assert record["data"]["fingerprint"] and record["versions"]["ray"]
    assert record["asha_rung"] == {"metric": "val/auroc_macro", "mode": "max"}  # the default
    assert "best:" in out and "trials.parquet" in out
    stages = json.loads((study_dir / "stage_times.json").read_text())
    assert set(stages) == {"search", "cv", "final", "explanations"}
    assert all(seconds > 0 for seconds in stages.values()), stages
    frame = pd.read_parquet(study_dir / "trials.parquet")
    per_trial = frame.groupby("trial_id").agg(wall=("time_total_s", "max"),
                                              epochs=("seconds", "sum"))
    assert (per_trial["wall"] >= per_trial["epochs"]).all()  # the wall time holds the epochs


def test_terminal_shows_the_study_lines_and_ray_output_goes_to_the_log(finished_study):
    study_dir, out = finished_study
    assert "Configuration for experiment" not in out and "tensorboard" not in out.lower()
    assert "Trial status" not in out and "trial_status" not in out
    assert "(1/6) starts:" in out and "finished after 3 epochs: val/f1_cinc" in out
    assert "stopped early by the scheduler after epoch 1" in out
    assert "(rung 0): val/f1_cinc " in out and ", ranked on val/auroc_macro " in out
    assert "search: 6/6 trials done" in out
    assert "Started a local Ray instance" in (study_dir / "ray-driver.log").read_text()
    assert len(out.splitlines()) < 150, out  # no tables: lines per trial event, a summary a minute


def test_only_the_best_trials_keep_their_checkpoints(finished_study):
    study_dir, out = finished_study
    checkpoints = [path.parent.name for path in study_dir.glob("small-tune/*/checkpoint_*")]
    assert 1 <= len(set(checkpoints)) <= 2  # --keep-checkpoints 2 (the default)
    assert len(checkpoints) == len(set(checkpoints))  # only the newest of a kept trial
    assert not list(study_dir.glob("small-cv/*/checkpoint_*"))
    assert "checkpoints: kept for" in out and "freeing" in out
    # the best configuration and the cnn4_gap baseline, retrained for the test fold
    assert "final models: kept, the newest checkpoint of each of the 2 under " in out
    assert len({path.parent for path in study_dir.glob("small-final/*/checkpoint_*")}) == 2
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert any(best["trial_id"] in name for name in checkpoints)


def _printed_command(out: str, *, after: str) -> str:
    """The indented command on the line after the one that starts with ``after``."""
    lines = out.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(after))
    return lines[index + 1].strip()


def test_the_closing_commands_run_as_printed(finished_study, tmp_path):
    """The study's last lines are the report command, then the best configuration's retraining;
    each runs exactly as printed, from another directory, and the retraining's JSON is strict
    (no NaN)."""
    study_dir, out = finished_study
    closing = out.splitlines()[-4:]
    assert closing[0] == "next, the report:" and closing[2].startswith("retrain the best")
    report = _printed_command(out, after="next, the report:")
    retrain = _printed_command(out, after="retrain the best configuration alone")
    assert report == f"python -m reports.build --study {study_dir}"
    assert "TEST_DIR" not in retrain and "--eval-dir" not in retrain
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(retrain, shell=True, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout, parse_constant=lambda word: pytest.fail(f"JSON has {word}"))
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert result["epochs_completed"] == best["epochs"] and 0.0 <= result["val/f1_cinc"] <= 1.0
    done = subprocess.run(report, shell=True, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "reports" / "_build" / "index.html").is_file()


def test_asha_stops_trials_early_and_rows_record_why(finished_study):
    study_dir, _ = finished_study
    frame = pd.read_parquet(study_dir / "trials.parquet")
    per_trial = frame.drop_duplicates("trial_id").set_index("trial_id")
    assert len(per_trial) == 6
    assert (per_trial["stop_reason"] == "early_stopped").sum() >= 1
    assert (per_trial["stop_reason"] == "completed").sum() >= 1
    completed = per_trial.index[per_trial["stop_reason"] == "completed"]
    for trial in completed:
        assert frame.loc[frame.trial_id == trial, "epoch"].tolist() == [1, 2, 3]
    assert set(frame["rung"]) <= {0, 1} and frame["at_milestone"].any()
    assert {"config/model/depth", "config/loss/focal_gamma", "val/f1_cinc", "node", "seconds"} \
        <= set(frame.columns)


def test_cross_validation_retrains_the_best_configuration_on_every_fold(finished_study):
    study_dir, _ = finished_study
    cv = pd.read_parquet(study_dir / "cv.parquet")
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert set(cv["config/candidate"]) == {best["trial_id"], "cnn4_gap"}  # --baseline
    assert sorted(cv["fold"].unique().tolist()) == [0, 1]  # fold 2 is the test set
    baseline = cv[cv["config/candidate"] == "cnn4_gap"]
    assert sorted(baseline["fold"].unique().tolist()) == [0, 1]  # paired with the best
    assert (baseline["config/model/depth"] == 4).all()
    assert (cv.groupby("trial_id")["epoch"].max() == 3).all()
    assert set(cv["stop_reason"]) == {"completed"}


def test_the_best_configuration_is_scored_once_on_the_held_out_test_fold(finished_study):
    study_dir, out = finished_study
    record = json.loads((study_dir / "study.json").read_text())
    assert record["plan"]["test"] == "fold" and record["plan"]["test_fold"] == 2
    folds = pd.read_csv(study_dir / "folds.csv")
    n_test = int((folds["fold"] == 2).sum())
    final = json.loads((study_dir / "final_test.json").read_text())
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert final["test"] == {"source": "fold", "fold": 2, "directory": None, "n_records": n_test}
    assert final["trained_on"] == {"n_records": len(folds) - n_test, "epochs": 3}
    candidate, baseline = final["candidates"]
    assert candidate["trial_id"] == best["trial_id"] and candidate["rank"] == 1
    assert baseline["trial_id"] == "cnn4_gap" and baseline["baseline"] is True
    assert baseline["search_score"] is None and 0 <= baseline["metrics"]["test/f1_cinc"] <= 1
    assert f"2. cnn4_gap: f1_cinc {baseline['metrics']['test/f1_cinc']:.4f} (baseline)" in out
    assert candidate["search_score"] == pytest.approx(best["val/f1_cinc"])
    metrics = candidate["metrics"]
    assert 0 <= metrics["test/f1_cinc"] <= 1
    assert np.array(metrics["test/confusion"]).sum() == n_test
    assert {f"test/f1_{key}" for key in final["keys"]} <= set(metrics)
    assert f"1. {best['trial_id']}: f1_cinc {metrics['test/f1_cinc']:.4f}" in out


def test_optuna_storage_holds_the_trials(finished_study):
    study_dir, _ = finished_study
    storage = f"sqlite:///{study_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == 6
    assert all("model/depth" in t.params for t in study.trials)
    frame = pd.read_parquet(study_dir / "trials.parquet")
    last = frame.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert set(by_tune_id) == set(last.index)
    states = {"completed": optuna.trial.TrialState.COMPLETE,
              "early_stopped": optuna.trial.TrialState.PRUNED}
    for trial_id, row in last.iterrows():
        trial = by_tune_id[trial_id]
        assert trial.state == states[row["stop_reason"]], trial_id
        epochs = frame.loc[frame.trial_id == trial_id].set_index("epoch")["val/f1_cinc"]
        assert trial.intermediate_values == pytest.approx(epochs.to_dict())
        assert trial.user_attrs["rung"] == row["max_rung"]
    assert study.best_trial.user_attrs["stop_reason"] == "completed"
    best = json.loads((study_dir / "best_trial.json").read_text())
    assert study.best_trial.user_attrs["tune_trial_id"] == best["trial_id"]


def test_wandb_offline_runs_and_best_trial_artifacts(finished_study):
    study_dir, _ = finished_study
    assert len(list(study_dir.glob("small-tune/*/wandb/offline-run-*"))) == 6
    best = json.loads((study_dir / "best_trial.json").read_text())
    trial_dir = study_dir / "trials" / best["trial_id"]
    predictions = pd.read_parquet(trial_dir / "predictions.parquet")
    assert {"record", "fold", "y_true", "y_pred", "p_N", "p_A", "p_O", "p_~"} <= set(predictions)
    with np.load(trial_dir / "explanations.npz") as arrays:
        assert arrays["signal"].shape[-1] == arrays["map/cam"].shape[-1]
        assert "map/occlusion" in arrays and "shift/mask" in arrays
        assert "map/integrated_gradients" in arrays and "shift/target_reached" in arrays
    # Every validation record with an abnormal beat is explained for scoring, with its mask.
    with np.load(trial_dir / "scored_explanations.npz") as scored:
        assert scored["mask"].shape == scored["signal"][:, 0].shape
        assert all((mask[:n] > 0).any() for mask, n in zip(scored["mask"], scored["lengths"],
                                                            strict=True))
        assert set(scored["record_ids"]) <= set(predictions["record"])


@pytest.mark.slow  # about 3 min; .ci/run runs it in its recovery step
def test_resume_after_the_driver_is_killed(tmp_path, run_study_cli, driver_output,
                                          small_study_args, kill_at_first_checkpoint):
    args = ["--space", "cnn", "--num-samples", "4", "--concurrency", "1", "--name", "killed",
            "--set", "loss/focal_gamma=0.5", *small_study_args]
    proc = run_study_cli(args, tmp_path)
    kill_at_first_checkpoint(proc, tmp_path / "runs" / "killed" / "killed-tune")
    resumed = run_study_cli(["--resume", "--name", "killed"], tmp_path)
    out = driver_output(resumed, timeout=540)
    assert resumed.returncode == 0, out[-4000:]
    frame = pd.read_parquet(tmp_path / "runs" / "killed" / "trials.parquet")
    assert frame["trial_id"].nunique() == 4
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    per_trial = frame.drop_duplicates("trial_id")
    assert set(per_trial["stop_reason"]) <= {"completed", "early_stopped"}
    storage = f"sqlite:///{tmp_path / 'runs' / 'killed' / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in trials]
    # Resumed and restarted trials record the fixed option as they trained it, unsampled.
    assert (frame["config/loss/focal_gamma"] == 0.5).all()
    assert not any("loss/focal_gamma" in t.params for t in trials)


@pytest.mark.parametrize("space", space_names())
def test_dry_run_checks_and_runs_nothing(space, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--space", space, "--dataset", "synthetic", "--dry-run", "--name", "d",
                 "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert f"space {space}" in out and "nothing run" in out
    assert not (tmp_path / "runs" / "d" / "study.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nope"], "unknown space 'nope'"),
        (["--space", "cnn", "--data-dir", "/nowhere"], "/nowhere does not exist"),
        (["--space", "cnn"], "needs --data-dir"),
        (["--space", "cnn", "--dataset", "synthetic", "--gpus-per-trial", "99"], "GPU"),
        (["--space", "cnn", "--dataset", "synthetic", "--grace-period", "5",
          "--max-epochs", "3"], "--grace-period"),
        (["--resume", "--name", "never-ran"], "no study at"),
        (["--space", "cnn", "--dataset", "synthetic", "--cv"], "--cv belongs to --presets"),
        (["--dataset", "synthetic", "--presets", "cnn7_gmp,nope"], "unknown preset(s) nope"),
        (["--dataset", "synthetic", "--presets", "cnn7_gmp,hadln"],
         "mixes model families (cnn, hadln)"),
        (["--space", "cnn", "--dataset", "synthetic", "--folds", "3", "--test-fold", "0"],
         "--test-fold 0 is the search's validation fold"),
        (["--space", "cnn", "--dataset", "synthetic", "--test-fold", "1", "--no-test"],
         "--test-fold and --no-test exclude each other"),
        (["--space", "cnn", "--dataset", "synthetic", "--folds", "2"],
         "--folds 2 leaves no fold to train on"),
        (["--space", "cnn", "--dataset", "synthetic", "--test-dir", "/nowhere"],
         "--test-dir: "),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "optim/learning_rate=1"],
         "unknown option(s) ['learning_rate'] in section 'optim'"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "optim"], "SECTION/OPTION=VALUE"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "optimizer/lr=1"],
         "unknown configuration section 'optimizer'"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "loss/focal_gamma=-1",
          "--dry-run"], "--set loss/focal_gamma=-1 is not allowed: must be a finite number >= 0"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "loss/focal_gamma=abc",
          "--dry-run"], 'loss/focal_gamma="abc" is not allowed'),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "optim/lr=Infinity",
          "--dry-run"], "optim/lr=Infinity is not allowed: must be a finite number > 0"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "data/train_batching=pad",
          "--dry-run"], "must be one of bucket, crop, pad_fixed"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "optim/batch_size=2.5",
          "--dry-run"], "must be an integer >= 1"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "model/depth=9"],
         "--set: space cnn cannot run with model/depth=9 is not one of the space's choices"),
        (["--space", "cnn", "--dataset", "synthetic", "--set", "epochs=3"],
         "--set epochs: the study's --max-epochs sets it in every trial"),
        (["--dataset", "synthetic", "--presets", "cnn7_gmp", "--baseline", "cnn4_gap"],
         "--baseline belongs to a search"),
        (["--space", "cnn", "--dataset", "synthetic", "--baseline", "cnn4_gap", "--no-test"],
         "--baseline needs --cv-top-k"),
        (["--space", "cnn", "--dataset", "synthetic", "--baseline", "nope"],
         "--baseline: unknown preset(s) nope"),
        (["--space", "cnn", "--dataset", "synthetic", "--folds", "4", "--cv-folds", "4"],
         "--cv-folds 4: only 3 folds are not the test fold"),
    ],
)
def test_bad_input_is_one_clear_error_before_any_trial(args, message, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_baseline_options_reach_the_plan_and_the_trial_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--space", "cnn", "--dataset", "synthetic", "--dry-run", "--name", "b",
                 "--no-estimate",
                 "--sampler", "random", "--scheduler", "fifo", "--smoke",
                 "--set", "loss/focal_gamma=0", "--set", "optim/lr=0.002"]) == 0
    out = capsys.readouterr().out
    assert "(random)" in out and "no early stopping" in out
    (fixed,) = [line for line in out.splitlines() if line.startswith("fixed in every trial: ")]
    assert "loss/focal_gamma=0" in fixed and "optim/lr=0.002" in fixed


def test_fixed_options_override_samples_and_smoke_settings_section_by_section(plan_fields):
    from study.tune.plan import Plan
    from study.tune.prepare import _spec

    plan = Plan(**plan_fields(smoke=True, fixed={"optim/lr": 0.5, "loss/focal_gamma": 0.0}))
    overrides = _spec(plan, folds={}).overrides
    assert overrides["optim"] == {"batch_size": 8, "lr": 0.5}  # smoke batch size kept
    assert overrides["loss"] == {"focal_gamma": 0.0}
    assert overrides["data"]["crop_s"] == 10.0



@pytest.mark.parametrize(("fold", "n", "expected"), [(0, None, [0, 1, 2, 3, 4, 5, 6]),
                                                     (0, 3, [0, 1, 2]), (5, 3, [0, 5, 6])])
def test_cv_folds_start_at_the_search_fold_and_skip_the_test_fold(plan_fields, fold, n,
                                                                  expected):
    from study.tune.plan import Plan

    plan = Plan(**plan_fields(n_folds=8, fold=fold, test_fold=7, cv_n_folds=n))
    assert plan.cv_folds == expected
