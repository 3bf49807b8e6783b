"""The study's Optuna searcher survives a Tune restore that lags its storage (no Ray cluster)."""

from __future__ import annotations

import optuna
import pytest

from study.tuning import RestorableOptunaSearch


def _define(trial: optuna.trial.BaseTrial) -> None:
    trial.suggest_float("optim/lr", 1e-4, 1e-1, log=True)


def _searcher(db) -> RestorableOptunaSearch:
    return RestorableOptunaSearch(
        space=_define, metric="val/f1_cinc", mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=optuna.storages.RDBStorage(f"sqlite:///{db}"), study_name="s",
    )


def test_restore_tolerates_trials_that_finished_after_the_saved_state(tmp_path):
    """A driver killed after Optuna recorded a trial COMPLETE but before Tune snapshotted the
    searcher: the restored searcher sees the trial as running and Tune resumes it."""
    db, state = tmp_path / "optuna.db", tmp_path / "searcher.pkl"
    first = _searcher(db)
    first.suggest("a")
    first.on_trial_result("a", {"val/f1_cinc": 0.5, "training_iteration": 1})
    first.save(str(state))  # the snapshot lags ...
    first.on_trial_result("a", {"val/f1_cinc": 0.6, "training_iteration": 2})
    first.on_trial_complete("a", {"val/f1_cinc": 0.6, "training_iteration": 2})  # ... the DB

    restored = _searcher(db)
    restored.restore(str(state))
    restored.on_trial_result("a", {"val/f1_cinc": 0.6, "training_iteration": 2})
    restored.on_trial_complete("a", {"val/f1_cinc": 0.6, "training_iteration": 2})
    assert restored.suggest("b") is not None
    restored.on_trial_result("b", {"val/f1_cinc": 0.1, "training_iteration": 1})
    restored.on_trial_complete("b", {"val/f1_cinc": 0.1, "training_iteration": 1})

    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.value for t in trials] == [pytest.approx(0.6), pytest.approx(0.1)]
