"""The study's own record of every trial: one row per trial and epoch in `trials.parquet`.

Built from Ray Tune's experiment (the source of truth, which survives a killed driver).
Downstream analyses must know each row's epoch, the ASHA rung it reached and why the trial
stopped; `trial_outcome` is that verdict, which the Optuna storage (`study.tune.optuna_truth`) and
the W&B runs record in the same words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from search_spaces import flatten_options
from study.folder_format import (
    COMPLETED,
    DIVERGED,
    EARLY_STOPPED,
    EPOCH,
    ERROR,
    FAILED,
    STOP_REASON,
    TRIAL_ID,
    TRIAL_NUMBER,
    TRIAL_STATUS,
)

SCORE_PREFIXES = ("val/", "train/")
"""Reported keys that are measurements (a diverged trial's last row has none)."""


def asha_milestones(*, grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """Epochs at which ASHA compares trials: grace * rf^k below the budget, and the budget."""
    milestones, k = [], 0
    while True:
        epoch = round(grace_period * reduction_factor**k)
        if epoch >= max_epochs:
            break
        milestones.append(epoch)
        k += 1
    return [*milestones, max_epochs]


def expected_epochs(*, milestones: list[int], reduction_factor: float) -> float:
    """Epochs per configuration under ASHA: E = r_0 + sum_i eta^-i (r_i - r_(i-1)), since a
    fraction eta^-i of the configurations passes rung i. Without early stopping
    (``milestones == [max_epochs]``) it is the budget."""
    return expected_remaining_epochs(epoch=0, milestones=milestones,
                                     reduction_factor=reduction_factor)


def expected_remaining_epochs(*, epoch: int, milestones: list[int],
                              reduction_factor: float) -> float:
    """Epochs a trial that has run ``epoch`` epochs is still expected to run under ASHA: to
    its next milestone for sure, past each later rung with probability 1/eta per rung."""
    upcoming = [m for m in milestones if m > epoch]
    if not upcoming:
        return 0.0
    remaining = upcoming[0] - epoch
    for i in range(1, len(upcoming)):
        remaining += reduction_factor ** -i * (upcoming[i] - upcoming[i - 1])
    return remaining


def flatten(config: dict[str, Any], prefix: str = "config/") -> dict[str, Any]:
    """``{"model": {"depth": 7}}`` -> ``{"config/model/depth": 7}``; lists become JSON text."""
    return {name: json.dumps(list(value)) if isinstance(value, list | tuple) else value
            for name, value in flatten_options(config, prefix=prefix).items()}


def stop_reason(*, history: list[dict[str, Any]], error: str | None, max_epochs: int) -> str:
    """Why a trial ended (one of `study.folder_format.STOP_REASONS`)."""
    if error:
        return FAILED
    if history and history[-1].get(TRIAL_STATUS) == DIVERGED:
        return DIVERGED
    if history and int(history[-1].get(EPOCH, 0)) >= max_epochs:
        return COMPLETED
    return EARLY_STOPPED


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended, in the words `trials.parquet`, the Optuna storage and W&B share.

    Attributes:
        stop_reason: one of `study.folder_format.STOP_REASONS`.
        epochs_completed: the last epoch reported.
        max_rung: index of the last milestone reached (-1: none).
        message: why a trial diverged or failed ("" otherwise).
    """

    stop_reason: str
    epochs_completed: int
    max_rung: int
    message: str = ""


def trial_outcome(*, history: list[dict[str, Any]], error: str | None,
                  milestones: list[int]) -> TrialOutcome:
    """The outcome of a trial from the rows it reported (the last one suffices) and its
    error; ``milestones`` end with the full budget."""
    epochs_done = max((int(r.get(EPOCH, 0)) for r in history), default=0)
    reason = stop_reason(history=history, error=error, max_epochs=milestones[-1])
    message = error or (str(history[-1].get("message") or "") if reason == DIVERGED else "")
    return TrialOutcome(stop_reason=reason, epochs_completed=epochs_done,
                        max_rung=sum(1 for m in milestones if m <= epochs_done) - 1,
                        message=message)


def trial_rows(
    *,
    trial_id: str,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    error: str | None,
    milestones: list[int],
) -> list[dict[str, Any]]:
    """The rows of one trial: its config, and per epoch the metrics and rung bookkeeping."""
    history = latest_per_epoch(history)
    outcome = trial_outcome(history=history, error=error, milestones=milestones)
    base = {
        TRIAL_ID: trial_id,
        **flatten(config),
        STOP_REASON: outcome.stop_reason,
        ERROR: error or "",
        "epochs_completed": outcome.epochs_completed,
        "max_rung": outcome.max_rung,
    }
    if not history:
        return [{**base, EPOCH: 0, "rung": -1, "at_milestone": False}]
    rows = []
    for record in history:
        epoch = int(record.get(EPOCH, 0))
        rows.append(
            {
                **base,
                **_measured(record),
                EPOCH: epoch,
                "rung": sum(1 for m in milestones if m <= epoch) - 1,
                "at_milestone": epoch in milestones,
            }
        )
    return rows


def latest_per_epoch(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch, the last reported, in epoch order.

    A trial that Tune resumes from a checkpoint older than its last report (the experiment
    snapshot lags the disk when a driver dies or the storage fails) reports those epochs again;
    the repeat is what the trial's final state descends from.
    """
    by_epoch = {int(row.get(EPOCH, 0)): row for row in history}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _is_metric(key: str) -> bool:
    # timestamp: when Tune received the row, the order of reports across trials (the ASHA
    # replay, bench.asha_replay, decides in that order). time_total_s: Tune's wall seconds of
    # the trial up to this row, its pre-training and start included ("seconds" is the epoch's).
    return "/" in key or key in ("fold", "node", "seconds", "lr", TRIAL_STATUS, "message",
                                 "timestamp", "time_total_s")


def _measured(record: dict[str, Any]) -> dict[str, Any]:
    """The metric columns of one reported row. The row a diverged trial reports after its
    last epoch measured nothing (training stopped on a non-finite loss), so its scores are
    NaN: never a stand-in such as 0.0 that an analysis would average in."""
    metrics = {k: v for k, v in record.items() if _is_metric(k)}
    if record.get(TRIAL_STATUS) == DIVERGED:
        metrics.update({k: None if isinstance(v, str) else float("nan")
                        for k, v in metrics.items() if k.startswith(SCORE_PREFIXES)})
    return metrics


def trials_frame(
    trials: Iterable[dict[str, Any]], *, milestones: list[int]
) -> pd.DataFrame:
    """All rows of all trials. Each item: ``trial_id``, ``config``, ``history``, ``error``,
    and optionally ``number``: the trial's place in Tune's start order (column
    ``trial_number``)."""
    rows = [
        {**row, **({TRIAL_NUMBER: trial["number"]} if "number" in trial else {})}
        for trial in trials
        for row in trial_rows(
            trial_id=trial[TRIAL_ID], config=trial["config"], history=trial["history"],
            error=trial["error"], milestones=milestones,
        )
    ]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values([TRIAL_ID, EPOCH], kind="stable").reset_index(drop=True)
    return frame


def final_scores(
    frame: pd.DataFrame, *, metric: str, mode: str, max_epochs: int
) -> pd.DataFrame:
    """One row per trial that trained the full budget, best first (the fair comparison)."""
    if frame.empty or metric not in frame:
        return frame.iloc[0:0]
    full = frame[(frame[EPOCH] == max_epochs) & (frame[STOP_REASON] == COMPLETED)]
    return full.sort_values(metric, ascending=(mode == "min"), kind="stable")
