"""The Optuna storage tells what happened to every trial, as `trials.parquet` does.

Ray's OptunaSearch tells Optuna a trial that ASHA stopped as COMPLETE with its low-budget
value and drops the report that stopped it, so optuna-dashboard, ``best_trial`` and Optuna's
importance plots would mix budgets. Here Ray's searcher only samples
(`study.library_internals.SamplingOptunaSearch`), and `OptunaRecorder`, a Ray Tune callback in
the driver, writes through Optuna's storage API (its members are checked at start-up, see
`study.library_internals`):

- every epoch's score as an intermediate value (step = epoch), the stopping one included;
- the end of a trial by its `study.tune.results.TrialOutcome`: completed -> COMPLETE,
  early_stopped -> PRUNED (valued by its last intermediate value, as `optuna.Study.tell`
  does; TPE ranks it below every COMPLETE trial, by how far it got), diverged and
  error -> FAIL;
- user attributes ``tune_trial_id`` (the Tune trial, W&B run and `trials.parquet` id),
  ``stop_reason``, ``rung``, ``epochs_completed`` and ``message``.

After a driver kill, Tune may rerun a trial the storage already finished (its experiment
snapshot lags the database): the recorder leaves a finished Optuna trial alone, so nothing is
counted twice. `reconcile` closes what is still RUNNING when the search ends.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState
from ray import tune

from study import folder_format as fmt
from study.tune.optuna_storage import open_storage
from study.tune.plan import Plan
from study.tune.results import TrialOutcome, flatten, trial_outcome

TUNE_TRIAL_ID = "tune_trial_id"
"""User attribute linking an Optuna trial to its Tune trial (= W&B run id, parquet trial_id)."""
NEVER_RUN = "never_run"
"""`stop_reason` of an Optuna trial asked by a driver that was killed before Tune started it."""
STATE_OF_REASON = {
    fmt.COMPLETED: TrialState.COMPLETE,
    fmt.EARLY_STOPPED: TrialState.PRUNED,
    fmt.DIVERGED: TrialState.FAIL,
    fmt.FAILED: TrialState.FAIL,
    NEVER_RUN: TrialState.FAIL,
}
"""`study.folder_format.STOP_REASONS` (plus `NEVER_RUN`) -> the Optuna state that says the same."""
MESSAGE_CHARS = 2000


class OptunaRecorder(tune.Callback):
    """Writes each Tune trial's intermediate values and outcome into its Optuna trial.

    Holds plain data only (Ray pickles callbacks with the experiment and restores them on
    resume); the storage is opened on first use in the driver.

    Args:
        storage_url: the study's Optuna storage (`study.tune.plan.Plan.optuna_storage`).
        study_name: the Optuna study.
        metric: the reported score that Optuna optimises.
        milestones: epochs at which the scheduler compares trials, ending with the budget.
    """

    def __init__(self, *, storage_url: str, study_name: str, metric: str,
                 milestones: list[int]) -> None:
        self.storage_url = storage_url
        self.study_name = study_name
        self.metric = metric
        self.milestones = list(milestones)
        self._ledger: Ledger | None = None
        self._ids: dict[str, int] = {}  # Tune trial id -> Optuna storage trial id

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ledger": None, "_ids": {}}

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(storage_url=self.storage_url, study_name=self.study_name)
            self._ledger.name_objective(self.metric)
        return self._ledger

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.optuna_trial_id(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        # A diverged trial's last row measured nothing (its score is NaN).
        if result.get(fmt.TRIAL_STATUS, "running") != "running" or self.metric not in result:
            return
        trial_id = self.optuna_trial_id(trial)
        if trial_id is not None and not self.ledger.finished(trial_id):
            self.ledger.storage.set_trial_intermediate_value(
                trial_id, int(result[fmt.EPOCH]), float(result[self.metric]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=error_text(trial))

    def _finish(self, trial: Any, *, error: str | None) -> None:
        trial_id = self.optuna_trial_id(trial)
        if trial_id is None or self.ledger.finished(trial_id):
            return  # finished before a driver kill; Tune reran it from a lagging snapshot
        history = [trial.last_result] if trial.last_result else []
        self.ledger.finish(trial_id, trial_outcome(history=history, error=error,
                                                   milestones=self.milestones))

    def optuna_trial_id(self, trial: Any) -> int | None:
        """The Optuna trial of a Tune trial: the one tagged with its id, else the RUNNING,
        untagged trial with its parameters (asked by the searcher for it), which is tagged."""
        if trial.trial_id not in self._ids:
            found = self.ledger.find(tune_trial_id=trial.trial_id,
                                     params=flatten(trial.config, prefix=""))
            if found is None:
                return None
            self._ids[trial.trial_id] = found
        return self._ids[trial.trial_id]


def error_text(trial: Any) -> str:
    """The last failure of a Tune trial as Tune wrote it to the trial's error file (read
    locally: the copy in the experiment's storage is synced later), without its header."""
    path = getattr(trial, "error_file", None)
    text = Path(path).read_text() if path and Path(path).is_file() else trial.get_error() or ""
    last = str(text).rsplit("Failure # ", 1)[-1]
    body = last.split("\n", 1)[1] if "\n" in last else last  # drop "N (occurred at ...)"
    return body.strip()[:MESSAGE_CHARS] or "the trial raised an error (no error file)"


