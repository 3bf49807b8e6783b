"""`--optuna-storage postgresql://...`: studies of a team in one shared PostgreSQL database,
tested against a real server on 127.0.0.1 (the ``postgres`` fixture; skipped where none can be
started)."""

from __future__ import annotations

import os
import time
from collections import Counter
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import ray

from study.run import main
from study.tune import optuna_truth, tuning
from study.tune.plan import Plan
from study.tune.prepare import _spec


@pytest.fixture
def pg_password(postgres, monkeypatch):
    """The server's password where libpq looks for it (never in the URL, so never in
    study.json)."""
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return postgres.password


def _run_study_args(tmp_path, **changes) -> list[str]:
    args = {"--space": "cnn", "--dataset": "synthetic", "--name": "pg", **changes}
    return [str(x) for pair in args.items() for x in pair]


def test_a_wrong_password_is_one_error_line_before_ray_starts(postgres, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = postgres.url(password="not-the-password")
    assert main(_run_study_args(tmp_path, **{"--optuna-storage": url})) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the Optuna storage postgresql://postgres:***@")
    assert "password authentication failed" in err and err.count("\n") == 1
    assert "not-the-password" not in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_an_unreachable_database_is_one_error_line_in_seconds(postgres, free_port, tmp_path,
                                                              capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/optuna"  # nothing listens there
    began = time.monotonic()
    assert main(_run_study_args(tmp_path, **{"--optuna-storage": closed})) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open the Optuna storage {closed}: ")
    assert "refused" in err and err.count("\n") == 1
    assert time.monotonic() - began < 15
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def _fake_trial(search, recorder, trial_id: str, scores: list[float]) -> None:
    """What Tune does with one trial: ask, start, one result per epoch, complete."""
    trial = SimpleNamespace(trial_id=trial_id, config=search.suggest(trial_id), last_result={})
    recorder.on_trial_start(0, [], trial)
    for epoch, score in enumerate(scores, start=1):
        trial.last_result = {"val/f1_cinc": score, "epoch": epoch, "trial_status": "running"}
        recorder.on_trial_result(0, [], trial, trial.last_result)
    search.on_trial_complete(trial_id, result=trial.last_result)
    recorder.on_trial_complete(0, [], trial)


def test_two_studies_in_one_database_keep_their_own_trials(postgres, pg_password, plan_fields):
    """The study's own searcher and recorder on PostgreSQL (psycopg 3 for postgresql://)."""
    url = postgres.url()
    plans = [Plan(**plan_fields(name=n, optuna_study_name=f"{n}-{os.getpid()}",
                                optuna_storage=url, max_epochs=3)) for n in ("alice", "bob")]
    histories = {"alice": {"a1": [0.5, 0.6, 0.7], "a2": [0.1]},
                 "bob": {"b1": [0.4, 0.2], "b2": [0.5, 0.6, 0.8], "b3": [0.3, 0.5, 0.6]}}
    for plan in plans:
        search = tuning.searcher(plan, _spec(plan, folds={}))
        recorder = tuning.optuna_recorder(plan, milestones=[1, 2, 3])
        for trial_id, scores in histories[plan.name].items():
            _fake_trial(search, recorder, trial_id, scores)
    for plan in plans:
        study = optuna.load_study(study_name=plan.optuna_study_name, storage=
                                  tuning.open_storage(url))
        by_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
        assert set(by_id) == set(histories[plan.name])
        for trial_id, scores in histories[plan.name].items():
            assert by_id[trial_id].intermediate_values == pytest.approx(
                dict(enumerate(scores, start=1)))
    states = optuna_truth.state_counts(storage_url=url, study_name=plans[1].optuna_study_name)
    assert states == {"COMPLETE": 2, "PRUNED": 1}


@pytest.mark.slow
def test_real_studies_share_the_database_and_a_killed_one_resumes(
        postgres, pg_password, tmp_path, run_study_cli, driver_output, small_study_args,
        kill_at_first_checkpoint):
    url = postgres.url(database="postgres")  # the server's default database, shared
    common = ["--space", "cnn", "--concurrency", "1", "--optuna-storage", url,
              *small_study_args]
    first = run_study_cli(["--num-samples", "3", "--name", "first", *common], tmp_path)
    out = driver_output(first, timeout=400)
    assert first.returncode == 0, out[-3000:]
    assert "agrees with trials.parquet" in out

    second = run_study_cli(["--num-samples", "4", "--name", "second", *common], tmp_path)
    kill_at_first_checkpoint(second, tmp_path / "runs" / "second" / "second-tune")
    resumed = run_study_cli(["--resume", "--name", "second"], tmp_path)
    out = driver_output(resumed, timeout=400)
    assert resumed.returncode == 0, out[-3000:]

    storage = tuning.open_storage(url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    for name, n_trials in (("first", 3), ("second", 4)):
        plan_name = next(n for n in names if n.startswith(f"{name}-"))
        study = optuna.load_study(study_name=plan_name, storage=storage)
        frame = pd.read_parquet(tmp_path / "runs" / name / "trials.parquet")
        assert frame["trial_id"].nunique() == n_trials
        ran = Counter(t.user_attrs.get("tune_trial_id") for t in study.trials
                      if t.user_attrs.get("stop_reason") != optuna_truth.NEVER_RUN)
        assert set(ran) == set(frame["trial_id"]) and max(ran.values()) == 1, ran
        assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    assert pg_password not in (tmp_path / "runs" / "second" / "study.json").read_text()


def test_a_password_in_the_url_works_but_is_warned_about_and_masked(postgres):
    from study.tune import optuna_storage

    (warning,) = optuna_storage.check(postgres.url(password=postgres.password))
    assert warning.startswith("warning: ") and "PGPASSWORD" in warning
    assert postgres.password not in warning and "postgres:***@" in warning
