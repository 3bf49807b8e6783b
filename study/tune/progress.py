"""What a study prints while it runs: one line per trial event and a periodic summary with ETA.

Ray Tune's own tables, its TensorBoard hint and the benign warnings of Ray's driver go to a log
file in the study directory instead (`ray_output_to`), so the terminal (and a CI log) shows
only what a person follows: a trial starts, passes an ASHA rung with a score, is stopped, fails
or finishes; and every ``interval_s`` one line with trials done, running, the best score so far
and an ETA from the measured seconds per epoch and the expected epochs under ASHA.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from search_spaces import flatten_options
from study.folder_format import TRIAL_STATUS
from study.tune.results import expected_remaining_epochs
from study.tune.trainable import TEST_FOLD

if TYPE_CHECKING:
    from study.tune.explanation_cost import ExplanationEpochs

RAY_LOG = "ray-driver.log"
"""File in the study directory that receives everything Ray writes to the driver's stderr."""

SUMMARY_INTERVAL_S = 60.0


@contextlib.contextmanager
def ray_output_to(log_path: Path) -> Iterator[Path]:
    """Send the process' stderr (file descriptor 2, so native Ray logs too) to ``log_path``.

    Ray's driver writes its start-up notes, warnings ("operation took 1.6 s", actor-restart
    notes from the C++ core worker) and trial tracebacks to stderr; they stay readable in the
    log file. stdout is left alone: the study's own progress lines go there.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield log_path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes = f"{rest // 60:02d}:{rest % 60:02d}"
    return f"{hours}:{minutes}" if hours else minutes


def duration(seconds: float) -> str:
    """``95`` -> ``"1.6 min"``; hours past 90 minutes."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def short_config(config: dict[str, Any], *, fixed: Collection[str] = ()) -> str:
    """``{"model": {"depth": 7}, "optim": {"lr": 0.00123}}`` -> ``"depth=7 lr=0.00123"``; a
    cross-validation or final trial (a chosen candidate on a fold) -> ``"cnn7_gmp on fold 1"``.

    ``fixed``: flattened names (``loss/focal_gamma``) of options the study fixes in every
    trial; they are printed once with the plan, so the line shows what varies. The line is
    never cut: a ConvLSTM trial's options run past 200 characters, and a cut hid its learning
    rate."""
    if "candidate" in config:
        fold = config.get("fold")
        where = "all non-test records" if fold == TEST_FOLD else f"fold {fold}"
        return f"{config['candidate']['trial_id']} on {where}"
    parts = []
    for name, value in flatten_options(config).items():
        key = name.rsplit("/", 1)[-1]
        if key == "name" or name in fixed:  # the model family: the space's, in every trial
            continue
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


FINAL_STAGE = "final training"
"""The stage `study.tune.tuning.later_stages` names the last training wave."""


