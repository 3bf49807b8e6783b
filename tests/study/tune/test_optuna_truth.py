"""`study.tune.optuna_truth`: the Optuna storage records what each trial did (no Ray cluster).

The recorder is driven the way Ray Tune's controller drives it (trial start, one result per
epoch, then complete or error), with the study's own searcher asking the Optuna trials.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from study.library_internals import SamplingOptunaSearch
from study.tune import optuna_truth
from study.tune.optuna_truth import OptunaRecorder
from study.tune.results import trials_frame

METRIC = "val/score"
MILESTONES = [1, 2, 4]  # ASHA rungs at epochs 1 and 2, full budget 4


def _define(trial: optuna.trial.BaseTrial) -> None:
    trial.suggest_float("model/x", 0.0, 1.0)


class Study:
    """A study's searcher and recorder on one SQLite storage, and fake Tune trials."""

    def __init__(self, tmp_path, *, sampler: optuna.samplers.BaseSampler | None = None):
        self.url = f"sqlite:///{tmp_path / 'optuna.db'}"
        self.searcher = SamplingOptunaSearch(
            space=_define, metric=METRIC, mode="max", study_name="s", storage=
            optuna.storages.RDBStorage(self.url),
            sampler=sampler or optuna.samplers.RandomSampler(seed=0))
        self.recorder = OptunaRecorder(storage_url=self.url, study_name="s", metric=METRIC,
                                       milestones=MILESTONES)

    def start(self, trial_id: str) -> SimpleNamespace:
        config = self.searcher.suggest(trial_id)
        trial = SimpleNamespace(trial_id=trial_id, config=config, last_result={},
                                get_error=lambda: None)
        self.recorder.on_trial_start(0, [], trial)
        return trial

    def report(self, trial, scores: list[float], *, first_epoch: int = 1) -> None:
        for epoch, score in enumerate(scores, start=first_epoch):
            result = {METRIC: score, "epoch": epoch, "training_iteration": epoch,
                      "trial_status": "running"}
            self.searcher.on_trial_result(trial.trial_id, result)  # Ray calls both
            self.recorder.on_trial_result(0, [], trial, result)
            trial.last_result = result

    def complete(self, trial) -> None:
        self.searcher.on_trial_complete(trial.trial_id, result=trial.last_result)
        self.recorder.on_trial_complete(0, [], trial)

    def run(self, trial_id: str, scores: list[float]):
        trial = self.start(trial_id)
        self.report(trial, scores)
        self.complete(trial)
        return trial

    def trials(self) -> dict[str, optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name="s", storage=self.url)
        return {t.user_attrs.get("tune_trial_id", f"#{t.number}"): t for t in study.trials}


def test_each_state_says_what_the_trial_did(tmp_path):
    s = Study(tmp_path)
    s.run("full", [0.5, 0.6, 0.7, 0.8])
    s.run("stopped", [0.4, 0.3])  # ASHA stopped it at its epoch-2 rung
    diverged = s.start("diverged")
    s.report(diverged, [0.2])
    s.recorder.on_trial_result(0, [], diverged, {
        METRIC: 0.0, "epoch": 2, "training_iteration": 2, "trial_status": "diverged",
        "message": "loss is NaN at epoch 2, batch 3"})
    diverged.last_result = {"epoch": 2, "trial_status": "diverged",
                            "message": "loss is NaN at epoch 2, batch 3"}
    s.complete(diverged)
    crashed = s.start("crashed")
    s.report(crashed, [0.1])
    (tmp_path / "error.txt").write_text("Failure # 1 (occurred at 2026-11-29_10-00-00)\n"
                                        "RuntimeError: CUDA out of memory\n")
    crashed.error_file = str(tmp_path / "error.txt")  # Tune's error file of the trial
    s.searcher.on_trial_complete("crashed", error=True)
    s.recorder.on_trial_error(0, [], crashed)

    trials = s.trials()
    full, stopped = trials["full"], trials["stopped"]
    assert full.state == TrialState.COMPLETE and full.value == pytest.approx(0.8)
    assert full.intermediate_values == pytest.approx({1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8})
    assert full.user_attrs["stop_reason"] == "completed" and full.user_attrs["rung"] == 2
    assert stopped.state == TrialState.PRUNED and stopped.value == pytest.approx(0.3)
    assert stopped.intermediate_values == pytest.approx({1: 0.4, 2: 0.3})  # the stopping one
    assert stopped.user_attrs["stop_reason"] == "early_stopped"
    assert stopped.user_attrs["rung"] == 1 and stopped.user_attrs["epochs_completed"] == 2
    assert trials["diverged"].state == TrialState.FAIL
    assert trials["diverged"].intermediate_values == pytest.approx({1: 0.2})  # no stand-in 0
    assert trials["diverged"].user_attrs["message"] == "loss is NaN at epoch 2, batch 3"
    assert trials["crashed"].state == TrialState.FAIL
    assert trials["crashed"].user_attrs["message"] == "RuntimeError: CUDA out of memory"
    assert trials["crashed"].user_attrs["stop_reason"] == "error"
    # optuna-dashboard labels the objective with the study metric, not "Objective 0"
    assert optuna.load_study(study_name="s", storage=s.url).metric_names == [METRIC]


