"""After a study's Tune runs: one code path from a Ray Tune ResultGrid to `trials.parquet`
(search) and `cv.parquet` (cross-validation), and the best configuration."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from data_io.atomic import write_text_atomic
from search_spaces import flatten_options
from study.folder_format import BEST_CONFIG, BEST_TRIAL, EPOCH, TRIAL_ID
from study.tune.plan import Plan
from study.tune.results import trials_frame
from study.tune.spec import StudySpec

ERROR_CHARS = 2000


def trial_id(result) -> str:
    """Tune's short trial id (e.g. ``0b71eee8``), read from the trial directory's name."""
    name = Path(result.path).name  # run_trial_<id>_<n>_<params>_<date>
    parts = name.split("_")
    return parts[2] if name.startswith("run_trial_") and len(parts) > 2 else name


def trial_number(result) -> int:
    """Tune's count of the trial in its experiment (trials start in this order), from the
    trial directory's name (``run_trial_<id>_<n>_...``); -1 when the name has none."""
    parts = Path(result.path).name.split("_")
    return int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else -1


def search_identity(result) -> tuple[str, dict[str, Any]]:
    """A search trial: Tune's trial id and the sampled config."""
    return trial_id(result), result.config


def cv_identity(result) -> tuple[str, dict[str, Any]]:
    """A cross-validation trial: ``<candidate>-fold<k>`` and the candidate's config with the
    candidate's trial id under ``candidate``."""
    candidate = result.config["candidate"]
    return (f"{candidate['trial_id']}-fold{result.config['fold']}",
            {"candidate": candidate[TRIAL_ID], **candidate["config"]})


def collect(
    grid,
    *,
    milestones: list[int],
    identify: Callable[[Any], tuple[str, dict[str, Any]]] = search_identity,
) -> pd.DataFrame:
    """The rows of every trial of ``grid`` (see `study.tune.results.trials_frame`)."""
    trials = []
    for result in grid:
        name, config = identify(result)
        frame = result.metrics_dataframe
        error = None
        if result.error is not None:
            error = f"{type(result.error).__name__}: {result.error}"[:ERROR_CHARS]
        trials.append({TRIAL_ID: name, "config": config,
                       "history": [] if frame is None else frame.to_dict("records"),
                       "error": error, "number": trial_number(result)})
    return trials_frame(trials, milestones=milestones)


def result_by_trial(grid) -> dict[str, Any]:
    return {trial_id(result): result for result in grid}




def write_best(plan: Plan, spec: StudySpec, *, ranked: pd.DataFrame,
               grid) -> dict[str, Any] | None:
    """`best_config.json`: the best full-budget trial's training config, as `study.train
    --config` reads it; `best_trial.json` beside it: which trial, its score, its sampled
    values (with the space's values that go with them) and the options the study fixed. None
    (and nothing written) when no trial ran the full budget."""
    from study.tune.trainable import trial_config

    if ranked.empty:
        return None
    row = ranked.iloc[0]
    result = result_by_trial(grid)[row[TRIAL_ID]]
    best = {TRIAL_ID: row[TRIAL_ID], plan.metric: float(row[plan.metric]),
            "epochs": int(row[EPOCH]), "study": plan.name, "dataset": plan.dataset,
            "fold": plan.fold, "config_file": BEST_CONFIG,
            **sampled_and_fixed(result.config, spec=spec)}
    study_dir = Path(plan.study_dir)
    write_text_atomic(study_dir / BEST_CONFIG,
                      json.dumps(trial_config(result.config, spec=spec), indent=2, default=str))
    write_text_atomic(study_dir / BEST_TRIAL, json.dumps(best, indent=2, default=str))
    return best


def sampled_and_fixed(config: dict[str, Any], *, spec: StudySpec) -> dict[str, Any]:
    """A search trial's config (unflattened, as Tune holds it) split into ``sampled`` (what
    the space drew for it, with the values that go with the draw) and ``fixed`` (what the
    study fixed in every trial), both flattened (``optim/lr``)."""
    fixed = spec.fixed_options
    return {"sampled": {k: v for k, v in flatten_options(config).items() if k not in fixed},
            "fixed": fixed}


def report_command(plan: Plan) -> str:
    """The command that builds the study's report."""
    return shlex.join(["python", "-m", "reports.build", "--study", str(plan.study_dir)])


def retrain_command(plan: Plan) -> str:
    """The command that retrains the best configuration alone, on the study's data and folds
    and validated on its search fold, as it pastes (docs/best-trial-to-test-score.md)."""
    options = [word for key, value in sorted(plan.dataset_options.items())
               for word in ("--data-option", f"{key}={value}")]
    return shlex.join(["python", "-m", "study.train",
                       "--config", str(Path(plan.study_dir) / BEST_CONFIG),
                       "--dataset", plan.dataset, "--data-dir", str(plan.data_dir),
                       "--fold", str(plan.fold), "--n-folds", str(plan.n_folds), *options,
                       "--out", str(Path(plan.study_dir) / "retrain"), "--json"])