class Ledger:
    """An Optuna study's trials, read and written through Optuna's public storage API."""

    def __init__(self, *, storage_url: str, study_name: str) -> None:
        self.storage = open_storage(storage_url)
        self.study_name = study_name
        self.study_id = self.storage.get_study_id_from_name(study_name)

    def name_objective(self, metric: str) -> None:
        """Name the study's objective ``metric`` (optuna-dashboard and Optuna's plots show
        it instead of "Objective 0")."""
        study = optuna.load_study(study_name=self.study_name, storage=self.storage)
        if study.metric_names != [metric]:
            with warnings.catch_warnings():  # experimental since Optuna 3.2, unchanged to 5.1
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([metric])

    def trials(self, *, states: tuple[TrialState, ...] | None = None
               ) -> list[optuna.trial.FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def finished(self, trial_id: int) -> bool:
        return self.storage.get_trial(trial_id).state.is_finished()

    def find(self, *, tune_trial_id: str, params: dict[str, Any]) -> int | None:
        """The storage id of the trial tagged ``tune_trial_id``; else tags and returns the
        first RUNNING untagged trial whose parameters ``params`` (a Tune config, flattened:
        sampled values plus the space's fixed ones) holds; None when there is neither."""
        trials = self.trials()
        found = next((t for t in trials if t.user_attrs.get(TUNE_TRIAL_ID) == tune_trial_id),
                     None)
        if found is not None:
            return self.trial_id(found.number)
        found = next((t for t in trials if t.state == TrialState.RUNNING
                      and TUNE_TRIAL_ID not in t.user_attrs
                      and all(params.get(k) == v for k, v in t.params.items())), None)
        if found is None:
            return None
        trial_id = self.trial_id(found.number)
        self.storage.set_trial_user_attr(trial_id, TUNE_TRIAL_ID, tune_trial_id)
        return trial_id

    def finish(self, trial_id: int, outcome: TrialOutcome) -> None:
        """Record ``outcome`` on the RUNNING trial ``trial_id``: user attributes, then the
        state and value (a PRUNED trial's value is its last intermediate value, as
        `optuna.Study.tell` gives it)."""
        attrs = {fmt.STOP_REASON: outcome.stop_reason, "rung": outcome.max_rung,
                 "epochs_completed": outcome.epochs_completed}
        if outcome.message:
            attrs["message"] = outcome.message[:MESSAGE_CHARS]
        state = STATE_OF_REASON[outcome.stop_reason]
        values = None
        steps = self.storage.get_trial(trial_id).intermediate_values
        if state == TrialState.COMPLETE:
            if outcome.epochs_completed in steps:
                values = [steps[outcome.epochs_completed]]
            else:  # no score at the full budget: say so rather than invent one
                state = TrialState.FAIL
                attrs["message"] = "no score recorded at the full budget"
        elif state == TrialState.PRUNED and steps and math.isfinite(steps[max(steps)]):
            values = [steps[max(steps)]]
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        self.storage.set_trial_state_values(trial_id, state=state, values=values)


def reconcile(*, storage_url: str, study_name: str,
              outcomes: dict[str, TrialOutcome]) -> dict[str, int]:
    """Close every Optuna trial still RUNNING after the search; returns reason -> count.

    A trial whose Tune trial is known gets its outcome from ``outcomes`` (Tune trial id ->
    outcome, from `trials.parquet`): the driver was killed between Tune's end of the trial
    and the recorder. One that no Tune trial ran (asked just before a driver kill, then lost
    with it) becomes FAIL with `NEVER_RUN` as its reason.
    """
    ledger = Ledger(storage_url=storage_url, study_name=study_name)
    closed: Counter[str] = Counter()
    for frozen in ledger.trials(states=(TrialState.RUNNING,)):
        outcome = outcomes.get(frozen.user_attrs.get(TUNE_TRIAL_ID, ""))
        if outcome is None:
            outcome = TrialOutcome(stop_reason=NEVER_RUN, epochs_completed=0, max_rung=-1,
                                   message="asked by a driver that was killed before Ray "
                                           "Tune started the trial; never trained")
        ledger.finish(ledger.trial_id(frozen.number), outcome)
        closed[outcome.stop_reason] += 1
    return dict(closed)


def close_and_compare(*, plan: Plan, frame: pd.DataFrame) -> str:
    """After the search: `reconcile` the study's Optuna trials with ``frame`` (its
    `trials.parquet`) and say what was closed and whether the storage agrees."""
    closed = reconcile(storage_url=plan.optuna_storage, study_name=plan.optuna_study_name,
                       outcomes=outcomes_of(frame))
    lines = []
    if closed:
        lines.append("closed Optuna trials left RUNNING by a killed driver: " + ", ".join(
            f"{reason} {n}" for reason, n in sorted(closed.items())))
    lines.append(agreement(frame=frame, storage_url=plan.optuna_storage,
                           study_name=plan.optuna_study_name))
    return "\n".join(lines)


def outcomes_of(frame: pd.DataFrame) -> dict[str, TrialOutcome]:
    """Tune trial id -> outcome, from `trials.parquet` rows."""
    if frame.empty:
        return {}
    last = frame.sort_values(fmt.EPOCH, kind="stable").drop_duplicates(fmt.TRIAL_ID, keep="last")
    return {row[fmt.TRIAL_ID]: _outcome_of_row(row) for row in last.to_dict("records")}


def _outcome_of_row(row: dict[str, Any]) -> TrialOutcome:
    message = row.get(fmt.ERROR) or ""
    if row[fmt.STOP_REASON] == fmt.DIVERGED and isinstance(row.get("message"), str):
        message = row["message"]
    return TrialOutcome(stop_reason=row[fmt.STOP_REASON],
                        epochs_completed=int(row["epochs_completed"]),
                        max_rung=int(row["max_rung"]), message=message)


def state_counts(*, storage_url: str, study_name: str) -> dict[str, int]:
    """Optuna trial state name -> count in the study (``never_run`` trials counted apart)."""
    ledger = Ledger(storage_url=storage_url, study_name=study_name)
    return dict(Counter(
        NEVER_RUN if t.user_attrs.get(fmt.STOP_REASON) == NEVER_RUN else t.state.name
        for t in ledger.trials()))


def expected_counts(frame: pd.DataFrame) -> dict[str, int]:
    """The Optuna state counts that `trials.parquet`'s stop reasons call for."""
    if frame.empty:
        return {}
    reasons = frame.drop_duplicates(fmt.TRIAL_ID)[fmt.STOP_REASON]
    return dict(Counter(STATE_OF_REASON[r].name for r in reasons))


def agreement(*, frame: pd.DataFrame, storage_url: str, study_name: str) -> str:
    """One line comparing the Optuna storage with `trials.parquet`, saying whether they
    agree."""
    have = state_counts(storage_url=storage_url, study_name=study_name)
    want = expected_counts(frame)
    never = have.pop(NEVER_RUN, 0)
    text = ", ".join(f"{state} {n}" for state, n in sorted(have.items())) or "no trials"
    extra = f" (+{never} asked but never run before a driver kill, FAIL)" if never else ""
    if have == want:
        return f"Optuna storage: {text}{extra}; agrees with trials.parquet"
    wanted = ", ".join(f"{state} {n}" for state, n in sorted(want.items()))
    return (f"warning: Optuna storage: {text}{extra}, but trials.parquet calls for {wanted} "
            "(a trial rerun after a driver kill can end differently; trials.parquet holds "
            "what the rerun did)")