def test_the_storage_agrees_with_trials_parquet(tmp_path):
    s = Study(tmp_path)
    histories = {"a": [0.5, 0.6, 0.7, 0.8], "b": [0.1], "c": [0.4, 0.3]}
    for trial_id, scores in histories.items():
        s.run(trial_id, scores)
    frame = trials_frame([{"trial_id": t, "config": {}, "error": None, "history": [
        {"epoch": e, METRIC: v} for e, v in enumerate(scores, start=1)]}
        for t, scores in histories.items()], milestones=MILESTONES)
    line = optuna_truth.agreement(frame=frame, storage_url=s.url, study_name="s")
    assert line == "Optuna storage: COMPLETE 1, PRUNED 2; agrees with trials.parquet"
    lying = frame.assign(stop_reason="completed")
    assert optuna_truth.agreement(frame=lying, storage_url=s.url,
                                  study_name="s").startswith("warning: ")


def test_a_trial_rerun_after_a_driver_kill_is_counted_once(tmp_path):
    """Tune's snapshot lagged the database: the restored experiment runs a trial again that
    the storage already finished; the storage keeps its first, complete record."""
    s = Study(tmp_path)
    first = s.run("a", [0.5, 0.6, 0.7, 0.8])
    restored = pickle.loads(pickle.dumps(s.recorder))  # what Ray restores on resume
    rerun = SimpleNamespace(trial_id="a", config=first.config, last_result={},
                            get_error=lambda: None)
    restored.on_trial_start(0, [], rerun)
    for epoch, score in ((3, 0.7), (4, 0.8)):
        rerun.last_result = {METRIC: score, "epoch": epoch, "trial_status": "running"}
        restored.on_trial_result(0, [], rerun, rerun.last_result)
    restored.on_trial_complete(0, [], rerun)
    trials = s.trials()
    assert list(trials) == ["a"]
    assert trials["a"].state == TrialState.COMPLETE
    assert trials["a"].value == pytest.approx(0.8)


def test_reconcile_closes_what_a_killed_driver_left_running(tmp_path):
    s = Study(tmp_path)
    s.run("done", [0.5, 0.6, 0.7, 0.8])
    s.report(s.start("ended-unrecorded"), [0.2, 0.1])  # killed before the recorder's end
    s.searcher.suggest("asked-never-run")  # asked, then lost with the killed driver
    from study.tune.results import TrialOutcome

    closed = optuna_truth.reconcile(storage_url=s.url, study_name="s", outcomes={
        "ended-unrecorded": TrialOutcome(stop_reason="early_stopped", epochs_completed=2,
                                         max_rung=1)})
    assert closed == {"early_stopped": 1, optuna_truth.NEVER_RUN: 1}
    states = {name: t.state for name, t in s.trials().items()}
    assert TrialState.RUNNING not in states.values()
    assert states["ended-unrecorded"] == TrialState.PRUNED
    counts = optuna_truth.state_counts(storage_url=s.url, study_name="s")
    assert counts == {"COMPLETE": 1, "PRUNED": 1, optuna_truth.NEVER_RUN: 1}