class StudyProgress(tune.Callback):
    """Ray Tune callback printing the study's progress on stdout (plain data only, so it is
    pickled with the experiment and works again after ``--resume``).

    Args:
        label: what runs ("search", "cross-validation").
        n_trials: trials the experiment will run.
        metric: the score a trial reports (the space's ``METRIC``).
        mode: "max" or "min".
        milestones: epochs at which ASHA compares trials (only the budget without ASHA).
        reduction_factor: ASHA's; used for the expected epochs per trial in the ETA.
        concurrency: trials running at once.
        interval_s: seconds between summary lines.
        shown_as: the metric's name in the lines (default ``metric``; the final training
            reports its test-set score under the validation key).
        rung_metric: what ASHA ranks on at its rungs when it is not ``metric``; the rung
            lines then show it too, as the stops follow it.
        fixed: flattened names of the options every trial has fixed (`short_config`).
        later_stages: (stage, waves) of the full-budget runs (``concurrency`` at a time) the
            study trains after this experiment (cross-validation, final training).
        explain_epochs: what the explanations written after the training cost, in trial
            epochs (`study.tune.explanation_cost.ExplanationEpochs`; None: none). The ETA
            adds both at the measured epoch time, so it covers the whole study, and gives
            each stage's share.
    """

    def __init__(self, *, label: str, n_trials: int, metric: str, mode: str,
                 milestones: list[int], reduction_factor: float, concurrency: int,
                 interval_s: float = SUMMARY_INTERVAL_S, shown_as: str | None = None,
                 rung_metric: str | None = None, fixed: Collection[str] = (),
                 later_stages: tuple[tuple[str, int], ...] = (),
                 explain_epochs: ExplanationEpochs | None = None) -> None:
        self.label = label
        self.later_stages = tuple(later_stages)
        self.explain_epochs = explain_epochs
        self.fixed = sorted(fixed)
        self.n_trials = n_trials
        self.metric = metric
        self.shown_as = shown_as or metric
        self.rung_metric = rung_metric if rung_metric != metric else None
        self.mode = mode
        self.milestones = list(milestones)
        self.reduction_factor = reduction_factor
        self.concurrency = concurrency
        self.interval_s = interval_s
        self._reset()

    def _reset(self) -> None:
        self._started = time.monotonic()
        self._last_summary = self._started
        self._epoch_seconds: list[float] = []  # Tune's wall time per epoch
        self._compute_seconds: list[float] = []
        self._epochs: dict[str, int] = {}
        self._best: tuple[float, str] | None = None
        self._ended: dict[str, str] = {}  # trial id -> finished / stopped / diverged / failed
        self._numbers: dict[str, int] = {}
        self._last_seen: dict[str, float] = {}  # running trial -> when it last started or reported

    def setup(self, **info: Any) -> None:
        self._reset()

    def _say(self, text: str) -> None:
        print(f"[{_clock(time.monotonic() - self._started)}] {text}", flush=True)

    def _number(self, trial: Any) -> str:
        number = self._numbers.setdefault(trial.trial_id, len(self._numbers) + 1)
        return f"trial {trial.trial_id} ({number}/{self.n_trials})"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        restarted = self._epochs.get(trial.trial_id, 0) or (trial.last_result or {}).get("epoch")
        verb = f"resumes after epoch {restarted}" if restarted else "starts"
        self._last_seen[trial.trial_id] = time.monotonic()
        self._say(f"{self._number(trial)} {verb}: {short_config(trial.config, fixed=self.fixed)}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        self._epochs[trial.trial_id] = epoch
        self._last_seen[trial.trial_id] = time.monotonic()
        if "time_this_iter_s" in result:
            self._epoch_seconds.append(float(result["time_this_iter_s"]))
        if "seconds" in result:  # the trainer's own time of the epoch: its passes only
            self._compute_seconds.append(float(result["seconds"]))
        score = result.get(self.metric)
        measured = result.get(TRIAL_STATUS, "running") == "running"  # diverged: no score
        if score is not None and measured and epoch in self.milestones[:-1]:
            rung = self.milestones.index(epoch)
            ranked = result.get(self.rung_metric) if self.rung_metric else None
            self._say(f"{self._number(trial)} epoch {epoch} (rung {rung}): "
                      f"{self.shown_as} {score:.4f}"
                      + (f", ranked on {self.rung_metric} {ranked:.4f}"
                         if ranked is not None else ""))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._last_seen.pop(trial.trial_id, None)
        last = trial.last_result or {}
        epoch = int(last.get("epoch", 0))
        score = last.get(self.metric)
        scored = f"{self.shown_as} {score:.4f}" if score is not None else "no score"
        outcome = self._ended[trial.trial_id] = self._outcome(last)
        if outcome == "diverged":
            message = last.get("message") or "loss not finite"
            self._say(f"{self._number(trial)} diverged: {message}")
        elif outcome == "finished":
            if score is not None:
                self._note_best(float(score), trial.trial_id)
            self._say(f"{self._number(trial)} finished after {epoch} epochs: "
                      f"{scored}{self._best_note(trial.trial_id)}")
        else:
            self._say(f"{self._number(trial)} stopped early by the scheduler after epoch "
                      f"{epoch}: {scored}")
        self._summary_if_due(trials, force=False)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"{self._number(trial)} failed ({_error_line(trial)}); retrying from its "
                  f"last checkpoint (failure {trial.num_failures})")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended[trial.trial_id] = "failed"
        self._last_seen.pop(trial.trial_id, None)
        where = f"; traceback in {trial.error_file}" if trial.error_file else ""
        self._say(f"{self._number(trial)} failed: {_error_line(trial)}{where}")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._summary_if_due(trials, force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._summary_if_due(trials, force=True)

    def _note_best(self, score: float, trial_id: str) -> None:
        better = self._best is None or (
            score > self._best[0] if self.mode == "max" else score < self._best[0])
        if better:
            self._best = (score, trial_id)

    def _best_note(self, trial_id: str) -> str:
        return " (best so far)" if self._best and self._best[1] == trial_id else ""

    def _summary_if_due(self, trials: list, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_summary < self.interval_s:
            return
        self._last_summary = now
        self._adopt_ended(trials)
        self._say(self.summary_line(running=sum(t.status == "RUNNING" for t in trials)))

    def _adopt_ended(self, trials: list) -> None:
        """Count the trials that ended before this driver saw them (a resumed study restores
        them already terminated, and Tune calls no completion hook for them)."""
        for trial in trials:
            if trial.trial_id in self._ended or trial.status not in ("TERMINATED", "ERROR"):
                continue
            last = trial.last_result or {}
            self._ended[trial.trial_id] = ("failed" if trial.status == "ERROR"
                                           else self._outcome(last))
            score = last.get(self.metric)
            if self._ended[trial.trial_id] == "finished" and score is not None:
                self._note_best(float(score), trial.trial_id)

    def _outcome(self, last: dict) -> str:
        """finished / stopped / diverged, from a trial's last result."""
        if last.get(TRIAL_STATUS) == "diverged":
            return "diverged"
        return "finished" if int(last.get("epoch", 0)) >= self.milestones[-1] else "stopped"

    def summary_line(self, *, running: int) -> str:
        """``3/8 trials done (1 finished, 2 stopped), 2 running, best ... ; ETA ~4 min``."""
        counts: dict[str, int] = {}
        for outcome in self._ended.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        done = len(self._ended)
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        best = (f"best {self.shown_as} {self._best[0]:.4f} ({self._best[1]})"
                if self._best else "no trial finished yet")
        return (f"{self.label}: {done}/{self.n_trials} trials done"
                f"{f' ({outcomes})' if outcomes else ''}, {running} running, {best}; "
                f"{self.eta_text()}")

    def eta_text(self) -> str:
        if len(self._ended) >= self.n_trials:
            return f"took {duration(time.monotonic() - self._started)}"
        if not self._epoch_seconds:
            return "ETA after the first epoch"
        per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        # A running trial whose current epoch already took longer than the mean (a deep model
        # next to shallow ones) adds its overrun: that epoch cannot end sooner.
        now = time.monotonic()
        overrun = sum(max(now - seen - per_epoch, 0.0) for seen in self._last_seen.values())
        remaining = sum(
            expected_remaining_epochs(epoch=self._epochs.get(trial, 0), milestones=self.milestones,
                                      reduction_factor=self.reduction_factor)
            for trial in self._epochs if trial not in self._ended
        ) + (self.n_trials - len(set(self._epochs) | set(self._ended))) * expected_remaining_epochs(
            epoch=0, milestones=self.milestones, reduction_factor=self.reduction_factor)
        slots = max(min(self.concurrency, self.n_trials - len(self._ended)), 1)
        basis = ("ASHA's expected epochs" if len(self.milestones) > 1
                 else "every trial runs to the end")
        this = (remaining * per_epoch + overrun) / slots
        text = f"ETA ~{duration(this)} ({basis})"
        # In the order they run: the driver explains the best trials before the final training.
        later = {name: waves * self.milestones[-1] * per_epoch
                 for name, waves in self.later_stages}
        final = later.pop(FINAL_STAGE, 0.0)
        # Explanations are passes only: priced at the epochs' compute time, without the
        # reporting and checkpointing a trial's epoch also waits for.
        compute = (sum(self._compute_seconds) / len(self._compute_seconds)
                   if self._compute_seconds else per_epoch)
        # The scored records stop at their share of the time the stages before them take.
        before = now - self._started + this + sum(later.values())
        explain = (0.0 if self.explain_epochs is None else
                   self.explain_epochs.seconds(per_epoch=compute, before_s=before))
        stages = {self.label: this, **later, "explanations": explain,
                  FINAL_STAGE: final}
        if len([s for s in stages.values() if s > 0]) > 1:
            total = sum(stages.values())
            text += f"; the whole study ~{duration(total)} more: " + ", ".join(
                f"{name} {100 * s / total:.0f} %" for name, s in stages.items() if s > 0)
        return text


def _error_line(trial: Any) -> str:
    error = trial.get_error() if hasattr(trial, "get_error") else None
    text = str(error).strip().splitlines() if error is not None else []
    return text[-1][:200] if text else "see its error file"