def _tpe() -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=0, n_startup_trials=5)


PLANTED = [(0.1, [0.3, 0.4, 0.5, 0.6]), (0.9, [0.95])] \
    + [(x, [0.2, 0.2]) for x in (0.4, 0.45, 0.5, 0.55)]
"""(x, per-epoch scores): one complete trial at x = 0.1 (final 0.6), one stopped at epoch 1 at
x = 0.9 whose low-budget score (0.95) beats it, four stopped at epoch 2 in the middle."""
DIST = {"model/x": optuna.distributions.FloatDistribution(0.0, 1.0)}


def _share_near_complete_trial(study: optuna.Study) -> float:
    """Share of 40 new TPE samples below x = 0.3 (near the complete trial). Each sample is
    closed as FAIL at once: TPE counts RUNNING trials among the bad ones."""
    xs = []
    for _ in range(40):
        trial = study.ask(DIST)
        xs.append(trial.params["model/x"])
        study.tell(trial, state=TrialState.FAIL)
    return sum(x < 0.3 for x in xs) / len(xs)


def _recorded_share(tmp_path) -> float:
    s = Study(tmp_path)
    study = optuna.load_study(study_name="s", storage=s.url)
    for k, (x, scores) in enumerate(PLANTED):
        study.enqueue_trial({"model/x": x})
        s.run(f"t{k}", scores)
    return _share_near_complete_trial(optuna.load_study(study_name="s", storage=s.url,
                                                        sampler=_tpe()))


def _hand_made_share(record_pruned_as: TrialState | None) -> float:
    """The same trials, with the stopped ones written as ``record_pruned_as`` (None: left
    out), sampled with the same TPE."""
    study = optuna.create_study(direction="maximize", sampler=_tpe())
    for x, scores in PLANTED:
        complete = len(scores) == MILESTONES[-1]
        state = TrialState.COMPLETE if complete else record_pruned_as
        if state is not None:
            study.add_trial(optuna.trial.create_trial(
                params={"model/x": x}, distributions=DIST, state=state, value=scores[-1],
                intermediate_values=dict(enumerate(scores, start=1))))
    return _share_near_complete_trial(study)


def test_tpe_learns_from_pruned_trials_as_optuna_does(tmp_path):
    """TPE must count a PRUNED trial (so it leaves its random start-up) yet rank it below every
    COMPLETE trial whatever its low-budget score: new samples gather near the complete trial.
    Counted as COMPLETE, the stopped trial's low-budget 0.95 would draw TPE to x = 0.9;
    ignored, TPE would still sample at random."""
    truthful = _recorded_share(tmp_path)
    assert truthful == _hand_made_share(TrialState.PRUNED)  # the recorder wrote PRUNED
    as_complete = _hand_made_share(TrialState.COMPLETE)
    ignored = _hand_made_share(None)
    assert truthful >= 0.9, truthful
    assert as_complete <= 0.1, as_complete
    assert ignored <= 0.5, ignored


def test_outcomes_of_parquet_rows_keep_the_message():
    frame = pd.DataFrame([
        {"trial_id": "a", "epoch": 1, "stop_reason": "diverged", "epochs_completed": 1,
         "max_rung": 0, "error": "", "message": "loss is NaN"},
        {"trial_id": "b", "epoch": 4, "stop_reason": "completed", "epochs_completed": 4,
         "max_rung": 2, "error": "", "message": float("nan")},
    ])
    outcomes = optuna_truth.outcomes_of(frame)
    assert outcomes["a"].message == "loss is NaN" and outcomes["b"].message == ""
    assert optuna_truth.outcomes_of(frame.iloc[0:0]) == {}
